"""SCARF-style corruption of table rows, batched on the training device."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["TabularAugment"]


class TabularAugment:
    """Random views of table rows: feature corruption plus optional Gaussian noise.

    For each view, every cell of a row is independently replaced with probability
    ``corruption_rate`` by the value of the same feature in a row drawn uniformly from
    ``pool`` (the empirical marginal of that feature, as in SCARF); then Gaussian noise of
    standard deviation ``noise_scale`` is added. Everything is one batched tensor
    operation on the device of ``pool``; randomness comes from the generator passed in.

    Parameters
    ----------
    corruption_rate : float, default=0.2
        Probability that a cell is replaced.
    noise_scale : float, default=0.0
        Standard deviation of the additive noise (features are standardised first).

    Examples
    --------
    >>> import torch
    >>> pool = torch.arange(12.0).reshape(4, 3)
    >>> aug = TabularAugment(corruption_rate=0.0)
    >>> torch.equal(aug(pool[:2], pool, torch.Generator().manual_seed(0)), pool[:2])
    True
    """

    def __init__(self, corruption_rate: float = 0.2, noise_scale: float = 0.0) -> None:
        self.corruption_rate = corruption_rate
        self.noise_scale = noise_scale

    def __call__(self, x: Tensor, pool: Tensor, generator: torch.Generator) -> Tensor:
        """Return one random view of the rows ``x``.

        Parameters
        ----------
        x : Tensor of shape (n, d)
            Standardised rows to corrupt.
        pool : Tensor of shape (m, d)
            Rows whose values replace corrupted cells (the training data).
        generator : torch.Generator
            Source of randomness, on the device of ``x``.

        Returns
        -------
        Tensor of shape (n, d)
        """
        n, d = x.shape
        view = x
        if self.corruption_rate > 0:
            mask = (
                torch.rand(n, d, generator=generator, device=x.device)
                < self.corruption_rate
            )
            rows = torch.randint(
                0, pool.shape[0], (n, d), generator=generator, device=x.device
            )
            view = _replace(x, mask, rows, pool)
        if self.noise_scale > 0:
            noise = torch.randn(n, d, generator=generator, device=x.device, dtype=x.dtype)
            view = view + self.noise_scale * noise
        return view


def _replace(x: Tensor, mask: Tensor, rows: Tensor, pool: Tensor) -> Tensor:
    """``x`` with the cells ``(i, j)`` where ``mask`` holds set to ``pool[rows[i, j], j]``.

    Each replacement is a random read from the pool, so the cost is memory latency. On
    the CPU only the masked cells are read (half the time at a 40% rate); elsewhere all
    cells are gathered and selected, which needs no data-dependent shape (``nonzero``
    would synchronise an accelerator with the host).
    """
    if x.device.type != "cpu":
        return torch.where(mask, pool.gather(0, rows), x)
    d = x.shape[1]
    cells = mask.reshape(-1).nonzero().squeeze(1)
    donors = rows.reshape(-1).index_select(0, cells).mul_(d).add_(cells % d)
    out = x.clone()
    out.view(-1).index_copy_(0, cells, pool.reshape(-1).index_select(0, donors))
    return out
