"""Encoder networks (MLP, small ConvNet, CIFAR ResNet-18) and the projection head.

Every encoder maps a batch to a representation of shape ``(n, out_features)``; the
projection head is used only inside the loss, as in the ACT paper.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import Tensor, nn

__all__ = [
    "MLP",
    "ConvNet",
    "ProjectionHead",
    "ResNet18",
    "TabularEmbedding",
    "build_encoder",
    "init_resnet_weights",
    "resnet18_from_torchvision",
]


class MLP(nn.Module):
    """Multi-layer perceptron: (Linear, BatchNorm, ReLU) blocks and a final Linear.

    Parameters
    ----------
    in_features : int
        Number of input features.
    hidden_layer_sizes : sequence of int
        Widths of the hidden blocks.
    out_features : int
        Width of the output (the representation).

    Examples
    --------
    >>> import torch
    >>> MLP(5, (16, 16), 3)(torch.zeros(4, 5)).shape
    torch.Size([4, 3])
    """

    def __init__(
        self, in_features: int, hidden_layer_sizes: Sequence[int], out_features: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_layer_sizes:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
            width = size
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class ConvNet(nn.Module):
    """Small ConvNet for tiny images (up to about 32 pixels a side).

    Five 3x3 convolution blocks of ``widths`` channels with BatchNorm and ReLU, a 2x2
    max-pool after the second and fourth, and global average pooling.

    Parameters
    ----------
    in_channels : int
        Image channels.
    out_features : int
        Channels of the last block, the width of the representation.
    widths : sequence of int, default=(32, 32, 64, 64)
        Channels of the first four blocks.

    Examples
    --------
    >>> import torch
    >>> ConvNet(1, 128)(torch.zeros(2, 1, 12, 12)).shape
    torch.Size([2, 128])
    """

    def __init__(
        self, in_channels: int, out_features: int, widths: Sequence[int] = (32, 32, 64, 64)
    ) -> None:
        super().__init__()
        w = list(widths)
        layers: list[nn.Module] = []
        layers += _conv_bn_relu(in_channels, w[0]) + _conv_bn_relu(w[0], w[1])
        layers.append(nn.MaxPool2d(2))
        layers += _conv_bn_relu(w[1], w[2]) + _conv_bn_relu(w[2], w[3])
        layers.append(nn.MaxPool2d(2))
        layers += _conv_bn_relu(w[3], out_features)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.layers = nn.Sequential(*layers)
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with a residual connection.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int, default=1
        Stride of the first convolution (and of the shortcut projection).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 backbone returning the globally pooled features.

    Parameters
    ----------
    in_channels : int, default=3
        Image channels.
    out_features : int or None, default=None
        Width of the representation. None keeps the 512 pooled features; another value
        adds a linear layer from 512 to ``out_features``.
    cifar_stem : bool, default=True
        The CIFAR variant used by the ACT paper: a 3x3 stride-1 first convolution and no
        max-pool. False gives the ImageNet stem (7x7 stride 2 and a max-pool).
    weight_init : {"torchvision", "pytorch"}, default="torchvision"
        ``"torchvision"``: torchvision's ResNet initialisation, Kaiming normal in
        fan-out mode for every convolution, BatchNorm weights 1 and biases 0 (see
        :func:`init_resnet_weights`). ``"pytorch"``: each layer's own default (Kaiming
        uniform with ``a = sqrt(5)`` for the convolutions), skact's choice before
        2026-11-30. Measured with ACT on digits images (10 epochs on the CPU, one seed,
        ``benchmarks/results/resnet_init.md``): torchvision's gave +0.055 test accuracy
        with a linear probe on 5 labels per class and +0.048 with k-NN, ahead in 10 and
        9 of 10 paired label draws.
    zero_init_residual : bool, default=False
        Start the last BatchNorm of every residual block at weight 0, so that each
        block begins as the identity (Goyal et al. 2017), as torchvision's option of
        that name. Applies with either ``weight_init``. In the measurement above it
        helped k-NN most (+0.22 over ``"pytorch"`` with 5 labels per class, against
        +0.05 without it) and the linear probe less (+0.044 against +0.055).

    Examples
    --------
    >>> import torch
    >>> ResNet18(3)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 512])
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_features: int | None = None,
        cifar_stem: bool = True,
        *,
        weight_init: str = "torchvision",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if weight_init not in WEIGHT_INITS:
            raise ValueError(
                f"weight_init must be one of {', '.join(map(repr, WEIGHT_INITS))}, got "
                f"{weight_init!r}"
            )
        if cifar_stem:
            stem: list[nn.Module] = [nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)]
        else:
            stem = [nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)]
        stem += [nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        if not cifar_stem:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        stages: list[nn.Module] = []
        c_in = 64
        for c_out, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            stages += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc: nn.Module = nn.Identity()
        self.out_features = 512
        if out_features is not None and out_features != 512:
            self.fc = nn.Linear(512, out_features)
            self.out_features = out_features
        if weight_init == "torchvision" or zero_init_residual:
            init_resnet_weights(
                self,
                kaiming=weight_init == "torchvision",
                zero_init_residual=zero_init_residual,
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))))


#: Weight initialisations of :class:`ResNet18`.
WEIGHT_INITS = ("torchvision", "pytorch")


def _skact_key(key: str) -> str | None:
    """The :class:`ResNet18` key of a torchvision ResNet-18 key (itself when it is not
    one of torchvision's names); None for ``fc``."""
    if key.startswith("fc."):
        return None
    stem = re.fullmatch(r"(conv1|bn1)\.(.+)", key)
    if stem:
        return f"stem.{0 if stem[1] == 'conv1' else 1}.{stem[2]}"
    block = re.fullmatch(r"layer([1-4])\.([01])\.(.+)", key)
    if block:
        index = 2 * (int(block[1]) - 1) + int(block[2])
        return f"stages.{index}.{block[3].replace('downsample.', 'shortcut.')}"
    return key


def resnet18_from_torchvision(state_dict: Mapping[str, Tensor]) -> ResNet18:
    """A :class:`ResNet18` with the ImageNet stem holding torchvision's ResNet-18 weights.

    The keys of ``torchvision.models.resnet18().state_dict()`` are renamed: ``conv1``
    and ``bn1`` to ``stem.0`` and ``stem.1``; block ``B`` of ``layerL`` to
    ``stages.(2 (L - 1) + B)``, its ``downsample.0`` and ``downsample.1`` to
    ``shortcut.0`` and ``shortcut.1``; the classifier ``fc`` is dropped. The network
    returns torchvision's features before ``fc`` (512 per image), and runs the same
    operations, so it gives the same outputs. Pass it as ``ACTEncoder(encoder=...)``
    with ``image_normalization="imagenet"`` for weights trained on ImageNet.

    Parameters
    ----------
    state_dict : mapping of str to Tensor
        torchvision's ResNet-18 state dict (``fc`` may be missing or of any width; a
        first convolution of another channel count sets ``in_channels``).

    Returns
    -------
    ResNet18
        ``cifar_stem=False``, ``out_features=None``, in training mode.

    Raises
    ------
    KeyError
        A key missing from ``state_dict``, or one that torchvision's ResNet-18 does not
        have, named.
    ValueError
        A tensor whose shape differs from ResNet-18's, named with both shapes.

    Examples
    --------
    >>> net = ResNet18(3, cifar_stem=False)
    >>> weights = {"conv1.weight": net.stem[0].weight, "bn1.bias": net.stem[1].bias}
    >>> resnet18_from_torchvision(weights)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    KeyError: "not a torchvision ResNet-18 state dict: 'bn1.weight' is missing..."
    """
    conv1 = state_dict.get("conv1.weight")
    in_channels = 3 if conv1 is None or conv1.ndim != 4 else int(conv1.shape[1])
    network = ResNet18(in_channels, cifar_stem=False)
    expected = network.state_dict()
    torchvision_key = _torchvision_keys(expected)
    mapped: dict[str, Tensor] = {}
    unexpected: list[str] = []
    for key, value in state_dict.items():
        name = _skact_key(key)
        if name is None:
            continue
        if name not in expected:
            unexpected.append(key)
        mapped[name] = value
    if unexpected:
        raise KeyError(
            f"not a torchvision ResNet-18 state dict: unexpected key {unexpected[0]!r}"
            f"{f' (and {len(unexpected) - 1} more)' if len(unexpected) > 1 else ''}; "
            "expected conv1.*, bn1.*, layer1.0.* ... layer4.1.* and fc.*"
        )
    missing = [torchvision_key[k] for k in expected if k not in mapped]
    if missing:
        raise KeyError(
            f"not a torchvision ResNet-18 state dict: {missing[0]!r} is missing"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}"
        )
    for name, value in mapped.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise ValueError(
                f"{torchvision_key[name]!r} has shape {tuple(value.shape)}; ResNet-18 "
                f"needs {tuple(expected[name].shape)} (a ResNet-34 or wider network is "
                "not a ResNet-18)"
            )
    network.load_state_dict(mapped)
    return network


def _torchvision_keys(state: Mapping[str, Tensor]) -> dict[str, str]:
    """torchvision's key of each :class:`ResNet18` key (ImageNet stem, no ``fc``)."""
    names = {}
    for key in state:
        part = key.split(".")
        if part[0] == "stem":
            names[key] = ".".join(["conv1" if part[1] == "0" else "bn1", *part[2:]])
        else:  # stages.i.rest
            i = int(part[1])
            rest = ".".join(part[2:]).replace("shortcut.", "downsample.")
            names[key] = f"layer{i // 2 + 1}.{i % 2}.{rest}"
    return names


def init_resnet_weights(
    module: nn.Module, *, kaiming: bool = True, zero_init_residual: bool = False
) -> None:
    """Initialise a ResNet's weights in place, as torchvision's ResNet does.

    Parameters
    ----------
    module : torch.nn.Module
        The network; its convolutions, BatchNorms and :class:`BasicBlock` s are set.
    kaiming : bool, default=True
        Every convolution's weight from a normal distribution of standard deviation
        ``sqrt(2 / fan_out)`` (Kaiming normal, fan-out mode, for ReLU), and every
        BatchNorm's weight 1 and bias 0. Linear layers keep their own initialisation,
        as in torchvision. Draws from torch's global generator.
    zero_init_residual : bool, default=False
        Set the weight of the last BatchNorm of every residual block to 0.
    """
    for layer in module.modules():
        if kaiming and isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif kaiming and isinstance(layer, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
    if zero_init_residual:
        for layer in module.modules():
            if isinstance(layer, BasicBlock):
                nn.init.zeros_(layer.bn2.weight)


class ProjectionHead(nn.Module):
    """Projection head used only in the loss: Linear, BatchNorm, ReLU, Linear.

    Parameters
    ----------
    in_features : int
        Width of the representation.
    hidden_features : int
        Width of the hidden layer (the paper uses 1024 on a 512-d ResNet output).
    out_features : int
        Width of the embedding the loss sees.

    Examples
    --------
    >>> import torch
    >>> ProjectionHead(8, 16, 4)(torch.zeros(3, 8)).shape
    torch.Size([3, 4])
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden_features),
            nn.BatchNorm1d(hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, out_features),
        )
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def embedding_dim(n_categories: int) -> int:
    """Default embedding width of a categorical column: grows slowly, capped at 16.

    ``round(1.6 * n_categories ** 0.56)`` (the fast.ai rule of thumb), at least 2.

    Parameters
    ----------
    n_categories : int
        Categories known in ``fit``.

    Returns
    -------
    int

    Examples
    --------
    >>> [embedding_dim(k) for k in (2, 3, 10, 1000)]
    [2, 3, 6, 16]
    """
    return int(min(16, max(2, round(1.6 * n_categories**0.56))))


class TabularEmbedding(nn.Module):
    """Front-end for mixed tables: learned embeddings of categorical codes.

    A row holds ``n_continuous`` real values followed by one integer code per
    categorical column (stored as float). Column ``j``'s codes ``0 .. K_j - 1`` are its
    known categories; code ``K_j`` is the *unknown* slot, for categories not seen in
    ``fit``, and is embedded as the mean of the column's known embeddings (an
    uninformative category, never an index error). The output concatenates the
    continuous values with every column's embedding.

    Parameters
    ----------
    n_continuous : int
        Leading real-valued inputs, passed through unchanged.
    cardinalities : sequence of int
        Known categories ``K_j`` of each categorical column.
    embedding_dims : sequence of int or None, default=None
        Width of each column's embedding; None applies :func:`embedding_dim`.

    Attributes
    ----------
    out_features : int
        ``n_continuous`` plus the sum of the embedding widths.

    Examples
    --------
    >>> import torch
    >>> front = TabularEmbedding(2, [3], [4])
    >>> front(torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 3.0]])).shape
    torch.Size([2, 6])
    """

    def __init__(
        self,
        n_continuous: int,
        cardinalities: Sequence[int],
        embedding_dims: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if embedding_dims is None:
            embedding_dims = [embedding_dim(k) for k in cardinalities]
        self.n_continuous = n_continuous
        self.embeddings = nn.ModuleList(
            nn.Embedding(k, dim) for k, dim in zip(cardinalities, embedding_dims)
        )
        self.out_features = n_continuous + sum(embedding_dims)

    def forward(self, x: Tensor) -> Tensor:
        parts = [x[:, : self.n_continuous]]
        codes = x[:, self.n_continuous :].long()
        for j, embedding in enumerate(self.embeddings):
            known = cast(nn.Embedding, embedding).weight
            table = torch.cat([known, known.mean(dim=0, keepdim=True)])
            parts.append(nn.functional.embedding(codes[:, j], table))
        return torch.cat(parts, dim=1)


#: Default representation width of each named encoder when ``n_components`` is None.
DEFAULT_COMPONENTS = {"mlp": 64, "convnet": 128, "resnet18": 512}


def build_encoder(
    name: str,
    input_shape: tuple[int, ...],
    n_components: int | None,
    hidden_layer_sizes: Sequence[int] = (512, 512),
) -> nn.Module:
    """Build a named encoder for inputs of ``input_shape`` (without the batch axis).

    Parameters
    ----------
    name : {"mlp", "convnet", "resnet18"}
        Architecture.
    input_shape : tuple of int
        ``(n_features,)`` for tables, ``(channels, height, width)`` for images.
        ResNet-18 gets the CIFAR stem for images of at most 64 pixels a side, else
        the ImageNet stem (7x7 stride-2 convolution and max-pool).
    n_components : int or None
        Width of the representation; None takes :data:`DEFAULT_COMPONENTS`.
    hidden_layer_sizes : sequence of int, default=(512, 512)
        Hidden widths of the MLP (ignored by the convolutional encoders).

    Returns
    -------
    torch.nn.Module
        The encoder, with an ``out_features`` attribute.
    """
    if name not in DEFAULT_COMPONENTS:
        raise ValueError(
            f"unknown encoder {name!r}; choose one of {sorted(DEFAULT_COMPONENTS)}"
        )
    width = DEFAULT_COMPONENTS[name] if n_components is None else n_components
    if name == "mlp":
        return MLP(input_shape[0], hidden_layer_sizes, width)
    if name == "convnet":
        return ConvNet(input_shape[0], width)
    if name == "resnet18":
        # The paper's CIFAR stem up to 64 pixels; larger images get the ImageNet stem.
        return ResNet18(input_shape[0], width, cifar_stem=max(input_shape[1:]) <= 64)
    raise ValueError(
        f"unknown encoder {name!r}; choose one of {sorted(DEFAULT_COMPONENTS)}"
    )
