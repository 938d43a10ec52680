"""Image inputs: arrays, PIL images and files to uint8 tensors, and their adapter.

What counts as an image (:func:`is_image_input`), where the channels are
(:func:`channels_first`), how files are read (:class:`ImageFiles`) and how a batch
becomes network input or an augmented view (:class:`ImageAdapter`).

Images are stored on the host as one uint8 tensor of shape ``(n, C, H, W)``; each
batch is converted to float, augmented and normalised on the training device.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _auto
from ._auto import AutoSettings
from ._guards import caller_stacklevel
from .adapters.base import InputAdapter
from .augment.image import ImageAugment, ViewStep, view_size_of

if TYPE_CHECKING:
    from ._encoder import ACTEncoder

__all__ = [
    "CHANNEL_CONVERSIONS",
    "ImageAdapter",
    "ImageFiles",
    "ImagePreprocessing",
    "as_images",
    "channels_first",
    "check_views",
    "default_augment",
    "default_encoder",
    "is_image_input",
]

#: Channel counts an image array may have.
IMAGE_CHANNELS = (1, 3, 4)

#: PIL modes for each channel count, and the modes counted as single-band.
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}

#: How images of another channel count than the fitted one are converted, by (channels
#: of the input, channels fitted); 2 is grey with alpha (PIL's "LA", files only). The
#: rules are PIL's ``convert``, so that arrays, PIL images and files agree: alpha is
#: dropped (not composited on a background, whose colour would be a guess), grey is
#: repeated, colour becomes ITU-R 601-2 luma, a missing alpha is opaque.
CHANNEL_CONVERSIONS = {
    (1, 3): "grey -> RGB by repeating the channel",
    (1, 4): "grey -> RGBA by repeating the channel and adding an opaque alpha",
    (2, 1): "grey+alpha -> grey by dropping the alpha",
    (2, 3): "grey+alpha -> RGB by dropping the alpha and repeating the channel",
    (2, 4): "grey+alpha -> RGBA by repeating the grey channel (alpha kept)",
    (3, 1): "RGB -> grey by ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B, as PIL's "
    "convert('L'))",
    (3, 4): "RGB -> RGBA by adding an opaque alpha",
    (4, 1): "RGBA -> grey by dropping the alpha and taking the ITU-R 601-2 luma",
    (4, 3): "RGBA -> RGB by dropping the alpha",
}

#: Images converted at a time; no float copy of a whole data set is made.
CHUNK_IMAGES = 4096

#: At most this many images (evenly spaced) give the normalisation statistics.
STATS_SAMPLE = 4096

#: Images smaller than this (longer side, pixels) count as tiny (see default_augment).
TINY_IMAGE = 32

#: Devices whose convolutions run faster on channels_last tensors (cuDNN's tensor cores;
#: oneDNN on the CPU measured 25-40% faster per training step on the digit ConvNet).
CHANNELS_LAST_DEVICES = ("cuda", "cpu")

#: Resampling of files and PIL images whose size differs from ``image_size``.
RESIZE_FILTER = "bilinear"


def is_image_input(X: Any) -> bool:
    """Whether ``X`` is image input rather than a table.

    Images are 3-D and 4-D arrays (numpy or torch), and non-empty sequences (list,
    tuple, 1-D object array, pandas Series) whose first element is a PIL image, a
    ``str`` or a path-like object (read as a file path), or a 2-D or 3-D array (one
    image; the sequence is stacked, so all must have one shape). A mapping (a dict of
    columns, whose keys are strings) and a categorical Series are never images.

    Parameters
    ----------
    X : object

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> is_image_input(np.zeros((5, 8, 8))), is_image_input(np.zeros((5, 64)))
    (True, False)
    >>> is_image_input(["a.png", "b.png"])
    True
    """
    if isinstance(X, ImageFiles):
        return True
    ndim = getattr(X, "ndim", None)
    if isinstance(X, np.ndarray | Tensor) and ndim in (3, 4):
        return True
    if ndim not in (None, 1) or isinstance(X, str | bytes | Mapping):
        return False
    if hasattr(X, "iloc"):  # pandas Series
        import pandas as pd

        if isinstance(X.dtype, pd.CategoricalDtype):
            return False
        X = X.to_numpy()
    if isinstance(X, np.ndarray) and X.dtype != object:
        return False
    try:
        first = next(iter(X))
    except (TypeError, StopIteration):
        return False
    return _is_image_item(first) or _is_image_array(first)


def _is_image_item(item: Any) -> bool:
    from PIL import Image

    return isinstance(item, str | os.PathLike | Image.Image)


def _is_image_array(item: Any) -> bool:
    return isinstance(item, np.ndarray | Tensor) and item.ndim in (2, 3)


def _stack_images(items: list[Any]) -> np.ndarray:
    """Stack a sequence of per-image arrays, with an error naming the first misfit."""
    arrays = [
        item.detach().cpu().numpy() if isinstance(item, Tensor) else item for item in items
    ]
    for i, array in enumerate(arrays):
        if not _is_image_array(array) or array.shape != arrays[0].shape:
            got = f"has shape {array.shape}" if hasattr(array, "shape") else "is a "
            got += "" if hasattr(array, "shape") else type(array).__name__
            raise ValueError(
                f"a sequence of image arrays needs one shape for all; element 0 has shape "
                f"{arrays[0].shape} but element {i} {got}. Resize them to one size first, "
                "or pass PIL images or files, which are resized to image_size"
            )
    return np.stack(arrays)


def channels_first(shape: tuple[int, ...], layout: str = "auto") -> bool:
    """Whether a 4-D image array of ``shape`` has its channels on axis 1.

    The rule for ``layout="auto"``: an axis whose size is 1, 3 or 4 can hold the
    channels. If only one of axis 1 and the last axis can, it does; if both can, the
    smaller one does, and the last on a tie (``(n, 3, 32, 32)`` is channels-first,
    ``(n, 32, 32, 3)`` and ``(n, 4, 4, 3)`` are channels-last). If neither can, a
    ValueError asks for an explicit layout. ``"channels_first"`` and
    ``"channels_last"`` force the answer.

    Parameters
    ----------
    shape : tuple of int
        ``(n, a, b, c)``.
    layout : {"auto", "channels_first", "channels_last"}, default="auto"

    Returns
    -------
    bool

    Examples
    --------
    >>> channels_first((10, 3, 32, 32)), channels_first((10, 32, 32, 3))
    (True, False)
    >>> channels_first((10, 3, 4, 4)), channels_first((10, 3, 3, 3))
    (True, False)
    """
    if layout == "channels_first":
        return True
    if layout == "channels_last":
        return False
    if layout != "auto":
        raise ValueError(
            "image_layout must be 'auto', 'channels_first' or 'channels_last'; "
            f"got {layout!r}"
        )
    first, last = shape[1], shape[-1]
    first_ok, last_ok = first in IMAGE_CHANNELS, last in IMAGE_CHANNELS
    if first_ok and last_ok:
        return first < last
    if first_ok or last_ok:
        return first_ok
    raise ValueError(
        f"cannot tell the channel axis of images of shape {tuple(shape)}: neither axis 1 "
        f"nor the last has {', '.join(map(str, IMAGE_CHANNELS))} channels. Pass "
        "image_layout='channels_first' or 'channels_last'."
    )


def as_images(X: Any, layout: str = "auto") -> np.ndarray | ImageFiles:
    """Image input as a channels-first array (a view, not a copy) or as lazy files.

    Parameters
    ----------
    X : array of shape (n, H, W), (n, H, W, C) or (n, C, H, W), or sequence
        Arrays (numpy or torch), or PIL images / file paths / per-image arrays of one
        shape (see :func:`is_image_input`).
    layout : {"auto", "channels_first", "channels_last"}, default="auto"
        Where the channels of a 4-D array are (see :func:`channels_first`).

    Returns
    -------
    ndarray of shape (n, C, H, W) or ImageFiles
    """
    if isinstance(X, ImageFiles):
        return X
    if isinstance(X, Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray) and X.ndim in (3, 4):
        if X.dtype == object or not (
            np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_
        ):
            raise ValueError(f"image arrays must be numeric; got dtype {X.dtype}")
        if X.ndim == 3:
            return X[:, None]
        return X if channels_first(X.shape, layout) else X.transpose(0, 3, 1, 2)
    if hasattr(X, "iloc"):
        X = X.to_numpy()
    items = list(X)
    if items and _is_image_array(items[0]):
        return as_images(_stack_images(items), layout)
    if not items or not all(_is_image_item(item) for item in items):
        raise ValueError(
            "image input must be a 3-D or 4-D array or a sequence of PIL images or file "
            "paths, with every element of the same kind"
        )
    return ImageFiles(items)


class ImageFiles:
    """A sequence of image files (or PIL images) read lazily, in parallel.

    Nothing is decoded until :meth:`load`; slicing gives another lazy sequence, so
    ``transform`` and ``partial_fit`` hold only a batch of pixels at a time.

    Parameters
    ----------
    items : sequence of str, path-like or PIL.Image.Image
    n_jobs : int or None, default=None
        Threads that decode files; None takes ``min(8, cpu_count)``.
    """

    def __init__(self, items: Sequence[Any], n_jobs: int | None = None) -> None:
        self.items = list(items)
        self.n_jobs = n_jobs or min(8, os.cpu_count() or 1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> ImageFiles:
        if isinstance(index, slice):
            return ImageFiles(self.items[index], self.n_jobs)
        index = np.asarray(index)
        return ImageFiles([self.items[i] for i in index.tolist()], self.n_jobs)

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        # PIL releases the GIL while decoding and resizing, so threads run in parallel.
        if self.n_jobs == 1 or len(items) < 2:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.n_jobs) as pool:
            return list(pool.map(fn, items))

    def headers(self) -> list[tuple[str, tuple[int, int]]]:
        """PIL mode and (height, width) of each image, read without decoding pixels.

        Returns
        -------
        list of (str, (int, int))
        """

        def header(item: Any) -> tuple[str, tuple[int, int]]:
            with _opened(item) as image:
                return image.mode, (image.height, image.width)

        return self._map(header, self.items)

    def load(self, mode: str, size: tuple[int, int]) -> np.ndarray:
        """Decode, convert to ``mode`` and resize to ``size``, in parallel.

        Parameters
        ----------
        mode : {"L", "RGB", "RGBA"}
            PIL mode of the output.
        size : tuple of (int, int)
            Height and width; other sizes are resized with PIL's bilinear filter
            (``Image.resize``, which also smooths when shrinking).

        Returns
        -------
        ndarray of shape (n, C, height, width), uint8
        """
        from PIL import Image

        channels = len(mode)
        out = np.empty((len(self.items), channels, *size), dtype=np.uint8)

        def read(i: int) -> None:
            with _opened(self.items[i]) as image:
                image = _eight_bit(image).convert(mode)
                if (image.height, image.width) != tuple(size):
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
            out[i] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)

        self._map(read, range(len(self.items)))
        return out


#: Single-band modes of more than 8 bits, and the value that maps to 255: integers are
#: read as 16-bit (PNG's 16-bit gray opens as I;16 or I), floats as values in [0, 1].
_WIDE_MODES: dict[str, float] = {
    **dict.fromkeys(("I;16", "I;16B", "I;16L", "I;16N", "I"), 65535),
    "F": 1.0,
}


def _eight_bit(image: Any) -> Any:
    """``image`` with 16-bit, 32-bit integer or float pixels rescaled to 8 bits.

    PIL's ``convert("L")`` clips such pixels to 255 instead of rescaling them, which
    turns a 16-bit image into an almost binary one and a [0, 1] float image into zeros.
    """
    from PIL import Image

    top = _WIDE_MODES.get(image.mode)
    if top is None:
        return image
    pixels = np.asarray(image, dtype=np.float64) * (255.0 / top)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")


@contextlib.contextmanager
def _opened(item: Any) -> Iterator[Any]:
    """The PIL image ``item`` is, or the file it names, opened lazily and closed after."""
    from PIL import Image

    if isinstance(item, Image.Image):
        yield item
        return
    try:
        with warnings.catch_warnings():
            # Over pillow's limit is an error here, not a warning: the file may be a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(item)
    except FileNotFoundError:
        hint = ""
        if not os.path.splitext(os.fspath(item))[1]:
            # A name without an extension is more often a category than a file.
            hint = (
                ". A 1-D list or Series of strings is read as image file paths; to use "
                "strings as a categorical feature, pass a table with one column instead: "
                "s.to_frame() for a Series, pd.DataFrame({'name': values}) for a list"
            )
        raise FileNotFoundError(
            f"image file not found: {os.fspath(item)!r}. Check the path (a relative one "
            f"is read from the current directory) or remove it from the input{hint}"
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ValueError(
            f"{os.fspath(item)!r} is over pillow's decompression-bomb limit ({exc}). If "
            "you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS."
        ) from None
    except OSError as exc:  # UnidentifiedImageError: not an image, or corrupt
        raise ValueError(
            f"cannot read {os.fspath(item)!r} as an image ({exc}); remove it from the "
            "input or convert it to PNG or JPEG."
        ) from None
    with image:
        try:
            yield image
        except OSError as exc:  # truncated or corrupt pixel data, found when decoding
            name = os.fspath(item)
            raise ValueError(f"cannot decode the image {name!r}: {exc}") from None


def default_augment(
    channels: int,
    image_size: tuple[int, int],
    view_size: tuple[int, int] | None = None,
) -> ImageAugment:
    """The augmentation used when ``ACTEncoder(augment=None)`` sees images.

    Images of at least 32 pixels on their longer side get the ACT paper's views
    (:class:`~skact.augment.ImageAugment`'s defaults), at ``view_size`` when the
    device caps it (:func:`skact._auto.image_view_size`). Tiny images (smaller than 32
    pixels) are mostly glyphs (digits, letters) and icons: an 8% crop of an 8x8 digit
    is 2x2 pixels and a mirrored glyph is often another symbol, so they get crops of 50%
    to 100% of the area resampled onto a canvas 1.5 times larger, brightness and
    contrast jitter, no flip and no grayscale.

    Parameters
    ----------
    channels : int
    image_size : tuple of (int, int)
        Stored height and width.
    view_size : tuple of (int, int) or None, default=None
        Output size of the views of images of 32 pixels or more; None keeps their
        stored size.

    Returns
    -------
    ImageAugment
    """
    if max(image_size) >= TINY_IMAGE:
        return ImageAugment(output_size=view_size)
    output = tuple(math.ceil(1.5 * s) for s in image_size)
    return ImageAugment(
        output_size=(output[0], output[1]),
        crop_scale=(0.5, 1.0),
        interpolation="bilinear",
        flip_p=0.0,
        brightness=0.4,
        contrast=0.4,
        saturation=0.4 if channels in (3, 4) else 0.0,
        hue=0.0,
        grayscale_p=0.0,
    )


def default_encoder(input_shape: tuple[int, ...]) -> str:
    """The network ``encoder="auto"`` picks on CUDA for images of ``input_shape``.

    ``"convnet"`` when the longer side of the network input ``(C, H, W)`` is under 32
    pixels, else ``"resnet18"`` (the paper's CIFAR ResNet-18). On a CPU or MPS device
    ``"auto"`` is always ``"convnet"`` (see :func:`skact._auto.image_encoder`).

    Parameters
    ----------
    input_shape : tuple of int

    Returns
    -------
    str

    Examples
    --------
    >>> default_encoder((1, 12, 12)), default_encoder((3, 32, 32))
    ('convnet', 'resnet18')
    """
    return _auto.image_encoder("cuda", (int(input_shape[1]), int(input_shape[2])))


class ImagePreprocessing(nn.Module):
    """uint8 images of the stored size as :meth:`ImageAdapter.to_model` makes them
    network input: to float in [0, 1], resized to the view size, normalised.

    Takes channels-last images ``(n, H, W, C)``, or ``(n, H, W)`` for one channel,
    as image files decode; ``(H, W)`` must be the adapter's ``image_size``.

    Parameters
    ----------
    channels : int
    view_size : tuple of (int, int)
        The network's input size.
    image_size : tuple of (int, int)
        The stored size (the input's).
    interpolation : {"bilinear", "bicubic", "nearest"}
        How images are resized to ``view_size`` where it differs.
    mean, std : ndarray of shape (channels,)
        The adapter's per-channel statistics.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        channels: int,
        view_size: tuple[int, int],
        image_size: tuple[int, int],
        interpolation: str,
        mean: np.ndarray,
        std: np.ndarray,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.view_size = view_size
        self.image_size = image_size
        self.interpolation = interpolation
        # Tensors of their own, not views of the adapter's arrays: torch.export.save
        # warns about buffers that share a storage.
        shape = (1, channels, 1, 1)
        for name, value in (("mean", mean), ("std", std)):
            values = np.asarray(value, dtype=np.float32).reshape(shape)
            self.register_buffer(name, torch.tensor(values))

    def forward(self, images: Tensor) -> Tensor:
        x = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
        # Contiguous as to_model's stored batches are: interpolate's channels_last
        # kernel rounds differently.
        x = x.contiguous().float() / 255.0
        if self.view_size != self.image_size:
            mode = self.interpolation
            x = F.interpolate(
                x, size=self.view_size, mode=mode,
                align_corners=None if mode == "nearest" else False,
                antialias=mode != "nearest" and self.view_size[0] < self.image_size[0],
            )  # fmt: skip
            x = x.clamp(0.0, 1.0)
        return (x - self.mean) / self.std


class ImageAdapter:
    """Images stored as uint8, normalised per channel and augmented on the device.

    Parameters
    ----------
    channels : int
        Channels of the stored images.
    image_size : tuple of (int, int)
        Height and width the images are stored at.
    value_range : tuple of (float, float)
        Pixel values mapped to 0 and 255 when arrays are not uint8.
    mean, std : ndarray of shape (channels,)
        Per-channel statistics of the stored images scaled to [0, 1].
    augment : ImageAugment or callable
        How views are made, ``augment(images, generator) -> views`` (see
        :meth:`fit`); the size of its views (:func:`~skact.augment.image.view_size_of`)
        is the network input size.
    """

    kind: ClassVar[str] = "image"
    networks: ClassVar[tuple[str, ...]] = ("convnet", "resnet18")

    def __init__(
        self,
        channels: int,
        image_size: tuple[int, int],
        value_range: tuple[float, float],
        mean: np.ndarray,
        std: np.ndarray,
        augment: ImageAugment | ViewStep,
    ) -> None:
        self.channels = int(channels)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.augment = augment
        self.input_shape: tuple[int, ...] = (
            self.channels,
            *view_size_of(augment, self.image_size),
        )
        self._stats: dict[torch.device, tuple[Tensor, Tensor]] = {}

    @classmethod
    def read(cls, X: Any, estimator: ACTEncoder, reset: bool) -> np.ndarray | ImageFiles:
        """``X`` as channels-first images (lazy files); images have no column names.

        Parameters
        ----------
        X : image input (see :func:`is_image_input`)
        estimator : ACTEncoder
            Gives ``image_layout``; ``reset`` removes its ``feature_names_in_``.
            Without ``reset`` its fitted adapter checks the channels of ``X`` once
            (:meth:`check_channels`, by its ``channel_mismatch``).
        reset : bool

        Returns
        -------
        ndarray of shape (n, C, H, W) or ImageFiles
        """
        if reset and hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        images = as_images(X, estimator.image_layout)
        if not reset:
            fitted = cast(ImageAdapter, estimator._adapter)  # read_input checked it
            fitted.check_channels(
                images, estimator.channel_mismatch, type(estimator).__name__
            )
        return images

    @classmethod
    def from_input(
        cls,
        X: np.ndarray | ImageFiles,
        estimator: ACTEncoder,
        device: torch.device,
        measure: bool = True,
    ) -> ImageAdapter:
        """The adapter of ``X`` with ``estimator``'s ``augment`` and ``image_size``.

        Parameters
        ----------
        X : ndarray of shape (n, C, H, W) or ImageFiles
            Output of :meth:`read`.
        estimator : ACTEncoder
        device : torch.device
            The training device: on a CPU or MPS the default views of large images are
            smaller (:func:`skact._auto.image_view_size`).
        measure : bool, default=True
            False skips the channel statistics (mean 0, std 1): only file headers are
            read, enough to know the settings ``"auto"`` resolves to.

        Returns
        -------
        ImageAdapter
        """
        adapter = cls.fit(
            X, estimator.augment, estimator.image_size, device.type, measure=measure
        )
        if estimator.image_normalization != "auto":
            mean, std = normalization_stats(estimator.image_normalization, adapter.channels)
            adapter.mean, adapter.std = mean, std
        return adapter

    @classmethod
    def fit(
        cls,
        X: np.ndarray | ImageFiles,
        augment: ImageAugment | ViewStep | None = None,
        image_size: int | tuple[int, int] | None = None,
        device_type: str | None = None,
        *,
        measure: bool = True,
    ) -> ImageAdapter:
        """Measure the storage size, value range and channel statistics of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n, C, H, W) or ImageFiles
            Output of :func:`as_images`.
        augment : ImageAugment, callable or None, default=None
            None takes :func:`default_augment`. A callable
            ``views = augment(images, generator)`` receives float32 images in [0, 1]
            of shape ``(n, C, H, W)`` on the training device and a
            :class:`torch.Generator` (on that device, or the CPU for MPS), and returns
            floating-point views of shape ``(n, C, H', W')``; ``(H', W')`` is its
            ``view_size(image_size)`` if it has that method, else its ``output_size``
            (an int or a pair), else the stored size. It is checked once here, on
            two stored images on the CPU (:func:`check_views`).
        image_size : int or tuple of (int, int) or None, default=None
            Size to store the images at. None keeps an array's size, and takes the
            most common size of files and PIL images (ties: the first seen).
        device_type : str or None, default=None
            The training device's type: it caps the default views' size
            (:func:`skact._auto.image_view_size`); None: no cap.
        measure : bool, default=True
            False leaves the channel statistics at mean 0 and std 1, and skips the
        check of a callable ``augment``.

        Raises
        ------
        TypeError
            ``augment`` is not callable, or its views are not a floating-point tensor.
        ValueError
            An ImageAugment parameter out of range, or views of the wrong shape, not
            finite or not reproducible from the generator.

        Notes
        -----
        Files and PIL images are converted to ``"L"`` when all are single-band, else to
        ``"RGB"``. That choice, the most common size and the per-channel statistics
        are measured on at most :data:`STATS_SAMPLE` evenly spaced images (only their
        headers for the first two), so fitting a huge folder stays cheap.

        Returns
        -------
        ImageAdapter
        """
        size = _pair(image_size) if image_size is not None else None
        step = max(1, len(X) // STATS_SAMPLE)
        if isinstance(X, ImageFiles):
            headers = X[::step][:STATS_SAMPLE].headers()
            gray = all(mode in _GRAY_MODES for mode, _ in headers)
            channels = 1 if gray else 3
            if size is None:
                size = collections.Counter(s for _, s in headers).most_common(1)[0][0]
            value_range = (0.0, 255.0)
        else:
            channels = X.shape[1]
            if channels not in IMAGE_CHANNELS:
                raise ValueError(f"images must have 1, 3 or 4 channels; got {channels}")
            size = size or (X.shape[2], X.shape[3])
            value_range = _value_range(X)
        if augment is None:
            cap = None if device_type is None else _auto.image_view_size(device_type, size)
            augment = default_augment(channels, size, cap)
        elif not callable(augment):
            raise TypeError(
                "augment must be an ImageAugment or a callable "
                f"views = augment(images, generator); got {type(augment).__name__}"
            )
        check = getattr(augment, "validate", None)
        if callable(check):  # ImageAugment and Compose check their parameters
            check()
        adapter = cls(
            channels, size, value_range, np.zeros(channels), np.ones(channels), augment
        )
        if not measure:
            return adapter
        sample = adapter.to_storage(X[::step][:STATS_SAMPLE])
        if not isinstance(augment, ImageAugment):
            check_views(augment, sample[:2], adapter.input_shape)
        mean, std = _channel_stats(sample)
        adapter.mean = mean.astype(np.float32)
        adapter.std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        return adapter

    # ------------------------------------------------------------------ choices

    def auto_settings(self, device_type: str, n_samples: int) -> AutoSettings:
        """See :func:`skact._auto.image_settings`, for views of ``input_shape``.

        Parameters
        ----------
        device_type : str
        n_samples : int
            Training images (all ranks' under distributed training).

        Returns
        -------
        AutoSettings
        """
        view = (int(self.input_shape[1]), int(self.input_shape[2]))
        return _auto.image_settings(device_type, view, n_samples)

    def network_name(self, encoder: str, device_type: str) -> str:
        """The network of ``encoder`` (``"auto"`` or a name) for these views, checked.

        Parameters
        ----------
        encoder : str
        device_type : str

        Returns
        -------
        str
        """
        if encoder == "auto":
            view = (int(self.input_shape[1]), int(self.input_shape[2]))
            return _auto.image_encoder(device_type, view)
        if encoder not in self.networks:
            raise ValueError(f"encoder={encoder!r} needs tabular input; got images")
        return encoder

    def front_end(self) -> nn.Module | None:
        """None: the network reads the normalised views.

        Returns
        -------
        None
        """
        return None

    def place(self, network: nn.Module, device: torch.device) -> nn.Module:
        """``network`` on ``device``, channels_last where that is faster.

        Parameters
        ----------
        network : torch.nn.Module
        device : torch.device

        Returns
        -------
        torch.nn.Module
        """
        return prepare_network(network.to(device), device)

    def check_network(self, network: nn.Module) -> None:
        """Raise a ValueError naming the fix if views cannot pass ``network``.

        Parameters
        ----------
        network : torch.nn.Module
        """
        was_training = network.training
        network.eval()
        try:
            with torch.no_grad():
                network(torch.zeros((2, *self.input_shape)))
        except RuntimeError as exc:
            size, view = self.image_size, tuple(self.input_shape[-2:])
            seen = "" if view == size else f" (views of {view[0]}x{view[1]})"
            raise ValueError(
                f"images of {size[0]}x{size[1]} pixels{seen} are too small for this "
                f"encoder ({exc}). A 3-D array is read as (n_samples, height, width) "
                "grayscale images: pass a table as a 2-D array, or use larger images "
                "(image_size)."
            ) from None
        finally:
            network.train(was_training)

    def describe_input(self) -> str:
        """What the network gets: batches of normalised views.

        Returns
        -------
        str
        """
        c, h, w = self.input_shape
        return (
            f"batches of shape (n, {c}, {h}, {w}): images of {c} channel"
            f"{'' if c == 1 else 's'}, seen as views of {h}x{w} pixels"
        )

    def streams(self, X: Any) -> bool:
        """Whether ``X`` is files, which ``partial_fit`` reads batch by batch.

        Parameters
        ----------
        X : ndarray or ImageFiles
            Output of :meth:`read`.

        Returns
        -------
        bool
        """
        return isinstance(X, ImageFiles)

    def check_channels(self, X: np.ndarray | ImageFiles, policy: str, name: str) -> None:
        """Warn once that images of another channel count are converted, or refuse them.

        Parameters
        ----------
        X : ndarray of shape (n, C, H, W) or ImageFiles
            Output of :func:`as_images`; only the headers of files are read.
        policy : {"convert", "error"}
            The estimator's ``channel_mismatch``.
        name : str
            The estimator's class name, for the messages.

        Warns
        -----
        UserWarning
            With ``"convert"``, one warning naming every conversion made.

        Raises
        ------
        ValueError
            With ``"error"``, when any image has another channel count.
        """
        if isinstance(X, ImageFiles):
            found = {_mode_channels(mode) for mode, _ in X.headers()}
        else:
            found = {int(X.shape[1])}
        other = sorted(found - {self.channels})
        if not other:
            return
        have = " or ".join(str(c) for c in other)
        plural = "s" if other != [1] else ""
        rules = "; ".join(CHANNEL_CONVERSIONS[(c, self.channels)] for c in other)
        if policy == "error":
            raise ValueError(
                f"{name}: images have {have} channel{plural}, the model was fitted on "
                f"{self.channels}, and channel_mismatch='error' refuses to convert them. "
                f"Pass images of {self.channels} channel(s), or channel_mismatch="
                f"'convert' to convert them ({rules})."
            )
        warnings.warn(
            f"{name}: images have {have} channel{plural}, the model was fitted on "
            f"{self.channels}: converted {rules} (channel_mismatch='convert'); pass "
            "channel_mismatch='error' to refuse",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )

    def fitted_attributes(self) -> dict[str, Any]:
        """``n_features_in_`` (values per stored image); no categorical columns.

        Returns
        -------
        dict
        """
        return {
            "n_features_in_": self.channels * self.image_size[0] * self.image_size[1],
            "categories_": [],
            "is_categorical_": None,
        }

    # ------------------------------------------------------------------ storage

    def to_storage(self, X: Any) -> Tensor:
        """The images of ``X`` as one uint8 tensor on the host, chunk by chunk.

        Arrays that are not uint8 are mapped linearly from ``value_range`` to [0, 255]
        (and clipped); arrays of another channel count are converted
        (:data:`CHANNEL_CONVERSIONS`, as files are); arrays of another size are resized
        (bilinear, antialiased). :meth:`check_channels` says so once per call first.

        Parameters
        ----------
        X : ndarray of shape (n, C, H, W) or ImageFiles

        Returns
        -------
        Tensor of shape (n, C, H, W), uint8, on the CPU
        """
        if isinstance(X, ImageFiles):
            return torch.from_numpy(X.load(_MODES[self.channels], self.image_size))
        out = torch.empty((X.shape[0], self.channels, *self.image_size), dtype=torch.uint8)
        low, high = self.value_range
        scale = 255.0 / (high - low) if high > low else 1.0
        for start in range(0, X.shape[0], CHUNK_IMAGES):
            chunk = X[start : start + CHUNK_IMAGES]
            if chunk.dtype == np.uint8:
                pixels = torch.from_numpy(np.ascontiguousarray(chunk))
            else:
                values = torch.from_numpy(np.asarray(chunk, dtype=np.float32))
                if not bool(torch.isfinite(values).all()):
                    raise ValueError("image arrays must not contain NaN or infinite values")
                pixels = ((values - low) * scale).round_().clamp_(0, 255).to(torch.uint8)
            # Converted before resizing, as files are (PIL converts, then resizes).
            pixels = convert_channels(pixels, self.channels)
            if tuple(pixels.shape[2:]) != self.image_size:
                resized = F.interpolate(
                    pixels.float(), size=self.image_size, mode="bilinear",
                    align_corners=False, antialias=True,
                )  # fmt: skip
                pixels = resized.round_().clamp_(0, 255).to(torch.uint8)
            out[start : start + pixels.shape[0]] = pixels
        return out

    # ------------------------------------------------------------------ on the device

    def _normalise(self, x: Tensor) -> Tensor:
        stats = self._stats.get(x.device)
        if stats is None:
            mean = torch.from_numpy(self.mean).to(x.device).view(1, -1, 1, 1)
            std = torch.from_numpy(self.std).to(x.device).view(1, -1, 1, 1)
            stats = self._stats[x.device] = (mean, std)
        x = (x - stats[0]) / stats[1]
        if x.device.type in CHANNELS_LAST_DEVICES:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def preprocessing_module(self) -> ImagePreprocessing:
        """What :meth:`to_model` does to uint8 images of the stored size, as a module.

        Returns
        -------
        ImagePreprocessing
            Takes uint8 images ``(n, H, W, C)`` (``(n, H, W)`` for one channel) of
            ``image_size``; returns the network's float32 input.
        """
        return ImagePreprocessing(
            self.channels,
            (int(self.input_shape[1]), int(self.input_shape[2])),
            self.image_size,
            self._interpolation(),
            self.mean,
            self.std,
        )

    def input_spec(self, columns: list[str] | None) -> dict[str, Any]:
        """The input of :meth:`preprocessing_module`: ``images``, uint8, channels last.

        Parameters
        ----------
        columns : list of str or None
            Unused: images have no columns.

        Returns
        -------
        dict
            ``inputs`` and ``value_range`` (the values of arrays that are not uint8
            mapped to 0 and 255 in ``fit``).
        """
        shape: list[Any] = ["n", *self.image_size]
        if self.channels > 1:
            shape.append(self.channels)
        return {
            "inputs": [{"name": "images", "dtype": "uint8", "shape": shape}],
            "value_range": list(self.value_range),
        }

    def _interpolation(self) -> str:
        """How whole images are resized to the view size: as the views are, where
        ``interpolate`` has that mode, else bilinear."""
        mode = getattr(self.augment, "interpolation", "bilinear")
        return mode if mode in ("bilinear", "bicubic", "nearest") else "bilinear"

    def to_model(self, batch: Tensor) -> Tensor:
        """A stored batch as network input: whole images at the view size, normalised.

        Parameters
        ----------
        batch : Tensor of shape (n, C, H, W), uint8

        Returns
        -------
        Tensor of shape (n, *input_shape), float32
        """
        x = batch.float().div_(255.0)
        size = self.input_shape[1:]
        if tuple(x.shape[2:]) != size:
            mode = self._interpolation()
            x = F.interpolate(
                x, size=size, mode=mode, align_corners=None if mode == "nearest" else False,
                antialias=mode != "nearest" and size[0] < x.shape[2],
            )  # fmt: skip
            x = x.clamp_(0.0, 1.0)
        return self._normalise(x)

    def view(self, batch: Tensor, pool: Tensor, generator: torch.Generator) -> Tensor:
        """One random augmented view of a stored batch, normalised.

        Parameters
        ----------
        batch : Tensor of shape (n, C, H, W), uint8
        pool : Tensor
            Unused (image views need no other samples); present for the protocol.
        generator : torch.Generator

        Returns
        -------
        Tensor of shape (n, *input_shape), float32
        """
        return self._normalise(self.augment(batch.float().div_(255.0), generator))

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the adapter: JSON-able values and arrays.

        Returns
        -------
        dict

        Raises
        ------
        TypeError
            For an ``augment`` other than an ImageAugment: its code cannot be saved.
        """
        if not isinstance(self.augment, ImageAugment):
            raise TypeError(UNSAVED_AUGMENT.format(augment=self.augment))
        return {
            "kind": self.kind,
            "channels": self.channels,
            "image_size": list(self.image_size),
            "value_range": list(self.value_range),
            "mean": self.mean.copy(),
            "std": self.std.copy(),
            "augment": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in self.augment.get_params().items()
            },
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ImageAdapter:
        """Rebuild an adapter from :meth:`state_dict`'s output.

        Parameters
        ----------
        state : dict

        Returns
        -------
        ImageAdapter
        """
        params: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in state["augment"].items()
        }
        return cls(
            state["channels"],
            tuple(state["image_size"]),
            tuple(state["value_range"]),
            np.asarray(state["mean"]),
            np.asarray(state["std"]),
            ImageAugment(**params),
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stats"] = {}  # device tensors are a cache, rebuilt on first use
        return state


#: Why a model fitted with a callable ``augment`` is not saved, and what to do instead.
UNSAVED_AUGMENT = (
    "augment={augment!r} is code of one's own, which ACTEncoder.save does not store "
    "(a saved model runs no code when loaded). Pickle the fitted estimator instead "
    "(pickle or joblib.dump, with the callable importable where it is loaded), or fit "
    "with an ImageAugment to save."
)


def check_views(augment: ViewStep, pixels: Tensor, input_shape: tuple[int, ...]) -> None:
    """Raise naming the fault if ``augment`` does not make seeded views of ``pixels``.

    ``augment`` is called twice on the images (float32 in [0, 1], on the CPU) with a
    generator in the same state: the views must be a floating-point tensor of shape
    ``(n, *input_shape)``, finite, and equal both times.

    Parameters
    ----------
    augment : callable
    pixels : Tensor of shape (n, C, H, W), uint8
        A few stored images.
    input_shape : tuple of int
        ``(C, H', W')``: the channels and the view size the adapter expects.

    Raises
    ------
    TypeError
        The views are not a floating-point tensor.
    ValueError
        The call fails, or the views have the wrong shape, are not finite or differ
        for the same generator state.
    """
    images = pixels.float().div_(255.0)
    name = f"augment={augment!r}"

    def views() -> Any:
        # A copy each time: a step that writes into its input must not fail the
        # determinism check below.
        try:
            return augment(images.clone(), torch.Generator().manual_seed(0))
        except Exception as exc:
            raise ValueError(
                f"{name} failed on a batch of {len(images)} stored images of shape "
                f"{tuple(images.shape)} (float32 in [0, 1], on the CPU): "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    first = views()
    if not isinstance(first, Tensor):
        raise TypeError(
            f"{name} returned a {type(first).__name__}; it must return the views as "
            "one torch.Tensor of shape (n, C, H, W)."
        )
    expected = (len(images), *input_shape)
    if tuple(first.shape) != expected:
        raise ValueError(
            f"{name} returned views of shape {tuple(first.shape)} for images of shape "
            f"{tuple(images.shape)}; expected {expected}: one view per image, the "
            "channels kept, at the size its view_size(image_size) method or "
            "output_size attribute gives (the stored size without either)."
        )
    if not first.is_floating_point():
        raise TypeError(
            f"{name} returned {first.dtype} views; return floating-point images in "
            "[0, 1], as it receives them."
        )
    if not bool(torch.isfinite(first).all()):
        raise ValueError(f"{name} returned NaN or infinite values in its views.")
    if not torch.equal(first, views()):
        raise ValueError(
            f"{name} made different views from the same generator state: draw every "
            "random number from the generator it receives (e.g. "
            "torch.rand(n, generator=generator)), not from torch's global state, "
            "numpy or Python's random, so that random_state reproduces a fit."
        )


#: The per-channel mean and standard deviation of ImageNet (RGB, pixels in [0, 1]), as
#: torchvision's and timm's pretrained models expect their input.
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def normalization_stats(
    spec: str | tuple[Any, Any], channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of ACTEncoder's ``image_normalization``.

    Parameters
    ----------
    spec : "imagenet" or tuple of (mean, std)
        ``"imagenet"``: :data:`IMAGENET_MEAN_STD`; a pair: per-channel sequences (or
        numbers, for every channel) in the scale of pixels in [0, 1].
    channels : int
        The stored images' channels.

    Returns
    -------
    mean, std : ndarray of shape (channels,), float32

    Raises
    ------
    ValueError
        A length other than ``channels``, or a standard deviation not above 0.
    """
    pair = IMAGENET_MEAN_STD if spec == "imagenet" else spec
    try:
        mean, std = (
            np.broadcast_to(np.asarray(v, dtype=np.float32), (channels,)).copy()
            for v in pair
        )
    except ValueError:
        mean, std = np.zeros(0, np.float32), np.zeros(0, np.float32)
    if mean.shape != (channels,) or not (std > 0).all():
        raise ValueError(
            f"image_normalization={spec!r} needs a mean and a positive standard "
            f"deviation for each of the images' {channels} channels; grey images "
            "with ImageNet statistics: convert them to RGB first, or pass "
            "image_normalization=(mean, std) with one value each."
        )
    return mean, std


def _channel_stats(pixels: Tensor, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1].

    In float64, ``chunk`` images at a time: a float64 copy of a 4096-image sample
    would be 8 times the size of the stored pixels (for small sets, of the whole set).
    """
    total = torch.zeros(pixels.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for part in pixels.split(chunk):
        values = part.double().div_(255.0)
        total += values.sum(dim=(0, 2, 3))
        squares += values.square_().sum(dim=(0, 2, 3))
    count = pixels.shape[0] * pixels.shape[2] * pixels.shape[3]
    mean = total / count
    # Values lie in [0, 1]: E[x^2] - E[x]^2 loses nothing that matters in float64.
    std = (squares / count - mean.square()).clamp_min_(0.0).sqrt_()
    return mean.numpy(), std.numpy()


def _mode_channels(mode: str) -> int:
    """Channels of a PIL mode as :data:`CHANNEL_CONVERSIONS` counts them (2: grey and
    alpha); palette, CMYK and other colour modes count as RGB, which they convert to."""
    if mode in ("LA", "La"):
        return 2
    if mode in _GRAY_MODES:
        return 1
    if mode in ("RGBA", "RGBa", "PA"):
        return 4
    return 3


def convert_channels(pixels: Tensor, channels: int) -> Tensor:
    """uint8 images converted to ``channels`` by the rules of :data:`CHANNEL_CONVERSIONS`.

    The luma is PIL's integer formula, ``(19595 R + 38470 G + 7471 B + 32768) >> 16``,
    so an array converts to the same pixels as PIL's ``convert("L")`` of its image.

    Parameters
    ----------
    pixels : Tensor of shape (n, C, H, W), uint8
        C is 1, 3 or 4.
    channels : {1, 3, 4}

    Returns
    -------
    Tensor of shape (n, channels, H, W), uint8
        ``pixels`` itself when C is ``channels``.
    """
    have = pixels.shape[1]
    if have == channels:
        return pixels
    colour = pixels[:, :3] if have == 4 else pixels  # alpha dropped
    if channels == 1:
        weights = torch.tensor([19595, 38470, 7471], dtype=torch.int32)
        weights = weights.to(pixels.device)  # where the pixels are: CUDA too
        luma = (colour.to(torch.int32) * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
        return ((luma + 32768) >> 16).to(torch.uint8)
    rgb = colour.expand(-1, 3, -1, -1) if colour.shape[1] == 1 else colour
    if channels == 3:
        return rgb.contiguous()
    opaque = torch.full_like(rgb[:, :1], 255)
    return torch.cat([rgb, opaque], dim=1)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        return (int(size), int(size))
    height, width = size
    return (int(height), int(width))


def _value_range(X: np.ndarray) -> tuple[float, float]:
    """Pixel range mapped to [0, 255]: that of uint8, else the measured min and max."""
    if X.dtype == np.uint8:
        return (0.0, 255.0)
    low, high = math.inf, -math.inf
    for start in range(0, X.shape[0], CHUNK_IMAGES):
        chunk = X[start : start + CHUNK_IMAGES]
        chunk_low, chunk_high = float(chunk.min()), float(chunk.max())
        if not (math.isfinite(chunk_low) and math.isfinite(chunk_high)):
            raise ValueError("image arrays must not contain NaN or infinite values")
        low, high = min(low, chunk_low), max(high, chunk_high)
    return (low, high)


def prepare_network(module: nn.Module, device: torch.device) -> nn.Module:
    """Put a convolutional network in channels_last memory format where that is faster.

    Parameters
    ----------
    module : torch.nn.Module
    device : torch.device

    Returns
    -------
    torch.nn.Module
        ``module``, converted in place on the devices of :data:`CHANNELS_LAST_DEVICES`.
    """
    if device.type in CHANNELS_LAST_DEVICES:
        # Module.to takes memory_format at run time; torch's type stubs omit it.
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick the fastest convolution algorithms on CUDA, then restore the flag.

    Parameters
    ----------
    device : torch.device
    """
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


class StreamedImages:
    """Training data read from files one batch at a time (``partial_fit`` on files).

    Indexing with sample indices decodes those files (in parallel) and copies the
    pixels to the device; nothing else is kept in memory.

    Parameters
    ----------
    files : ImageFiles
    adapter : ImageAdapter
    device : torch.device
    """

    def __init__(
        self, files: ImageFiles, adapter: InputAdapter, device: torch.device
    ) -> None:
        self.files = files
        self.adapter = adapter
        self.device = device

    @property
    def shape(self) -> tuple[int]:
        """``(n_samples,)``: only the number of samples is known without decoding."""
        return (len(self.files),)

    def __getitem__(self, index: np.ndarray) -> Tensor:
        from ._training import to_device

        return to_device(self.adapter.to_storage(self.files[index]), self.device)
