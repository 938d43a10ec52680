"""From user data to tensors: preprocessing fitted in ``fit`` and reused by ``transform``.

An *input adapter* knows one kind of data. It is fitted on the training data (statistics,
shapes) and then turns any batch of that kind into tensors:

- ``input_shape``: the shape of one sample as the network sees it;
- ``to_storage(X)``: the whole data set in its compact host form (float32 rows for tables);
- ``to_model(batch)``: a stored batch, already on the device, as network input;
- ``view(batch, pool, generator)``: one random augmented view of a stored batch.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from .augment.tabular import TabularAugment

#: Values converted at a time (8 MiB in float64, whatever the width of the table), so no
#: float64 copy of a whole data set is ever made.
CHUNK_VALUES = 2**20


def chunk_rows(n_features: int) -> int:
    """Rows per chunk of a table ``n_features`` wide: :data:`CHUNK_VALUES` values."""
    return max(1, CHUNK_VALUES // max(1, n_features))


class InputAdapter(Protocol):
    """What the estimator needs from the adapter of one kind of input."""

    kind: str
    input_shape: tuple[int, ...]

    def to_storage(self, X: object) -> Tensor:  # noqa: D102
        ...

    def to_model(self, batch: Tensor) -> Tensor:  # noqa: D102
        ...

    def view(self, batch: Tensor, pool: Tensor, generator: torch.Generator) -> Tensor:  # noqa: D102
        ...


class TabularAdapter:
    """Standardised numeric tables, augmented by SCARF corruption.

    Parameters
    ----------
    mean, scale : ndarray of shape (n_features,)
        Per-feature statistics measured in ``fit`` (a constant feature gets scale 1).
    augment : TabularAugment
        How views are drawn.
    """

    kind = "tabular"

    def __init__(self, mean: np.ndarray, scale: np.ndarray, augment: TabularAugment) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.augment = augment
        self.input_shape = (mean.shape[0],)

    @classmethod
    def fit(cls, X: np.ndarray, augment: TabularAugment) -> TabularAdapter:
        """Measure the per-feature mean and standard deviation of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated numeric data.
        augment : TabularAugment

        Returns
        -------
        TabularAdapter
        """
        # Two passes in float64: E[x^2] - E[x]^2 cancels catastrophically for columns
        # with a large offset (timestamps), so the variance is taken about the mean.
        rows = chunk_rows(X.shape[1])
        mean = np.zeros(X.shape[1])
        for start in range(0, X.shape[0], rows):
            mean += np.asarray(X[start : start + rows], dtype=np.float64).sum(axis=0)
        mean /= X.shape[0]
        sq = np.zeros(X.shape[1])
        magnitude = np.zeros(X.shape[1])
        for start in range(0, X.shape[0], rows):
            chunk = np.asarray(X[start : start + rows], dtype=np.float64)
            sq += np.square(chunk - mean).sum(axis=0)
            magnitude = np.maximum(magnitude, np.abs(chunk).max(axis=0))
        scale = np.sqrt(sq / X.shape[0])
        # Constant up to rounding, relative to the column's own magnitude.
        scale[scale <= 1e-12 * magnitude] = 1.0
        return cls(mean, scale, augment)

    def to_storage(self, X: object) -> Tensor:
        """Standardise ``X`` into a float32 tensor, chunk by chunk.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        Tensor of shape (n_samples, n_features), float32, on the CPU
        """
        X = np.asarray(X)
        out = np.empty(X.shape, dtype=np.float32)
        rows = chunk_rows(X.shape[1])
        # float64 arithmetic (X - mean may overflow float32 or lose its digits) in one
        # reused chunk-sized buffer.
        buffer = np.empty((min(rows, X.shape[0]), X.shape[1]))
        for start in range(0, X.shape[0], rows):
            stop = min(start + rows, X.shape[0])
            chunk = np.subtract(X[start:stop], self.mean, out=buffer[: stop - start])
            with np.errstate(over="ignore"):  # inf is caught by the output check
                out[start:stop] = np.divide(chunk, self.scale, out=chunk)
        return torch.from_numpy(out)

    def to_model(self, batch: Tensor) -> Tensor:
        """Stored rows are already network input.

        Parameters
        ----------
        batch : Tensor

        Returns
        -------
        Tensor
        """
        return batch

    def view(self, batch: Tensor, pool: Tensor, generator: torch.Generator) -> Tensor:
        """One SCARF view of ``batch``; corrupted cells are drawn from ``pool``.

        Parameters
        ----------
        batch : Tensor of shape (n, d)
        pool : Tensor of shape (m, d)
        generator : torch.Generator

        Returns
        -------
        Tensor of shape (n, d)
        """
        return self.augment(batch, pool, generator)

    def state_dict(self) -> dict[str, object]:
        """Return what :meth:`from_state_dict` needs: JSON-able values and arrays.

        Returns
        -------
        dict
            ``mean``, ``scale`` (float64 arrays), ``corruption_rate``, ``noise_scale``.
        """
        return {
            "mean": self.mean,
            "scale": self.scale,
            "corruption_rate": float(self.augment.corruption_rate),
            "noise_scale": float(self.augment.noise_scale),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, object]) -> TabularAdapter:
        """Rebuild an adapter from :meth:`state_dict` (used by :func:`skact.load`).

        Parameters
        ----------
        state : dict
            As returned by :meth:`state_dict`.

        Returns
        -------
        TabularAdapter
        """
        augment = TabularAugment(
            float(state["corruption_rate"]),  # type: ignore[arg-type]
            float(state["noise_scale"]),  # type: ignore[arg-type]
        )
        return cls(np.asarray(state["mean"]), np.asarray(state["scale"]), augment)
