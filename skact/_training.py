"""The training loop: optimiser, learning-rate schedule, steps, validation, stopping.

Device, precision and threads live in :mod:`skact._device`, random streams in
:mod:`skact._random`.

The estimator builds the pieces (networks, objective, data source, augmentation) and
hands them to :class:`Trainer`, which knows nothing about scikit-learn.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from . import _guards
from ._callbacks import Callback
from ._device import autocast
from ._random import make_generator
from .objectives import Adversary

#: A view function: ``(batch on device, generator) -> one augmented view``.
ViewFn = Callable[[Tensor, torch.Generator], Tensor]

#: A training objective: ``criterion(list of embeddings, one per view) -> scalar``.
Criterion = Callable[[Sequence[Tensor]], Tensor]


def lr_factor(step: int, warmup_steps: int, total_steps: int | None) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to 5% of the peak.

    With ``total_steps=None`` (``partial_fit``: the schedule has no known end) the rate
    stays at its peak after the warm-up.

    Parameters
    ----------
    step : int
        Optimiser steps taken so far in this schedule.
    warmup_steps : int
        Length of the linear warm-up.
    total_steps : int or None
        Steps in the whole schedule.

    Returns
    -------
    float

    Examples
    --------
    >>> lr_factor(0, 10, 100), lr_factor(9, 10, 100), lr_factor(100, 10, 100)
    (0.1, 1.0, 0.05)
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps is None or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


#: Steps over which a run of ``partial_fit`` calls warms the learning rate up (``fit``
#: warms up over a tenth of its steps, at most 500). Counted in steps, not calls, so
#: that chunks of any size see the same schedule.
PARTIAL_FIT_WARMUP_STEPS = 100

#: Fewest rows in a training batch: BatchNorm normalises by the batch's statistics.
MIN_BATCH_ROWS = 2


def n_batches(n_samples: int, batch_size: int, smallest_shard: int | None = None) -> int:
    """Batches per epoch: enough that none exceeds ``batch_size``, none below 2 rows.

    The data is split into ``ceil(n_samples / batch_size)`` near-equal batches (511
    rows in batches of 256: 256 and 255), unless that would leave a process with a
    batch of fewer than :data:`MIN_BATCH_ROWS` rows (then fewer, larger batches: with
    ``batch_size=2``, 3 rows make one batch).

    Parameters
    ----------
    n_samples : int
        Rows per epoch, over all processes.
    batch_size : int
        Largest batch, over all processes.
    smallest_shard : int or None
        Rows of the process holding the fewest (data-parallel training); None: one
        process holds all ``n_samples``.

    Returns
    -------
    int

    Examples
    --------
    >>> n_batches(511, 256), n_batches(512, 256), n_batches(3, 2)
    (2, 2, 1)
    """
    smallest = n_samples if smallest_shard is None else smallest_shard
    return max(1, min(-(-n_samples // batch_size), smallest // MIN_BATCH_ROWS))


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Restore the running state of ``saved`` (Adam's moments and step counts) only.

    ``optimizer.load_state_dict`` would also bring back the saved hyperparameters
    (``weight_decay``, ``lr``...) over those the optimizer was built with now.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Built with the hyperparameters to use.
    saved : dict
        A ``state_dict()`` of an optimizer over the same parameters.
    """
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": saved["state"], "param_groups": groups})


def make_adam(
    params: Sequence[nn.Parameter], lr: float, weight_decay: float, device: torch.device
) -> torch.optim.Adam:
    """Adam, with the fused kernel on CPU and CUDA.

    The fused step updates all parameters in one kernel; on the CPU it is about four
    times cheaper than the default per-tensor loop (a few percent of an MLP step).
    Other devices, or a torch without the fused kernel for ``device``, get the default.

    Parameters
    ----------
    params : sequence of Parameter
    lr : float
    weight_decay : float
    device : torch.device
        Where the parameters live.

    Returns
    -------
    torch.optim.Adam
    """
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError):  # torch < 2.4 has no fused CPU kernel
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


class NonFiniteLossError(FloatingPointError):
    """Raised when training diverges: the loss turns NaN or infinite, or the weights
    blow up (see :func:`divergence`).

    Parameters
    ----------
    *args
        The message, as for any exception.
    advice : skact._checks.Advice or None, default=None
        The fix, as data (``ACTEncoder.fit`` sets it), so that the ``skact`` command can
        name its own options.
    at_start : bool, default=False
        Whether the loss or its gradient was already non-finite at the first step of
        the call, before any update: the learning rate is then not the cause.

    Attributes
    ----------
    advice : skact._checks.Advice or None
    at_start : bool
    """

    def __init__(self, *args: Any, advice: Any = None, at_start: bool = False) -> None:
        super().__init__(*args)
        self.advice = advice
        self.at_start = at_start


#: Training has diverged when the weights' scale (:func:`weight_scale`) grows beyond
#: this multiple of its value at the start of the ``fit`` or ``partial_fit`` call. An
#: Adam step moves each weight by about the learning rate, so a rate that trains
#: (1e-4 to 1e-2) changes the scale by about ``lr * sqrt(steps)`` (at most
#: ``lr * steps``): from the scale of a new network (0.05 to 1) or its floor below,
#: reaching a thousand times as much takes millions of steps at 1e-2. A rate that
#: diverges does it in a step (1e12 makes the weights about 1e12).
WEIGHT_GROWTH_LIMIT = 1000.0

#: The scale :data:`WEIGHT_GROWTH_LIMIT` multiplies when the weights start smaller (the
#: first layer of a very wide table starts near ``1 / sqrt(3 * n_features)``).
MIN_REFERENCE_SCALE = 0.01


def weight_scale(modules: Sequence[nn.Module]) -> float:
    """The root mean square of the trainable parameters of ``modules``.

    Parameters
    ----------
    modules : sequence of nn.Module

    Returns
    -------
    float
        Infinite or NaN when a parameter is (or its square overflows float32).
    """
    params = [p.detach() for m in modules for p in m.parameters() if p.requires_grad]
    if not params:
        return 0.0
    norms = torch.stack([torch.linalg.vector_norm(p, dtype=torch.float32) for p in params])
    return math.sqrt(float(norms.pow(2).sum()) / sum(p.numel() for p in params))


def divergence(
    loss: float | None, start_scale: float, scale: float, moments_finite: bool = True
) -> str | None:
    """Why a training state is not sound, in the user's words; None when it is.

    A state is sound when training can go on from it and its model is usable: the loss
    is finite, the weights' scale has not grown beyond :data:`WEIGHT_GROWTH_LIMIT`
    times that at the start of the call (or :data:`MIN_REFERENCE_SCALE`, whichever is
    larger), and the optimiser's moment estimates are finite. The loss alone cannot
    tell: skact's objectives normalise the embeddings, so a model whose weights blew up
    to 1e12 can still have a loss of 72.

    Parameters
    ----------
    loss : float or None
        The mean loss of the steps since the last check; None: no loss to check.
    start_scale : float
        :func:`weight_scale` at the start of the call.
    scale : float
        :func:`weight_scale` now.
    moments_finite : bool, default=True
        Whether the optimiser's moment estimates are finite.

    Returns
    -------
    str or None

    Examples
    --------
    >>> divergence(1.5, 0.1, 99.0) is None, divergence(float("nan"), 0.1, 0.1)
    (True, 'the training loss became nan')
    >>> divergence(1.5, 0.1, 1e12)
    'the weights grew more than 1000-fold, from a root mean square of 0.1 to 1e+12'
    """
    if loss is not None and not math.isfinite(loss):
        return f"the training loss became {loss}"
    if not scale <= WEIGHT_GROWTH_LIMIT * max(start_scale, MIN_REFERENCE_SCALE):
        return (
            f"the weights grew more than {WEIGHT_GROWTH_LIMIT:.0f}-fold, from a root "
            f"mean square of {start_scale:.1g} to {scale:.1g}"
        )
    if not moments_finite:
        return "the optimizer's moment estimates became NaN or infinite"
    return None


def moments_finite(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimiser's running estimates (Adam's moments) are all finite.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer

    Returns
    -------
    bool
    """
    tensors = [
        value
        for state in optimizer.state.values()
        for key, value in state.items()
        if key != "step" and isinstance(value, Tensor) and value.is_floating_point()
    ]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class Strategy(Protocol):
    """How a :class:`Trainer` spreads its work: one process, or several (data parallel).

    :class:`SingleProcess` is the default; :class:`skact.distributed.DataParallel`
    trains one model on several processes.
    """

    def attach(
        self,
        encoder: nn.Module,
        projector: nn.Module | None,
        criterion: Criterion,
        device: torch.device,
        batch_size: int,
    ) -> tuple[nn.Module, nn.Module | None, Criterion]:
        """The encoder, projection head and criterion that training steps run."""
        ...

    def batch_count(self, n_samples: int, batch_size: int) -> int:
        """Batches per epoch, the same on every process."""
        ...

    def mean(self, value: float) -> float:
        """``value`` averaged over the processes."""
        ...

    def release(self) -> None:
        """Undo :meth:`attach`'s changes to the networks (no collective)."""
        ...


class SingleProcess:
    """Training in this process alone: the networks and the criterion as they are."""

    def attach(
        self,
        encoder: nn.Module,
        projector: nn.Module | None,
        criterion: Criterion,
        device: torch.device,
        batch_size: int,
    ) -> tuple[nn.Module, nn.Module | None, Criterion]:
        """Return the networks and the criterion unchanged.

        Parameters
        ----------
        encoder, projector : nn.Module
        criterion : callable
        device : torch.device
        batch_size : int

        Returns
        -------
        tuple
            ``(encoder, projector, criterion)``.
        """
        return encoder, projector, criterion

    def batch_count(self, n_samples: int, batch_size: int) -> int:
        """:func:`n_batches` of ``n_samples``.

        Parameters
        ----------
        n_samples, batch_size : int

        Returns
        -------
        int
        """
        return n_batches(n_samples, batch_size)

    def mean(self, value: float) -> float:
        """``value`` itself (one process).

        Parameters
        ----------
        value : float

        Returns
        -------
        float
        """
        return value

    def release(self) -> None:
        """Nothing to undo."""


@dataclass(frozen=True)
class Validation:
    """Held-out data whose loss :class:`Trainer` computes after each epoch.

    The views are fixed (drawn from ``seed`` at every epoch), so that the loss changes
    only with the weights; the criterion takes ``G`` from the held-out batch itself.

    Parameters
    ----------
    data : Tensor
        Held-out rows, stored as the training rows are.
    view_fn : callable
        ``view_fn(batch, generator) -> augmented view`` of held-out rows.
    criterion : callable
        ``criterion(list of embeddings) -> scalar loss``.
    seed : int
        Seeds the views.
    batch_size : int
        Rows per forward pass (views of all rows are drawn at once: input-sized, small
        next to the network's activations, and the value does not depend on it).
    """

    data: Tensor
    view_fn: ViewFn
    criterion: Criterion
    seed: int
    batch_size: int


#: A step shorter than this ends soon enough for Ctrl-C: the per-layer polls (a Python
#: call before each layer, a few percent of a small MLP's step) are then removed.
FAST_STEP_SECONDS = 0.1

#: Ctrl-C abandons the step under way when the last complete step took this long (or
#: none has completed yet); a shorter step is finished, as it ends within about this.
SLOW_STEP_SECONDS = 1.0


class _StoppedInEpoch(Exception):
    """A callback's :meth:`Trainer.request_stop` ended an epoch before its last step."""


class StepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a step: the step is abandoned before it changed the weights."""


@dataclass
class Trainer:
    """Runs optimisation epochs of a self-supervised objective.

    Everything the trainer uses is given here; :meth:`fit` runs the epochs and calls
    the ``callbacks`` (progress, time estimate, early stopping, ...), and
    :meth:`close` undoes what ``strategy`` changed in the networks.

    Parameters
    ----------
    encoder : nn.Module
        The representation network.
    projector : nn.Module or None
        Head applied before the loss only.
    criterion : callable
        ``criterion(list of embeddings) -> scalar loss``.
    optimizer : torch.optim.Optimizer
    view_fn : callable
        ``view_fn(batch, generator) -> augmented view`` on the device.
    n_views : int
        Views per sample.
    batch_size : int
        Target batch size (the data is split into near-equal batches).
    learning_rate : float
        Peak learning rate.
    warmup_steps : int
        Linear warm-up length.
    device : torch.device
    generator : torch.Generator
        Drives the augmentation.
    shuffle_rng : numpy.random.Generator
        Drives the batch order.
    step : int
        Optimiser steps taken so far, over the model's life.
    schedule_start : int
        The ``step`` at which the learning-rate schedule began (the warm-up counts from
        there).
    total_steps : int or None
        Length of the schedule in steps (the end of the cosine decay); None: no decay.
    amp_dtype : torch.dtype or None
        Mixed-precision dtype, None for float32.
    stop_requested : callable or None
        Whether Ctrl-C was pressed (see :func:`skact._guards.deferred_interrupt`);
        polled after each step and, in :meth:`fit` until a step takes less than
        :data:`FAST_STEP_SECONDS`, before each layer of the networks and before the
        loss. When it turns True during a step and the last step took
        :data:`SLOW_STEP_SECONDS` or more (or none has completed), the step is abandoned
        (it has not changed the weights yet; BatchNorm layers it ran have counted its
        batch in their running statistics); a shorter one is finished. The epoch ends
        with the steps it completed and KeyboardInterrupt is raised.
    strategy : Strategy, default=SingleProcess()
        How the work is spread: :class:`skact.distributed.DataParallel` trains on
        several processes (the batch count then comes from every process's rows and
        ``batch_size`` is the global batch).
    adversary : Adversary or None
        The ACT criterion's adversary, whose running ``G`` is snapshotted and restored
        with the weights.
    indices_on_device : bool, default=True
        Whether :meth:`run_epoch` hands ``take`` each batch's indices as a tensor on
        ``device`` (the epoch's permutation is copied there once, not at every step)
        rather than as a numpy array (for data that lives on the host, such as files).
    validation : Validation or None
        Held-out data whose loss is computed after each epoch (``"validation_loss"``
        in the callbacks' logs).
    callbacks : sequence of Callback
        Called in this order (see :class:`skact._callbacks.Callback`).
    epoch : int
        Epochs completed so far, over the model's life.
    eval_modules : sequence of nn.Module
        Modules of the networks that train in evaluation mode (frozen by ACTEncoder's
        ``freeze``, see :mod:`skact._freeze`): set so after every ``train()``.

    Attributes
    ----------
    history : list of dict
        The logs of each epoch of :meth:`fit` (``"loss"``, ``"validation_loss"``).
    """

    encoder: nn.Module
    projector: nn.Module | None
    criterion: Criterion
    optimizer: torch.optim.Optimizer
    view_fn: ViewFn
    n_views: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    device: torch.device
    generator: torch.Generator
    shuffle_rng: np.random.Generator
    step: int = 0
    schedule_start: int = 0
    total_steps: int | None = None
    amp_dtype: torch.dtype | None = field(default=None)
    stop_requested: Callable[[], bool] | None = None
    strategy: Strategy = field(default_factory=SingleProcess)
    adversary: Adversary | None = None
    indices_on_device: bool = True
    validation: Validation | None = None
    callbacks: Sequence[Callback] = ()
    epoch: int = 0
    eval_modules: Sequence[nn.Module] = ()
    history: list[dict[str, float]] = field(default_factory=list, init=False)
    _stop_polls: list[Any] = field(default_factory=list, init=False, repr=False)
    _step_seconds: float | None = field(default=None, init=False, repr=False)
    # The reference of the divergence check, and whether the first step was checked.
    _start_scale: float = field(default=math.nan, init=False, repr=False)
    _start_checked: bool = field(default=False, init=False, repr=False)
    # True while the optimiser updates the weights (a KeyboardInterrupt then tears them).
    _updating: bool = field(default=False, init=False, repr=False)
    # Set by request_stop: the fit ends cleanly after the step under way.
    _stop_after_step: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._train_encoder, self._train_projector, self._train_criterion = (
            self.strategy.attach(
                self.encoder, self.projector, self.criterion, self.device, self.batch_size
            )
        )
        self._start_scale = weight_scale(self._modules())

    def close(self) -> None:
        """Give the networks back as they were built (see :meth:`Strategy.release`)."""
        self.strategy.release()

    def batches(self, n_samples: int) -> list[np.ndarray]:
        """Split a random permutation of ``n_samples`` into near-equal batches.

        Parameters
        ----------
        n_samples : int
            Rows this process holds.

        Returns
        -------
        list of ndarray of int
            Every sample once, in :func:`n_batches` batches: none larger than
            ``batch_size`` (over all processes), none smaller than
            :data:`MIN_BATCH_ROWS` unless the data is.
        """
        order = self.shuffle_rng.permutation(n_samples)
        return np.array_split(order, self.batch_count(n_samples))

    def batch_count(self, n_samples: int) -> int:
        """Batches per epoch at the current ``batch_size`` (see :meth:`batches`).

        Parameters
        ----------
        n_samples : int
            Rows this process holds.

        Returns
        -------
        int
        """
        return self.strategy.batch_count(n_samples, self.batch_size)

    def request_stop(self) -> None:
        """End the fit cleanly after the step under way (or at once between epochs).

        For callbacks: the steps completed are kept, the epoch cut short is not
        counted (:attr:`epoch` counts complete epochs, as after Ctrl-C), the other
        callbacks' :meth:`~Callback.on_fit_end` get no error, and :meth:`fit` returns.
        """
        self._stop_after_step = True

    def learning_rate_now(self) -> float:
        """The learning rate of the next step.

        Returns
        -------
        float
        """
        return self.learning_rate * lr_factor(
            self.step - self.schedule_start, self.warmup_steps, self.total_steps
        )

    def forward(self, x: Tensor, *, training: bool = True) -> Tensor:
        """Embeddings of ``x`` in float32: the encoder, then the head, in ``amp_dtype``.

        Parameters
        ----------
        x : Tensor
            Model-ready inputs on the device.
        training : bool, default=True
            Run the networks the training steps run (under data-parallel training, the
            replicas); False: the networks themselves (a pass on this process alone).

        Returns
        -------
        Tensor
        """
        encoder, projector = (
            (self._train_encoder, self._train_projector)
            if training
            else (self.encoder, self.projector)
        )
        with autocast(self.device, self.amp_dtype):
            z = encoder(x)
            if projector is not None:
                z = projector(z)
        if self._stop_polls:  # before the loss: an ACT adversary would update G
            self._check_stop()
        return z.float()

    def training_step(self, batch: Tensor) -> Tensor:
        """One optimiser step on a batch; returns the detached loss (no host sync).

        Parameters
        ----------
        batch : Tensor
            Model-ready batch on the device.

        Returns
        -------
        Tensor
            Scalar loss.
        """
        learning_rate = self.learning_rate_now()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        views = [self.view_fn(batch, self.generator) for _ in range(self.n_views)]
        z = self.forward(torch.cat(views))
        loss = self._train_criterion(list(z.chunk(self.n_views)))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with _guards.sigint_held():  # the update is whole or not at all
            self._updating = True
            self.optimizer.step()
            self.step += 1
            self._updating = False
        return loss.detach()

    def validation_loss(self) -> float:
        """The loss of :attr:`validation`'s data with its fixed views, in eval mode.

        Returns
        -------
        float
            Averaged over the processes.
        """
        validation = self.validation
        if validation is None:
            raise ValueError("this Trainer was built without validation data")
        generator = make_generator(self.device, validation.seed)
        modules = self._modules()
        for m in modules:
            m.eval()
        try:
            with torch.no_grad():
                data = validation.data
                views = torch.cat(
                    [validation.view_fn(data, generator) for _ in range(self.n_views)]
                )
                z = torch.cat(
                    [
                        self.forward(batch, training=False)
                        for batch in views.split(validation.batch_size)
                    ]
                )
                loss = float(validation.criterion(list(z.chunk(self.n_views))))
        finally:
            for m in modules:
                m.train()
        return self.strategy.mean(loss)

    def fit(self, n_samples: int, take: Callable[[Any], Tensor], n_epochs: int) -> None:
        """Train up to ``n_epochs`` epochs, calling the callbacks.

        Each epoch runs through :func:`skact._guards.run_epoch_with_oom_retry`; its
        logs are appended to :attr:`history`. A callback's :meth:`~Callback.on_epoch_end`
        returning True ends the fit, and so does :meth:`request_stop` (after the step
        under way); Ctrl-C (``stop_requested``) raises
        KeyboardInterrupt after the steps completed so far. An error while computing
        the validation loss leaves the epoch's training in place (the error is marked
        with :func:`skact._guards.keep_trained_model`).

        Parameters
        ----------
        n_samples : int
            Rows this process holds.
        take : callable
            ``take(indices) -> batch`` on the device (see :meth:`run_epoch`).
        n_epochs : int
            Epochs to run at most.
        """
        self._stop_after_step = False
        began: list[Any] = []  # the callbacks whose on_fit_begin ran: each gets its end
        error: BaseException | None = None
        try:
            for callback in self.callbacks:
                callback.on_fit_begin(self, n_epochs, n_samples)
                began.append(callback)
            with self._interruptible():
                for epoch in range(n_epochs):
                    n_steps = self.batch_count(n_samples)
                    for callback in self.callbacks:
                        callback.on_epoch_begin(self, epoch, n_steps)
                    if self._stop_after_step:
                        break
                    try:
                        loss = _guards.run_epoch_with_oom_retry(self, n_samples, take)
                    except _StoppedInEpoch:
                        break  # a callback's request_stop: the partial epoch is not one
                    logs = {"loss": loss}
                    self.epoch += 1
                    self.history.append(logs)
                    if self.validation is not None:
                        logs["validation_loss"] = self._checked_validation_loss()
                    stop = False
                    for callback in self.callbacks:
                        stop = bool(callback.on_epoch_end(self, epoch, logs)) or stop
                    if stop or self._stop_after_step:
                        break
                    if self.stop_requested is not None and self.stop_requested():
                        raise KeyboardInterrupt("training interrupted (Ctrl-C)")
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end_callbacks(began, self, error)

    def _checked_validation_loss(self) -> float:
        try:
            return self.validation_loss()
        except Exception as exc:
            # The epoch is whole: keep it, as after Ctrl-C.
            epochs = f"{self.epoch} epoch{'' if self.epoch == 1 else 's'}"
            _guards.keep_trained_model(
                exc,
                "computing the early-stopping validation loss failed after epoch "
                f"{self.epoch}; the model trained so far ({epochs}) is kept.",
            )
            raise

    def run_epoch(self, n_samples: int, take: Callable[[Any], Tensor]) -> float:
        """Train one pass over the data and return the mean loss.

        The weights, the optimiser and the adversary are snapshotted first. At the end
        (also when Ctrl-C ended the epoch early) the state reached is checked
        (:func:`divergence`); if training diverged, the snapshot is restored and
        :class:`NonFiniteLossError` is raised, so every state kept passed the check. The
        first step of the trainer checks the loss and gradient at the starting weights
        (a failure there is the starting point's, not the learning rate's:
        ``at_start``). A step that fails with an exception (out of memory) restores the
        snapshot too.

        Ctrl-C keeps the steps completed: when ``stop_requested`` turns True the epoch
        ends with them (a step under way is abandoned before it changes the weights),
        and a KeyboardInterrupt raised in the middle of a step (a second Ctrl-C) drops
        that step only; the optimiser's update itself is never cut
        (:func:`skact._guards.sigint_held`; were it cut anyway, the snapshot is
        restored). KeyboardInterrupt is then raised.

        Parameters
        ----------
        n_samples : int
            Size of the data.
        take : callable
            ``take(indices) -> batch`` on the device; the indices are a tensor on the
            device or a numpy array, as ``indices_on_device`` says.

        Returns
        -------
        float
        """
        snapshot = self.snapshot()
        start_step = self.step
        self.encoder.train()
        if self.projector is not None:
            self.projector.train()
        for module in self.eval_modules:
            module.eval()
        total = torch.zeros((), device=self.device)
        batches: Sequence[Any] = self.batches(n_samples)
        if self.indices_on_device:
            order = torch.from_numpy(np.concatenate(batches)).to(self.device)
            batches = order.split([len(b) for b in batches])
        done = 0  # steps whose loss is in total
        stopped = False  # Ctrl-C ended the epoch before its last batch
        # What a step under way changes before its update: ACT's estimate of G (which
        # Adversary.update replaces, never changes in place, so a reference keeps it).
        step_before, estimate_before = self.step, self._adversary_estimate()
        try:
            for idx in batches:
                started = time.perf_counter()
                step_before, estimate_before = self.step, self._adversary_estimate()
                loss = self.training_step(take(idx))
                total += loss
                done += 1
                if not self._start_checked:
                    self._start_checked = True
                    self._check_start(loss)
                self._step_seconds = time.perf_counter() - started
                if self._stop_polls and self._step_seconds < FAST_STEP_SECONDS:
                    self._remove_stop_polls()
                for callback in self.callbacks:
                    callback.on_step_end(self, len(idx))
                if self._stop_after_step:
                    break
                if self.stop_requested is not None and self.stop_requested():
                    stopped = True
                    break
        except StepInterrupted:
            # Abandoned before optimizer.step: the weights are those of the last
            # complete step, which are kept.
            self.optimizer.zero_grad(set_to_none=True)
            stopped = True
        except KeyboardInterrupt:
            if self._updating:  # cut inside the optimiser's update: the weights are torn
                self._updating = False
                self.restore(snapshot)
                self.step = start_step
                raise
            # Cut before the update (or between steps): the weights and the optimiser
            # are those of the last complete step. Drop the step under way.
            self.optimizer.zero_grad(set_to_none=True)
            if self.adversary is not None and self.step == step_before:
                self.adversary.state = estimate_before
            stopped = True
        except BaseException as exc:
            # A step cut short (out of memory) may leave the weights half updated, and
            # a divergence at the first step is the starting point's: go back to the
            # start of the epoch.
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                # The traceback's frames hold the failed step's activations: free them
                # (and the gradients) before the restore allocates.
                traceback.clear_frames(exc.__traceback__)
                self.optimizer.zero_grad(set_to_none=True)
            self.restore(snapshot)
            self.step = start_step
            raise
        if stopped and self.step == start_step:
            raise KeyboardInterrupt(f"training stopped after step {self.step} (Ctrl-C)")
        # A Ctrl-C now waits for the check (a host sync and a few norms): what is kept
        # after an interrupt has passed it.
        with _guards.sigint_held():
            mean = float(total) / done if done else math.nan
            symptom = divergence(
                mean if done else None,
                self._start_scale,
                weight_scale(self._modules()),
                moments_finite(self.optimizer),
            )
            if symptom is not None:
                failed_step, self.step = self.step, start_step
                self.restore(snapshot)
                raise NonFiniteLossError(f"by step {failed_step}, {symptom}")
        if stopped:
            raise KeyboardInterrupt(f"training stopped after step {self.step} (Ctrl-C)")
        if self._stop_after_step and done < len(batches):
            raise _StoppedInEpoch  # the steps are kept; the epoch is not complete
        return mean

    def _adversary_estimate(self) -> Tensor | None:
        return None if self.adversary is None else self.adversary.state

    def _check_start(self, loss: Tensor) -> None:
        """Raise :class:`NonFiniteLossError` (``at_start``) if the first step's loss or
        gradient, computed at the weights this trainer started from, is not finite."""
        grads = [
            p.grad for m in self._modules() for p in m.parameters() if p.grad is not None
        ]
        checks = [torch.isfinite(loss).all(), *(torch.isfinite(g).all() for g in grads)]
        if bool(torch.stack(checks).all()):
            return
        what = (
            f"the training loss was {float(loss)}"
            if not math.isfinite(float(loss))
            else f"the gradient of the loss ({float(loss):.4g}) was NaN or infinite"
        )
        raise NonFiniteLossError(
            f"{what} at the first step, before any update", at_start=True
        )

    def _check_stop(self) -> None:
        slow = self._step_seconds is None or self._step_seconds >= SLOW_STEP_SECONDS
        if slow and self.stop_requested is not None and self.stop_requested():
            raise StepInterrupted("training step abandoned (Ctrl-C)")

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """Poll ``stop_requested`` before every layer while the block runs.

        A Python signal handler runs between two operations, so one slow step (seconds
        to minutes for an image batch on a CPU) would otherwise delay Ctrl-C to its end;
        checking before each leaf layer abandons it within one layer's time. Once a
        step takes less than :data:`FAST_STEP_SECONDS` the checks are removed: the
        poll after each step is then soon enough.
        """
        if self.stop_requested is None:
            yield
            return

        def check(module: nn.Module, args: Any) -> None:
            self._check_stop()

        self._stop_polls = [
            leaf.register_forward_pre_hook(check)
            for module in self._modules()
            for leaf in module.modules()
            if next(leaf.children(), None) is None
        ]
        try:
            yield
        finally:
            self._remove_stop_polls()

    def _remove_stop_polls(self) -> None:
        for handle in self._stop_polls:
            handle.remove()
        self._stop_polls = []

    def _modules(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.projector) if m is not None]

    def snapshot(self) -> TrainingSnapshot:
        """Copy the training state: weights, optimiser state and the adversary's ``G``.

        Returns
        -------
        TrainingSnapshot
        """
        modules = [
            {k: v.detach().clone() for k, v in m.state_dict().items()}
            for m in self._modules()
        ]
        # Adam's moments and the adversary's G go non-finite with the weights (a NaN
        # C_hat poisons G for every later step), so they are kept too.
        return TrainingSnapshot(
            modules,
            copy.deepcopy(self.optimizer.state_dict()),
            None if self.adversary is None else copy.deepcopy(self.adversary.state_dict()),
        )

    def restore(self, snapshot: TrainingSnapshot) -> None:
        """Put back the state of :meth:`snapshot` (whole: Ctrl-C waits until it is).

        Parameters
        ----------
        snapshot : TrainingSnapshot
        """
        with _guards.sigint_held():
            for module, state in zip(self._modules(), snapshot.modules):
                module.load_state_dict(state)
            self.optimizer.load_state_dict(snapshot.optimizer)
            if self.adversary is not None and snapshot.adversary is not None:
                self.adversary.load_state_dict(snapshot.adversary)


def _end_callbacks(
    callbacks: list[Any], trainer: Trainer, error: BaseException | None
) -> None:
    """``on_fit_end`` of every callback, even when one of them fails (so that each can
    close what it opened); a failure is raised after the others ran, unless the fit
    already failed, whose error then keeps its place and gains a note."""
    failure: BaseException | None = None
    for callback in callbacks:
        try:
            callback.on_fit_end(trainer, error)
        except Exception as exc:
            failure = failure or exc
    if failure is None:
        return
    if error is None:
        raise failure
    error.add_note(f"and {type(failure).__name__} in a callback's on_fit_end: {failure}")


@dataclass(frozen=True)
class TrainingSnapshot:
    """The state :meth:`Trainer.restore` puts back.

    Parameters
    ----------
    modules : list of dict
        State dicts of the encoder and the projection head (when there is one).
    optimizer : dict
        The optimiser's state dict.
    adversary : dict or None
        The adversary's state dict, None without an adversary.
    """

    modules: list[dict[str, Tensor]]
    optimizer: dict[str, Any]
    adversary: dict[str, Any] | None
