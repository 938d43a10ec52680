"""Where a fit computes: device choice, host-to-device copies, precision, threads.

:func:`resolve_device` turns the ``device`` parameter into a :class:`torch.device`;
:func:`compute_settings` and :func:`autocast_dtype` give the precision rule of
:mod:`skact._auto` for that device; :func:`torch_threads` bounds torch's intra-op
threads for the length of a fit or a ``transform``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import joblib
import torch
from torch import Tensor

from . import _auto
from ._checks import Advice, AdvisedValueError


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
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    def refused(problem: str, instead: tuple[str, ...] = ()) -> ValueError:
        # The advice as data too: the skact command names its --device option.
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
    if device.type == "mps" and not mps_available():
        raise refused(f"{spec!r} was requested but MPS is not available")
    return device


def mps_available() -> bool:
    """Whether this torch has Apple's MPS backend and the machine can use it.

    Returns
    -------
    bool
    """
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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively, not by emulation.

    A CUDA device needs compute capability 8.0 (Ampere) or more: older GPUs (V100, T4)
    only emulate bf16, slower than float32, and ``torch.cuda.is_bf16_supported()``
    counts that emulation and asks about the current device, not ``device``. ROCm
    GPUs compute in bf16. A CPU does when its flags say so
    (:func:`skact._auto.cpu_has_native_bf16`). Other devices: False.

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    bool
    """
    if device.type == "cuda":
        if not torch.cuda.is_available():  # settings asked for a device not here
            return False
        return bool(torch.version.hip) or torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return _auto.cpu_has_native_bf16()
    return False


def compute_settings(
    device: torch.device, kind: str, precision: str = "auto"
) -> _auto.ComputeSettings:
    """:func:`skact._auto.compute_settings` for ``device``, its bf16 support looked up.

    Parameters
    ----------
    device : torch.device
    kind : str
        The input kind: ``"image"``, ``"table"`` or ``"mixed"``.
    precision : {"auto", "float32", "bfloat16"}, default="auto"

    Returns
    -------
    skact._auto.ComputeSettings
    """
    native = precision == "auto" and native_bf16(device)  # only "auto" asks the device
    return _auto.compute_settings(device.type, kind, precision, native_bf16=native)


def autocast_dtype(
    device: torch.device,
    precision: str = "auto",
    kind: str = "table",
    *,
    transform: bool = False,
) -> torch.dtype | None:
    """Mixed-precision dtype of the forward passes on ``device``: bf16 or none.

    The rule of :func:`skact._auto.compute_settings`: ``"auto"`` is bf16 on GPUs that
    compute in it (:func:`native_bf16`) and, for training images, on CPUs that do when
    :data:`skact._auto.CPU_FAST_PATHS` is on (their ``transform`` stays in float32).

    Parameters
    ----------
    device : torch.device
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        ``ACTEncoder``'s parameter.
    kind : str, default="table"
        The input kind: ``"image"``, ``"table"`` or ``"mixed"``.
    transform : bool, default=False
        The dtype of ``transform``'s forward passes instead of training's.

    Returns
    -------
    torch.dtype or None
    """
    settings = compute_settings(device, kind, precision)
    chosen = settings.transform_precision if transform else settings.precision
    return torch.bfloat16 if chosen == "bfloat16" else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """:func:`torch.autocast` on ``device`` in ``dtype``; disabled for None.

    Parameters
    ----------
    device : torch.device
    dtype : torch.dtype or None
        From :func:`autocast_dtype`.

    Returns
    -------
    torch.autocast
    """
    return torch.autocast(
        device.type, dtype=dtype or torch.float32, enabled=dtype is not None
    )
