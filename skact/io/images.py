"""Image readers: what counts as image input, arrays to channels-first, files decoded.

What counts as an image (:func:`is_image_input`), where the channels are
(:func:`channels_first`), how files and PIL images are read (:class:`ImageFiles`),
how another channel count is converted (:func:`convert_channels`) and how files are
streamed batch by batch (:class:`StreamedImages`). The adapter that stores and
normalises them is :class:`skact.adapters.image.ImageAdapter`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..adapters.base import InputAdapter

__all__ = [
    "CHANNEL_CONVERSIONS",
    "ImageFiles",
    "StreamedImages",
    "as_images",
    "channels_first",
    "convert_channels",
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
        from .._device import to_device

        return to_device(self.adapter.to_storage(self.files[index]), self.device)
