"""Numeric tables: standardised rows, augmented by SCARF corruption.

The container checks that refuse input that is not a table are in
:mod:`skact.io.tables`; the rows themselves are checked by
:func:`skact._checks.validate_table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from .. import _checks, _warnings
from ..augment.tabular import TabularAugment, table_views
from .base import UNSAVED_AUGMENT, SavedArray, TableAdapterMixin, table_width

if TYPE_CHECKING:
    from .._encoder import ACTEncoder

__all__ = ["TablePreprocessing", "TabularAdapter", "outside_range", "safe_scale"]

#: Rows converted at a time, so no float64 copy of a whole data set is ever made.
CHUNK_ROWS = 65536


#: Elements converted at a time by ``to_storage`` (128 KiB of float64 scratch).
CHUNK_ELEMENTS = 16384


#: Elements per chunk when ``fit`` measures statistics (8 MiB of float64 per temporary,
#: whatever the width of the table: 65536 rows of 1,000 features would be 500 MiB).
STATS_CHUNK_ELEMENTS = 2**20


def safe_scale(std: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Standard deviations to divide by, with a safe value for constant columns.

    An exactly constant column gets 1 (as in scikit-learn's StandardScaler). A column
    constant up to rounding gets its largest absolute value where that is above 1, so
    that its rounding noise stays tiny after standardising (a column of 1e20s with
    noise of 1e5 became values of 1e5).

    Parameters
    ----------
    std : ndarray of shape (n_features,)
        Per-column standard deviation.
    magnitude : ndarray of shape (n_features,)
        Per-column largest absolute value: a spread below ``1e-12`` of it is rounding.

    Returns
    -------
    ndarray of shape (n_features,), float64
    """
    scale = np.array(std, dtype=np.float64)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    rounding = (scale > 0) & (scale <= 1e-12 * magnitude)
    scale[rounding] = np.maximum(1.0, magnitude[rounding])
    scale[scale == 0] = 1.0
    return scale


def outside_range(
    X: np.ndarray, minimum: np.ndarray, maximum: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Which values of ``X`` lie beyond the fitted range by more than ``scale``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    minimum, maximum, scale : ndarray of shape (n_features,)
        The fitted range and standard deviation (see :func:`safe_scale`).

    Returns
    -------
    ndarray of bool of shape (n_samples, n_features)
        False for NaN (a gap).

    Examples
    --------
    >>> outside_range(np.array([[0.0], [2.5], [3.5]]), np.array([0.0]),
    ...               np.array([1.0]), np.array([2.0])).ravel()
    array([False, False,  True])
    """
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return (X < minimum - scale) | (X > maximum + scale)


def range_counts(outside: np.ndarray, names: list[str]) -> tuple[dict[str, int], int]:
    """Rows outside the range per column (those with any), and rows with any.

    Parameters
    ----------
    outside : ndarray of bool of shape (n_samples, n_features)
        From :func:`outside_range`.
    names : list of str
        The columns' names.

    Returns
    -------
    counts : dict of str to int
    n_rows : int
    """
    per_column = outside.sum(axis=0)
    counts = {names[j]: int(per_column[j]) for j in np.flatnonzero(per_column)}
    return counts, int(outside.any(axis=1).sum())


class TablePreprocessing(nn.Module):
    """A numeric table's rows as :meth:`TabularAdapter.to_storage` prepares them.

    Takes float64 rows, standardises them in float64 (as ``to_storage`` does: a column
    with a large offset, such as timestamps, keeps its digits) and returns float32.

    Parameters
    ----------
    mean, scale : ndarray of shape (n_features,)
        The adapter's fitted statistics.

    Examples
    --------
    >>> import numpy as np, torch
    >>> module = TablePreprocessing(np.array([1.0, 0.0]), np.array([2.0, 1.0]))
    >>> module(torch.tensor([[3.0, -1.0]], dtype=torch.float64))
    tensor([[ 1., -1.]])
    """

    mean: Tensor
    scale: Tensor

    def __init__(self, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float64))

    def forward(self, X: Tensor) -> Tensor:
        return ((X - self.mean) / self.scale).float()


class TabularAdapter(TableAdapterMixin):
    """Standardised numeric tables, augmented by SCARF corruption.

    Parameters
    ----------
    mean, scale : ndarray of shape (n_features,)
        Per-feature statistics measured in ``fit`` (a constant feature gets scale 1).
    augment : TabularAugment
        How views are drawn.
    minimum, maximum : ndarray of shape (n_features,) or None, default=None
        Per-feature range in ``fit``, for :meth:`warn_unfamiliar` (None: a model saved
        before the range was kept; no check).
    """

    kind: ClassVar[str] = "tabular"
    label: ClassVar[str] = "table"
    saved_arrays: ClassVar[dict[str, SavedArray]] = {
        "mean": SavedArray(torch.float64, table_width),
        "scale": SavedArray(torch.float64, table_width, positive=True),
        "minimum": SavedArray(torch.float64, table_width, optional=True),
        "maximum": SavedArray(torch.float64, table_width, optional=True),
    }

    def __init__(
        self,
        mean: np.ndarray,
        scale: np.ndarray,
        augment: TabularAugment,
        minimum: np.ndarray | None = None,
        maximum: np.ndarray | None = None,
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.augment = augment
        self.minimum = None if minimum is None else np.asarray(minimum, dtype=np.float64)
        self.maximum = None if maximum is None else np.asarray(maximum, dtype=np.float64)
        self.input_shape: tuple[int, ...] = (int(mean.shape[0]),)

    @classmethod
    def read(cls, X: Any, estimator: ACTEncoder, reset: bool) -> np.ndarray:
        """``X`` checked as a numeric table; ``reset`` records its features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        estimator : ACTEncoder
            Receives ``n_features_in_`` and ``feature_names_in_`` (checked against
            them when not ``reset``).
        reset : bool

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        return _checks.validate_table(estimator, X, reset=reset)

    @classmethod
    def from_input(
        cls,
        X: np.ndarray,
        estimator: ACTEncoder,
        device: torch.device,
        measure: bool = True,
    ) -> TabularAdapter:
        """The adapter of ``X`` with ``estimator``'s corruption rate and noise.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Output of :meth:`read`.
        estimator : ACTEncoder
        device : torch.device
            Unused: tables are handled alike on every device.
        measure : bool, default=True
            Unused: the statistics are one cheap pass.

        Returns
        -------
        TabularAdapter
        """
        augment = table_views(
            estimator.augment,
            estimator.corruption_rate,
            estimator.noise_scale,
            has_categorical=False,
        )
        return cls.fit(X, augment)

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
        rows = max(1, min(CHUNK_ROWS, STATS_CHUNK_ELEMENTS // max(1, X.shape[1])))
        mean = np.zeros(X.shape[1])
        for start in range(0, X.shape[0], rows):
            mean += np.asarray(X[start : start + rows], dtype=np.float64).sum(axis=0)
        mean /= X.shape[0]
        sq = np.zeros(X.shape[1])
        magnitude = np.zeros(X.shape[1])
        minimum = np.full(X.shape[1], np.inf)
        maximum = np.full(X.shape[1], -np.inf)
        for start in range(0, X.shape[0], rows):
            chunk = np.asarray(X[start : start + rows], dtype=np.float64)
            sq += np.square(chunk - mean).sum(axis=0)
            magnitude = np.maximum(magnitude, np.abs(chunk).max(axis=0))
            minimum = np.minimum(minimum, chunk.min(axis=0))
            maximum = np.maximum(maximum, chunk.max(axis=0))
        scale = safe_scale(np.sqrt(sq / X.shape[0]), magnitude)
        return cls(mean, scale, augment, minimum, maximum)

    def warn_unfamiliar(self, X: Any, names: list[str] | None) -> None:
        """Warn once if ``X`` holds values far outside the fitted range.

        An :class:`~skact.OutOfRangeWarning` names the columns with values beyond the
        fitted minimum or maximum by more than the fitted standard deviation; nothing
        is changed. No check for a model saved without its range.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Output of :meth:`read`.
        names : list of str or None
            The columns' names; None: ``x0``, ``x1``, ...
        """
        if self.minimum is None or self.maximum is None:
            return
        X = np.asarray(X)
        names = names or [f"x{j}" for j in range(X.shape[1])]
        rows = max(1, CHUNK_ELEMENTS // max(1, X.shape[1]))
        counts: dict[str, int] = {}
        n_rows = 0
        for start in range(0, X.shape[0], rows):  # a chunk at a time: X may be a memmap
            outside = outside_range(
                X[start : start + rows], self.minimum, self.maximum, self.scale
            )
            chunk_counts, chunk_rows = range_counts(outside, names)
            for name, n in chunk_counts.items():
                counts[name] = counts.get(name, 0) + n
            n_rows += chunk_rows
        counts = {name: counts[name] for name in names if name in counts}  # column order
        _warnings.warn_out_of_range(counts, n_rows, stacklevel=4)

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
        # The exported program's own module, so that the two cannot drift apart.
        module = self.preprocessing_module()
        out = torch.empty(X.shape, dtype=torch.float32)
        rows = max(1, CHUNK_ELEMENTS // max(1, X.shape[1]))
        for start in range(0, X.shape[0], rows):
            # float64 arithmetic: X - mean may overflow float32 or lose its digits (an
            # overflow is inf, caught by the output check).
            chunk = np.asarray(X[start : start + rows], dtype=np.float64)
            out[start : start + rows] = module(torch.from_numpy(chunk))
        return out

    def preprocessing_module(self) -> TablePreprocessing:
        """What :meth:`to_storage` does to an array of rows, as a torch module.

        Returns
        -------
        TablePreprocessing
            Takes float64 rows of shape ``(n, n_features)``; returns the network's
            float32 input.
        """
        return TablePreprocessing(self.mean, self.scale)

    def input_spec(self, columns: list[str] | None) -> dict[str, Any]:
        """The input of :meth:`preprocessing_module`: ``X``, float64 rows.

        Parameters
        ----------
        columns : list of str or None
            The table's column names; None: ``x0``, ``x1``, ...

        Returns
        -------
        dict
        """
        width = self.input_shape[0]
        columns = columns or [f"x{j}" for j in range(width)]
        spec = {"name": "X", "dtype": "float64", "shape": ["n", width], "columns": columns}
        return {"inputs": [spec]}

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
            ``mean``, ``scale`` (float64 arrays), ``corruption_rate``, ``noise_scale``;
            ``minimum`` and ``maximum`` (float64 arrays) where the range is known.
        """
        if type(self.augment) is not TabularAugment:  # a subclass: its code
            raise TypeError(UNSAVED_AUGMENT.format(augment=self.augment))
        state: dict[str, object] = {
            "mean": self.mean,
            "scale": self.scale,
            "corruption_rate": float(self.augment.corruption_rate),
            "noise_scale": float(self.augment.noise_scale),
        }
        if self.minimum is not None and self.maximum is not None:
            state.update(minimum=self.minimum, maximum=self.maximum)
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> TabularAdapter:
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
            float(state["corruption_rate"]),
            float(state["noise_scale"]),
        )
        minimum, maximum = state.get("minimum"), state.get("maximum")
        return cls(
            np.asarray(state["mean"]),
            np.asarray(state["scale"]),
            augment,
            None if minimum is None else np.asarray(minimum),
            None if maximum is None else np.asarray(maximum),
        )
