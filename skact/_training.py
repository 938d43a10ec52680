"""The training loop: device and thread choice, precision, seeds, schedule, stopping.

The estimator builds the pieces (networks, objective, data source, augmentation) and
hands them to :class:`Trainer`, which knows nothing about scikit-learn.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np
import torch
from torch import Tensor, nn

from .objectives import Adversary

#: A view function: ``(batch on device, generator) -> one augmented view``.
ViewFn = Callable[[Tensor, torch.Generator], Tensor]


def resolve_device(spec: str | torch.device) -> torch.device:
    """Turn a ``device`` parameter into a :class:`torch.device`.

    ``"auto"`` picks CUDA when available, else Apple's MPS, else the CPU. An explicit
    accelerator that is not available raises a ValueError naming the alternatives.

    Parameters
    ----------
    spec : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a device.

    Returns
    -------
    torch.device
    """
    if isinstance(spec, str) and spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    def refused(problem: str, instead: tuple[str, ...] = ()) -> ValueError:
        # The advice as data too: the skact command names its --device option.
        from ._guards import Advice, AdvisedValueError  # _guards imports this module

        use = " or ".join(f"device={d!r}" for d in instead)
        return AdvisedValueError(
            f"device={problem}" + (f"; use {use}." if instead else "."),
            Advice(problem, "device", {"device": instead} if instead else {}),
        )

    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise refused(f"{spec!r} is not a valid torch device: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise refused(
                f"{spec!r} was requested but CUDA is not available", ("auto", "cpu")
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise refused(
                f"{spec!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    if device.type == "mps" and not _mps_available():
        raise refused(f"{spec!r} was requested but MPS is not available")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def thread_budget() -> int:
    """Number of intra-op threads a fit may use without oversubscribing the machine.

    joblib's process workers (e.g. ``GridSearchCV(n_jobs=k)``) export
    ``OMP_NUM_THREADS = cores // k``; that limit is honoured, else the cores available.

    Returns
    -------
    int
    """
    env = os.environ.get("OMP_NUM_THREADS", "")
    cores = joblib.cpu_count()
    if env.isdigit() and int(env) > 0:
        return min(int(env), cores)
    return max(1, min(torch.get_num_threads(), cores))


@contextlib.contextmanager
def torch_threads(n: int | None = None) -> Iterator[int]:
    """Limit torch's intra-op threads inside the block and restore them afterwards.

    Parameters
    ----------
    n : int or None
        Threads to use; None takes :func:`thread_budget`.

    Yields
    ------
    int
        The number of threads in force.
    """
    before = torch.get_num_threads()
    n = thread_budget() if n is None else n
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """Copy a host tensor to ``device``; through pinned memory, without blocking, on CUDA.

    On a CPU-only machine (or for a CPU target) the tensor is returned as it is.

    Parameters
    ----------
    tensor : Tensor
        Host tensor.
    device : torch.device

    Returns
    -------
    Tensor
    """
    if device.type != "cuda" or tensor.device.type == "cuda":
        return tensor.to(device)
    if torch.cuda.is_available() and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for ``device``: bf16 on GPUs that compute in it, else none.

    A CUDA device needs compute capability 8.0 (Ampere) or more: older GPUs (V100, T4)
    only emulate bf16, slower than float32, and ``torch.cuda.is_bf16_supported()``
    counts that emulation and asks about the current device, not ``device``. ROCm
    GPUs compute in bf16.

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    torch.dtype or None
    """
    if device.type != "cuda":
        return None
    if torch.version.hip or torch.cuda.get_device_capability(device) >= (8, 0):
        return torch.bfloat16
    return None


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch.Generator on ``device`` (CPU for devices without their own).

    Parameters
    ----------
    device : torch.device
    seed : int

    Returns
    -------
    torch.Generator
    """
    gen_device = device if device.type in ("cuda", "cpu") else torch.device("cpu")
    return torch.Generator(device=gen_device).manual_seed(seed)


def generator_state_for(
    state: Tensor, saved: torch.device, target: torch.device, rng: np.random.Generator
) -> Tensor:
    """A generator ``state`` saved on ``saved``, usable on ``target``.

    CUDA and CPU generators have states of different kinds: across device types the
    generator is reseeded from ``rng`` (the model's own random state, so the result is
    deterministic); on the same type ``state`` is kept.

    Parameters
    ----------
    state : Tensor
    saved, target : torch.device
    rng : numpy.random.Generator

    Returns
    -------
    Tensor
    """
    if saved.type == target.type:
        return state
    return make_generator(target, int(rng.integers(2**31 - 1))).get_state()


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


#: Input values per ``transform`` batch on the CPU (256 KiB of float32): the network's
#: activations then stay small next to the output, whatever the input size.
TRANSFORM_VALUES = 2**16


def transform_batch_size(
    batch_size: int, input_shape: Sequence[int], device: torch.device
) -> int:
    """Samples per ``transform`` batch.

    On an accelerator, large batches (device memory is not the host's RSS). On the CPU,
    at most :data:`TRANSFORM_VALUES` input values per batch: a 32x32 RGB image batch of
    1024 would hold ~0.5 GB of ConvNet activations, ten times the output of 50,000
    images; 21 images hold ~10 MB and run as fast per image.

    Parameters
    ----------
    batch_size : int
        The estimator's training batch size.
    input_shape : sequence of int
        Shape of one network input.
    device : torch.device

    Returns
    -------
    int

    Examples
    --------
    >>> cpu = torch.device("cpu")
    >>> transform_batch_size(256, (64,), cpu), transform_batch_size(256, (3, 32, 32), cpu)
    (1024, 21)
    """
    largest = max(batch_size, 1024)
    if device.type != "cpu":
        return largest
    return max(1, min(largest, TRANSFORM_VALUES // max(1, math.prod(input_shape))))


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
    """Raised when the training loss becomes NaN or infinite.

    Parameters
    ----------
    *args
        The message, as for any exception.
    advice : skact._guards.Advice or None, default=None
        The parameters to lower, as data (``ACTEncoder.fit`` sets it), so that the
        ``skact`` command can name its own options.
    """

    def __init__(self, *args: Any, advice: Any = None) -> None:
        super().__init__(*args)
        self.advice = advice


@dataclass
class Trainer:
    """Runs optimisation epochs of a self-supervised objective.

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
        Polled after each step; when it returns True the epoch stops there and
        KeyboardInterrupt is raised (see :func:`skact._guards.deferred_interrupt`).
    shard_sizes : tuple of int or None
        Under data-parallel training, the rows each process holds: the batch count
        comes from their sum and ``batch_size`` (see :func:`n_batches`), so every
        process takes the same number of steps, and follows ``batch_size`` when it
        changes. None: this process holds all the data.
    adversary : Adversary or None
        The ACT criterion's adversary, whose running ``G`` is snapshotted and restored
        with the weights.
    indices_on_device : bool, default=True
        Whether :meth:`run_epoch` hands ``take`` each batch's indices as a tensor on
        ``device`` (the epoch's permutation is copied there once, not at every step)
        rather than as a numpy array (for data that lives on the host, such as files).
    """

    encoder: nn.Module
    projector: nn.Module | None
    criterion: Callable[[Sequence[Tensor]], Tensor]
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
    shard_sizes: tuple[int, ...] | None = None
    adversary: Adversary | None = None
    indices_on_device: bool = True

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
        if self.shard_sizes is None:
            return n_batches(n_samples, self.batch_size)
        return n_batches(sum(self.shard_sizes), self.batch_size, min(self.shard_sizes))

    def learning_rate_now(self) -> float:
        """The learning rate of the next step.

        Returns
        -------
        float
        """
        return self.learning_rate * lr_factor(
            self.step - self.schedule_start, self.warmup_steps, self.total_steps
        )

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
        with torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        ):
            z = self.encoder(torch.cat(views))
            if self.projector is not None:
                z = self.projector(z)
        loss = self.criterion(list(z.float().chunk(self.n_views)))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach()

    def run_epoch(self, n_samples: int, take: Callable[[Any], Tensor]) -> float:
        """Train one pass over the data and return the mean loss.

        The weights, the optimiser and the adversary are snapshotted first; if the loss
        turns non-finite, or a step fails with an exception, they are restored and the
        error is raised
        (:class:`NonFiniteLossError` for the loss). When ``stop_requested`` turns True
        the epoch ends after the current step, keeping its steps, and KeyboardInterrupt
        is raised.

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
        total = torch.zeros((), device=self.device)
        batches: Sequence[Any] = self.batches(n_samples)
        if self.indices_on_device:
            order = torch.from_numpy(np.concatenate(batches)).to(self.device)
            batches = order.split([len(b) for b in batches])
        done = 0
        try:
            for idx in batches:
                total += self.training_step(take(idx))
                done += 1
                if self.stop_requested is not None and self.stop_requested():
                    break
        except BaseException as exc:
            # A step cut short (out of memory, a raw Ctrl-C) may leave the weights half
            # updated: go back to the start of the epoch.
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                # The traceback's frames hold the failed step's activations: free them
                # (and the gradients) before the restore allocates.
                traceback.clear_frames(exc.__traceback__)
                self.optimizer.zero_grad(set_to_none=True)
            self.restore(snapshot)
            self.step = start_step
            raise
        mean = float(total) / done  # the epoch's one host sync
        if not math.isfinite(mean):
            failed_step, self.step = self.step, start_step
            self.restore(snapshot)
            raise NonFiniteLossError(
                f"the training loss became {mean} by step {failed_step}; the weights of "
                "the last finite epoch were restored. Try a lower learning_rate or alpha."
            )
        if done < len(batches):
            raise KeyboardInterrupt(f"training stopped after step {self.step} (Ctrl-C)")
        return mean

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
        """Put back the state of :meth:`snapshot`.

        Parameters
        ----------
        snapshot : TrainingSnapshot
        """
        for module, state in zip(self._modules(), snapshot.modules):
            module.load_state_dict(state)
        self.optimizer.load_state_dict(snapshot.optimizer)
        if self.adversary is not None and snapshot.adversary is not None:
            self.adversary.load_state_dict(snapshot.adversary)


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
