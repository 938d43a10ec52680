"""skact.networks: the encoders' and the projection head's shapes, the ResNet stems and
initialisations, build_encoder's choices, and torchvision's ResNet-18 weights in skact's
ResNet18."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skact import ACTEncoder
from skact.networks import (
    BasicBlock,
    ResNet18,
    TabularEmbedding,
    build_encoder,
    resnet18_from_torchvision,
)

from _torchvision import torchvision_model

# ------------------------------------------------------- torchvision's layout, by hand
# (tests/_torchvision.py rebuilds torchvision.models.resnet18's module tree)


def test_torchvision_layout_has_torchvision_keys():
    state = torchvision_model().state_dict()
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.bn2.running_var"].shape == (512,)
    assert state["fc.weight"].shape == (1000, 512)
    assert "layer1.0.downsample.0.weight" not in state
    assert len(state) == 122  # torchvision.models.resnet18().state_dict()


def test_resnet18_from_torchvision_gives_the_same_features():
    model = torchvision_model()
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
    state = torchvision_model().state_dict()
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
    model = torchvision_model()
    model.fc = nn.Identity()
    X = np.random.default_rng(0).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    enc = ACTEncoder(encoder=model, max_iter=1, batch_size=4, random_state=0)
    enc.fit(X)
    assert enc._n_components_out == 512
    assert enc.transform(X).shape == (8, 512)
    with pytest.raises(ValueError, match="outputs 512 features but n_components=64"):
        ACTEncoder(encoder=model, n_components=64, max_iter=1).fit(X)


def test_resnet18_stem_follows_the_image_size():
    assert build_encoder("resnet18", (3, 64, 64), None).stem[0].kernel_size == (3, 3)
    large = build_encoder("resnet18", (3, 96, 96), None)
    assert large.stem[0].kernel_size == (7, 7) and large.out_features == 512


def test_resnet18_torchvision_init_is_kaiming_normal_fan_out():
    torch.manual_seed(0)
    net = ResNet18(3, weight_init="torchvision")
    for conv in [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]:
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        # std sqrt(2 / fan_out) (ReLU gain sqrt(2)); a uniform init with a = sqrt(5)
        # (PyTorch's) has std 1 / sqrt(3 fan_in), far below for every layer here.
        expected = (2 / fan_out) ** 0.5
        assert conv.weight.std().item() == pytest.approx(expected, rel=0.15)
        assert conv.weight.abs().max().item() > 3**0.5 * expected  # normal, not uniform
    for bn in [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
        assert (bn.weight == 1).all() and (bn.bias == 0).all()


def test_resnet18_default_init_is_torchvision_s_and_the_others_are_options():
    torch.manual_seed(0)
    default = ResNet18(1)
    torch.manual_seed(0)
    explicit = ResNet18(1, weight_init="torchvision")
    for a, b in zip(default.state_dict().values(), explicit.state_dict().values()):
        assert torch.equal(a, b)
    torch.manual_seed(0)
    old = ResNet18(1, weight_init="pytorch")
    assert not torch.equal(old.stem[0].weight, default.stem[0].weight)
    for conv in [m for m in old.modules() if isinstance(m, torch.nn.Conv2d)]:
        # PyTorch's uniform init with a = sqrt(5): bound 1 / sqrt(fan_in).
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert conv.weight.abs().max().item() <= fan_in**-0.5
    zero = ResNet18(1, weight_init="torchvision", zero_init_residual=True)
    blocks = [m for m in zero.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    assert all((b.bn2.weight == 0).all() and (b.bn1.weight == 1).all() for b in blocks)
    # Each block starts as the identity plus its shortcut: relu(x) for the plain ones.
    zero.eval()
    x = torch.rand(2, 64, 4, 4)
    assert torch.equal(blocks[1](x), torch.relu(x))
    with pytest.raises(ValueError, match="weight_init must be one of 'torchvision', "):
        ResNet18(1, weight_init="kaiming")


def test_unknown_slot_is_the_mean_of_known_embeddings():
    torch.manual_seed(0)
    front = TabularEmbedding(1, [3, 2], [4, 2])
    x = torch.tensor([[0.7, 3.0, 1.0], [0.1, 0.0, 2.0]])
    out = front(x)
    assert out.shape == (2, 1 + 4 + 2)
    w0, w1 = front.embeddings[0].weight, front.embeddings[1].weight
    torch.testing.assert_close(out[0, 1:5], w0.mean(0))
    torch.testing.assert_close(out[0, 5:], w1[1])
    torch.testing.assert_close(out[1, 1:5], w0[0])
    torch.testing.assert_close(out[1, 5:], w1.mean(0))
    torch.testing.assert_close(out[:, 0], x[:, 0])
