"""Images stored as uint8 on the host, normalised and augmented on the device.

The readers (arrays, PIL images, files) are in :mod:`skact.io.images`; this module
decides the stored size and channels, measures the normalisation statistics and turns
stored batches into network input (:class:`ImagePreprocessing`) and views.
"""

from __future__ import annotations

import collections
import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _auto
from .._auto import AutoSettings
from .._guards import caller_stacklevel
from ..augment.image import ImageAugment, ViewStep, view_size_of
from ..augment.tabular import refuse_table_views
from ..io.images import (
    _GRAY_MODES,
    _MODES,
    CHANNEL_CONVERSIONS,
    IMAGE_CHANNELS,
    ImageFiles,
    StreamedImages,
    _mode_channels,
    as_images,
    convert_channels,
)
from .base import UNSAVED_AUGMENT, SavedArray

if TYPE_CHECKING:
    from .._encoder import ACTEncoder

__all__ = [
    "ImageAdapter",
    "ImagePreprocessing",
    "check_views",
    "default_augment",
]

#: Images converted at a time; no float copy of a whole data set is made.
CHUNK_IMAGES = 4096


#: At most this many images (evenly spaced) give the normalisation statistics.
STATS_SAMPLE = 4096


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
    if max(image_size) >= _auto.TINY_IMAGE:
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


class ImageStorage(nn.Module):
    """Image arrays as :meth:`ImageAdapter.to_storage` stores them: uint8 pixels of the
    fitted channel count and size.

    Values are mapped linearly from ``value_range`` to [0, 255] (rounded and clipped;
    uint8 input is taken as it is), channels converted (:func:`convert_channels`, before
    resizing, as PIL does for files), then resized (bilinear, antialiased) to
    ``image_size`` where it differs.

    Parameters
    ----------
    value_range : tuple of (float, float)
        The range of the fitted arrays' values (``(0, 255)`` for uint8 input).
    channels : int
        The fitted channel count.
    image_size : tuple of (int, int)
        The fitted height and width.
    """

    def __init__(
        self,
        value_range: tuple[float, float],
        channels: int,
        image_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.low, high = float(value_range[0]), float(value_range[1])
        self.scale = 255.0 / (high - self.low) if high > self.low else 1.0
        self.channels = channels
        self.image_size = tuple(image_size)

    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels`` (n, C, H, W), uint8 or float32, as stored: uint8 (n, channels,
        *image_size).

        Parameters
        ----------
        pixels : Tensor

        Returns
        -------
        Tensor
        """
        if pixels.dtype != torch.uint8:
            pixels = ((pixels - self.low) * self.scale).round_().clamp_(0, 255)
            pixels = pixels.to(torch.uint8)
        # Converted before resizing, as files are (PIL converts, then resizes).
        pixels = convert_channels(pixels, self.channels)
        if tuple(pixels.shape[2:]) != self.image_size:
            resized = F.interpolate(
                pixels.float(), size=self.image_size, mode="bilinear",
                align_corners=False, antialias=True,
            )  # fmt: skip
            pixels = resized.round_().clamp_(0, 255).to(torch.uint8)
        return pixels


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
        return self.from_stored(x)

    def from_stored(self, pixels: Tensor) -> Tensor:
        """Stored (channels-first) uint8 images ``(n, C, H, W)`` as network input.

        Parameters
        ----------
        pixels : Tensor of shape (n, C, H, W), uint8

        Returns
        -------
        Tensor of shape ``(n, C, *view_size)``, float32
        """
        # Contiguous as stored batches are: interpolate's channels_last kernel rounds
        # differently.
        x = pixels.contiguous().float() / 255.0
        if self.view_size != self.image_size:
            mode = self.interpolation
            x = F.interpolate(
                x, size=self.view_size, mode=mode,
                align_corners=None if mode == "nearest" else False,
                antialias=mode != "nearest" and self.view_size[0] < self.image_size[0],
            )  # fmt: skip
            x = x.clamp(0.0, 1.0)
        return self.normalise(x)

    def normalise(self, x: Tensor) -> Tensor:
        """Images in [0, 1] normalised by the per-channel statistics.

        Parameters
        ----------
        x : Tensor of shape (n, C, H, W), float32

        Returns
        -------
        Tensor of shape (n, C, H, W), float32
        """
        return (x - self.mean) / self.std


def _channel_count(state: dict[str, Any], fitted: dict[str, Any]) -> Any:
    """The length of the saved channel statistics: the number of channels."""
    return state["channels"]


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
    label: ClassVar[str] = "images"
    expected_input: ClassVar[str] = "a 3-D or 4-D array, PIL images or file paths"
    networks: ClassVar[tuple[str, ...]] = ("convnet", "resnet18")
    #: What only tables read.
    ignored_params: ClassVar[tuple[str, ...]] = ("categorical_features", "handle_missing")
    saved_arrays: ClassVar[dict[str, SavedArray]] = {
        "mean": SavedArray(torch.float32, _channel_count),
        "std": SavedArray(torch.float32, _channel_count, positive=True),
    }

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
        self._preprocessing: dict[torch.device, ImagePreprocessing] = {}

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
        refuse_table_views(
            estimator.augment, estimator.corruption_rate, estimator.noise_scale
        )
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

    def warn_unfamiliar(self, X: Any, names: list[str] | None) -> None:
        """Nothing: a conversion of images is said where it is made.

        Parameters
        ----------
        X : images
        names : list of str or None
        """

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

    def stream(self, X: ImageFiles, device: torch.device) -> StreamedImages:
        """Files read one batch at a time, decoded when indexed and put on ``device``.

        Parameters
        ----------
        X : ImageFiles
            Output of :meth:`read` for which :meth:`streams` is True.
        device : torch.device

        Returns
        -------
        StreamedImages
        """
        return StreamedImages(X, self, device)

    def training_context(
        self, device: torch.device
    ) -> contextlib.AbstractContextManager[Any]:
        """Let cuDNN pick the fastest convolution algorithms while training on CUDA.

        Parameters
        ----------
        device : torch.device

        Returns
        -------
        context manager
            See :func:`cudnn_benchmark`.
        """
        return cudnn_benchmark(device)

    def describe_reading(self, estimator: ACTEncoder) -> str:
        """The stored size and channels, and the size the network sees.

        Parameters
        ----------
        estimator : ACTEncoder
            Unused: the adapter knows its images.

        Returns
        -------
        str
        """
        c, h, w = self.input_shape
        stored_h, stored_w = self.image_size
        return (
            f"images stored as uint8 at {stored_h}x{stored_w} pixels with {c} "
            f"channel{'' if c == 1 else 's'}, seen by the network at {h}x{w}"
        )

    def speed_advice(self, network: str | None) -> str:
        """Fewer epochs, the ConvNet, smaller images or larger batches.

        Parameters
        ----------
        network : str or None
            The built-in network trained (None: the user's).

        Returns
        -------
        str
        """
        convnet = "" if network == "convnet" else "encoder='convnet', "
        return (
            f"max_iter (e.g. max_iter=10), {convnet}a smaller image_size or a "
            "larger batch_size"
        )

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
        (bilinear, antialiased): the torch module :class:`ImageStorage` does all three.
        Files are decoded, converted and resized by PIL (``ImageFiles``).
        :meth:`check_channels` says so once per call first.

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
        storage = ImageStorage(self.value_range, self.channels, self.image_size)
        for start in range(0, X.shape[0], CHUNK_IMAGES):
            chunk = X[start : start + CHUNK_IMAGES]
            if chunk.dtype == np.uint8:
                pixels = torch.from_numpy(np.ascontiguousarray(chunk))
            else:
                pixels = torch.from_numpy(np.asarray(chunk, dtype=np.float32))
                if not bool(torch.isfinite(pixels).all()):
                    raise ValueError("image arrays must not contain NaN or infinite values")
            pixels = storage(pixels)
            out[start : start + pixels.shape[0]] = pixels
        return out

    # ------------------------------------------------------------------ on the device

    def _module(self, device: torch.device) -> ImagePreprocessing:
        """:meth:`preprocessing_module` on ``device``, made once per device."""
        module = self._preprocessing.get(device)
        if module is None:
            module = self._preprocessing[device] = self.preprocessing_module().to(device)
        return module

    def _placed(self, x: Tensor) -> Tensor:
        if _auto.image_channels_last(x.device.type):
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
        Tensor of shape ``(n, *input_shape)``, float32
        """
        # The exported program's own module, so that the two cannot drift apart.
        return self._placed(self._module(batch.device).from_stored(batch))

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
        Tensor of shape ``(n, *input_shape)``, float32
        """
        views = self.augment(batch.float().div_(255.0), generator)
        return self._placed(self._module(batch.device).normalise(views))

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
        state["_preprocessing"] = {}  # modules per device: a cache, rebuilt on first use
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.pop("_stats", None)  # the cache of pickles of older skact
        self.__dict__.update(state)
        self._preprocessing = {}


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
        ``module``, converted in place where :func:`skact._auto.image_channels_last`.
    """
    if _auto.image_channels_last(device.type):
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
