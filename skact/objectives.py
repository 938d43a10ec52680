"""Self-supervised objectives: ACT and the baselines it is compared with.

Every objective is a pure function of two batches of embeddings ``z1`` and ``z2`` of
shape ``(n, d)`` (row ``i`` of each is a view of the same sample) and returns a scalar
tensor. No data loading and no training loop lives here, so each formula can be checked
against a hand computation.

Each objective is also a small :class:`torch.nn.Module` holding its own
hyper-parameters (:class:`ACTLoss`, :class:`BarlowTwinsLoss`, :class:`VICRegLoss`,
:class:`SpectralContrastiveLoss`, :class:`NTXentLoss`), with scikit-learn's
``get_params`` / ``set_params``: ``ACTEncoder(objective=NTXentLoss(temperature=0.2))``
clones, saves and grid-searches as ``objective__temperature``. :func:`resolve_objective`
turns ``ACTEncoder``'s ``objective`` and the estimator parameters an objective declares
(:attr:`Objective.estimator_params`: ACT's ``alpha``, ``adversary`` and
``adversary_momentum``) into one objective instance; :func:`make_objective` turns that
into the training criterion.

ACT (Adversarial Contrastive Training) is a minimax problem: the regulariser
``||E[f(x1) f(x2)^T] - I||_F^2`` is replaced by ``<E[f(x1) f(x2)^T] - I, G>_F`` with an
adversary ``G`` that is held fixed during the encoder step. :class:`Adversary` supplies
``G``; see its docstring for where ``G`` can come from and why it matters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from numbers import Real
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from torch import Tensor, nn

from ._params import ParamsMixin

__all__ = [
    "OBJECTIVES",
    "ACTCriterion",
    "ACTLoss",
    "Adversary",
    "BarlowTwinsLoss",
    "NTXentLoss",
    "Objective",
    "SpectralContrastiveLoss",
    "VICRegLoss",
    "act_loss",
    "barlow_twins_loss",
    "cross_correlation",
    "make_objective",
    "multiview_loss",
    "nt_xent_loss",
    "resolve_objective",
    "scale_to_sqrt_dim",
    "spectral_contrastive_loss",
    "vicreg_loss",
]


def scale_to_sqrt_dim(z: Tensor) -> Tensor:
    """Rescale each row of ``z`` to Euclidean norm ``sqrt(d)``.

    Parameters
    ----------
    z : Tensor of shape (n, d)
        Embeddings.

    Returns
    -------
    Tensor of shape (n, d)
        ``sqrt(d) * z / ||z||`` row by row, as in the ACT authors' code.
    """
    return math.sqrt(z.shape[1]) * F.normalize(z, dim=1)


def cross_correlation(z1: Tensor, z2: Tensor) -> Tensor:
    """Empirical cross-correlation ``C_hat = z1^T z2 / n`` of two views.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views of the same ``n`` samples.

    Returns
    -------
    Tensor of shape (d, d)
    """
    return z1.T @ z2 / z1.shape[0]


def act_loss(z1: Tensor, z2: Tensor, adversary: Tensor, alpha: float) -> Tensor:
    """ACT loss of two views for a fixed adversary ``G``.

    .. math::

        L = \\frac{1}{n}\\sum_i \\|z_{1i} - z_{2i}\\|^2
            + \\alpha \\, \\langle \\hat C - I, G \\rangle_F,
        \\qquad \\hat C = \\frac{1}{n} z_1^\\top z_2,

    where the rows of ``z1`` and ``z2`` are first rescaled to norm ``sqrt(d)``. ``G``
    receives no gradient. For a ``G`` independent of the batch the mini-batch loss is an
    unbiased estimate of the population loss, and so is its gradient.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Raw embeddings of two views (rescaled inside).
    adversary : Tensor of shape (d, d)
        The dual variable ``G``.
    alpha : float
        Weight of the regulariser (the paper's lambda).

    Returns
    -------
    Tensor
        Scalar loss.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> float(act_loss(z, z, torch.zeros(2, 2), alpha=1.0))
    0.0
    """
    z1 = scale_to_sqrt_dim(z1)
    z2 = scale_to_sqrt_dim(z2)
    alignment = (z1 - z2).pow(2).sum(dim=1).mean()
    eye = torch.eye(z1.shape[1], device=z1.device, dtype=z1.dtype)
    dual = ((cross_correlation(z1, z2) - eye) * adversary.detach()).sum()
    return alignment + alpha * dual


def barlow_twins_loss(
    z1: Tensor, z2: Tensor, lambd: float = 5e-3, eps: float = 1e-5
) -> Tensor:
    """Barlow Twins loss (Zbontar et al., 2021).

    Each feature is standardised over the batch (biased variance, as BatchNorm); with
    ``c`` their cross-correlation,
    ``L = sum_i (1 - c_ii)^2 + lambd * sum_{i != j} c_ij^2``.

    Conventions where implementations differ: skact divides by ``std + 1e-5`` (``eps``
    added to the standard deviation); the official code standardises with
    ``BatchNorm1d(affine=False)``, which divides by ``sqrt(var + 1e-5)`` (``eps`` under
    the square root), and lightly by the unbiased standard deviation, without ``eps``.
    The two ``eps`` conventions differ only for features whose standard deviation is
    near ``sqrt(1e-5)``, about 0.003, or below. ``lambd`` defaults to the paper's 5e-3
    (the official code's is 0.0051).

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views.
    lambd : float, default=5e-3
        Weight of the off-diagonal (redundancy reduction) term.
    eps : float, default=1e-5
        Added to each feature's standard deviation before dividing by it.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    n = z1.shape[0]
    c = _standardize(z1, eps).T @ _standardize(z2, eps) / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag


def vicreg_loss(
    z1: Tensor,
    z2: Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
) -> Tensor:
    """VICReg loss (Bardes et al., 2022): invariance, variance and covariance terms.

    ``L = sim_weight * mean ||z1 - z2||^2 / d`` (the mean squared error)
    ``+ var_weight * (v(z1) + v(z2))`` with ``v(z) = mean_j relu(1 - sqrt(var_j + eps))``
    ``+ cov_weight * (c(z1) + c(z2))`` with ``c(z)`` the sum of squared off-diagonal
    covariances divided by ``d`` (variances and covariances unbiased, over ``n - 1``).

    The variance term follows the paper's formula, ``25 * (v(z1) + v(z2))``. The
    official code and lightly halve it, ``25 * (v(z1) + v(z2)) / 2``: their loss is
    this one with ``var_weight=12.5``.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views.
    sim_weight, var_weight, cov_weight : float
        Weights of the three terms (the paper's 25, 25, 1).
    eps : float, default=1e-4
        Added to the variance before the square root.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)

    def variance(z: Tensor) -> Tensor:
        return F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()

    def covariance(z: Tensor) -> Tensor:
        zc = z - z.mean(dim=0)
        cov = zc.T @ zc / (n - 1)
        return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d

    return (
        sim_weight * invariance
        + var_weight * (variance(z1) + variance(z2))
        + cov_weight * (covariance(z1) + covariance(z2))
    )


def spectral_contrastive_loss(z1: Tensor, z2: Tensor, mu: float | None = None) -> Tensor:
    """Spectral contrastive loss (HaoChen et al., 2021).

    ``L = -2/n sum_i z1_i . z2_i + 1/(n(n-1)) sum_{i != j} (z1_i . z2_j)^2``.
    With ``mu`` set, as in the official code, each row is first projected onto the ball
    of radius ``sqrt(mu)`` (a row longer than ``sqrt(mu)`` is rescaled to that norm) and
    the loss is divided by ``mu``. ``mu=None`` (skact's default) uses the embeddings as
    given: the official loss with ``mu`` infinite, the scale of the embeddings left to
    the loss's own quadratic term.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views.
    mu : float or None, default=None
        Squared radius of the ball the rows are projected onto (the official code's
        default is 1); None: no projection.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    if mu is not None:
        z1, z2 = _into_ball(z1, math.sqrt(mu)), _into_ball(z2, math.sqrt(mu))
    n = z1.shape[0]
    sim = z1 @ z2.T
    positive = torch.diagonal(sim).mean()
    off = sim.pow(2).sum() - torch.diagonal(sim).pow(2).sum()
    loss = -2 * positive + off / (n * (n - 1))
    return loss if mu is None else loss / mu


def _into_ball(z: Tensor, radius: float) -> Tensor:
    norm = z.norm(dim=1, keepdim=True)
    return torch.where(norm < radius, z, radius * F.normalize(z, dim=1))


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent loss of SimCLR (Chen et al., 2020).

    Cosine similarities over the ``2n`` embeddings divided by ``temperature``; each
    embedding must pick out its partner view among the other ``2n - 1`` by softmax
    cross-entropy, averaged over all ``2n`` anchors.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views.
    temperature : float, default=0.5
        Softmax temperature.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(
        torch.eye(2 * n, dtype=torch.bool, device=z.device), -torch.inf
    )
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def multiview_loss(
    loss: Callable[[Tensor, Tensor], Tensor], views: Sequence[Tensor]
) -> Tensor:
    """Average a two-view loss over all unordered pairs of views.

    Parameters
    ----------
    loss : callable
        ``loss(z1, z2) -> scalar``.
    views : sequence of Tensor of shape (n, d)
        At least two views.

    Returns
    -------
    Tensor
        Mean of ``loss`` over the ``k (k - 1) / 2`` pairs.
    """
    pairs = list(combinations(range(len(views)), 2))
    return torch.stack([loss(views[i], views[j]) for i, j in pairs]).mean()


def _standardize(z: Tensor, eps: float = 1e-5) -> Tensor:
    # Biased standard deviation, as BatchNorm in the Barlow Twins code: with the unbiased
    # one identical views give c_ii = (n - 1) / n and the loss cannot reach zero.
    return (z - z.mean(dim=0)) / (z.std(dim=0, correction=0) + eps)


class Adversary:
    """The ACT dual variable ``G`` and where it comes from.

    At its optimum ``G = C - I`` with ``C = E[f(x1) f(x2)^T]``. Three estimates:

    ``"batch"``
        ``C_hat - I`` of the current mini-batch, detached. The encoder gradient is
        then exactly half the gradient of the *biased* squared estimate
        ``alpha * ||C_hat - I||_F^2``, where with more than two views ``C_hat`` is the
        mean of the pairs' ``C_hat`` (see :class:`ACTCriterion`). This is not what the
        authors' code does: there the first pair's ``G`` is its own ``C_hat - I``, not
        detached, so with two views their gradient is the full gradient of
        ``lambda * ||C_hat - I||_F^2``, twice this one at ``lambda = alpha`` (equal at
        ``lambda = alpha / 2``); with more views each later pair takes its ``G`` from
        the pair before it. Both square a batch estimate, so both are biased.
    ``"previous"``
        ``C_hat - I`` of the previous step: independent of the current batch, so the
        gradient is unbiased for the ``G`` in use.
    ``"ema"``
        An exponential moving average of ``C_hat - I`` over past steps (``momentum`` is
        the weight of the past), also independent of the current batch and less noisy.

    On the first step ``"previous"`` and ``"ema"`` have no past and use the current batch.

    Parameters
    ----------
    mode : {"batch", "previous", "ema"}
        Source of ``G``.
    momentum : float, default=0.9
        Weight of the past in the ``"ema"`` average.

    Attributes
    ----------
    state : Tensor of shape (d, d) or None
        The stored estimate of ``C - I`` (None before the first update).

    Examples
    --------
    >>> import torch
    >>> adv = Adversary("previous")
    >>> c1, c2 = torch.eye(2) * 2, torch.eye(2) * 3
    >>> adv.get(c1).tolist()  # first step: current batch
    [[1.0, 0.0], [0.0, 1.0]]
    >>> adv.update(c1)
    >>> adv.get(c2).tolist()  # then: the previous step's C - I
    [[1.0, 0.0], [0.0, 1.0]]
    """

    modes = ("batch", "previous", "ema")

    def __init__(self, mode: str = "ema", momentum: float = 0.9) -> None:
        if mode not in self.modes:
            raise ValueError(f"adversary must be one of {self.modes}, got {mode!r}")
        self.mode = mode
        self.momentum = momentum
        self.state: Tensor | None = None

    def get(self, correlation: Tensor) -> Tensor:
        """Return ``G`` for a step whose batch cross-correlation is ``correlation``.

        Parameters
        ----------
        correlation : Tensor of shape (d, d)
            ``C_hat`` of the current batch (used on the first step and in "batch" mode).

        Returns
        -------
        Tensor of shape (d, d)
            Detached ``G``.
        """
        if self.mode == "batch" or self.state is None:
            return _minus_identity(correlation.detach())
        return self.state

    def update(self, correlation: Tensor) -> None:
        """Record the current batch's ``C_hat`` after the encoder step.

        A non-finite ``C_hat`` (a diverging step) is not recorded: ``G`` stays as it
        was, so the step can be undone and training continued.

        Parameters
        ----------
        correlation : Tensor of shape (d, d)
            ``C_hat`` of the batch just used.
        """
        if self.mode == "batch":
            return
        target = _minus_identity(correlation.detach().float())
        if self.state is None:
            # Once per model: a host sync is affordable here, not at every step.
            if bool(torch.isfinite(target).all()):
                self.state = target
            return
        if self.mode == "ema":
            target = self.momentum * self.state + (1 - self.momentum) * target
        # torch.where keeps the step free of a host sync (no Python branch on a value).
        self.state = torch.where(torch.isfinite(target).all(), target, self.state)

    def state_dict(self) -> dict[str, object]:
        """Return the adversary's state (for checkpoints).

        Returns
        -------
        dict
            ``mode``, ``momentum`` and ``state``.
        """
        return {"mode": self.mode, "momentum": self.momentum, "state": self.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the running estimate of a state returned by :meth:`state_dict`.

        ``mode`` and ``momentum`` stay those this adversary was built with (the
        parameters in force now, for ``warm_start``). A non-finite estimate (saved
        after a diverging step by an older skact) is dropped: the next step starts
        from its own batch, as the first step does.

        Parameters
        ----------
        state : dict
            As returned by :meth:`state_dict`.
        """
        estimate = state["state"]
        if isinstance(estimate, Tensor) and not bool(torch.isfinite(estimate).all()):
            estimate = None
        self.state = estimate


def _minus_identity(c: Tensor) -> Tensor:
    return c - torch.eye(c.shape[0], device=c.device, dtype=c.dtype)


class ACTCriterion:
    """ACT over any number of views with a persistent :class:`Adversary`.

    For ``k`` views the loss is averaged over the ``k (k - 1) / 2`` pairs; ``G`` is shared
    by the pairs and its batch estimate is the mean of the pairs' ``C_hat``. So with
    ``adversary="batch"`` the regulariser's gradient is half the gradient of
    ``alpha * ||mean_p C_hat_p - I||_F^2`` (the squared norm of the mean, not the mean of
    the pairs' squared norms). The authors' code pairs differently: each pair's ``G``
    comes from the pair before it in order, the first pair's from itself, undetached.

    Parameters
    ----------
    alpha : float
        Weight of the regulariser.
    adversary : Adversary
        Source of ``G``.
    reduce : callable or None, default=None
        When the batch is split over several processes, a function that sums a tensor
        over all of them and passes gradients back through the sum (for example
        :func:`skact.distributed.all_reduce_sum`, or :func:`skact.distributed.shared_sum`,
        which skips the collective on the way back because the loss is the same on every
        process). The alignment term and ``C_hat`` are
        then those of the global batch, so every process returns the same, global loss.
        None: the batch given is the whole batch.
    """

    def __init__(
        self,
        alpha: float,
        adversary: Adversary,
        reduce: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.alpha = alpha
        self.adversary = adversary
        self.reduce = reduce

    def __call__(self, views: Sequence[Tensor]) -> Tensor:
        # The same value as multiview_loss over act_loss, computed once per pair: each
        # pair's C_hat serves both G's estimate and the loss, the views are rescaled
        # once, and <C_hat - I, G> = <C_hat, G> - tr(G) needs no identity matrix. The
        # loss is overhead-bound at small d, so this makes it cheaper than Barlow Twins.
        scaled = [scale_to_sqrt_dim(z.float()) for z in views]
        pairs = list(combinations(range(len(scaled)), 2))
        if self.reduce is not None:
            return self._global_loss(scaled, pairs, self.reduce)
        correlations = [cross_correlation(scaled[i], scaled[j]) for i, j in pairs]
        correlation = (
            correlations[0].detach()
            if len(pairs) == 1
            else torch.stack(correlations).detach().mean(dim=0)
        )
        g = self.adversary.get(correlation)
        trace_g = g.diagonal().sum()
        terms = [
            (scaled[i] - scaled[j]).pow(2).sum(dim=1).mean()
            + self.alpha * ((c * g).sum() - trace_g)
            for (i, j), c in zip(pairs, correlations)
        ]
        loss = terms[0] if len(terms) == 1 else torch.stack(terms).mean()
        self.adversary.update(correlation)
        return loss

    def _global_loss(
        self,
        scaled: list[Tensor],
        pairs: list[tuple[int, int]],
        reduce: Callable[[Tensor], Tensor],
    ) -> Tensor:
        """The loss of the batch summed by ``reduce`` (one collective per step forward).

        Each pair's squared distances and ``z_i^T z_j`` are summed over the local rows,
        packed with the row count into one tensor and reduced; dividing by the global row
        count gives the global alignment and ``C_hat``.
        """
        d = scaled[0].shape[1]
        sums = [
            torch.cat(
                [
                    (scaled[i] - scaled[j]).pow(2).sum().reshape(1),
                    (scaled[i].T @ scaled[j]).reshape(-1),
                ]
            )
            for i, j in pairs
        ]
        count = scaled[0].new_full((1,), float(scaled[0].shape[0]))
        total = reduce(torch.cat([*sums, count]))
        per_pair = total[:-1].reshape(len(pairs), 1 + d * d) / total[-1]
        alignment = per_pair[:, 0]
        correlations = per_pair[:, 1:].reshape(len(pairs), d, d)
        correlation = correlations.detach().mean(dim=0)
        g = self.adversary.get(correlation)
        eye = torch.eye(d, device=g.device, dtype=g.dtype)
        dual = ((correlations - eye) * g).sum(dim=(1, 2))
        self.adversary.update(correlation)
        return (alignment + self.alpha * dual).mean()


class Objective(ParamsMixin, nn.Module):
    """An objective of any number of views, with scikit-learn parameters.

    A subclass stores its constructor arguments unchanged (as a scikit-learn estimator
    does), declares their valid values in ``_parameter_constraints`` and implements
    :meth:`pair_loss`; :meth:`forward` averages it over all pairs of views.
    ``get_params`` / ``set_params`` make an instance a nested parameter of
    :class:`~skact.ACTEncoder`: ``clone`` copies it and a grid search sets
    ``objective__<name>``. It holds no weights; training uses a fresh copy built by
    :func:`make_objective`, so the instance passed to ``ACTEncoder`` is never changed.

    A subclass may declare in :attr:`estimator_params` the ``ACTEncoder`` parameters
    that configure it when ``objective`` names it (as ACT's ``alpha``); they then apply
    to that name only (:func:`resolve_objective`).
    """

    #: The ``objective`` string that means this class with its default parameters.
    name: ClassVar[str]
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    #: ``ACTEncoder``'s parameters that set this objective's own when ``objective``
    #: is its name: estimator parameter -> objective parameter (the estimator's
    #: default must equal the objective's). Empty: the name means the defaults.
    estimator_params: ClassVar[dict[str, str]] = {}

    def criterion(self, held_out: bool = False) -> Callable[[Sequence[Tensor]], Tensor]:
        """A new training criterion ``views -> scalar`` with these parameters.

        Parameters
        ----------
        held_out : bool, default=False
            For a loss on held-out data, where no state may carry over from batch to
            batch (ACT takes its adversary from each batch). The baselines hold no
            state, so it changes nothing for them.

        Returns
        -------
        callable
            A copy of this objective (whose state, if any, starts empty).
        """
        return clone(self)

    def validate(self) -> None:
        """Raise a ValueError naming the first parameter out of range.

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            A ValueError and TypeError whose message names the parameter.
        """
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(),
            caller_name=type(self).__name__,
        )

    def extra_repr(self) -> str:
        """The parameters, as ``repr`` shows them after the class name."""
        return ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())

    def pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        """The loss of two views.

        Parameters
        ----------
        z1, z2 : Tensor of shape (n, d)
            Embeddings of two views of the same ``n`` samples.

        Returns
        -------
        Tensor
            Scalar loss.
        """
        # Abstract: each objective (ACTLoss, BarlowTwinsLoss, ...) defines its pair loss.
        raise NotImplementedError

    def forward(self, views: Sequence[Tensor]) -> Tensor:
        """Mean of :meth:`pair_loss` over all pairs of views, computed in float32.

        Parameters
        ----------
        views : sequence of Tensor of shape (n, d)
            At least two views.

        Returns
        -------
        Tensor
            Scalar loss.
        """
        return multiview_loss(self.pair_loss, [z.float() for z in views])


_NON_NEGATIVE = [Interval(Real, 0, None, closed="left")]
_POSITIVE = [Interval(Real, 0, None, closed="neither")]


class ACTLoss(Objective):
    """ACT with a persistent adversary (:class:`ACTCriterion`), as an objective.

    ``ACTEncoder(objective="act")`` takes ``alpha``, ``adversary`` and
    ``adversary_momentum`` from the encoder's own parameters (the shortcut scikit-learn
    users and a grid search reach first); ``objective=ACTLoss(...)`` takes them from
    here instead, and the encoder's must then keep their defaults (a ValueError says
    so otherwise; see :func:`resolve_objective`).

    Parameters
    ----------
    alpha : float, default=0.03
        Weight of the regulariser (the paper's lambda), as :func:`act_loss`.
    adversary : {"ema", "previous", "batch"}, default="ema"
        Where ``G`` comes from; see :class:`Adversary`.
    momentum : float, default=0.9
        Weight of the past in the ``"ema"`` adversary.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(float(ACTLoss(alpha=0.5, adversary="batch")([z, z])), 6)
    0.0
    """

    name = "act"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "alpha": _NON_NEGATIVE,
        "adversary": [StrOptions(set(Adversary.modes))],
        "momentum": [Interval(Real, 0, 1, closed="left")],
    }
    estimator_params: ClassVar[dict[str, str]] = {
        "alpha": "alpha",
        "adversary": "adversary",
        "adversary_momentum": "momentum",
    }

    def __init__(
        self, alpha: float = 0.03, adversary: str = "ema", momentum: float = 0.9
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.adversary = adversary
        self.momentum = momentum
        self._running: ACTCriterion | None = None

    def criterion(self, held_out: bool = False) -> ACTCriterion:
        """A new criterion with these parameters and an adversary with no past.

        Parameters
        ----------
        held_out : bool, default=False
            Take ``G`` from each batch itself, whatever ``adversary`` says (a loss on
            held-out data, where no state may carry over).

        Returns
        -------
        ACTCriterion
        """
        mode = "batch" if held_out else self.adversary
        return ACTCriterion(self.alpha, Adversary(mode, self.momentum))

    def forward(self, views: Sequence[Tensor]) -> Tensor:
        """ACT loss of the views; ``G`` carries over from call to call.

        Parameters
        ----------
        views : sequence of Tensor of shape (n, d)
            At least two views.

        Returns
        -------
        Tensor
            Scalar loss.
        """
        running = self._running
        if running is None or (running.adversary.mode, running.adversary.momentum) != (
            self.adversary,
            self.momentum,
        ):
            running = self._running = self.criterion()
        running.alpha = self.alpha
        return running(views)


class BarlowTwinsLoss(Objective):
    """Barlow Twins (Zbontar et al., 2021): :func:`barlow_twins_loss` as an objective.

    Parameters
    ----------
    lambd : float, default=5e-3
        Weight of the off-diagonal (redundancy reduction) term (the paper's lambda,
        5e-3 for 8192 features; about ``1 / d`` is often suggested for ``d`` features).
    eps : float, default=1e-5
        Added to each feature's standard deviation before dividing by it.
    """

    name = "barlow_twins"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "lambd": _NON_NEGATIVE,
        "eps": _POSITIVE,
    }

    def __init__(self, lambd: float = 5e-3, eps: float = 1e-5) -> None:
        super().__init__()
        self.lambd = lambd
        self.eps = eps

    def pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        return barlow_twins_loss(z1, z2, self.lambd, self.eps)


class VICRegLoss(Objective):
    """VICReg (Bardes et al., 2022): :func:`vicreg_loss` as an objective.

    Parameters
    ----------
    sim_weight, var_weight, cov_weight : float, default=25, 25, 1
        Weights of the invariance, variance and covariance terms (the paper's
        lambda, mu and nu). The official code's loss is this one with
        ``var_weight=12.5`` (it halves the variance term).
    eps : float, default=1e-4
        Added to the variance before the square root.
    """

    name = "vicreg"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "sim_weight": _NON_NEGATIVE,
        "var_weight": _NON_NEGATIVE,
        "cov_weight": _NON_NEGATIVE,
        "eps": _POSITIVE,
    }

    def __init__(
        self,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        self.sim_weight = sim_weight
        self.var_weight = var_weight
        self.cov_weight = cov_weight
        self.eps = eps

    def pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        return vicreg_loss(
            z1, z2, self.sim_weight, self.var_weight, self.cov_weight, self.eps
        )


class SpectralContrastiveLoss(Objective):
    """Spectral contrastive loss (HaoChen et al., 2021) as an objective.

    Parameters
    ----------
    mu : float or None, default=None
        Rows are projected onto the ball of radius ``sqrt(mu)`` and the loss divided
        by ``mu``, as in the official code (whose default is 1); None: no projection
        (see :func:`spectral_contrastive_loss`).
    """

    name = "spectral"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"mu": [*_POSITIVE, None]}

    def __init__(self, mu: float | None = None) -> None:
        super().__init__()
        self.mu = mu

    def pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        return spectral_contrastive_loss(z1, z2, self.mu)


class NTXentLoss(Objective):
    """NT-Xent of SimCLR (Chen et al., 2020): :func:`nt_xent_loss` as an objective.

    Parameters
    ----------
    temperature : float, default=0.5
        Softmax temperature (SimCLR tried 0.05 to 1; 0.5 was its default, 0.1 its best
        with large batches).

    Examples
    --------
    >>> from sklearn.base import clone
    >>> clone(NTXentLoss(temperature=0.2))
    NTXentLoss(temperature=0.2)
    """

    name = "nt_xent"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"temperature": _POSITIVE}

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        self.temperature = temperature

    def pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        return nt_xent_loss(z1, z2, self.temperature)


#: Objective classes by the name ``ACTEncoder(objective=...)`` accepts; the name alone
#: means the class with its default parameters, but for those it reads from the
#: estimator (:attr:`Objective.estimator_params`; ACT: ``alpha``, ``adversary`` and
#: ``adversary_momentum``).
OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (ACTLoss, BarlowTwinsLoss, VICRegLoss, SpectralContrastiveLoss, NTXentLoss)
}


def resolve_objective(
    objective: str | Objective, estimator_params: Mapping[str, Any]
) -> Objective:
    """The objective ``ACTEncoder`` trains, with each setting taken from one place.

    A name builds its class from the estimator parameters the class declares in
    :attr:`Objective.estimator_params` (``"act"``: ``alpha``, ``adversary`` and
    ``adversary_momentum``), the others at their defaults. An :class:`Objective`
    instance carries all its settings itself and is returned as it is.

    A declared estimator parameter that the objective does not read (``alpha`` with
    ``objective="vicreg"``, or with ``objective=ACTLoss(...)``, which has its own) must
    keep its default: a value set there would be ignored, so it is refused.

    Parameters
    ----------
    objective : str or Objective
        ``ACTEncoder``'s ``objective``: a key of :data:`OBJECTIVES` or an instance.
    estimator_params : mapping
        ``ACTEncoder``'s parameters (``get_params(deep=False)``); those that no
        objective declares are not read.

    Returns
    -------
    Objective
        A new instance for a name; ``objective`` itself for an instance.

    Raises
    ------
    ValueError
        For an unknown name, or a declared estimator parameter set away from its
        default that the objective does not read (the message names the fix).
    TypeError
        For an ``objective`` that is neither a name nor an :class:`Objective`.

    Examples
    --------
    >>> resolve_objective("act", {"alpha": 0.1, "adversary": "ema"})
    ACTLoss(alpha=0.1, adversary='ema', momentum=0.9)
    >>> resolve_objective("nt_xent", {"alpha": 0.03})
    NTXentLoss(temperature=0.5)
    """
    if isinstance(objective, str):
        if objective not in OBJECTIVES:
            raise ValueError(
                f"objective must be one of {sorted(OBJECTIVES)} or an "
                f"skact.objectives.Objective, got {objective!r}"
            )
        cls = OBJECTIVES[objective]
        reads = cls.estimator_params
        own = {
            theirs: estimator_params[ours]
            for ours, theirs in reads.items()
            if ours in estimator_params
        }
        resolved: Objective = cls(**own)
    elif isinstance(objective, Objective):
        reads, resolved = {}, objective
    else:
        raise TypeError(
            "objective must be a name or an skact.objectives.Objective such as "
            f"BarlowTwinsLoss(lambd=0.01), got {type(objective).__name__}"
        )
    for cls in OBJECTIVES.values():
        defaults = cls().get_params()
        for ours, theirs in cls.estimator_params.items():
            value = estimator_params.get(ours, defaults[theirs])
            if ours not in reads and value != defaults[theirs]:
                raise ValueError(_unread_message(ours, value, theirs, cls, objective))
    return resolved


def _unread_message(
    name: str, value: Any, own: str, reader: type[Objective], objective: str | Objective
) -> str:
    """Why ``ACTEncoder``'s ``name=value`` is refused, and the fix."""
    default = reader().get_params()[own]
    if isinstance(objective, reader):
        return (
            f"{name}={value!r} is set on ACTEncoder, but objective={objective!r} has "
            f"its own {own}: set it there ({reader.__name__}({own}={value!r}), or "
            f"objective__{own} in a grid search) and leave ACTEncoder's {name} at its "
            f"default, or use objective={reader.name!r}."
        )
    return (
        f"{name}={value!r} is set on ACTEncoder, but it configures "
        f"objective={reader.name!r} only and objective={objective!r} would ignore it: "
        f"leave {name} at its default ({default!r}), or use "
        f"objective={reader.name!r}."
    )


def make_objective(
    objective: str | Objective, *, held_out: bool = False
) -> Callable[[Sequence[Tensor]], Tensor]:
    """The training criterion ``views -> scalar`` of an objective.

    A name builds that objective with its default parameters (``"act"`` with
    ``ACTLoss()``'s; :func:`resolve_objective` gives ``ACTEncoder``'s settings to a
    name first); an :class:`Objective` is validated and copied, so training leaves the
    caller's instance as it was.

    Parameters
    ----------
    objective : str or Objective
        A key of :data:`OBJECTIVES` or an objective instance, such as
        ``ACTLoss(alpha=0.1)``.
    held_out : bool, default=False
        A criterion for a loss on held-out data: no state carries over from batch to
        batch (ACT takes ``G`` from each batch itself); see
        :meth:`Objective.criterion`.

    Returns
    -------
    callable
        A new criterion: :class:`ACTCriterion` for ACT (its ``adversary`` holds ``G``),
        else a copy of the objective module.

    Raises
    ------
    ValueError
        For an unknown name or a parameter of the objective out of range.
    TypeError
        For an ``objective`` that is neither a name nor an :class:`Objective`.

    Examples
    --------
    >>> criterion = make_objective(NTXentLoss(temperature=0.2))
    >>> criterion.temperature
    0.2
    >>> make_objective(ACTLoss(alpha=0.1)).alpha
    0.1
    """
    objective = resolve_objective(objective, {})
    objective.validate()
    return objective.criterion(held_out)
