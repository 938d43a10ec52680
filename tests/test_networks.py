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
    DEFAULT_COMPONENTS,
    MLP,
    BasicBlock,
    ConvNet,
    ProjectionHead,
    ResNet18,
    TabularEmbedding,
    build_encoder,
    embedding_dim,
    init_resnet_weights,
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


# ------------------------------------------------------------- shapes and choices


def test_mlp_has_one_linear_batchnorm_relu_block_per_hidden_width():
    net = MLP(5, (16, 8), 3)
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]
    assert [m.out_features for m in net.layers if isinstance(m, nn.Linear)] == [16, 8, 3]
    assert net(torch.randn(4, 5)).shape == (4, 3) and net.out_features == 3
    assert MLP(5, (), 2)(torch.randn(3, 5)).shape == (3, 2)  # a single linear layer


def test_convnet_pools_any_image_size_to_its_last_width():
    net = ConvNet(1, 24, widths=(4, 4, 8, 8)).eval()
    for size in (8, 12, 17):
        assert net(torch.randn(2, 1, size, size)).shape == (2, 24)
    convs = [m for m in net.layers if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 4),
        (4, 4),
        (4, 8),
        (8, 8),
        (8, 24),
    ]
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.layers) == 2


@pytest.mark.parametrize(
    ("cifar_stem", "stem_kinds", "kernel"),
    [
        (True, ["Conv2d", "BatchNorm2d", "ReLU"], (3, 3)),
        (False, ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"], (7, 7)),
    ],
)
def test_resnet18_stem_variants(cifar_stem, stem_kinds, kernel):
    net = ResNet18(2, cifar_stem=cifar_stem).eval()
    assert [type(m).__name__ for m in net.stem] == stem_kinds
    assert net.stem[0].kernel_size == kernel and net.stem[0].in_channels == 2
    stem_out = net.stem(torch.zeros(1, 2, 32, 32))
    # CIFAR stem keeps 32 pixels; the ImageNet stem divides by 4 (stride 2, max-pool).
    assert stem_out.shape[-1] == (32 if cifar_stem else 8)
    assert net(torch.randn(2, 2, 32, 32)).shape == (2, 512)
    assert len(net.stages) == 8


def test_resnet18_out_features_adds_a_linear_layer_only_for_another_width():
    assert isinstance(ResNet18(3, 512).fc, nn.Identity)
    narrow = ResNet18(3, 64).eval()
    assert isinstance(narrow.fc, nn.Linear) and narrow.fc.in_features == 512
    assert narrow.out_features == 64
    assert narrow(torch.randn(2, 3, 16, 16)).shape == (2, 64)


def test_projection_head_is_linear_batchnorm_relu_linear():
    head = ProjectionHead(8, 16, 4)
    assert [type(m).__name__ for m in head.layers] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
    ]
    assert head.layers[0].out_features == 16 and head.out_features == 4
    assert head(torch.randn(5, 8)).shape == (5, 4)


def test_embedding_dim_follows_the_rule_of_thumb_between_2_and_16():
    assert [embedding_dim(k) for k in (1, 2, 3, 10, 50, 1000)] == [2, 2, 3, 6, 14, 16]


def test_tabular_embedding_passes_continuous_values_and_embeds_each_column():
    front = TabularEmbedding(2, [3, 40])  # default widths: embedding_dim(3), (40)
    assert [e.embedding_dim for e in front.embeddings] == [3, 13]
    assert [e.num_embeddings for e in front.embeddings] == [3, 40]
    assert front.out_features == 2 + 3 + 13
    x = torch.tensor([[0.5, -1.0, 2.0, 39.0]])
    out = front(x)
    assert out.shape == (1, 18)
    torch.testing.assert_close(out[0, :2], x[0, :2])
    torch.testing.assert_close(out[0, 2:5], front.embeddings[0].weight[2])
    torch.testing.assert_close(out[0, 5:], front.embeddings[1].weight[39])


@pytest.mark.parametrize(
    ("name", "shape", "n_components", "kind", "width"),
    [
        ("mlp", (7,), None, MLP, 64),
        ("mlp", (7,), 5, MLP, 5),
        ("convnet", (1, 8, 8), None, ConvNet, 128),
        ("resnet18", (3, 32, 32), None, ResNet18, 512),
        ("resnet18", (3, 32, 32), 32, ResNet18, 32),
    ],
)
def test_build_encoder_choices(name, shape, n_components, kind, width):
    net = build_encoder(name, shape, n_components, hidden_layer_sizes=(16,)).eval()
    assert type(net) is kind and net.out_features == width
    assert net(torch.zeros(2, *shape)).shape == (2, width)
    if n_components is None:
        assert width == DEFAULT_COMPONENTS[name]


def test_build_encoder_passes_the_hidden_widths_to_the_mlp_and_refuses_other_names():
    net = build_encoder("mlp", (7,), 3, hidden_layer_sizes=(11, 13))
    assert [m.out_features for m in net.layers if isinstance(m, nn.Linear)] == [11, 13, 3]
    with pytest.raises(ValueError, match="unknown encoder 'vit'"):
        build_encoder("vit", (3, 8, 8), 8)
    # Without a width the default width is not looked up first (once a KeyError).
    with pytest.raises(
        ValueError, match=r"unknown encoder 'vit'; choose one of \['convnet'"
    ):
        build_encoder("vit", (3, 8, 8), None)


def test_init_resnet_weights_sets_batchnorm_and_draws_kaiming_normal_convolutions():
    torch.manual_seed(0)
    net = ResNet18(3, weight_init="pytorch")
    with torch.no_grad():
        for bn in [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]:
            bn.weight.fill_(0.3)
            bn.bias.fill_(0.7)
    linear = nn.Linear(4, 4)
    before_linear = linear.weight.detach().clone()
    wrapper = nn.Sequential(net, linear)
    torch.manual_seed(1)
    init_resnet_weights(wrapper)
    for bn in [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]:
        assert (bn.weight == 1).all() and (bn.bias == 0).all()
    assert torch.equal(linear.weight, before_linear)  # linear layers keep theirs
    conv = net.stages[6].conv1  # 512 x 256 x 3 x 3: many draws, a tight std
    assert conv.weight.std().item() == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.02)
    # The same global seed draws the same weights.
    again = ResNet18(3, weight_init="pytorch")
    torch.manual_seed(1)
    init_resnet_weights(again)
    assert torch.equal(again.stages[6].conv1.weight, conv.weight)


def test_init_resnet_weights_zero_init_residual_alone_leaves_the_convolutions():
    torch.manual_seed(0)
    net = ResNet18(1, weight_init="pytorch")
    convs = [m.weight.detach().clone() for m in net.modules() if isinstance(m, nn.Conv2d)]
    init_resnet_weights(net, kaiming=False, zero_init_residual=True)
    after = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(torch.equal(a, b) for a, b in zip(convs, after))
    for block in [m for m in net.modules() if isinstance(m, BasicBlock)]:
        assert (block.bn2.weight == 0).all() and (block.bn1.weight == 1).all()
