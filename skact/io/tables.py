"""Table readers: input container checks, and tables read column by column.

:func:`check_not_an_iterator`, :func:`check_table_container` and
:func:`check_not_empty` refuse input that is not a table, naming the conversion.
:func:`read_table` reads a pandas or polars DataFrame, a numpy object array or a list
of rows column by column into a :class:`MixedTable`, each column keeping its own type,
for :class:`skact.adapters.mixed.MixedTableAdapter`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils._dataframe import is_pandas_df, is_polars_df

__all__ = [
    "MixedTable",
    "as_float",
    "check_not_an_iterator",
    "check_not_empty",
    "check_table_container",
    "is_missing",
    "is_missing_cell",
    "is_mixed_input",
    "read_table",
    "string_cell",
    "text_columns",
]


def check_table_container(X: Any, name: str = "ACTEncoder") -> None:
    """Refuse containers that hold data but are not 2-D tables, naming the conversion.

    Called for input that is not images. scikit-learn's own errors for these are
    misleading: a pandas Series fails deep inside with a dtype error, a dict of columns
    was read as image file names (its keys), a list of dicts as objects that are not
    numbers. Other 1-D input (arrays, lists) keeps scikit-learn's "Expected 2D array"
    error, which names the fix for arrays.

    Parameters
    ----------
    X : object
        User input to ``fit``, ``partial_fit`` or ``transform``.
    name : str, default="ACTEncoder"
        The estimator, as named in messages.

    Raises
    ------
    ValueError
        For a 1-D pandas Series or Index or a polars Series.
    TypeError
        For a mapping (a dict of columns) or a sequence of mappings (records).

    Examples
    --------
    >>> import pandas as pd
    >>> check_table_container(pd.DataFrame({"a": [1.0, 2.0]}))
    >>> check_table_container({"a": [1.0, 2.0]})
    Traceback (most recent call last):
    ...
    TypeError: X is a dict, ...
    """
    if isinstance(X, Mapping) and not sp.issparse(X):  # a dok_matrix is a dict too
        raise TypeError(
            f"X is a {type(X).__name__}, but {name} needs a table of shape (n_samples, "
            "n_features). For a dict of columns, pass a DataFrame: pd.DataFrame(X)."
        )
    if isinstance(X, Sequence) and not isinstance(X, str | bytes) and len(X) > 0:
        if isinstance(X[0], Mapping):
            raise TypeError(
                f"X is a {type(X).__name__} of {type(X[0]).__name__}s (one per row), but "
                f"{name} needs a table of shape (n_samples, n_features). Pass a "
                "DataFrame: pd.DataFrame(X)."
            )
    if _is_series(X):
        kind = f"{type(X).__module__.split('.')[0]} {type(X).__name__}"
        raise ValueError(
            f"X is a 1-D {kind}, but {name} needs a table of shape (n_samples, "
            "n_features). To use it as one feature, pass it as a one-column table: "
            "X.to_frame() (or df[['column']] rather than df['column'])."
        )


def check_not_an_iterator(X: Any, name: str = "ACTEncoder") -> None:
    """Refuse a generator or another one-pass iterator, naming the conversion.

    Training reads the data once per epoch, and a generator can be read once; numpy
    would make it an array of one object, whose error names no cause.

    Parameters
    ----------
    X : object
        User input to ``fit``, ``partial_fit`` or ``transform``.
    name : str, default="ACTEncoder"
        The estimator, as named in messages.

    Raises
    ------
    TypeError
        For an iterator (a generator, ``iter(...)``, ``map(...)``, an open file).

    Examples
    --------
    >>> check_not_an_iterator([[1.0, 2.0], [3.0, 4.0]])
    >>> check_not_an_iterator(row for row in [[1.0, 2.0]])
    Traceback (most recent call last):
    ...
    TypeError: X is an iterator (generator), ...
    """
    if isinstance(X, Iterator):
        raise TypeError(
            f"X is an iterator ({type(X).__name__}), but {name} reads its data once per "
            "epoch and "
            "needs it whole: X must be an array-like, a list or a DataFrame (or a "
            "list of images or image paths). Convert it first: np.array(list(X)) for "
            "rows of numbers, pd.DataFrame(list(X)) for records, list(X) for images."
        )


def check_not_empty(X: Any, name: str = "ACTEncoder") -> None:
    """Refuse a DataFrame without rows or without columns.

    scikit-learn's message for an empty DataFrame is "at least one array or dtype is
    required". Arrays keep scikit-learn's messages ("Found array with 0 sample(s)"),
    which name the shape and which its estimator checks expect.

    Parameters
    ----------
    X : object
        User input to ``fit``, ``partial_fit`` or ``transform`` that is not images.
    name : str, default="ACTEncoder"
        The estimator, as named in messages.

    Raises
    ------
    ValueError
        When ``X`` is not an array and has a 2-D ``shape`` with a zero in it.
    """
    shape = getattr(X, "shape", None)
    if isinstance(X, np.ndarray) or not isinstance(shape, tuple) or len(shape) != 2:
        return
    if 0 not in shape:
        return
    rows, columns = (int(n) for n in shape)
    kind = type(X).__name__
    what = "no rows" if rows == 0 else "no columns"
    if rows == 0 and columns == 0:
        what = "no rows and no columns"
    raise ValueError(
        f"X is an empty {kind} ({what}: shape ({rows}, {columns})), but {name} needs a "
        "table with rows and columns (at least 2 rows to fit). Check the step that "
        "built X: a filter that kept no row, or a file read without its columns."
    )


def _is_series(X: Any) -> bool:
    """Whether ``X`` is a pandas Series or Index or a polars Series (all 1-D)."""
    pd, pl = sys.modules.get("pandas"), sys.modules.get("polars")
    return (pd is not None and isinstance(X, pd.Series | pd.Index)) or (
        pl is not None and isinstance(X, pl.Series)
    )


class MixedTable:
    """A table read column by column, each column keeping its own type.

    Numeric and boolean columns are numeric numpy arrays (NaN marks a missing value);
    other columns are object arrays (None or NaN marks a missing value).

    Parameters
    ----------
    columns : list of ndarray of shape (n_samples,)
        The columns.
    string_like : ndarray of bool of shape (n_columns,)
        Columns whose type makes them categorical: a categorical or string dtype, or
        an object column holding strings.
    names : list of str
        Column names, for error messages (``"x0"``, ``"x1"``, ... without a header).
    """

    def __init__(
        self, columns: list[np.ndarray], string_like: np.ndarray, names: list[str]
    ) -> None:
        self.columns = columns
        self.string_like = string_like
        self.names = names

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def __getitem__(self, rows: slice) -> MixedTable:
        return MixedTable([c[rows] for c in self.columns], self.string_like, self.names)


def is_mixed_input(X: Any) -> bool:
    """Whether ``X`` holds a column that is not numeric (strings, categories).

    Parameters
    ----------
    X : DataFrame, array-like
        Raw user input.

    Returns
    -------
    bool
    """
    if is_pandas_df(X):
        import pandas as pd

        return not all(
            pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
            for dtype in X.dtypes
        ) or any(isinstance(dtype, pd.CategoricalDtype) for dtype in X.dtypes)
    if is_polars_df(X):
        import polars as pl

        return not all(d.is_numeric() or d == pl.Boolean for d in X.dtypes)
    if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
        arr = _as_array(X)
        if arr.dtype.kind in "US":
            return True
        if arr.dtype.kind == "O" and arr.ndim == 2:
            return bool(_holds_strings(arr).any())
    return False


def text_columns(X: Any) -> list[str]:
    """The columns of ``X`` that hold text (strings, or categories that are strings):
    names for a DataFrame, positions otherwise.

    Parameters
    ----------
    X : DataFrame, array-like of shape (n_samples, n_features)

    Returns
    -------
    list of str
    """
    if is_pandas_df(X):
        import pandas as pd

        found = []
        for name, dtype in X.dtypes.items():
            if isinstance(dtype, pd.CategoricalDtype):
                values = np.asarray(dtype.categories, dtype=object)
            elif pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                continue
            else:
                values = np.asarray(X[name], dtype=object)
            if np.asarray(string_cell(values), dtype=bool).any():
                found.append(str(name))
        return found
    if is_polars_df(X):
        import polars as pl

        return [
            name
            for name, dtype in X.schema.items()
            if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)
        ]
    arr = _as_array(X)
    if arr.ndim != 2:
        return []
    if arr.dtype.kind in "US":
        return [str(j) for j in range(arr.shape[1])]
    if arr.dtype.kind != "O":
        return []
    return [str(j) for j in np.flatnonzero(_holds_strings(arr))]


def read_table(X: Any, handle_missing: str) -> MixedTable:
    """Read ``X`` into a :class:`MixedTable` and check it for missing and infinite values.

    Parameters
    ----------
    X : DataFrame, array-like of shape (n_samples, n_features)
        Raw user input.
    handle_missing : {"error", "indicator"}
        With ``"error"``, a missing value raises a ValueError that names the column and
        points to the parameter.

    Returns
    -------
    MixedTable
    """
    if sp.issparse(X):
        raise TypeError(
            "Sparse data was passed for X, but dense data is required. Use '.toarray()' "
            "to convert to a dense numpy array."
        )
    if is_pandas_df(X):
        _check_shape(X.shape)
        table = _read_pandas(X)
    elif is_polars_df(X):
        _check_shape(X.shape)
        table = _read_polars(X)
    else:
        table = _read_array(X)
    for name, column in zip(table.names, table.columns):
        if column.dtype.kind == "f" and np.isinf(column).any():
            raise ValueError(f"Input X contains infinity in column {name!r}.")
        if handle_missing == "error" and is_missing(column).any():
            raise ValueError(
                f"Input X contains NaN (a missing value) in column {name!r}. "
                "ACTEncoder(handle_missing='error') rejects missing values; set "
                "handle_missing='indicator' to encode them (numeric: a missing indicator "
                "and the mean; categorical: a learned 'missing' category)."
            )
    return table


def is_missing(column: np.ndarray) -> np.ndarray:
    """Boolean mask of the missing cells of one column (NaN, None, pandas NA, NaT).

    Parameters
    ----------
    column : ndarray of shape (n_samples,)

    Returns
    -------
    ndarray of bool of shape (n_samples,)
    """
    if column.dtype.kind == "f":
        return np.isnan(column)
    if column.dtype.kind == "O":
        return np.asarray(_missing_cell(column), dtype=bool)
    return np.zeros(column.shape, dtype=bool)


def is_missing_cell(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


_missing_cell = np.frompyfunc(is_missing_cell, 1, 1)
#: Whether each cell of an object array is a ``str`` or ``bytes``.
string_cell = np.frompyfunc(lambda v: isinstance(v, (str, bytes)), 1, 1)


def _holds_strings(arr: np.ndarray) -> np.ndarray:
    """Per column of a 2-d object array: whether any cell is a string."""
    if arr.size == 0:
        return np.zeros(arr.shape[1], dtype=bool)
    return np.asarray(np.asarray(string_cell(arr), dtype=bool).any(axis=0))


def _as_array(X: Any) -> np.ndarray:
    arr = np.asarray(X)
    if arr.dtype.kind in "US" and not isinstance(X, np.ndarray):
        arr = np.asarray(X, dtype=object)  # keep the numbers of a list of mixed rows
    return arr


def _check_shape(shape: tuple[int, ...]) -> None:
    """sklearn's errors for a table without rows or without columns."""
    for axis, what in enumerate(("sample", "feature")):
        if shape[axis] < 1:
            raise ValueError(
                f"Found array with 0 {what}(s) (shape={tuple(shape)}) while a minimum "
                "of 1 is required by ACTEncoder."
            )


def _numeric_column(column: np.ndarray) -> np.ndarray:
    """An object column without strings as floats (None -> NaN)."""
    missing = is_missing(column)
    if missing.any():
        column = np.where(missing, np.nan, column)
    return column.astype(np.float64)


def _read_array(X: Any) -> MixedTable:
    arr = _as_array(X)
    if arr.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {arr.ndim}D array instead. Reshape your data either "
            "using array.reshape(-1, 1) if your data has a single feature or "
            "array.reshape(1, -1) if it contains a single sample."
        )
    if arr.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    _check_shape(arr.shape)
    names = [f"x{j}" for j in range(arr.shape[1])]
    if arr.dtype.kind in "US":
        columns = [arr[:, j].astype(object) for j in range(arr.shape[1])]
        return MixedTable(columns, np.ones(arr.shape[1], dtype=bool), names)
    if arr.dtype.kind != "O":
        return MixedTable(
            [arr[:, j] for j in range(arr.shape[1])], np.zeros(arr.shape[1], bool), names
        )
    strings = _holds_strings(arr)
    columns = [
        arr[:, j] if strings[j] else _numeric_column(arr[:, j]) for j in range(arr.shape[1])
    ]
    return MixedTable(columns, strings, names)


def _read_pandas(X: Any) -> MixedTable:
    import pandas as pd

    types = pd.api.types
    columns, string_like = [], []
    for j, name in enumerate(X.columns):
        series = X.iloc[:, j]
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype) or types.is_string_dtype(dtype):
            values = series.to_numpy(dtype=object)
            # A categorical or string dtype is categorical even when no cell holds a
            # string (all missing); an object column is when some cell does.
            strings = isinstance(dtype, pd.CategoricalDtype | pd.StringDtype) or bool(
                _holds_strings(values[:, None])[0]
            )
            columns.append(values if strings else _numeric_column(values))
            string_like.append(strings)
        elif types.is_numeric_dtype(dtype) or types.is_bool_dtype(dtype):
            values = series.to_numpy()
            if values.dtype.kind not in "biuf":  # nullable dtypes holding pd.NA
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            columns.append(values)
            string_like.append(False)
        else:
            raise TypeError(
                f"column {name!r} has dtype {dtype}, which ACTEncoder cannot encode; "
                "convert it to numbers or to a 'category' column."
            )
    names = [str(c) for c in X.columns]
    return MixedTable(columns, np.array(string_like, dtype=bool), names)


def _read_polars(X: Any) -> MixedTable:
    import polars as pl

    columns, string_like = [], []
    for series in X.get_columns():
        dtype = series.dtype
        if dtype.is_numeric() or dtype == pl.Boolean:
            if series.null_count() or dtype == pl.Boolean:
                series = series.cast(pl.Float64)
            columns.append(series.to_numpy())
            string_like.append(False)
        elif isinstance(dtype, (pl.Categorical, pl.Enum)) or dtype == pl.String:
            columns.append(series.to_numpy().astype(object))
            string_like.append(True)
        elif dtype == pl.Null:  # only missing values: as pandas' column of None reads
            columns.append(np.full(len(series), np.nan))
            string_like.append(False)
        else:
            raise TypeError(
                f"column {series.name!r} has dtype {dtype}, which ACTEncoder cannot "
                "encode; convert it to numbers or to a Categorical column."
            )
    return MixedTable(columns, np.array(string_like, dtype=bool), list(X.columns))


def as_float(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind == "O":
        return _numeric_column(column)
    return column.astype(np.float64, copy=False)
