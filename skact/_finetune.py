"""FineTunedClassifier: an ACTEncoder's network trained further, with a head, on labels."""

from __future__ import annotations

import copy
import math
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn
from torch.nn import functional as F

from . import _checks, _device, _freeze, _random, _training
from ._encoder import ACTEncoder
from ._transfer import _fit_encoder, _labeled_target
from .adapters.factory import read_input
from .objectives import make_objective, resolve_objective

__all__ = ["FineTunedClassifier"]

#: Labeled rows per class from which ``early_stopping="auto"`` holds some out.
MIN_ROWS_PER_CLASS_FOR_VALIDATION = 10


class FineTunedClassifier(ClassifierMixin, BaseEstimator):
    """Fine-tune an ACTEncoder's network end to end, with a linear head, on the labels.

    ``fit(X, y)`` takes ``y`` as :class:`~skact.TransferClassifier` does, -1 (or NaN,
    None, blank text) marking the unlabeled rows. It first fits a clone of ``encoder``
    on every row of ``X`` (self-supervised), unless ``encoder`` is a
    :class:`~sklearn.frozen.FrozenEstimator` around a fitted
    :class:`~skact.ACTEncoder`: that one is copied and not refitted (an encoder
    pretrained upstream). Then the copy's network and a linear head on its
    representation are trained together on the labeled rows with the cross-entropy
    loss, each batch a random view of its rows (the encoder's own augmentation), with
    Adam and a cosine decay of both learning rates. The encoder's ``freeze`` applies:
    with ``freeze=k`` only its last ``k`` blocks are fine-tuned.

    With ``act_weight`` above 0 the encoder's own objective (ACT by default) on
    ``n_views`` views of a batch of unlabeled rows (every row when none is unlabeled),
    through its projection head, is added to each step's loss, times ``act_weight``:
    a semi-supervised regulariser that keeps the representation of the unlabeled rows.

    Parameters
    ----------
    encoder : ACTEncoder or FrozenEstimator of a fitted ACTEncoder
        The encoder to fine-tune. An :class:`~skact.ACTEncoder` is cloned and fitted
        on every row first; searched as ``encoder__<name>``.
    max_iter : int, default=30
        Epochs over the labeled rows.
    learning_rate : float, default=3e-4
        Peak learning rate of the encoder's network (the backbone), and of its
        projection head when ``act_weight`` is above 0.
    head_learning_rate : float, default=1e-2
        Peak learning rate of the linear head, which starts from random weights.
    batch_size : int, default=64
        Labeled rows per step (and unlabeled rows, with ``act_weight``).
    act_weight : float, default=0.0
        Weight of the encoder's self-supervised loss on the unlabeled rows; 0 trains
        on the labels alone.
    weight_decay : float, default=0.0
        Adam's weight decay.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the labeled rows (stratified, at least one
        per class) and stop when their cross-entropy has not fallen by ``tol`` for
        ``n_iter_no_change`` epochs, keeping the weights of the best epoch. ``"auto"``:
        on when every class has at least 10 labeled rows, else off (with fewer, the
        held-out rows would be too few to tell epochs apart, and each is a label the
        training misses). True with fewer than 2 labeled rows of a class is an error.
    validation_fraction : float, default=0.2
        Share of the labeled rows held out for early stopping.
    n_iter_no_change : int, default=5
        Epochs without improvement before stopping.
    tol : float, default=1e-4
        Smallest fall of the validation loss that counts as an improvement.
    random_state : int, RandomState instance or None, default=None
        Seeds the head's weights, the views, the batch order and the validation
        split (the encoder's own fit follows its ``random_state``). A fixed seed gives
        identical predictions on the same device with the same number of threads.

    Attributes
    ----------
    encoder_ : ACTEncoder
        The fine-tuned encoder: its ``transform`` gives the fine-tuned representation.
        Its ``n_iter_`` and ``loss_curve_`` are those of its own (self-supervised)
        fit; the Adam state of that fit is dropped (fine-tuning moved the weights it
        describes), so a later ``warm_start`` fit of ``encoder_`` starts a fresh Adam.
    head_ : torch.nn.Linear
        The linear head, on the CPU.
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``.
    n_iter_ : int
        Epochs trained.
    loss_curve_ : list of float
        Mean training loss of each epoch (cross-entropy plus ``act_weight`` times the
        self-supervised loss).
    classification_loss_curve_ : list of float
        Mean cross-entropy of each epoch.
    act_loss_curve_ : list of float
        Mean self-supervised loss of each epoch (empty when ``act_weight`` is 0).
    validation_loss_curve_ : list of float
        Cross-entropy of the held-out rows after each epoch (empty without early
        stopping).
    n_features_in_ : int
        Number of features seen in ``fit``, as the encoder records it.

    See Also
    --------
    skact.TransferClassifier : A classifier on the features of an encoder kept fixed.

    Notes
    -----
    The forward passes of the network run in the encoder's ``precision`` (bf16 where
    :class:`~skact.ACTEncoder` would train in it); the head and the losses in float32.
    Training that diverges (a non-finite loss, weights grown more than 1000-fold, or
    non-finite Adam moments, checked as :class:`~skact.ACTEncoder` checks them after
    each epoch) raises :class:`~skact.NonFiniteLossError`: the weights of the last
    sound epoch are kept, or the estimator is left unfitted if none was.

    The defaults come from a grid (``benchmarks/bench_finetune_defaults.py``, results
    in ``benchmarks/results/finetune-defaults.md``): digits (as 64-pixel rows) and
    wine, 5 and 10 labels per class, 4 draws, an ACTEncoder pretrained for 20 epochs;
    ``head_learning_rate`` in {1e-2, 3e-2, 1e-1} x ``learning_rate`` in {1e-4, 3e-4,
    1e-3} x ``max_iter`` in {10, 30}, ranked by the mean accuracy gap to a linear
    probe on the frozen features. Best: 1e-2, 3e-4, 30 (0.900 mean accuracy, 0.013
    below the probe; every setting stayed below the probe on these small sets, and
    none predicted a single class). With few labels, compare against
    :class:`~skact.TransferClassifier`.

    Saved by pickling (:mod:`pickle` or joblib), as scikit-learn's estimators: the
    fine-tuned network lives in ``encoder_``. ``encoder_.save(path)`` writes the
    fine-tuned encoder alone in skact's model file.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skact import ACTEncoder, FineTunedClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:200], y[:200].copy()
    >>> y[60:] = -1  # only the first 60 rows are labeled
    >>> model = FineTunedClassifier(
    ...     ACTEncoder(n_components=16, max_iter=2, random_state=0),
    ...     max_iter=3, random_state=0,
    ... ).fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 10)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "encoder": [HasMethods(["fit", "transform"])],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="left")],
        "head_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "act_weight": [Interval(Real, 0, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        encoder: Any,
        *,
        max_iter: int = 30,
        learning_rate: float = 3e-4,
        head_learning_rate: float = 1e-2,
        batch_size: int = 64,
        act_weight: float = 0.0,
        weight_decay: float = 0.0,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.2,
        n_iter_no_change: int = 5,
        tol: float = 1e-4,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.encoder = encoder
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.batch_size = batch_size
        self.act_weight = act_weight
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any) -> FineTunedClassifier:
        """Fit the encoder on every row of ``X``, then fine-tune it on the labeled ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images
            Every row, labeled or not; what ``encoder`` accepts.
        y : array-like of shape (n_samples,)
            Labels, -1 (or NaN, None, blank text) for an unlabeled row. At least two
            classes must be labeled.

        Returns
        -------
        self : FineTunedClassifier
            The fitted estimator.
        """
        y, labeled = _labeled_target(X, y)
        self.classes_ = np.unique(y[labeled])
        if isinstance(self.encoder, FrozenEstimator):
            check_is_fitted(self.encoder.estimator)
            self.encoder_ = copy.deepcopy(self.encoder.estimator)
        else:
            self.encoder_ = _fit_encoder(self.encoder, X, y)
        if not isinstance(self.encoder_, ACTEncoder):
            raise TypeError(
                "FineTunedClassifier fine-tunes an ACTEncoder's network; got "
                f"{type(self.encoder_).__name__}. Use TransferClassifier for other "
                "encoders."
            )
        codes = np.searchsorted(self.classes_, y[labeled])
        with _device.torch_threads():
            self._fine_tune(X, np.flatnonzero(labeled), codes, np.flatnonzero(~labeled))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of each row of ``X``: the softmax of the head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        features = torch.from_numpy(np.asarray(self.encoder_.transform(X), np.float32))
        with torch.no_grad():
            return torch.softmax(self.head_(features), dim=1).double().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predict the class of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    @property
    def n_features_in_(self) -> int:
        """Number of features seen in ``fit`` (as the fitted encoder records it)."""
        return int(self.encoder_.n_features_in_)

    def __sklearn_is_fitted__(self) -> bool:
        """Whether ``fit`` trained a head (a diverged first epoch leaves none)."""
        return hasattr(self, "head_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # without a random_state
        return tags

    def _fine_tune(
        self, X: Any, labeled: np.ndarray, codes: np.ndarray, unlabeled: np.ndarray
    ) -> None:
        """Train ``encoder_``'s network and a new head on the rows ``labeled``."""
        encoder = self.encoder_
        adapter, device = encoder._adapter, encoder.device_
        _, X = read_input(X, encoder, adapter)
        data = _device.to_device(adapter.to_storage(X), device)
        rng = check_random_state(self.random_state)
        head_seed, view_seed, order_seed, split_seed = (
            int(s) for s in rng.randint(0, 2**31 - 1, 4)
        )
        train, valid = self._split(labeled, codes, split_seed)
        targets = torch.zeros(len(data), dtype=torch.int64)  # unlabeled rows: never read
        targets[torch.from_numpy(labeled)] = torch.from_numpy(codes)
        targets = targets.to(device)
        network, projector = encoder.encoder_, encoder.projector_
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(head_seed)
            head = nn.Linear(int(encoder._n_components_out), len(self.classes_))
        head = head.to(device)
        use_act = self.act_weight > 0
        criterion = (
            make_objective(
                resolve_objective(encoder.objective, encoder.get_params(deep=False))
            )
            if use_act
            else None
        )
        pool = unlabeled if len(unlabeled) else np.arange(len(data))
        backbone = list(network.parameters())
        if use_act and projector is not None:
            backbone += list(projector.parameters())
        optimizer = torch.optim.Adam(
            [
                {"params": backbone, "lr": self.learning_rate},
                {"params": head.parameters(), "lr": self.head_learning_rate},
            ],
            weight_decay=self.weight_decay,
        )
        peaks = [group["lr"] for group in optimizer.param_groups]
        generator = _random.make_generator(device, view_seed)
        order_rng = np.random.default_rng(order_seed)
        batch_size = min(self.batch_size, len(train))
        n_steps = _training.n_batches(len(train), batch_size)
        total = self.max_iter * n_steps
        step, best, since_best = 0, math.inf, 0
        best_state: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None
        amp = _device.autocast_dtype(device, encoder.precision, adapter.kind)
        modules = [network, head] + ([projector] if projector is not None else [])
        start_scale = _training.weight_scale(modules)
        self.loss_curve_: list[float] = []
        self.classification_loss_curve_: list[float] = []
        self.act_loss_curve_: list[float] = []
        self.validation_loss_curve_: list[float] = []
        self.n_iter_ = 0
        adversary = getattr(criterion, "adversary", None)
        diverged: _training.NonFiniteLossError | None = None
        try:
            with _freeze.frozen(network, encoder.freeze) as eval_modules:
                for _ in range(self.max_iter):
                    # The state each epoch starts from passed the divergence check.
                    sound = _snapshot(modules, optimizer, adversary)
                    network.train()
                    if projector is not None:
                        projector.train()
                    for module in eval_modules:
                        module.eval()
                    sums = np.zeros(2)
                    for rows in np.array_split(order_rng.permutation(train), n_steps):
                        factor = _training.lr_factor(step, 0, total)
                        for group, peak in zip(optimizer.param_groups, peaks, strict=True):
                            group["lr"] = peak * factor
                        index = torch.from_numpy(rows).to(device)
                        view = adapter.view(data.index_select(0, index), data, generator)
                        with _device.autocast(device, amp):
                            features = network(view)
                        ce = F.cross_entropy(head(features.float()), targets[index])
                        loss = ce
                        if criterion is not None:
                            act = self._act_loss(
                                network,
                                projector,
                                criterion,
                                data,
                                pool,
                                order_rng,
                                generator,
                                amp,
                            )
                            loss = ce + self.act_weight * act
                            sums[1] += float(act.detach())
                        sums[0] += float(ce.detach())
                        if not math.isfinite(float(loss.detach())):
                            break  # the check below restores the epoch's start
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                        step += 1
                    symptom = _training.divergence(
                        float(sums @ [1.0, self.act_weight]) / n_steps,
                        start_scale,
                        _training.weight_scale(modules),
                        _training.moments_finite(optimizer),
                    )
                    if symptom is not None:
                        _restore(sound, modules, optimizer, adversary)
                        raise _training.NonFiniteLossError(symptom)
                    self.n_iter_ += 1
                    self.classification_loss_curve_.append(sums[0] / n_steps)
                    if use_act:
                        self.act_loss_curve_.append(sums[1] / n_steps)
                    self.loss_curve_.append((sums[0] + self.act_weight * sums[1]) / n_steps)
                    if valid is None:
                        continue
                    val_loss = self._validation_loss(
                        network, head, data, valid, targets, amp
                    )
                    self.validation_loss_curve_.append(val_loss)
                    if val_loss < best - self.tol:
                        best, since_best = val_loss, 0
                        best_state = (_copy_state(network), _copy_state(head))
                    else:
                        since_best += 1
                        if since_best >= self.n_iter_no_change:
                            break
        except _training.NonFiniteLossError as exc:
            diverged = exc
        if best_state is not None:
            network.load_state_dict(best_state[0])
            head.load_state_dict(best_state[1])
        network.eval()
        self.head_ = head.cpu().eval()
        # Adam's moments of the encoder's own fit describe weights fine-tuning has
        # moved: a later warm-start fit of encoder_ starts a fresh Adam.
        encoder._optimizer_state = None
        if diverged is not None:
            raise self._diverged(diverged) from None

    def _diverged(self, exc: _training.NonFiniteLossError) -> _training.NonFiniteLossError:
        """The error of a diverged fine-tuning: what happened, what was kept, the fix."""
        n = self.n_iter_
        if n:
            kept = (
                f"the weights of the last sound epoch (with early stopping, the best "
                f"one) are kept ({n} epoch{'' if n == 1 else 's'} trained)"
            )
        else:
            kept = "no epoch finished soundly: the estimator is left unfitted"
            for name in _FITTED:
                self.__dict__.pop(name, None)
        lower = {
            "learning_rate": self.learning_rate,
            "head_learning_rate": self.head_learning_rate,
        }
        names = " or ".join(f"{p} (now {v:g})" for p, v in lower.items())
        problem = (
            f"FineTunedClassifier: training diverged in epoch {n + 1} ({exc}); {kept}."
        )
        return _training.NonFiniteLossError(
            f"{problem} Try a lower {names}, or look for extreme values in X.",
            advice=_checks.Advice(problem, "diverged", lower),
        )

    def _split(
        self, labeled: np.ndarray, codes: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The labeled rows to train on, and those held out (None: no early stopping)."""
        counts = np.bincount(codes)
        stop = self.early_stopping
        if stop == "auto":
            stop = bool(counts.min() >= MIN_ROWS_PER_CLASS_FOR_VALIDATION)
        if not stop:
            return labeled, None
        if counts.min() < 2:
            raise ValueError(
                f"early_stopping=True holds out labeled rows of every class, but class "
                f"{self.classes_[counts.argmin()]!r} has {counts.min()} labeled row; "
                "label more rows or set early_stopping=False."
            )
        n_valid = max(len(counts), round(self.validation_fraction * len(labeled)))
        train, valid = train_test_split(
            labeled, test_size=n_valid, stratify=codes, random_state=seed
        )
        return np.sort(train), np.sort(valid)

    def _act_loss(
        self,
        network: nn.Module,
        projector: nn.Module | None,
        criterion: Any,
        data: Tensor,
        pool: np.ndarray,
        order_rng: np.random.Generator,
        generator: torch.Generator,
        amp: torch.dtype | None,
    ) -> Tensor:
        """The encoder's objective on views of a batch of rows drawn from ``pool``."""
        encoder = self.encoder_
        size = min(self.batch_size, len(pool))
        rows = torch.from_numpy(order_rng.choice(pool, size, replace=False))
        batch = data.index_select(0, rows.to(data.device))
        views = [
            encoder._adapter.view(batch, data, generator) for _ in range(encoder.n_views)
        ]
        with _device.autocast(data.device, amp):
            z = network(torch.cat(views))
            if projector is not None:
                z = projector(z)
        return criterion(list(z.float().chunk(encoder.n_views)))

    def _validation_loss(
        self,
        network: nn.Module,
        head: nn.Module,
        data: Tensor,
        rows: np.ndarray,
        targets: Tensor,
        amp: torch.dtype | None,
    ) -> float:
        """Cross-entropy of the held-out ``rows``, the networks in evaluation mode."""
        network.eval()
        head.eval()
        index = torch.from_numpy(rows).to(data.device)
        adapter = self.encoder_._adapter
        with torch.no_grad():
            with _device.autocast(data.device, amp):
                features = network(adapter.to_model(data.index_select(0, index)))
            logits = head(features.float())
            loss = float(F.cross_entropy(logits, targets[index]))
        head.train()
        return loss


#: What ``fit`` sets; removed again when fine-tuning diverged before its first epoch.
_FITTED = (
    "classes_",
    "encoder_",
    "head_",
    "n_iter_",
    "loss_curve_",
    "classification_loss_curve_",
    "act_loss_curve_",
    "validation_loss_curve_",
)


def _copy_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _snapshot(
    modules: list[nn.Module], optimizer: torch.optim.Optimizer, adversary: Any
) -> tuple[list[dict[str, Tensor]], dict[str, Any], Any]:
    """Copies of the weights, Adam's state and ACT's adversary (which go NaN together)."""
    return (
        [_copy_state(m) for m in modules],
        copy.deepcopy(optimizer.state_dict()),
        None if adversary is None else copy.deepcopy(adversary.state_dict()),
    )


def _restore(
    snapshot: tuple[list[dict[str, Tensor]], dict[str, Any], Any],
    modules: list[nn.Module],
    optimizer: torch.optim.Optimizer,
    adversary: Any,
) -> None:
    """Put back the state of :func:`_snapshot`."""
    for module, state in zip(modules, snapshot[0], strict=True):
        module.load_state_dict(state)
    optimizer.load_state_dict(snapshot[1])
    if adversary is not None:
        adversary.load_state_dict(snapshot[2])
