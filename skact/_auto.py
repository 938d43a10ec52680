"""What ``"auto"`` means: the network, view size, batch size, epochs and learning rate
that ``ACTEncoder`` picks for a kind of input on the device it trains on.

The rule, written as code so that it can be tested with the device injected (the
user guide's page on images prints the same table):

======  =============  ========================  ===============  =============
input   device         ``encoder``, view size    ``max_iter``     learning rate
======  =============  ========================  ===============  =============
table   any            ``mlp``, the row          100              1e-3
images  CUDA, other    ``resnet18`` at the       50               2e-3
        accelerators   stored size (``convnet``
                       under 32 pixels)
images  CPU, MPS       ``convnet``, longer side  pixel budget,    2e-3
                       at most 32 pixels         5 to 50
======  =============  ========================  ===============  =============

Corruption rate of table views (``corruption_rate="auto"``): 0.1 when the table has a
categorical column, 0.2 when every column is a number. Measured in
``benchmarks/results/tables.md`` (seven mixed-type tables: 0.2 was 0.052 behind
one-hot encoding on Chile, 0.1 0.003) and ``benchmarks/results/tables-numeric/``
with ``fewshot.md`` (all-numeric tables, where 0.2 is the better rate with a linear
probe, the digits table apart; see ``table_corruption_rate``).

Batch size: 256 for tables; ``min(256, max(32, n // 20))`` for images, so that small
image sets still get about 20 steps per epoch.

Why the CPU rule: the paper's CIFAR ResNet-18 at 32 px and more costs about a minute per
epoch of 2,000 images on a 2-core CPU (hours with the default epochs), while the small
ConvNet on views of at most 32 px is many times cheaper and, measured on the photo-tile
benchmark, gives features that beat raw pixels by a wide margin (``benchmarks/results``).
The epochs on the CPU follow a budget of pixels processed (``samples x view area x
epochs``), so that a default fit takes minutes, not hours, whatever the set's size;
tiny images (digits) keep the full 50 epochs, which the budget allows them.

Precision and memory format (``precision="auto"``, see ``compute_settings``):
bfloat16 autocast on GPUs that compute in it (CUDA compute capability 8.0 or more,
ROCm), float32 elsewhere; image networks run channels_last on CUDA and on the CPU. On a
CPU with native bfloat16 instructions (the ``avx512_bf16`` or ``amx_bf16`` flag, never
emulation) images would train in bfloat16 too: that rule is written and tested but gated
by ``CPU_FAST_PATHS`` (off) until ``benchmarks/bench_image_throughput.py`` has
measured it, with the few-shot results, on an idle machine.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "BF16_CPU_FLAGS",
    "CHANNELS_LAST_DEVICES",
    "CONTINUED_EPOCHS_FACTOR",
    "CONTINUED_LEARNING_RATE_FACTOR",
    "CPU_FAST_PATHS",
    "CPU_PIXEL_BUDGET",
    "CPU_VIEW_SIDE",
    "PRECISIONS",
    "AutoSettings",
    "ComputeSettings",
    "ContinuedSchedule",
    "compute_settings",
    "continued_schedule",
    "cpu_flags",
    "cpu_has_native_bf16",
    "image_channels_last",
    "image_encoder",
    "image_settings",
    "image_view_size",
    "table_corruption_rate",
    "table_settings",
]

#: Longer side (pixels) of the views the network sees on a CPU or MPS device when the
#: augmentation is left to ``ACTEncoder`` (``augment=None``).
CPU_VIEW_SIDE = 32
#: Pixels (samples x view area, summed over the epochs) a default CPU fit processes at
#: most, when that leaves at least ``MIN_EPOCHS``: 2,000 views of 32 x 32 get 20 epochs.
CPU_PIXEL_BUDGET = 2000 * 32 * 32 * 20
#: Fewest and most epochs of ``max_iter="auto"`` for images.
MIN_EPOCHS, IMAGE_EPOCHS = 5, 50
TABLE_EPOCHS = 100
#: ``corruption_rate="auto"`` of a table with a categorical column, and of one without.
MIXED_CORRUPTION_RATE, NUMERIC_CORRUPTION_RATE = 0.1, 0.2
#: Devices whose defaults follow the CPU rule (no fast convolutions assumed).
_CPU_LIKE = ("cpu", "mps")
#: Images smaller than this (longer side, pixels) are tiny: glyphs and icons.
TINY_IMAGE = 32
#: ``precision``'s values; "auto" resolves to one of the others.
PRECISIONS = ("auto", "float32", "bfloat16")
#: Whether ``precision="auto"`` trains and encodes images in bfloat16 on a CPU with
#: native bfloat16 instructions. Off: every CPU computes in float32, as before this
#: rule existed, until the image throughput benchmark and the few-shot rows have been
#: measured side by side on an idle machine (turning it on changes seeded results).
CPU_FAST_PATHS = False
#: ``/proc/cpuinfo`` flags of CPUs that compute in bfloat16 natively (AVX-512 BF16,
#: Intel AMX). ``torch.backends.cpu.get_cpu_capability()`` says only "AVX512" on such
#: CPUs, so the flags are read instead. Without them bfloat16 is emulated, slower.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: Devices whose image networks run channels_last: cuDNN's tensor cores; oneDNN on the
#: CPU measured 25-40% faster per training step on the digit ConvNet.
CHANNELS_LAST_DEVICES = ("cuda", "cpu")


@dataclass(frozen=True)
class AutoSettings:
    """What ``"auto"`` resolves to for one fit.

    Attributes
    ----------
    encoder : str
        ``encoder="auto"``'s network.
    batch_size : int
        ``batch_size="auto"``'s samples per step.
    max_iter : int
        ``max_iter="auto"``'s epochs.
    learning_rate : float
        ``learning_rate="auto"``'s peak learning rate.
    """

    encoder: str
    batch_size: int
    max_iter: int
    learning_rate: float


#: Continued pretraining (``fit`` with ``warm_start=True`` on a fitted encoder, new data
#: or not): ``learning_rate="auto"`` is this share of a fresh fit's peak, reached at the
#: first step (no warm-up), and ``max_iter="auto"`` this share of a fresh fit's epochs.
#: Measured in ``benchmarks/bench_transfer.py`` (3 tables split by a grouping column,
#: seeds 0-2, 10 label draws): continuing with a fresh fit's full schedule lost against
#: the frozen upstream encoder (penguins, 5 labels per class, linear probe: 0.954
#: against 0.978; OJ 0.638 against 0.648), while a tenth of the rate over a quarter of
#: the epochs kept it (0.979; 0.648): the full schedule forgets the upstream data.
CONTINUED_LEARNING_RATE_FACTOR = 0.1
CONTINUED_EPOCHS_FACTOR = 0.25


@dataclass(frozen=True)
class ContinuedSchedule:
    """How ``"auto"`` scales a fit's schedule, for a fresh or a continued fit.

    Attributes
    ----------
    learning_rate_factor : float
        Share of the fresh ``learning_rate="auto"`` peak.
    epochs_factor : float
        Share of the fresh ``max_iter="auto"`` epochs (rounded, at least 1).
    warmup : bool
        Whether the learning rate warms up to its peak (else it starts at the peak).
    """

    learning_rate_factor: float
    epochs_factor: float
    warmup: bool

    def epochs(self, fresh_epochs: int) -> int:
        """``max_iter="auto"``'s epochs, from a fresh fit's.

        Parameters
        ----------
        fresh_epochs : int

        Returns
        -------
        int
        """
        if self.epochs_factor == 1.0:
            return fresh_epochs
        return max(1, round(fresh_epochs * self.epochs_factor))


def continued_schedule(continuing: bool) -> ContinuedSchedule:
    """What ``"auto"`` does to the schedule of a fit that continues a fitted encoder.

    Parameters
    ----------
    continuing : bool
        Whether the fit continues (``warm_start=True`` with a fitted encoder).

    Returns
    -------
    ContinuedSchedule
        The fresh schedule unchanged when not ``continuing``; else a tenth of the
        peak, no warm-up and a quarter of the epochs (see
        :data:`CONTINUED_LEARNING_RATE_FACTOR`).

    Examples
    --------
    >>> continued_schedule(True).epochs(100), continued_schedule(False).epochs(100)
    (25, 100)
    """
    if not continuing:
        return ContinuedSchedule(1.0, 1.0, warmup=True)
    return ContinuedSchedule(
        CONTINUED_LEARNING_RATE_FACTOR, CONTINUED_EPOCHS_FACTOR, warmup=False
    )


def table_settings(n_samples: int) -> AutoSettings:
    """The ``"auto"`` settings of a table of ``n_samples`` rows (any device).

    Parameters
    ----------
    n_samples : int

    Returns
    -------
    AutoSettings

    Examples
    --------
    >>> table_settings(1000)
    AutoSettings(encoder='mlp', batch_size=256, max_iter=100, learning_rate=0.001)
    """
    return AutoSettings("mlp", 256, TABLE_EPOCHS, 1e-3)


def table_corruption_rate(corruption_rate: float | str, has_categorical: bool) -> float:
    """The corruption rate of a table's views: ``corruption_rate`` with "auto" resolved.

    ``"auto"`` is :data:`MIXED_CORRUPTION_RATE` for a table with a categorical column
    and :data:`NUMERIC_CORRUPTION_RATE` for one of numbers only. A swapped category
    and a swapped number are different corruptions: on the seven mixed-type tables of
    ``benchmarks/results/tables.md`` 0.1 is ahead of 0.2 on five (Chile by 0.049 with a
    linear probe and 10 labels per class; behind on Wage by 0.009 and HMDA by 0.004),
    while on all-numeric tables 0.2 is at or above 0.1 with a linear probe averaged over
    1 to 25 labels per class on five of five (``benchmarks/results/tables-numeric/``;
    wine with one label per class in ``fewshot.md``: 0.930 against 0.872; the digits
    table is the exception there, 0.893 against 0.905 with 5 labels).

    Parameters
    ----------
    corruption_rate : float or "auto"
        ``ACTEncoder``'s parameter.
    has_categorical : bool
        Whether the table has at least one categorical column.

    Returns
    -------
    float

    Examples
    --------
    >>> table_corruption_rate("auto", True), table_corruption_rate("auto", False)
    (0.1, 0.2)
    >>> table_corruption_rate(0.3, True)
    0.3
    """
    if corruption_rate == "auto":
        return MIXED_CORRUPTION_RATE if has_categorical else NUMERIC_CORRUPTION_RATE
    return float(corruption_rate)


def image_view_size(
    device_type: str, image_size: tuple[int, int]
) -> tuple[int, int] | None:
    """The size of the views the network sees, when the device caps it.

    On a CPU or MPS device, images whose longer side exceeds :data:`CPU_VIEW_SIDE` are
    viewed at that longer side (aspect kept); elsewhere, and for smaller images, None:
    the default augmentation's own size.

    Parameters
    ----------
    device_type : str
        ``torch.device.type`` of the device that trains (``"cuda"``, ``"mps"``,
        ``"cpu"``, ...).
    image_size : tuple of (int, int)
        Stored height and width.

    Returns
    -------
    tuple of (int, int) or None

    Examples
    --------
    >>> image_view_size("cpu", (64, 96)), image_view_size("cuda", (64, 96))
    ((21, 32), None)
    """
    side = max(image_size)
    if device_type not in _CPU_LIKE or side <= CPU_VIEW_SIDE:
        return None
    scale = CPU_VIEW_SIDE / side
    return (
        max(1, round(image_size[0] * scale)),
        max(1, round(image_size[1] * scale)),
    )


def image_encoder(device_type: str, view_size: tuple[int, int]) -> str:
    """The network ``encoder="auto"`` picks for images seen at ``view_size``.

    Parameters
    ----------
    device_type : str
        ``torch.device.type`` of the device that trains.
    view_size : tuple of (int, int)
        Height and width of the network input (the augmentation's output).

    Returns
    -------
    str
        ``"convnet"`` or ``"resnet18"``.

    Examples
    --------
    >>> image_encoder("cpu", (64, 64)), image_encoder("cuda", (64, 64))
    ('convnet', 'resnet18')
    """
    if device_type in _CPU_LIKE or max(view_size) < TINY_IMAGE:
        return "convnet"
    return "resnet18"


def image_settings(
    device_type: str, view_size: tuple[int, int], n_samples: int
) -> AutoSettings:
    """The ``"auto"`` settings of ``n_samples`` images seen at ``view_size``.

    Parameters
    ----------
    device_type : str
        ``torch.device.type`` of the device that trains.
    view_size : tuple of (int, int)
        Height and width of the network input (the augmentation's output).
    n_samples : int
        Training images (the global count under distributed training).

    Returns
    -------
    AutoSettings

    Examples
    --------
    >>> image_settings("cpu", (32, 32), 2000).max_iter
    20
    >>> image_settings("cuda", (32, 32), 2000).encoder
    'resnet18'
    """
    batch_size = min(256, max(32, n_samples // 20))
    epochs = IMAGE_EPOCHS
    if device_type in _CPU_LIKE:
        pixels = max(1, n_samples) * view_size[0] * view_size[1]
        epochs = min(IMAGE_EPOCHS, max(MIN_EPOCHS, math.floor(CPU_PIXEL_BUDGET / pixels)))
    return AutoSettings(image_encoder(device_type, view_size), batch_size, epochs, 2e-3)


@dataclass(frozen=True)
class ComputeSettings:
    """How one fit computes: the precision of its forward passes and its memory format.

    Attributes
    ----------
    precision : {"float32", "bfloat16"}
        ``"bfloat16"``: training's forward passes (and the validation loss and the
        monitor) run under :func:`torch.autocast` in bfloat16; the weights, the
        optimiser and the loss stay in float32.
    channels_last : bool
        Whether the network and its input use the channels_last memory format (image
        networks only).
    transform_precision : {"float32", "bfloat16"}
        The same for ``transform`` (and fine-tuning's predictions): ``precision``,
        except that ``"auto"`` encodes in float32 on a CPU, so that a model gives the
        same features on every CPU (with bfloat16 instructions or not) and its
        exported ONNX file matches ``transform``.
    """

    precision: str
    channels_last: bool
    transform_precision: str


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags, from the first ``flags`` line of ``/proc/cpuinfo``.

    Parameters
    ----------
    cpuinfo : str, optional
        The text of ``/proc/cpuinfo``; None reads this machine's (cached). Empty where
        there is no such file (not Linux).

    Returns
    -------
    frozenset of str

    Examples
    --------
    >>> sorted(cpu_flags("processor : 0\\nflags : fpu avx512f avx512_bf16\\n"))
    ['avx512_bf16', 'avx512f', 'fpu']
    """
    if cpuinfo is None:
        return _host_cpu_flags()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


@functools.cache
def _host_cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return cpu_flags(f.read())
    except OSError:
        return frozenset()


def cpu_has_native_bf16(flags: Iterable[str] | None = None) -> bool:
    """Whether a CPU with ``flags`` computes in bfloat16 natively (not by emulation).

    Parameters
    ----------
    flags : iterable of str, optional
        CPU feature flags; None: this machine's (:func:`cpu_flags`).

    Returns
    -------
    bool
        True when one of :data:`BF16_CPU_FLAGS` is present.

    Examples
    --------
    >>> cpu_has_native_bf16({"avx512f", "amx_bf16"}), cpu_has_native_bf16({"avx512f"})
    (True, False)
    """
    return not BF16_CPU_FLAGS.isdisjoint(cpu_flags() if flags is None else flags)


def compute_settings(
    device_type: str, kind: str, precision: str = "auto", *, native_bf16: bool
) -> ComputeSettings:
    """The precision and memory format of a fit: ``precision`` with "auto" resolved.

    ``"auto"`` is bfloat16 on CUDA (and ROCm) devices that compute in it; on a CPU, it
    is bfloat16 for training images when the CPU does natively and
    :data:`CPU_FAST_PATHS` is on (tables stay in float32 there), with ``transform`` in
    float32; float32 elsewhere. An explicit ``"float32"`` or ``"bfloat16"`` is kept on
    any device, for training and ``transform`` alike. Image networks are channels_last
    on the devices of :data:`CHANNELS_LAST_DEVICES`.

    Parameters
    ----------
    device_type : str
        ``torch.device.type`` of the device that trains.
    kind : str
        The input kind: ``"image"``, ``"table"`` or ``"mixed"``.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        ``ACTEncoder``'s parameter.
    native_bf16 : bool
        Whether the device computes in bfloat16 natively (a CUDA device of compute
        capability 8.0 or more; a CPU with :func:`cpu_has_native_bf16`).

    Returns
    -------
    ComputeSettings

    Examples
    --------
    >>> compute_settings("cuda", "table", native_bf16=True).precision
    'bfloat16'
    >>> compute_settings("cpu", "image", "float32", native_bf16=True)
    ComputeSettings(precision='float32', channels_last=True, transform_precision='float32')
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    transform = precision
    if precision == "auto":
        fast = native_bf16 and (
            device_type == "cuda"
            or (device_type == "cpu" and kind == "image" and CPU_FAST_PATHS)
        )
        precision = "bfloat16" if fast else "float32"
        transform = "float32" if device_type == "cpu" else precision
    channels_last = kind == "image" and image_channels_last(device_type)
    return ComputeSettings(precision, channels_last, transform)


def image_channels_last(device_type: str) -> bool:
    """Whether image networks on ``device_type`` run in the channels_last memory format.

    Parameters
    ----------
    device_type : str
        ``torch.device.type``.

    Returns
    -------
    bool

    Examples
    --------
    >>> image_channels_last("cpu"), image_channels_last("mps")
    (True, False)
    """
    return device_type in CHANNELS_LAST_DEVICES
