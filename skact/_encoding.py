"""Encoding without gradients: the one batched loop of ``transform`` and the monitor.

:func:`encode_batches` runs an encoder over batches in evaluation mode, without
gradients, under the fit's autocast; :func:`transform_batch_size` sizes those batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ._device import autocast

#: Input values per ``transform`` batch on the CPU (256 KiB of float32): the network's
#: activations then stay small next to the output, whatever the input size.
TRANSFORM_VALUES = 2**16


def transform_batch_size(
    batch_size: int, input_shape: Sequence[int], device: torch.device
) -> int:
    """Samples per ``transform`` batch.

    On an accelerator, large batches (device memory is not the host's RSS). On the CPU,
    at most :data:`TRANSFORM_VALUES` input values per batch: a 32x32 RGB image batch of
    1024 would hold ~0.5 GB of ConvNet activations, ten times the output of 50,000
    images; 21 images hold ~10 MB and run as fast per image.

    Parameters
    ----------
    batch_size : int
        The estimator's training batch size.
    input_shape : sequence of int
        Shape of one network input.
    device : torch.device

    Returns
    -------
    int

    Examples
    --------
    >>> cpu = torch.device("cpu")
    >>> transform_batch_size(256, (64,), cpu), transform_batch_size(256, (3, 32, 32), cpu)
    (1024, 21)
    """
    largest = max(batch_size, 1024)
    if device.type != "cpu":
        return largest
    return max(1, min(largest, TRANSFORM_VALUES // max(1, math.prod(input_shape))))


def encode_batches(
    encoder: nn.Module,
    batches: Iterable[Tensor],
    to_model: Callable[[Tensor], Tensor],
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> Iterator[Tensor]:
    """The representation of each batch, float32, as ``transform`` computes it.

    The encoder runs in evaluation mode, under :func:`torch.inference_mode` and the
    autocast of ``amp_dtype``; its mode is put back when the iteration ends. The
    batches are drawn (and ``to_model`` applied to them) inside the inference mode,
    outside the autocast.

    Parameters
    ----------
    encoder : nn.Module
    batches : iterable of Tensor
        Stored batches on ``device`` (drawn lazily, one at a time).
    to_model : callable
        The adapter's ``to_model``: a stored batch as network input.
    device : torch.device
    amp_dtype : torch.dtype or None
        From :func:`skact._device.autocast_dtype`.

    Yields
    ------
    Tensor of shape (batch size, n_components), float32
    """
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                network_input = to_model(batch)
                with autocast(device, amp_dtype):
                    z = encoder(network_input)
                yield z.float()
    finally:
        encoder.train(was_training)
