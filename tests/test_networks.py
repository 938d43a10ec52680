"""Starting from a network of your own: torchvision's ResNet-18 weights in skact's
ResNet18, width detection, ``freeze`` and ``image_normalization``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import skact
from skact import ACTEncoder
from skact._freeze import blocks
from skact.networks import ResNet18, resnet18_from_torchvision

# ------------------------------------------------------- torchvision's layout, by hand
# torchvision is not importable here (its wheel needs CUDA), so these classes rebuild
# torchvision.models.resnet18's module tree: the same attribute names, hence the same
# state-dict keys and shapes, and the same forward pass.


class _TorchvisionBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class _TorchvisionResNet18(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (c_in, c_out, stride) in enumerate(widths, start=1):
            layer = nn.Sequential(
                _TorchvisionBlock(c_in, c_out, stride), _TorchvisionBlock(c_out, c_out)
            )
            setattr(self, f"layer{i}", layer)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc: nn.Module = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _torchvision_model(seed: int = 0) -> _TorchvisionResNet18:
    """Random weights and random batch-norm statistics (not the defaults 0 and 1)."""
    torch.manual_seed(seed)
    model = _TorchvisionResNet18()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_torchvision_layout_has_torchvision_keys():
    state = _torchvision_model().state_dict()
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.bn2.running_var"].shape == (512,)
    assert state["fc.weight"].shape == (1000, 512)
    assert "layer1.0.downsample.0.weight" not in state
    assert len(state) == 122  # torchvision.models.resnet18().state_dict()


def test_resnet18_from_torchvision_gives_the_same_features():
    model = _torchvision_model()
    network = resnet18_from_torchvision(model.state_dict()).eval()
    assert isinstance(network, ResNet18)
    model.fc = nn.Identity()  # the features before torchvision's classifier
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), network(x)
    assert got.shape == (2, 512)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    mapped = network.state_dict()
    assert torch.equal(mapped["stem.0.weight"], model.conv1.weight)
    assert torch.equal(
        mapped["stages.2.shortcut.1.running_mean"],
        model.layer2[0].downsample[1].running_mean,
    )
    assert torch.equal(mapped["stages.7.conv2.weight"], model.layer4[1].conv2.weight)


def test_resnet18_from_torchvision_names_what_is_wrong():
    state = _torchvision_model().state_dict()
    missing = {k: v for k, v in state.items() if k != "layer3.1.bn1.weight"}
    with pytest.raises(KeyError, match=r"'layer3\.1\.bn1\.weight' is missing"):
        resnet18_from_torchvision(missing)
    extra = {**state, "layer1.0.se.weight": torch.zeros(1)}
    with pytest.raises(KeyError, match=r"unexpected key 'layer1\.0\.se\.weight'"):
        resnet18_from_torchvision(extra)
    wider = {**state, "layer4.0.conv1.weight": torch.zeros(512, 256, 3, 5)}
    with pytest.raises(ValueError, match=r"'layer4\.0\.conv1\.weight' has shape"):
        resnet18_from_torchvision(wider)
    # The classifier is dropped, whatever its width or presence.
    no_fc = {k: v for k, v in state.items() if not k.startswith("fc.")}
    assert isinstance(resnet18_from_torchvision(no_fc), ResNet18)


def test_torchvision_model_with_identity_head_as_encoder():
    model = _torchvision_model()
    model.fc = nn.Identity()
    X = np.random.default_rng(0).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    enc = ACTEncoder(encoder=model, max_iter=1, batch_size=4, random_state=0)
    enc.fit(X)
    assert enc._n_components_out == 512
    assert enc.transform(X).shape == (8, 512)
    with pytest.raises(ValueError, match="outputs 512 features but n_components=64"):
        ACTEncoder(encoder=model, n_components=64, max_iter=1).fit(X)


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
    names = [type(b).__name__ for b in blocks(_TorchvisionResNet18())]
    assert names[:2] == ["Conv2d", "BatchNorm2d"]
    assert names[2:10] == ["_TorchvisionBlock"] * 8
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


# -------------------------------------------------------------------- normalisation


def test_image_normalization_sets_the_preprocessing():
    X = _images(size=32)  # views of 32 pixels or more are not resized
    stored = torch.from_numpy(X[:4])
    pixels = stored.float() / 255
    enc = ACTEncoder(image_normalization="imagenet", max_iter=1, random_state=0).fit(X)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    got = enc._adapter.to_model(enc._adapter.to_storage(X[:4]))
    torch.testing.assert_close(got, (pixels - mean) / std)
    auto = ACTEncoder(max_iter=1, random_state=0).fit(X)
    measured = auto._adapter.to_model(auto._adapter.to_storage(X[:4]))
    assert not torch.allclose(measured, got)
    own = ACTEncoder(image_normalization=(0.5, (0.25, 0.5, 1.0)), max_iter=1).fit(X)
    std = torch.tensor([0.25, 0.5, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(
        own._adapter.to_model(own._adapter.to_storage(X[:4])), (pixels - 0.5) / std
    )


def test_image_normalization_refuses_a_channel_count_it_does_not_cover():
    grey = _images(channels=1)
    with pytest.raises(ValueError, match="each of the images' 1 channels"):
        ACTEncoder(image_normalization="imagenet", max_iter=1).fit(grey)
    with pytest.raises(ValueError, match="positive standard deviation"):
        ACTEncoder(image_normalization=(0.5, 0.0), max_iter=1).fit(_images())


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
