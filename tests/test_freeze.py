"""skact._freeze: ``freeze`` trains only the last blocks of an encoder, or keeps its
BatchNorm statistics, across fit, warm_start, partial_fit and a saved model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import skact
from skact import ACTEncoder
from skact._freeze import blocks
from skact.networks import ResNet18

from _torchvision import TorchvisionResNet18

# ------------------------------------------------------------------------- freezing


def _images(n: int = 24, channels: int = 3, size: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)


def _small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_blocks_of_resnets():
    names = [type(b).__name__ for b in blocks(TorchvisionResNet18())]
    assert names[:2] == ["Conv2d", "BatchNorm2d"]
    assert names[2:10] == ["TorchvisionBlock"] * 8
    assert names[10:] == ["Linear"]
    assert [type(b).__name__ for b in blocks(ResNet18(3))] == (
        ["Conv2d", "BatchNorm2d"] + ["BasicBlock"] * 8
    )


def test_freeze_last_blocks_keeps_the_others_bit_for_bit():
    X = _images()
    enc = ACTEncoder(encoder=_small_net(), freeze=2, max_iter=2, random_state=0)
    enc.fit(X)
    before = _state(enc.encoder)  # fit trains a copy of the module given
    after = _state(enc.encoder_)
    frozen = [k for k in after if k.startswith(("0.", "1."))]
    trained = [k for k in after if k.startswith(("3.", "4."))]
    for key in frozen:  # the first convolution and batch norm, statistics included
        assert torch.equal(after[key], before[key]), key
    assert all(not torch.equal(after[k], before[k]) for k in trained)
    # The optimiser holds state only for what trained: 4 tensors of the encoder and
    # the projection head's.
    n_head = len(list(enc.projector_.parameters()))
    assert len(enc._optimizer_state["state"]) == 4 + n_head
    # The fitted module is given back trainable, as it was built.
    assert all(p.requires_grad for p in enc.encoder_.parameters())


def test_freeze_batchnorm_keeps_running_statistics():
    X = _images()
    net = _small_net()
    before = _state(net)
    enc = ACTEncoder(encoder=net, freeze="batchnorm", max_iter=2, random_state=0).fit(X)
    after = _state(enc.encoder_)
    for key in (
        "1.running_mean",
        "1.running_var",
        "4.running_mean",
        "4.num_batches_tracked",
    ):
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["0.weight"], before["0.weight"])
    assert not torch.equal(after["1.weight"], before["1.weight"])  # its scale trains
    # Without freeze the statistics move.
    free = ACTEncoder(encoder=_small_net(), max_iter=1, random_state=0).fit(X)
    assert not torch.equal(
        free.encoder_.state_dict()["1.running_mean"], before["1.running_mean"]
    )


def test_freeze_applies_to_warm_start_and_partial_fit():
    X = _images()
    enc = ACTEncoder(encoder=_small_net(), max_iter=1, random_state=0).fit(X)
    before = _state(enc.encoder_)
    enc.set_params(warm_start=True, freeze=1)
    enc.fit(X)
    after = _state(enc.encoder_)
    assert torch.equal(after["0.weight"], before["0.weight"])
    assert torch.equal(after["3.weight"], before["3.weight"])
    assert not torch.equal(after["4.weight"], before["4.weight"])
    enc.partial_fit(X)
    assert torch.equal(enc.encoder_.state_dict()["0.weight"], before["0.weight"])
    enc.set_params(freeze=None)
    enc.fit(X)  # the optimiser state of the frozen fits continues
    assert not torch.equal(enc.encoder_.state_dict()["0.weight"], before["0.weight"])


def test_freeze_more_blocks_than_the_encoder_has():
    with pytest.raises(
        ValueError,
        match=r"freeze=4 trains the last 4 blocks, but the "
        r"encoder has 4",
    ):
        ACTEncoder(encoder=_small_net(), freeze=4, max_iter=1).fit(_images())
    with pytest.raises(ValueError, match="freeze"):
        ACTEncoder(freeze=0).fit(_images())


def test_save_and_load_keep_freeze_and_normalization(tmp_path):
    X = _images(n=8)
    enc = ACTEncoder(
        encoder=ResNet18(3, cifar_stem=False),
        freeze=2,
        image_normalization="imagenet",
        max_iter=1,
        batch_size=4,
        random_state=0,
    ).fit(X)
    path = tmp_path / "model"
    enc.save(path)
    loaded = skact.load(path, encoder=ResNet18(3, cifar_stem=False))
    assert loaded.freeze == 2
    np.testing.assert_array_equal(loaded._adapter.mean, np.float32([0.485, 0.456, 0.406]))
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    before = _state(loaded.encoder_)
    loaded.set_params(warm_start=True).fit(X)
    after = _state(loaded.encoder_)
    assert torch.equal(after["stages.5.conv1.weight"], before["stages.5.conv1.weight"])
    assert not torch.equal(after["stages.7.conv1.weight"], before["stages.7.conv1.weight"])
