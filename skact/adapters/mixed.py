"""Mixed-type tables: numeric, boolean and categorical columns, with optional gaps.

The user's table is read column by column (:func:`skact.io.tables.read_table`). The
:class:`MixedTableAdapter` is fitted on it: it decides which columns are categorical,
fixes their categories, measures the numeric columns' statistics, and stores every row
as one float32 tensor laid out as

    [standardised numeric columns | missing indicators | categorical codes]

so that the training loop can index rows as it does for numeric tables. Categorical
codes are embedded by :class:`skact.networks.TabularEmbedding`, the encoder's first
layer. Column ``j``'s codes are ``0 .. K_j - 1`` for its categories (``categories_[j]``)
and ``K_j`` for a category not seen in ``fit`` (the *unknown* slot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from sklearn.utils.validation import validate_data
from torch import Tensor, nn

from .. import _warnings
from ..augment.tabular import TabularAugment, table_views
from ..io.tables import MixedTable, as_float, is_missing, read_table, string_cell
from ..networks import TabularEmbedding
from .base import UNSAVED_AUGMENT, SavedArray, TableAdapterMixin
from .table import outside_range, safe_scale

if TYPE_CHECKING:
    from .._encoder import ACTEncoder

__all__ = [
    "MixedPreprocessing",
    "MixedTableAdapter",
    "encode",
    "fit_categories",
    "resolve_categorical",
]

#: Numeric values beyond this are standardised in units of their column's size: the
#: squares of values near 1e154 overflow float64 (and a sum over 1e8 rows of values
#: near 1e150 would).
HUGE = 1e100

#: Rows prepared at a time by ``to_storage`` (float64 numeric columns and int64 codes).
CHUNK_ROWS = 65536


def _unit(size: float) -> float:
    """What to divide a numeric column by before its sums and differences: its size
    when beyond :data:`HUGE`, else 1.0 (which leaves ordinary columns bit for bit)."""
    return float(size) if size > HUGE else 1.0


def resolve_categorical(
    categorical_features: Any, table: MixedTable, feature_names: np.ndarray | None
) -> np.ndarray:
    """Boolean mask of the categorical columns, as HistGradientBoosting reads it.

    Parameters
    ----------
    categorical_features : "from_dtype" or array-like of int, str or bool
        ``"from_dtype"``: the columns whose type is categorical (see
        :class:`MixedTable`). Otherwise column indices, column names (DataFrames) or a
        boolean mask; columns holding strings must be among them.
    table : MixedTable
    feature_names : ndarray of str or None
        ``feature_names_in_`` of the estimator.

    Returns
    -------
    ndarray of bool of shape (n_features,)
    """
    n = len(table.columns)
    if isinstance(categorical_features, str):  # "from_dtype", checked by the estimator
        return table.string_like.copy()
    spec = np.asarray(categorical_features)
    mask = np.zeros(n, dtype=bool)
    if spec.size == 0:
        pass
    elif spec.dtype.kind == "b":
        if spec.shape != (n,):
            raise ValueError(
                f"categorical_features as a boolean mask must have shape ({n},), got "
                f"{spec.shape}."
            )
        mask = spec.astype(bool)
    elif spec.dtype.kind in "iu":
        if spec.min() < 0 or spec.max() >= n:
            raise ValueError(
                f"categorical_features holds indices outside [0, {n - 1}]: {spec.tolist()}."
            )
        mask[spec] = True
    elif spec.dtype.kind in "UO":
        if feature_names is None:
            raise ValueError(
                "categorical_features names columns, but X has no column names; pass "
                "a DataFrame or give indices or a boolean mask."
            )
        names = list(feature_names)
        unknown = [str(s) for s in spec.ravel() if s not in names]
        if unknown:
            raise ValueError(
                f"categorical_features names columns that are not in X: {unknown}."
            )
        mask[[names.index(s) for s in spec.ravel()]] = True
    else:
        raise ValueError(
            "categorical_features must be 'from_dtype', or an array-like of column "
            f"indices, names or booleans; got dtype {spec.dtype}."
        )
    strays = [table.names[j] for j in np.flatnonzero(table.string_like & ~mask)]
    if strays:
        raise ValueError(
            f"columns {strays} hold strings or categories but are not in "
            "categorical_features; add them, or use categorical_features='from_dtype'."
        )
    return mask


def _homogeneous(values: np.ndarray, name: str) -> np.ndarray:
    """Non-missing categorical values as a str array or a numeric array."""
    if values.dtype.kind != "O":
        return values
    if len(values) == 0:
        return values.astype(str)
    strings = np.asarray(string_cell(values), dtype=bool)
    if strings.all():
        return values.astype(str)
    if not strings.any():
        return values.astype(np.float64) if _has_float(values) else values.astype(np.int64)
    raise TypeError(
        f"categorical column {name!r} mixes strings and numbers; convert it to one type "
        "(for example with .astype(str))."
    )


def _has_float(values: np.ndarray) -> bool:
    return any(isinstance(v, (float, np.floating)) for v in values)


def fit_categories(
    column: np.ndarray, handle_missing: str, name: str
) -> tuple[np.ndarray, bool]:
    """The sorted categories of one column, and whether a missing category is added.

    Parameters
    ----------
    column : ndarray of shape (n_samples,)
    handle_missing : {"error", "indicator"}
    name : str
        Column name, for errors.

    Returns
    -------
    categories : ndarray
        Sorted unique non-missing values (``object`` for strings, as in
        :class:`~sklearn.preprocessing.OneHotEncoder`); NaN is appended last when
        ``handle_missing="indicator"`` and the column has missing values.
    has_missing : bool
        Whether NaN was appended.
    """
    missing = is_missing(column)
    categories = np.unique(_homogeneous(column[~missing], name))
    if categories.dtype.kind in "US":
        categories = categories.astype(object)
    if len(categories) == 0:
        raise ValueError(
            f"categorical column {name!r} has no non-missing value in fit; drop it (it "
            "carries no information) or fit on data where it has values."
        )
    has_missing = handle_missing == "indicator" and bool(missing.any())
    if has_missing:
        as_nan = object if categories.dtype.kind == "O" else np.float64
        categories = np.append(categories.astype(as_nan), np.nan)
    return categories, has_missing


def encode(column: np.ndarray, categories: np.ndarray, has_missing: bool) -> np.ndarray:
    """Integer codes of one categorical column.

    Parameters
    ----------
    column : ndarray of shape (n_samples,)
    categories : ndarray
        From :func:`fit_categories`.
    has_missing : bool
        Whether the last category is the missing one.

    Returns
    -------
    ndarray of int64 of shape (n_samples,)
        The index of each value in ``categories``; ``len(categories)`` (the unknown
        slot) for values not among them, and for missing values when no missing
        category was seen in ``fit``.

    Examples
    --------
    >>> column = np.array(["b", "a", None], dtype=object)
    >>> categories, has_missing = fit_categories(column, "indicator", "c")
    >>> categories
    array(['a', 'b', nan], dtype=object)
    >>> encode(np.array(["a", None, "new"], dtype=object), categories, has_missing)
    array([0, 2, 3])
    """
    n_known = len(categories) - has_missing
    known = categories[:n_known]
    unknown = len(categories)
    missing = is_missing(column)
    codes = np.full(column.shape, unknown, dtype=np.int64)
    if has_missing:
        codes[missing] = n_known
    present = column[~missing]
    ints = _as_integers(present, known.dtype) if known.dtype.kind in "iu" else None
    if known.dtype.kind == "O":
        known, present = known.astype(str), present.astype(str)
    elif ints is not None:  # exact: ids beyond 2**53 would collide as float64
        present = ints
    else:
        try:
            known, present = known.astype(np.float64), present.astype(np.float64)
        except (TypeError, ValueError):  # strings in a numeric column: all unknown
            return codes
    if len(known):
        idx = np.clip(np.searchsorted(known, present), 0, len(known) - 1)
        codes[~missing] = np.where(known[idx] == present, idx, unknown)
    return codes


def _as_integers(values: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """``values`` as exact integers of ``dtype``; None if some are not integers of it."""
    if values.dtype.kind in "iu":
        if not np.can_cast(values.dtype, dtype):  # uint64 against int64 categories
            return None
        return values.astype(dtype)
    if values.dtype.kind != "O":
        return None
    try:
        ints = values.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        return None
    # astype truncates 1.5 and parses "1": only values equal to their integer count.
    return ints if bool((ints.astype(object) == values).all()) else None


class MixedPreprocessing(nn.Module):
    """A mixed table's rows as :meth:`MixedTableAdapter.to_storage` prepares them.

    Takes the numeric columns as float64 (NaN for a gap) and the categorical columns
    as int64 codes, and returns the float32 rows
    ``[standardised numeric | missing indicators | codes]`` that the encoder (its
    :class:`~skact.networks.TabularEmbedding` first) reads. Column ``j``'s code is
    the index of its value in ``categories_[j]`` (whose last entry is NaN where the
    column had gaps in ``fit``: a gap's code is then that index); any other code,
    such as -1, means a category unknown to the model (and a gap where the column had
    none in ``fit``), as ``transform`` encodes them.

    Parameters
    ----------
    mean, scale : ndarray of shape (n_numeric,)
        The adapter's statistics of the numeric columns.
    indicators : ndarray of int
        Positions, among the numeric columns, of those with a missing indicator.
    cardinalities : sequence of int
        ``len(categories_[j])`` of each categorical column.
    """

    mean: Tensor
    scale: Tensor
    unit: Tensor
    indicators: Tensor
    cardinalities: Tensor

    def __init__(
        self,
        mean: np.ndarray,
        scale: np.ndarray,
        indicators: np.ndarray,
        cardinalities: list[int],
    ) -> None:
        super().__init__()
        unit = np.array(
            [_unit(max(abs(m), s)) for m, s in zip(mean, scale)], dtype=np.float64
        )
        self.n_numeric = len(unit)
        self.n_indicators = len(indicators)
        self.n_categorical = len(cardinalities)
        buffers = {
            "mean": torch.as_tensor(np.asarray(mean, dtype=np.float64) / unit),
            "scale": torch.as_tensor(np.asarray(scale, dtype=np.float64) / unit),
            "unit": torch.as_tensor(unit),
            "indicators": torch.as_tensor(indicators, dtype=torch.int64),
            "cardinalities": torch.as_tensor(cardinalities, dtype=torch.int64),
        }
        for name, value in buffers.items():
            # None for an empty one: torch.export.save stores empty tensors that its
            # load cannot read back.
            self.register_buffer(name, value if value.numel() else None)

    def forward(self, numeric: Tensor, codes: Tensor) -> Tensor:
        parts = []
        if self.n_numeric:
            # Divided as to_storage divides: by each column's size beyond HUGE.
            standardised = (numeric / self.unit - self.mean) / self.scale
            gaps = torch.isnan(numeric)
            parts.append(
                torch.where(gaps, torch.zeros_like(standardised), standardised).float()
            )
            if self.n_indicators:
                parts.append(gaps[:, self.indicators].float())
        if self.n_categorical:
            known = (codes >= 0) & (codes < self.cardinalities)
            unknown = self.cardinalities.expand_as(codes)
            parts.append(torch.where(known, codes, unknown).float())
        return torch.cat(parts, dim=1)


class OneSidedTable(nn.Module):
    """:class:`MixedPreprocessing` of a table without numeric or without categorical
    columns, taking the one input there is (the other is an empty matrix, made here).

    Parameters
    ----------
    preprocessing : MixedPreprocessing
    numeric : bool
        Whether the input is the numeric columns (else the codes).
    """

    def __init__(self, preprocessing: MixedPreprocessing, numeric: bool) -> None:
        super().__init__()
        self.preprocessing = preprocessing
        self.numeric = numeric

    def forward(self, x: Tensor) -> Tensor:
        if self.numeric:
            codes = torch.zeros((x.shape[0], 0), dtype=torch.int64, device=x.device)
            return self.preprocessing(x, codes)
        numeric = torch.zeros((x.shape[0], 0), dtype=torch.float64, device=x.device)
        return self.preprocessing(numeric, x)


def _numeric_width(state: dict[str, Any], fitted: dict[str, Any]) -> Any:
    """The length of the saved statistics: the number of numeric columns."""
    return state["is_categorical"].count(False)


class MixedTableAdapter(TableAdapterMixin):
    """Input adapter for tables of numeric, boolean and categorical columns.

    Numeric columns are standardised; with ``handle_missing="indicator"`` a missing
    numeric value becomes the column mean plus a 1 in the column's missing indicator
    (an indicator exists for each numeric column with gaps in ``fit``). Categorical
    columns become integer codes for :class:`skact.networks.TabularEmbedding`.
    Corruption works per column, whatever its type: a corrupted cell (with its missing
    indicator) takes the value of the same column in another row, so a categorical
    cell takes a category drawn from the column's empirical distribution, as SCARF
    does. Gaussian noise touches only the standardised numeric values.

    Parameters
    ----------
    is_categorical : ndarray of bool of shape (n_features,)
        Which input columns are categorical.
    categories : list of ndarray
        Categories of each categorical column (see :func:`fit_categories`).
    has_missing_category : list of bool
        Whether each categorical column's last category is the missing one.
    mean, scale : ndarray of shape (n_numeric,)
        Statistics of the numeric columns (a constant column gets scale 1).
    indicators : ndarray of int
        Positions, among the numeric columns, of those with a missing indicator.
    handle_missing : {"error", "indicator"}
    augment : TabularAugment
        Corruption rate and noise scale of the views.
    """

    kind: ClassVar[str] = "mixed"
    label: ClassVar[str] = "mixed table"
    saved_arrays: ClassVar[dict[str, SavedArray]] = {
        "mean": SavedArray(torch.float64, _numeric_width),
        "scale": SavedArray(torch.float64, _numeric_width, positive=True),
        "minimum": SavedArray(torch.float64, _numeric_width, optional=True),
        "maximum": SavedArray(torch.float64, _numeric_width, optional=True),
    }

    def __init__(
        self,
        is_categorical: np.ndarray,
        categories: list[np.ndarray],
        has_missing_category: list[bool],
        mean: np.ndarray,
        scale: np.ndarray,
        indicators: np.ndarray,
        handle_missing: str,
        augment: TabularAugment,
        minimum: np.ndarray | None = None,
        maximum: np.ndarray | None = None,
    ) -> None:
        self.minimum = None if minimum is None else np.asarray(minimum, dtype=np.float64)
        self.maximum = None if maximum is None else np.asarray(maximum, dtype=np.float64)
        self.is_categorical_ = np.asarray(is_categorical, dtype=bool)
        self.categories_ = categories
        self.has_missing_category = list(has_missing_category)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.indicators = np.asarray(indicators, dtype=np.int64)
        self.handle_missing = handle_missing
        self.augment = augment
        self._numeric = np.flatnonzero(~self.is_categorical_)
        self._categorical = np.flatnonzero(self.is_categorical_)
        n_num, n_ind = len(self._numeric), len(self.indicators)
        self.n_continuous = n_num + n_ind
        self.input_shape: tuple[int, ...] = (self.n_continuous + len(self._categorical),)
        # Column group of each stored column: its numeric column, the numeric column an
        # indicator belongs to, or its categorical column; corruption draws per group.
        self._groups = np.concatenate(
            [np.arange(n_num), self.indicators, n_num + np.arange(len(self._categorical))]
        )
        self._group_index: dict[torch.device, Tensor] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The per-device copies of the group index are a cache: not pickled, so that a
        # model pickled on a GPU and loaded on a CPU does not find a stale entry.
        return {**self.__dict__, "_group_index": {}}

    @classmethod
    def read(cls, X: Any, estimator: ACTEncoder, reset: bool) -> MixedTable:
        """``X`` read column by column; ``reset`` records its features.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        estimator : ACTEncoder
            Gives ``handle_missing``; receives ``n_features_in_`` and
            ``feature_names_in_`` (checked against them when not ``reset``).
        reset : bool

        Returns
        -------
        MixedTable
        """
        table = read_table(X, estimator.handle_missing)
        validate_data(estimator, X, reset=reset, skip_check_array=True)
        return table

    @classmethod
    def from_input(
        cls,
        X: MixedTable,
        estimator: ACTEncoder,
        device: torch.device,
        measure: bool = True,
    ) -> MixedTableAdapter:
        """The adapter of ``X`` with ``estimator``'s categorical columns and views.

        Parameters
        ----------
        X : MixedTable
            Output of :meth:`read`.
        estimator : ACTEncoder
        device : torch.device
            Unused: tables are handled alike on every device.
        measure : bool, default=True
            Unused: the statistics are one cheap pass.

        Returns
        -------
        MixedTableAdapter
        """
        names = getattr(estimator, "feature_names_in_", None)
        mask = resolve_categorical(estimator.categorical_features, X, names)
        augment = table_views(
            estimator.augment,
            estimator.corruption_rate,
            estimator.noise_scale,
            bool(mask.any()),
        )
        return cls.fit(X, mask, estimator.handle_missing, augment)

    def fitted_attributes(self) -> dict[str, Any]:
        """``categories_`` per categorical column; ``is_categorical_`` (None if none).

        Returns
        -------
        dict
        """
        mask = self.is_categorical_
        return {
            "categories_": list(self.categories_),
            "is_categorical_": mask if mask.any() else None,
        }

    @classmethod
    def fit(
        cls,
        table: MixedTable,
        is_categorical: np.ndarray,
        handle_missing: str,
        augment: TabularAugment,
    ) -> MixedTableAdapter:
        """Fix the categories and measure the numeric statistics of ``table``.

        Parameters
        ----------
        table : MixedTable
        is_categorical : ndarray of bool of shape (n_features,)
            From :func:`resolve_categorical`.
        handle_missing : {"error", "indicator"}
        augment : TabularAugment

        Returns
        -------
        MixedTableAdapter
        """
        categories, has_missing = [], []
        for j in np.flatnonzero(is_categorical):
            cats, missing = fit_categories(table.columns[j], handle_missing, table.names[j])
            categories.append(cats)
            has_missing.append(missing)
        numeric = [as_float(table.columns[j]) for j in np.flatnonzero(~is_categorical)]
        mean, std, magnitude, indicators, low, high = [], [], [], [], [], []
        for i, column in enumerate(numeric):
            present = column[~np.isnan(column)]
            low.append(present.min() if present.size else 0.0)
            high.append(present.max() if present.size else 0.0)
            largest = np.abs(present).max() if present.size else 0.0
            unit = _unit(largest)  # an overflowing std made such a column all zeros
            mean.append((present / unit).mean() * unit if present.size else 0.0)
            std.append((present / unit).std() * unit if present.size else 1.0)
            magnitude.append(largest)
            if present.size < column.size:
                indicators.append(i)
        return cls(
            is_categorical,
            categories,
            has_missing,
            np.array(mean, dtype=np.float64),
            safe_scale(np.array(std), np.array(magnitude)),
            np.array(indicators, dtype=np.int64),
            handle_missing,
            augment,
            np.array(low, dtype=np.float64),
            np.array(high, dtype=np.float64),
        )

    def warn_unfamiliar(self, X: MixedTable, names: list[str] | None) -> None:
        """Warn once per kind if ``X`` holds categories or numbers unseen in ``fit``.

        An :class:`~skact.UnseenCategoryWarning` names the categorical columns with
        values not among ``categories_`` (encoded as the unknown category; a gap counts
        where the column had none in ``fit``), an :class:`~skact.OutOfRangeWarning` the
        numeric columns with values beyond the fitted minimum or maximum by more than
        the fitted standard deviation (skipped for a model saved without its range).
        Nothing is changed.

        Parameters
        ----------
        X : MixedTable
            Output of :meth:`read`.
        names : list of str or None
            Unused: the table knows its columns' names.
        """
        # A column at a time: a running "any" per row, no (rows x columns) matrix.
        counts: dict[str, int] = {}
        hit = np.zeros(len(X), dtype=bool)
        for i, j in enumerate(self._categorical):
            cats = self.categories_[i]
            unseen = encode(X.columns[j], cats, self.has_missing_category[i]) == len(cats)
            if unseen.any():
                counts[X.names[j]] = int(unseen.sum())
                hit |= unseen
        _warnings.warn_unseen_categories(counts, int(hit.sum()), stacklevel=4)
        if self.minimum is None or self.maximum is None or not len(self._numeric):
            return
        counts, hit = {}, np.zeros(len(X), dtype=bool)
        for i, j in enumerate(self._numeric):
            window = slice(i, i + 1)
            outside = outside_range(
                as_float(X.columns[j])[:, None],
                self.minimum[window], self.maximum[window], self.scale[window],
            )[:, 0]  # fmt: skip
            if outside.any():
                counts[X.names[j]] = int(outside.sum())
                hit |= outside
        _warnings.warn_out_of_range(counts, int(hit.sum()), stacklevel=4)

    def to_storage(self, X: object) -> Tensor:
        """Rows as ``[standardised numeric | missing indicators | codes]``, float32.

        Parameters
        ----------
        X : MixedTable or DataFrame or array-like of shape (n_samples, n_features)
            Rows with the columns seen in ``fit``.

        Returns
        -------
        Tensor of shape (n_samples, input_shape[0]), float32, on the CPU
        """
        if not isinstance(X, MixedTable):
            X = read_table(X, self.handle_missing)
        # The exported program's own module, so that the two cannot drift apart.
        module = MixedPreprocessing(
            self.mean, self.scale, self.indicators, [len(c) for c in self.categories_]
        )
        out = torch.empty((len(X), self.input_shape[0]), dtype=torch.float32)
        for start in range(0, len(X), CHUNK_ROWS):
            part = X[start : start + CHUNK_ROWS]
            numeric = np.empty((len(part), len(self._numeric)), dtype=np.float64)
            for i, j in enumerate(self._numeric):
                numeric[:, i] = as_float(part.columns[j])
            codes = np.empty((len(part), len(self._categorical)), dtype=np.int64)
            for i, j in enumerate(self._categorical):
                codes[:, i] = encode(
                    part.columns[j], self.categories_[i], self.has_missing_category[i]
                )
            rows = module(torch.from_numpy(numeric), torch.from_numpy(codes))
            out[start : start + len(part)] = rows
        return out

    def preprocessing_module(self) -> nn.Module:
        """What :meth:`to_storage` does, as a torch module.

        Returns
        -------
        MixedPreprocessing or OneSidedTable
            Takes the numeric columns (float64, NaN for a gap) and the categorical
            columns' codes (int64; see :meth:`input_codes` and
            :class:`MixedPreprocessing`), in the table's column order within each;
            only the one of them that has columns where the other has none.
        """
        module = MixedPreprocessing(
            self.mean, self.scale, self.indicators, [len(c) for c in self.categories_]
        )
        if len(self._numeric) and len(self._categorical):
            return module
        return OneSidedTable(module, numeric=bool(len(self._numeric)))

    def input_spec(self, columns: list[str] | None) -> dict[str, Any]:
        """The inputs of :meth:`preprocessing_module`, and the codes of each
        categorical column.

        Parameters
        ----------
        columns : list of str or None
            The table's column names; None: ``x0``, ``x1``, ...

        Returns
        -------
        dict
            ``inputs``: ``numeric`` (float64) and ``codes`` (int64), each where it has
            columns; ``categorical``: per categorical column, its ``name`` and
            :meth:`input_codes`.
        """
        columns = columns or [f"x{j}" for j in range(len(self.is_categorical_))]
        numeric = [columns[j] for j in self._numeric]
        categorical = [columns[j] for j in self._categorical]
        inputs = [
            {"name": name, "dtype": dtype, "shape": ["n", len(cols)], "columns": cols}
            for name, dtype, cols in (
                ("numeric", "float64", numeric),
                ("codes", "int64", categorical),
            )
            if cols
        ]
        codes = [{"name": c, **spec} for c, spec in zip(categorical, self.input_codes())]
        return {"inputs": inputs, "categorical": codes}

    def input_codes(self) -> list[dict[str, Any]]:
        """How each categorical column becomes the code :meth:`preprocessing_module`
        takes: its known values in code order and the code of a gap.

        Returns
        -------
        list of dict
            Per categorical column: ``categories`` (JSON-able values; value ``i`` has
            code ``i``) and ``missing_code`` (the code of a gap: the index of the
            column's missing category, or -1, unknown, where it had no gap in
            ``fit``). Any other value is unknown: code -1.
        """
        return [
            {
                "categories": cats[: len(cats) - missing].tolist(),
                "missing_code": len(cats) - 1 if missing else -1,
            }
            for cats, missing in zip(self.categories_, self.has_missing_category)
        ]

    def view(self, batch: Tensor, pool: Tensor, generator: torch.Generator) -> Tensor:
        """One corrupted view of ``batch``; corrupted cells are drawn from ``pool``.

        Each input column of each row is replaced with probability ``corruption_rate``
        by the same column of a random row of ``pool``; then Gaussian noise of scale
        ``noise_scale`` is added to the numeric values. On an all-numeric table
        without gaps this draws exactly what :class:`TabularAugment` draws.

        Parameters
        ----------
        batch : Tensor of shape (n, d)
        pool : Tensor of shape (m, d)
        generator : torch.Generator

        Returns
        -------
        Tensor of shape (n, d)
        """
        groups = self._group_index.get(batch.device)
        if groups is None:  # copied to each device once, not at every step
            groups = self._group_index[batch.device] = torch.as_tensor(
                self._groups, device=batch.device
            )
        return self.augment(
            batch,
            pool,
            generator,
            groups=groups,
            n_groups=len(self._numeric) + len(self._categorical),
            noisy=len(self._numeric),
        )

    def front_end(self) -> TabularEmbedding:
        """A fresh embedding layer for these columns, to put before the encoder body.

        Returns
        -------
        TabularEmbedding
        """
        return TabularEmbedding(self.n_continuous, [len(c) for c in self.categories_])

    def describe_input(self) -> str:
        """What the network gets: the prepared columns, not the table's.

        Returns
        -------
        str
        """
        with torch.device("meta"):  # its width only
            front = self.front_end()
        n_num, n_cat = len(self._numeric), len(self._categorical)
        parts = [f"{n_num} standardised numeric column{'' if n_num == 1 else 's'}"]
        if len(self.indicators):
            parts.append(f"{len(self.indicators)} missing-value indicators")
        embedded = front.out_features - self.n_continuous
        parts.append(
            f"{embedded} embedding values for {n_cat} categorical column"
            f"{'' if n_cat == 1 else 's'}"
        )
        return (
            f"batches of shape (n, {front.out_features}): the table's {n_num + n_cat} "
            f"columns as ACTEncoder prepares them ({', '.join(parts)}), not as they are"
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the adapter: JSON-able values and float arrays.

        Returns
        -------
        dict
            ``mean`` and ``scale`` are ndarrays; every other value is JSON-able
            (categories are lists without the missing category, which
            ``has_missing_category`` records).
        """
        if type(self.augment) is not TabularAugment:  # a subclass: its code
            raise TypeError(UNSAVED_AUGMENT.format(augment=self.augment))
        return {
            "kind": self.kind,
            "is_categorical": self.is_categorical_.tolist(),
            "categories": [
                c[: len(c) - m].tolist()
                for c, m in zip(self.categories_, self.has_missing_category)
            ],
            "category_dtypes": [
                _dtype_name(c, m)
                for c, m in zip(self.categories_, self.has_missing_category)
            ],
            "has_missing_category": list(self.has_missing_category),
            "mean": self.mean.copy(),
            "scale": self.scale.copy(),
            **(
                {}
                if self.minimum is None or self.maximum is None
                else {"minimum": self.minimum.copy(), "maximum": self.maximum.copy()}
            ),
            "indicators": self.indicators.tolist(),
            "handle_missing": self.handle_missing,
            "corruption_rate": float(self.augment.corruption_rate),
            "noise_scale": float(self.augment.noise_scale),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> MixedTableAdapter:
        """Rebuild an adapter from :meth:`state_dict`'s output.

        Parameters
        ----------
        state : dict

        Returns
        -------
        MixedTableAdapter
        """
        categories = []
        for values, dtype, missing in zip(
            state["categories"], state["category_dtypes"], state["has_missing_category"]
        ):
            cats = np.array(values, dtype=object if dtype == "str" else np.dtype(dtype))
            if missing:
                cats = np.append(
                    cats.astype(object if dtype == "str" else np.float64), np.nan
                )
            categories.append(cats)
        return cls(
            np.array(state["is_categorical"], dtype=bool),
            categories,
            state["has_missing_category"],
            np.asarray(state["mean"]),
            np.asarray(state["scale"]),
            np.array(state["indicators"], dtype=np.int64),
            state["handle_missing"],
            TabularAugment(state["corruption_rate"], state["noise_scale"]),
            None if state.get("minimum") is None else np.asarray(state["minimum"]),
            None if state.get("maximum") is None else np.asarray(state["maximum"]),
        )


def _dtype_name(categories: np.ndarray, has_missing: bool) -> str:
    """``"str"`` for string categories, else the numpy dtype of the known categories."""
    if categories.dtype.kind == "O":
        return "str"
    return categories.dtype.str
