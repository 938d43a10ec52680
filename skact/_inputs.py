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

#: Rows converted at a time, so no float64 copy of a whole data set is ever made.
CHUNK_ROWS = 65536

#: Values per float64 chunk when measuring statistics (8 MiB, whatever the width).
CHUNK_VALUES = 2**20


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
        self.mean = mean.astype(np.float32)
        self.scale = scale.astype(np.float32)
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
        mean = np.zeros(X.shape[1])
        sq = np.zeros(X.shape[1])
        rows = max(1, CHUNK_VALUES // max(1, X.shape[1]))
        for start in range(0, X.shape[0], rows):
            chunk = np.asarray(X[start : start + rows], dtype=np.float64)
            mean += chunk.sum(axis=0)
            sq += np.square(chunk).sum(axis=0)
        mean /= X.shape[0]
        var = np.maximum(sq / X.shape[0] - mean**2, 0.0)
        scale = np.sqrt(var)
        scale[scale < 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
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
        for start in range(0, X.shape[0], CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            np.subtract(X[start:stop], self.mean, out=out[start:stop], casting="unsafe")
            out[start:stop] /= self.scale
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
