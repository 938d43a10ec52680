"""Freezing parts of an encoder while it trains: ACTEncoder's ``freeze`` parameter.

``freeze=None`` trains everything. ``"batchnorm"`` keeps every batch-norm layer in
evaluation mode: it normalises with its running statistics and never updates them
(its scale and shift still train), as is usual when fine-tuning a network pretrained on
another collection with small batches. An int ``k`` trains only the last ``k`` blocks
of the encoder (see :func:`blocks`); the others keep their weights
(``requires_grad=False``, so the optimiser skips them) and run in evaluation mode, so
their batch-norm statistics stay too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["blocks", "frozen"]

_BATCH_NORM = nn.modules.batchnorm._BatchNorm


def blocks(encoder: nn.Module) -> list[nn.Module]:
    """The blocks of ``encoder`` that ``freeze=k`` counts, in order.

    The encoder's children, each ``nn.Sequential`` or ``nn.ModuleList`` opened into its
    own children (recursively), keeping those with parameters. For skact's
    :class:`~skact.networks.ResNet18`: the stem's convolution and batch norm, the eight
    residual blocks, then the linear layer if ``n_components`` adds one; for
    torchvision's ResNet-18: ``conv1``, ``bn1``, ``layer1.0`` ... ``layer4.1``.

    Parameters
    ----------
    encoder : torch.nn.Module

    Returns
    -------
    list of torch.nn.Module
    """
    found: list[nn.Module] = []
    for child in encoder.children():
        if isinstance(child, nn.Sequential | nn.ModuleList):
            found += blocks(child)
        elif any(True for _ in child.parameters()):
            found.append(child)
    return found


@contextlib.contextmanager
def frozen(encoder: nn.Module, freeze: str | int | None) -> Iterator[list[nn.Module]]:
    """Freeze the parts of ``encoder`` that ``freeze`` names, for the block's duration.

    The frozen parameters get ``requires_grad=False`` (restored on exit, so that the
    fitted module is given back as it was built); the modules to run in evaluation mode
    are yielded, for the trainer to set after every ``encoder.train()``.

    Parameters
    ----------
    encoder : torch.nn.Module
    freeze : None, "none", "batchnorm" or int
        See the module's docstring.

    Yields
    ------
    list of torch.nn.Module
        The modules to keep in evaluation mode (empty when nothing is frozen).

    Raises
    ------
    ValueError
        ``freeze=k`` with ``k`` at least the number of blocks (nothing would be frozen),
        or an encoder without blocks.
    """
    if freeze is None or freeze == "none":
        yield []
        return
    if freeze == "batchnorm":
        yield [m for m in encoder.modules() if isinstance(m, _BATCH_NORM)]
        return
    found = blocks(encoder)
    k = int(freeze)
    if k >= len(found):
        raise ValueError(
            f"freeze={k} trains the last {k} blocks, but the encoder has "
            f"{len(found)} ({', '.join(type(b).__name__ for b in found)}); use a "
            f"smaller freeze, or freeze=None to train them all."
        )
    kept = found[: len(found) - k]
    parameters = [p for block in kept for p in block.parameters()]
    before = [p.requires_grad for p in parameters]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield [m for block in kept for m in block.modules()]
    finally:
        for p, flag in zip(parameters, before, strict=True):
            p.requires_grad_(flag)
