"""Random views of image batches: crop, flip, colour jitter, grayscale, blur.

Every transform draws one set of random parameters per image and applies them to the
whole batch with tensor operations on the batch's device; there is no Python loop over
images. Randomness comes only from the :class:`torch.Generator` passed in.

As in torchvision's transforms v2, drawing the parameters
(:meth:`ImageAugment.draw_params`) is apart from applying them
(:meth:`ImageAugment.apply`); :class:`Compose` chains ImageAugment with steps of one's
own. Any callable ``views = augment(images, generator)`` is a view maker
(the user guide's page on images, section "Your own views", states the protocol).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._params import ParamsMixin

__all__ = ["Compose", "ImageAugment", "ViewParams"]

#: ITU-R 601 luma weights, as in PIL's and torchvision's grayscale conversion.
_LUMA = (0.299, 0.587, 0.114)

#: Candidate crops drawn per image before falling back to the whole image.
_CROP_TRIES = 10


@dataclasses.dataclass(frozen=True)
class ViewParams:
    """The random parameters of one view per image, as :meth:`ImageAugment.draw_params`
    draws them; each field is a tensor of shape ``(n,)``, or None when its step is off.

    Attributes
    ----------
    width, height : Tensor
        The crop box's sides as fractions of the image's (1: the whole side).
    center_x, center_y : Tensor
        The box's centre in [-1, 1] image coordinates.
    flip : Tensor
        -1 for a horizontally flipped view, else 1.
    brightness, contrast, saturation : Tensor or None
        Jitter factors (1 for images that skip the jitter).
    hue : Tensor or None
        Hue shift in turns (0 for images that skip the jitter).
    grayscale : Tensor or None
        Boolean: the view is converted to grayscale.
    blur_sigma : Tensor or None
        The blur's standard deviation in pixels.
    blur : Tensor or None
        Boolean: the view is blurred.
    """

    width: Tensor
    height: Tensor
    center_x: Tensor
    center_y: Tensor
    flip: Tensor
    brightness: Tensor | None = None
    contrast: Tensor | None = None
    saturation: Tensor | None = None
    hue: Tensor | None = None
    grayscale: Tensor | None = None
    blur_sigma: Tensor | None = None
    blur: Tensor | None = None

    def to(self, device: torch.device | str) -> ViewParams:
        """These parameters on ``device``.

        Parameters
        ----------
        device : torch.device or str

        Returns
        -------
        ViewParams
        """
        moved: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            moved[field.name] = None if value is None else value.to(device)
        return dataclasses.replace(self, **moved)


class ImageAugment(ParamsMixin):
    """Random augmented views of a batch of images, as in SimCLR and the ACT paper.

    The input is a float batch of shape ``(n, C, H, W)`` with values in [0, 1]. Each
    image gets its own random parameters; the steps run in this order:

    1. random resized crop: a box covering a fraction ``crop_scale`` of the image area
       with aspect ratio (width / height) in ``crop_ratio`` (log-uniform), resampled to
       ``output_size``; ten candidate boxes are drawn per image and the first that fits
       is used, else the whole image (as torchvision does, but batched);
    2. horizontal flip with probability ``flip_p`` (folded into the crop's resampling);
    3. with probability ``jitter_p``, colour jitter in a fixed order: brightness,
       contrast, saturation, hue (factors uniform in ``[1 - s, 1 + s]``, hue shift
       uniform in ``[-hue, hue]`` turns of the colour wheel);
    4. grayscale with probability ``grayscale_p``;
    5. Gaussian blur with probability ``blur_p``, sigma uniform in ``blur_sigma``.

    Saturation, hue and grayscale need colour: they apply to 3-channel images and to the
    first three channels of 4-channel ones (the fourth, e.g. alpha, is left as is) and
    are skipped for other channel counts. Brightness and contrast apply to any image.
    The defaults are the ACT paper's (SimCLR's) for RGB images, without blur.

    Parameters
    ----------
    output_size : int or tuple of (int, int) or None, default=None
        Height and width of the views; None keeps the input size.
    crop_scale : tuple of (float, float) or None, default=(0.08, 1.0)
        Range of the crop's share of the image area. None disables cropping (the whole
        image is resampled to ``output_size``).
    crop_ratio : tuple of (float, float), default=(3/4, 4/3)
        Range of the crop's aspect ratio, width over height.
    interpolation : {"bilinear", "bicubic", "nearest"}, default="bicubic"
        Resampling of the crop (bicubic results are clipped to [0, 1]).
    flip_p : float, default=0.5
        Probability of a horizontal flip.
    brightness, contrast, saturation : float, default=0.4
        Strength ``s`` of each jitter: the factor is uniform in ``[max(0, 1 - s), 1 + s]``.
        Brightness multiplies the pixels; contrast and saturation blend the image with
        its mean gray level and with its grayscale version.
    hue : float, default=0.1
        Largest hue shift, as a fraction of a full turn (at most 0.5).
    jitter_p : float, default=0.8
        Probability that an image gets the colour jitter.
    grayscale_p : float, default=0.2
        Probability of converting an image to grayscale (kept with its channel count).
    blur_p : float, default=0.0
        Probability of a Gaussian blur.
    blur_sigma : tuple of (float, float), default=(0.1, 2.0)
        Range of the blur's standard deviation in pixels.
    blur_kernel_size : int or None, default=None
        Odd side of the blur kernel; None takes about a tenth of the view's size.

    See Also
    --------
    skact.augment.TabularAugment : Views of table rows.

    References
    ----------
    .. [1] Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive
       Learning of Visual Representations", ICML 2020.

    Examples
    --------
    >>> import torch
    >>> aug = ImageAugment(output_size=16)
    >>> images = torch.rand(8, 3, 32, 32)
    >>> aug(images, torch.Generator().manual_seed(0)).shape
    torch.Size([8, 3, 16, 16])

    The same views in two steps, the parameters first:

    >>> params = aug.draw_params(images.shape, torch.Generator().manual_seed(0))
    >>> views = aug.apply(images, params)
    >>> torch.equal(views, aug(images, torch.Generator().manual_seed(0)))
    True
    """

    def __init__(
        self,
        output_size: int | tuple[int, int] | None = None,
        *,
        crop_scale: tuple[float, float] | None = (0.08, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = "bicubic",
        flip_p: float = 0.5,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.0,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        blur_kernel_size: int | None = None,
    ) -> None:
        self.output_size = output_size
        self.crop_scale = crop_scale
        self.crop_ratio = crop_ratio
        self.interpolation = interpolation
        self.flip_p = flip_p
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        self.jitter_p = jitter_p
        self.grayscale_p = grayscale_p
        self.blur_p = blur_p
        self.blur_sigma = blur_sigma
        self.blur_kernel_size = blur_kernel_size

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"ImageAugment({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageAugment):
            return NotImplemented
        return self.get_params() == other.get_params()

    # Compared by value and mutable, so unhashable (what Python does for a class that
    # defines __eq__ alone); mypy expects a method in this slot.
    __hash__ = None  # type: ignore[assignment]

    def validate(self) -> None:
        """Raise a ValueError naming the first parameter out of range.

        Raises
        ------
        ValueError
        """
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"ImageAugment.{name} must be in [0, 1]")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"ImageAugment.{name} must be >= 0")
        if not 0 <= self.hue <= 0.5:
            raise ValueError("ImageAugment.hue must be in [0, 0.5]")
        if self.crop_scale is not None:
            low, high = self.crop_scale
            if not 0 < low <= high <= 1:
                raise ValueError(
                    "ImageAugment.crop_scale must satisfy 0 < low <= high <= 1"
                )
        low, high = self.crop_ratio
        if not 0 < low <= high:
            raise ValueError("ImageAugment.crop_ratio must satisfy 0 < low <= high")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError("ImageAugment.blur_sigma must satisfy 0 < low <= high")
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(
                "ImageAugment.interpolation must be 'bilinear', 'bicubic' or 'nearest'"
            )
        if self.blur_kernel_size is not None and self.blur_kernel_size % 2 == 0:
            raise ValueError("ImageAugment.blur_kernel_size must be odd")

    def view_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Height and width of the views of images of ``image_size``.

        Parameters
        ----------
        image_size : tuple of (int, int)

        Returns
        -------
        tuple of (int, int)
        """
        if self.output_size is None:
            return (int(image_size[0]), int(image_size[1]))
        if isinstance(self.output_size, int):
            return (self.output_size, self.output_size)
        return (int(self.output_size[0]), int(self.output_size[1]))

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Return one random view of each image: :meth:`draw_params`, then :meth:`apply`.

        The parameters are not checked here (``ACTEncoder.fit`` calls :meth:`validate`
        once); call :meth:`validate` first when using an augmentation on its own.

        Parameters
        ----------
        images : Tensor of shape (n, C, H, W)
            Float images in [0, 1].
        generator : torch.Generator
            Source of randomness (on the CPU or on the images' device).

        Returns
        -------
        Tensor of shape (n, C, *output_size)
        """
        params = self.draw_params(images.shape, generator, device=images.device)
        return self.apply(images, params)

    def draw_params(
        self,
        shape: Sequence[int],
        generator: torch.Generator,
        device: torch.device | str | None = None,
    ) -> ViewParams:
        """Draw the random parameters of one view of each of ``shape[0]`` images.

        The draws, in this order, are those :meth:`__call__` makes: crop boxes, centres,
        flips, then (for steps that are on) jitter, grayscale and blur. Colour steps
        draw nothing for images without colour, hence the channel count in ``shape``.

        Parameters
        ----------
        shape : sequence of int
            ``(n, C, H, W)``, the shape of the batch the views are of.
        generator : torch.Generator
            Source of randomness; the numbers are drawn on its device.
        device : torch.device, str or None, default=None
            Where the parameters are computed and returned; None: the generator's
            device. :meth:`__call__` passes the images' device.

        Returns
        -------
        ViewParams
        """
        n, channels, h, w = (int(s) for s in shape)
        target = generator.device if device is None else torch.device(device)

        def uniform(low: float, high: float, *size: int) -> Tensor:
            u = torch.rand((n, *size), generator=generator, device=generator.device)
            return (low + (high - low) * u).to(target)

        def happens(p: float) -> Tensor:
            return uniform(0.0, 1.0) < p

        ones = torch.ones(n, device=target)
        if self.crop_scale is None:
            width, height = ones, ones
        else:
            # Box sides as fractions of the image's: area share s, ratio r (pixels).
            area = uniform(*self.crop_scale, _CROP_TRIES)
            log_r = uniform(
                math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]), _CROP_TRIES
            )
            ratio = torch.exp(log_r)
            width = torch.sqrt(area * ratio * h / w)
            height = torch.sqrt(area / ratio * w / h)
            fits = (width <= 1) & (height <= 1)
            first = torch.argmax(fits.int(), dim=1, keepdim=True)  # first fitting try
            any_fit = fits.any(dim=1)
            width = torch.where(any_fit, width.gather(1, first).squeeze(1), ones)
            height = torch.where(any_fit, height.gather(1, first).squeeze(1), ones)
        # Centre anywhere that keeps the box inside the image, in [-1, 1] coordinates.
        center_x = uniform(-1.0, 1.0) * (1 - width)
        center_y = uniform(-1.0, 1.0) * (1 - height)
        flip = torch.where(happens(self.flip_p), -ones, ones) if self.flip_p > 0 else ones
        jitter: dict[str, Tensor] = {}
        colour = channels in (3, 4)
        if self.jitter_p > 0:
            keep = ~happens(self.jitter_p)

            def factor(strength: float) -> Tensor:
                f = uniform(max(0.0, 1 - strength), 1 + strength)
                return torch.where(keep, torch.ones_like(f), f)

            if self.brightness > 0:
                jitter["brightness"] = factor(self.brightness)
            if self.contrast > 0:
                jitter["contrast"] = factor(self.contrast)
            if colour and self.saturation > 0:
                jitter["saturation"] = factor(self.saturation)
            if colour and self.hue > 0:
                jitter["hue"] = torch.where(
                    keep, torch.zeros(n, device=target), uniform(-self.hue, self.hue)
                )
        grayscale = happens(self.grayscale_p) if self.grayscale_p > 0 and colour else None
        blur_sigma = blur = None
        if self.blur_p > 0:
            blur_sigma = uniform(*self.blur_sigma)
            blur = happens(self.blur_p)
        return ViewParams(
            width, height, center_x, center_y, flip, **jitter,
            grayscale=grayscale, blur_sigma=blur_sigma, blur=blur,
        )  # fmt: skip

    def apply(self, images: Tensor, params: ViewParams) -> Tensor:
        """The views of ``images`` that ``params`` describe; nothing random happens.

        Parameters
        ----------
        images : Tensor of shape (n, C, H, W)
            Float images in [0, 1].
        params : ViewParams
            From :meth:`draw_params` for a batch of this shape (moved to the images'
            device if need be).

        Returns
        -------
        Tensor of shape (n, C, height, width)
            ``(height, width)`` is the view size (``output_size``).
        """
        n = images.shape[0]
        params = params.to(images.device)
        x = self._crop_and_flip(images, params)
        x = self._jitter(x, params)
        if params.grayscale is not None and x.shape[1] in (3, 4):
            gray = params.grayscale.view(n, 1, 1, 1)
            rgb = x[:, :3]
            x = torch.cat(
                [torch.where(gray, _grayscale(rgb).expand_as(rgb), rgb), x[:, 3:]], 1
            )
        if params.blur is not None and params.blur_sigma is not None:
            blurred = self._blur(x, params.blur_sigma)
            x = torch.where(params.blur.view(n, 1, 1, 1), blurred, x)
        return x

    # ------------------------------------------------------------------ steps

    def _crop_and_flip(self, images: Tensor, params: ViewParams) -> Tensor:
        n, c, h, w = images.shape
        out_h, out_w = self.view_size((h, w))
        width, height, sign = params.width, params.height, params.flip
        if (
            self.crop_scale is None
            and (out_h, out_w) == (h, w)
            and not bool((sign < 0).any())
        ):
            return images
        zero = torch.zeros_like(width)
        theta = torch.stack(
            [
                torch.stack([width * sign, zero, params.center_x], 1),
                torch.stack([zero, height, params.center_y], 1),
            ],
            1,
        )
        grid = F.affine_grid(theta, [n, c, out_h, out_w], align_corners=False)
        x = F.grid_sample(
            images,
            grid,
            mode=self.interpolation,
            padding_mode="border",
            align_corners=False,
        )
        if self.interpolation == "bicubic":
            x = x.clamp_(0.0, 1.0)
        return x

    def _jitter(self, x: Tensor, params: ViewParams) -> Tensor:
        n = x.shape[0]
        colour = x.shape[1] in (3, 4)
        rgb, rest = (x[:, :3], x[:, 3:]) if colour else (x, x[:, :0])
        if params.brightness is not None:
            rgb = (rgb * params.brightness.view(n, 1, 1, 1)).clamp(0.0, 1.0)
        if params.contrast is not None:
            gray = _grayscale(rgb) if colour else rgb
            mean = gray.mean(dim=(1, 2, 3), keepdim=True)
            rgb = _blend(rgb, mean, params.contrast.view(n, 1, 1, 1))
        if colour and params.saturation is not None:
            rgb = _blend(rgb, _grayscale(rgb), params.saturation.view(n, 1, 1, 1))
        if colour and params.hue is not None:
            rgb = _shift_hue(rgb, params.hue.view(n, 1, 1))
        return torch.cat([rgb, rest], 1) if colour else rgb

    def _blur(self, x: Tensor, sigma: Tensor) -> Tensor:
        n, c, h, w = x.shape
        size = self.blur_kernel_size
        if size is None:
            size = max(3, (min(h, w) // 10) | 1)
        radius = size // 2
        offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-0.5 * (offsets / sigma.view(n, 1).to(x.dtype)) ** 2)
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)
        # Each (image, channel) plane is its own group: one depthwise convolution per axis.
        planes = x.reshape(1, n * c, h, w)
        planes = F.pad(planes, (radius, radius, radius, radius), mode="reflect")
        planes = F.conv2d(planes, kernel.view(n * c, 1, size, 1), groups=n * c)
        planes = F.conv2d(planes, kernel.view(n * c, 1, 1, size), groups=n * c)
        return planes.view(n, c, h, w)


#: A view step: ``(float images (n, C, H, W) in [0, 1], generator) -> views``.
ViewStep = Callable[[Tensor, torch.Generator], Tensor]


class Compose:
    """View makers applied one after the other, all drawing from one generator.

    Each step is called as ``step(images, generator)`` on the previous step's output,
    so a step of one's own stays seeded by ``ACTEncoder(random_state=...)``. A step
    with a ``view_size(image_size)`` method (or an ``output_size``) changes the size;
    one without keeps it.

    Parameters
    ----------
    steps : sequence of callables
        ``ImageAugment`` instances and callables ``step(images, generator) -> views``
        taking and returning float batches of shape ``(n, C, H, W)`` in [0, 1].

    See Also
    --------
    ImageAugment : The built-in views.

    Examples
    --------
    >>> import torch
    >>> def invert_half(images, generator):
    ...     chosen = torch.rand(len(images), generator=generator) < 0.5
    ...     return torch.where(chosen.view(-1, 1, 1, 1), 1 - images, images)
    >>> aug = Compose([ImageAugment(output_size=16), invert_half])
    >>> aug(torch.rand(8, 3, 32, 32), torch.Generator().manual_seed(0)).shape
    torch.Size([8, 3, 16, 16])
    >>> aug.view_size((32, 32))
    (16, 16)
    """

    def __init__(self, steps: Sequence[ViewStep]) -> None:
        self.steps = steps

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Run the steps in order on ``images``.

        Parameters
        ----------
        images : Tensor of shape (n, C, H, W)
            Float images in [0, 1].
        generator : torch.Generator
            Passed to every step.

        Returns
        -------
        Tensor of shape (n, C, *view_size)
        """
        for step in self.steps:
            images = step(images, generator)
        return images

    def view_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Height and width of the views of images of ``image_size``.

        Parameters
        ----------
        image_size : tuple of (int, int)

        Returns
        -------
        tuple of (int, int)
        """
        size = (int(image_size[0]), int(image_size[1]))
        for step in self.steps:
            size = view_size_of(step, size)
        return size

    @property
    def interpolation(self) -> str:
        """The first step's resampling mode (``"bilinear"`` if none has one): whole
        images are resized with it to the view size in ``transform``."""
        for step in self.steps:
            mode = getattr(step, "interpolation", None)
            if isinstance(mode, str):
                return mode
        return "bilinear"

    def validate(self) -> None:
        """Call each step's ``validate`` method, where it has one.

        Raises
        ------
        ValueError
        """
        for step in self.steps:
            check = getattr(step, "validate", None)
            if callable(check):
                check()

    def __repr__(self) -> str:
        return f"Compose({list(self.steps)!r})"


def view_size_of(augment: Any, image_size: tuple[int, int]) -> tuple[int, int]:
    """The size of the views ``augment`` makes of images of ``image_size``.

    Its ``view_size(image_size)`` method if it has one, else its ``output_size``
    attribute (an int or a pair; None keeps the size), else ``image_size``.

    Parameters
    ----------
    augment : callable
    image_size : tuple of (int, int)

    Returns
    -------
    tuple of (int, int)
    """
    method = getattr(augment, "view_size", None)
    if callable(method):
        height, width = method(image_size)
        return (int(height), int(width))
    size = getattr(augment, "output_size", None)
    if size is None:
        return (int(image_size[0]), int(image_size[1]))
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


def _grayscale(rgb: Tensor) -> Tensor:
    """Luma of ``(n, 3, H, W)`` images, shape ``(n, 1, H, W)``."""
    r, g, b = rgb.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(image: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor * image + (1 - factor) * other``, clipped to [0, 1]."""
    return (factor * image + (1 - factor) * other).clamp(0.0, 1.0)


def _shift_hue(rgb: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of ``(n, 3, H, W)`` images by ``shift`` turns (through HSV)."""
    r, g, b = rgb.unbind(1)
    value, _ = rgb.max(1)
    low, _ = rgb.min(1)
    chroma = value - low
    gray = chroma == 0
    saturation = chroma / torch.where(gray, torch.ones_like(value), value)
    safe = torch.where(gray, torch.ones_like(chroma), chroma)
    rc, gc, bc = (value - r) / safe, (value - g) / safe, (value - b) / safe
    hue = torch.where(
        value == r, bc - gc, torch.where(value == g, 2.0 + rc - bc, 4.0 + gc - rc)
    )
    hue = torch.remainder(hue / 6.0 + shift, 1.0)
    # Back to RGB: each channel is v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6.
    offsets = torch.tensor([5.0, 3.0, 1.0], device=rgb.device, dtype=rgb.dtype)
    k = torch.remainder(offsets.view(1, 3, 1, 1) + 6.0 * hue.unsqueeze(1), 6.0)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    v, s = value.unsqueeze(1), saturation.unsqueeze(1)
    return v - v * s * ramp
