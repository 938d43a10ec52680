"""Tests of skact.augment.image: batched, seeded image views."""

import colorsys
import math

import numpy as np
import pytest
import torch

from skact.augment import ImageAugment
from skact.augment.image import _shift_hue

#: Everything off: the identity.
OFF = dict(crop_scale=None, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _ramp(n, c=1, h=16, w=16):
    """Images whose value grows left to right: a flip is visible."""
    ramp = torch.linspace(0, 1, w).expand(n, c, h, w)
    return ramp.clone()


def test_everything_off_is_the_identity():
    x = torch.rand(6, 3, 10, 14)
    assert torch.equal(ImageAugment(**OFF)(x, _gen()), x)


def test_full_crop_at_full_size_reproduces_the_image():
    x = torch.rand(6, 3, 12, 12)
    aug = ImageAugment(
        **{**OFF, "crop_scale": (1.0, 1.0)}, crop_ratio=(1.0, 1.0), interpolation="bilinear"
    )
    torch.testing.assert_close(aug(x, _gen()), x, atol=1e-6, rtol=0)


def test_crop_that_never_fits_falls_back_to_whole_image():
    x = torch.rand(4, 1, 8, 8)
    aug = ImageAugment(
        **{**OFF, "crop_scale": (1.0, 1.0)}, crop_ratio=(2.0, 2.0), interpolation="bilinear"
    )
    torch.testing.assert_close(aug(x, _gen()), x, atol=1e-6, rtol=0)


def test_crop_covers_the_requested_share_of_the_image():
    # A horizontal ramp from 0 to 1; a square crop of a quarter of the area (half the
    # width) sees a span of values of exactly 0.5, wherever it lies.
    x = _ramp(50, h=64, w=64)
    aug = ImageAugment(
        **{**OFF, "crop_scale": (0.25, 0.25)},
        crop_ratio=(1.0, 1.0),
        interpolation="bilinear",
    )
    out = aug(x, _gen())
    span = out[:, 0, 0, -1] - out[:, 0, 0, 0]
    torch.testing.assert_close(span, torch.full((50,), 0.5), atol=1e-5, rtol=0)
    starts = out[:, 0, 0, 0]
    assert starts.min() >= 0 and (starts + span).max() <= 1 + 1e-6
    assert starts.std() > 0.05  # positions differ between samples


def test_per_sample_parameters_differ():
    x = torch.rand(1, 3, 16, 16).expand(32, 3, 16, 16).contiguous()
    for params in (
        dict(crop_scale=(0.2, 1.0)),
        dict(jitter_p=1.0, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0),
        dict(jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.1),
        dict(blur_p=1.0, blur_sigma=(1.0, 3.0)),
    ):
        out = ImageAugment(**{**OFF, **params})(x, _gen()).flatten(1)
        distinct = torch.unique(out.round(decimals=5), dim=0).shape[0]
        assert distinct == 32, params


def test_flip_happens_half_the_time():
    n = 4000
    x = _ramp(n, h=4, w=8)
    out = ImageAugment(**{**OFF, "flip_p": 0.5})(x, _gen())
    flipped = torch.isclose(out, x.flip(-1), atol=1e-6).flatten(1).all(1)
    kept = torch.isclose(out, x, atol=1e-6).flatten(1).all(1)
    assert bool((flipped ^ kept).all())
    # Binomial(4000, 0.5): 4 standard deviations are 0.032.
    assert abs(flipped.float().mean().item() - 0.5) < 0.032


def test_grayscale_happens_with_probability_p():
    n, p = 4000, 0.3
    x = torch.rand(n, 3, 4, 4)
    out = ImageAugment(**{**OFF, "grayscale_p": p})(x, _gen())
    gray = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(
        1
    ).all(1)
    assert abs(gray.float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / n)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(out[gray][:, 0], luma[gray])
    assert torch.equal(out[~gray], x[~gray])


def test_jitter_probability_and_brightness_range():
    n = 4000
    x = torch.full((n, 1, 2, 2), 0.5)
    aug = ImageAugment(
        **{**OFF, "jitter_p": 0.8}, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0
    )
    factor = aug(x, _gen())[:, 0, 0, 0] / 0.5
    changed = (factor - 1).abs() > 1e-6
    assert abs(changed.float().mean().item() - 0.8) < 0.026
    assert factor.min() >= 0.6 - 1e-6 and factor.max() <= 1.4 + 1e-6
    # Uniform on [0.6, 1.4]: mean 1, variance 0.8^2 / 12.
    assert abs(factor[changed].mean().item() - 1.0) < 0.01
    assert abs(factor[changed].var().item() - 0.64 / 12) < 0.005


def test_contrast_blends_with_the_mean_gray_level():
    x = 0.3 + 0.4 * torch.rand(200, 1, 6, 6)  # far enough from 0 and 1 not to clip
    aug = ImageAugment(
        **{**OFF, "jitter_p": 1.0}, brightness=0.0, contrast=0.3, saturation=0.0, hue=0.0
    )
    out = aug(x, _gen())
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    # out - mean = f * (x - mean) with one factor f per image, uniform in [0.7, 1.3].
    factor = ((out - mean) * (x - mean)).sum(dim=(1, 2, 3)) / ((x - mean) ** 2).sum(
        dim=(1, 2, 3)
    )
    expected = mean + factor.view(-1, 1, 1, 1) * (x - mean)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert factor.min() >= 0.7 - 1e-5 and factor.max() <= 1.3 + 1e-5
    assert factor.std() > 0.1


def test_colour_terms_are_skipped_for_one_channel():
    x = torch.rand(16, 1, 8, 8)
    aug = ImageAugment(
        **{**OFF, "jitter_p": 1.0, "grayscale_p": 1.0},
        brightness=0.0, contrast=0.0, saturation=0.4, hue=0.1,
    )  # fmt: skip
    assert torch.equal(aug(x, _gen()), x)


def test_fourth_channel_is_left_alone_by_colour_terms():
    x = torch.rand(16, 4, 8, 8)
    aug = ImageAugment(**{**OFF, "jitter_p": 1.0, "grayscale_p": 0.5})
    out = aug(x, _gen())
    assert torch.equal(out[:, 3], x[:, 3])
    assert not torch.equal(out[:, :3], x[:, :3])


def test_hue_shift_matches_colorsys():
    rng = np.random.default_rng(0)
    pixels = rng.random((40, 3)).astype(np.float32)
    shifts = rng.uniform(-0.5, 0.5, 40).astype(np.float32)
    images = torch.from_numpy(pixels).view(40, 3, 1, 1)
    out = _shift_hue(images, torch.from_numpy(shifts).view(40, 1, 1)).view(40, 3).numpy()
    for rgb, shift, got in zip(pixels, shifts, out):
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        expected = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_blur_keeps_constant_images_and_mass():
    const = torch.full((4, 3, 9, 9), 0.25)
    aug = ImageAugment(**{**OFF, "blur_p": 1.0}, blur_kernel_size=5)
    torch.testing.assert_close(aug(const, _gen()), const)
    delta = torch.zeros(4, 1, 15, 15)
    delta[:, :, 7, 7] = 1.0
    out = aug(delta, _gen())
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), torch.ones(4))
    assert out[:, 0, 7, 7].max() < 1.0  # it did spread


def test_same_seed_same_views_other_seed_other_views():
    x = torch.rand(8, 3, 16, 16)
    aug = ImageAugment(output_size=12, blur_p=0.5)
    assert torch.equal(aug(x, _gen(3)), aug(x, _gen(3)))
    assert not torch.equal(aug(x, _gen(3)), aug(x, _gen(4)))


@pytest.mark.parametrize(
    "size, expected", [(None, (10, 14)), (6, (6, 6)), ((5, 7), (5, 7))]
)
def test_output_size(size, expected):
    aug = ImageAugment(output_size=size)
    assert aug(torch.rand(3, 3, 10, 14), _gen()).shape == (3, 3, *expected)
    assert aug.view_size((10, 14)) == expected


def test_outputs_stay_in_unit_range():
    x = torch.rand(64, 3, 16, 16)
    out = ImageAugment(blur_p=0.5, brightness=0.8, contrast=0.8)(x, _gen())
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(flip_p=1.5), "flip_p"),
        (dict(hue=0.7), "hue"),
        (dict(crop_scale=(0.5, 0.2)), "crop_scale"),
        (dict(interpolation="area"), "interpolation"),
        (dict(blur_kernel_size=4), "odd"),
    ],
)
def test_invalid_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        ImageAugment(**params)(torch.rand(2, 3, 8, 8), _gen())


def test_get_params_round_trip():
    aug = ImageAugment(output_size=(5, 6), flip_p=0.0, blur_p=0.2)
    assert ImageAugment(**aug.get_params()) == aug
    assert aug != ImageAugment()
    assert "flip_p=0.0" in repr(aug)


def test_nested_in_the_estimator_it_clones_and_takes_set_params():
    """scikit-learn sees any object with get_params as nested: clone and grid search
    call get_params(deep=False) and set_params(augment__name=value) on it."""
    from sklearn.base import clone

    from skact import ACTEncoder

    aug = ImageAugment(output_size=12, flip_p=0.3)
    est = ACTEncoder(4, augment=aug)
    copy = clone(est)
    assert copy.augment == aug and copy.augment is not aug
    assert est.get_params(deep=True)["augment__flip_p"] == 0.3
    est.set_params(augment__flip_p=0.0, augment__hue=0.2)
    assert (aug.flip_p, aug.hue) == (0.0, 0.2)
    with pytest.raises(ValueError, match="invalid parameter 'flip' for ImageAugment"):
        aug.set_params(flip=0.5)
