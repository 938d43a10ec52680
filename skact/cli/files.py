"""What the ``skact`` command reads and writes: tables, image folders, features, models.

Tables are CSV (UTF-8, separator sniffed, optional header), ``.npy`` or Parquet. A
column whose cells are all numbers (blank: missing) is numeric; any other column is
text, read as categorical, as ``ACTEncoder`` reads a DataFrame's string columns. An
image folder is read recursively, in sorted path order; its subfolders are the class
labels. Outputs are written whole or not at all (:func:`skact._atomic.atomic_write`).
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np

from .. import _persistence
from .._atomic import atomic_write, check_writable
from .._encoder import ACTEncoder
from ..io.images import ImageFiles
from .errors import CommandError, UsageError

__all__ = [
    "CSV_DELIMITERS",
    "FEATURE_SUFFIXES",
    "IMAGE_SUFFIXES",
    "TABLE_SUFFIXES",
    "Data",
    "list_images",
    "read",
    "read_data",
    "read_pixels",
    "utf8_names",
    "write_features",
]

#: File suffixes read as images when DATA is a folder.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
#: File suffixes read as tables.
TABLE_SUFFIXES = (".csv", ".npy", ".parquet")
#: File suffixes ``skact transform`` writes features as.
FEATURE_SUFFIXES = (".csv", ".npy")
#: Column name of the image paths ``skact transform --with-paths`` writes first.
PATH_COLUMN = "path"


# ---------------------------------------------------------------------------- model files


def save_model(model: ACTEncoder, path: Path, *, optimizer_state: bool = True) -> int:
    """Write a fitted model in skact's weights-only format (see
    :meth:`ACTEncoder.save` for ``optimizer_state``); return the file's size."""
    model.save(path, optimizer_state=optimizer_state)
    return path.stat().st_size


def load_model(path: Path) -> ACTEncoder:
    """Read a model written by :func:`save_model`; never runs code from the file."""
    require_file(path, "model")
    try:
        return _persistence.load(path)
    except _persistence.ModelFileError as exc:
        raise UsageError(str(exc)) from None  # it names the file and what is wrong
    except (ValueError, OSError) as exc:
        raise UsageError(
            f"{path}: not a model file written by `skact fit` ({exc})"
        ) from None


def file_size(n_bytes: int) -> str:
    """``n_bytes`` for people: ``'2.4 MB'``."""
    size = float(n_bytes)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------- checks


def require_file(path: Path, what: str) -> None:
    """Fail with a usage error if ``path`` does not exist."""
    if not path.exists():
        raise UsageError(f"{what} {str(path)!r} does not exist")


def check_output(path: Path, suffixes: Sequence[str] | None, what: str) -> None:
    """Fail before any work if ``path`` cannot be written in a known format.

    The folder is tried the way the write will use it (a temporary file created and
    removed, :func:`skact._atomic.check_writable`), so that a fit does not train for an
    hour and then fail to save: permission bits, a read-only file system (which stops
    root too) and a missing folder are all found here.
    """
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise UsageError(
            f"{what} {str(path)!r}: unknown format {path.suffix!r}; use one of "
            + ", ".join(suffixes)
        )
    folder = path.parent
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsageError(
            f"{what} {str(path)!r}: {str(blocker)!r} is a file, not a folder; "
            "choose an output in an existing folder"
        )
    if not folder.is_dir():
        raise UsageError(f"{what} {str(path)!r}: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise UsageError(f"{what} {str(path)!r} is a folder; name a file in it")
    try:
        check_writable(path)
    except OSError as exc:
        raise UsageError(
            f"{what} {str(path)!r}: cannot write in folder {str(folder)!r} "
            f"({exc.strerror or exc}); choose an output in a folder you can write to"
        ) from None


def check_not_an_input(path: Path, what: str, inputs: dict[str, Path | None]) -> None:
    """Fail before any work if writing ``path`` would overwrite one of ``inputs``.

    ``inputs`` maps each input's name in the command (``DATA``, ``MODEL``, ...) to its
    path. Links (symbolic or hard) to an input count as the input; an image file inside
    an input folder counts as one of its images.
    """
    if not path.exists():
        return  # a new file overwrites nothing
    for name, source in inputs.items():
        if source is None or not source.exists():
            continue
        if os.path.samefile(path, source):
            same = f"is {name}" + (
                "" if str(path) == str(source) else f" ({str(source)!r})"
            )
        elif (
            source.is_dir()
            and path.suffix.lower() in IMAGE_SUFFIXES
            and path.resolve().is_relative_to(source.resolve())
        ):
            same = f"is an image of the {name} folder {str(source)!r}"
        else:
            continue
        raise UsageError(
            f"{what} {str(path)!r} {same}: writing it would destroy that input; "
            "choose another output file"
        )


# ---------------------------------------------------------------------------- images


def list_images(folder: Path) -> tuple[list[str], np.ndarray | None]:
    """Image files under ``folder`` (recursively, sorted) and their class labels.

    Class labels follow torchvision's ``ImageFolder`` layout: when every image lies in a
    subfolder, the first subfolder's name is its label; otherwise there are none. Hidden
    files and files with other suffixes are skipped.

    Parameters
    ----------
    folder : Path
        Root folder.

    Returns
    -------
    paths : list of str
        Image file paths, as ACTEncoder takes them, sorted: the row order of
        ``skact transform``'s output.
    labels : ndarray of str or None
        Class label of each image, or None.
    """
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise UsageError(
            f"folder {str(folder)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})"
        )
    parts = [p.relative_to(folder).parts for p in files]
    labels = None
    if all(len(q) > 1 for q in parts):
        labels = np.array([q[0] for q in parts])
    return [str(p) for p in files], labels


def read_pixels(paths: Sequence[str]) -> np.ndarray:
    """The pixels of image files, for the raw-pixel and PCA baselines.

    Every image is read at the most common size (others are resized to it), in
    grayscale when all are, else in RGB, as ``ACTEncoder`` stores them by default.

    Parameters
    ----------
    paths : sequence of str

    Returns
    -------
    ndarray of shape (n_images, channels, height, width), uint8
    """
    from PIL import Image

    sizes, modes = [], set()
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.size)
            modes.add(image.mode)
    width, height = max(set(sizes), key=sizes.count)
    mode = "L" if modes <= {"L", "1"} else "RGB"
    return ImageFiles(list(paths)).load(mode, (height, width))


# ---------------------------------------------------------------------------- CSV


#: Cell separators a CSV file may use. The first that splits every sampled line into
#: the same number (more than one) of cells is the file's; else a comma.
CSV_DELIMITERS = (",", ";", "\t", "|")
_CSV_SAMPLE_CHARS = 1 << 16
#: Longest CSV line read, in characters (64 Mi: a row of a million numbers fits). A
#: longer line is refused before it is read whole: a file without line breaks (a 1 GiB
#: header line took 7 GB of memory to split) is not a table to train on. Python's csv
#: module bounds each cell in the same way (:func:`csv.field_size_limit`).
CSV_MAX_LINE_CHARS = 1 << 26


def read_csv(path: Path) -> tuple[list[str], np.ndarray, bool]:
    """Column names, cells (as strings) and whether the file has a header (else the
    names are the positions) of a CSV file.

    The file is UTF-8 (a byte-order mark is skipped); the separator is guessed among
    :data:`CSV_DELIMITERS`. Blank lines are skipped. A trailing unnamed column that is
    empty throughout (every line ends with a separator) is dropped; other unnamed
    columns are called ``Unnamed: j``, as pandas does. The first line is a header when
    one of its cells is not a number.
    """
    rows, delimiter = _csv_rows(path)
    rows = [row for row in rows if row]
    if not rows:
        raise UsageError(f"{path}: empty CSV file")
    seen = [d for d in CSV_DELIMITERS[1:] if d in rows[0][0]]
    one_column = all(len(row) == 1 for row in rows)
    if delimiter == "," and seen and one_column:
        # Lines of one cell holding another separator: a file whose lines split
        # unevenly by it (else it had been sniffed); split them so that the width
        # check below says where and how.
        delimiter = seen[0]
        rows = [next(csv.reader([row[0]], delimiter=delimiter)) for row in rows]
    header = not all(_is_number(cell) for cell in rows[0])
    if not header:
        names = [str(i) for i in range(len(rows[0]))]
    else:
        names, rows = [c.strip() for c in rows[0]], rows[1:]
        while (
            names
            and names[-1] == ""
            and all(
                len(row) < len(names) or not row[len(names) - 1].strip() for row in rows
            )
        ):
            names.pop()
            rows = [row[: len(names)] for row in rows]
        names = [name or f"Unnamed: {j}" for j, name in enumerate(names)]
    if not rows:
        raise UsageError(f"{path}: CSV file has a header but no rows")
    widths = {len(row) for row in rows}
    if widths != {len(names)}:
        separator = {"\t": "tab"}.get(delimiter, repr(delimiter))
        raise UsageError(
            f"{path}: rows have {sorted(widths)} cells, the header {len(names)} "
            f"(cells separated by {separator}; the separators tried are "
            + " ".join(repr(d) if d != "\t" else "tab" for d in CSV_DELIMITERS)
            + ")"
        )
    return names, np.array(rows, dtype=object), header


def _csv_rows(path: Path) -> tuple[list[list[str]], str]:
    """Every line of a CSV file as its cells (a blank line: no cells), and the
    separator (see :data:`CSV_DELIMITERS`)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            delimiter = _sniff_delimiter(f.read(_CSV_SAMPLE_CHARS))
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(_bounded_lines(f, path), delimiter=delimiter)
            try:
                return list(reader), delimiter
            except csv.Error as exc:
                raise UsageError(
                    f"{path}, line {reader.line_num}: not a readable CSV table ({exc}); "
                    "a quote may be left open"
                ) from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: not UTF-8 text (it holds the byte {exc.object[exc.start]:#04x}); "
            "save it as UTF-8 (in Excel: CSV UTF-8)"
        ) from None


def _bounded_lines(file: TextIO, path: Path) -> Iterator[str]:
    """The lines of ``file``, refusing one longer than :data:`CSV_MAX_LINE_CHARS`
    before reading it whole."""
    limit = CSV_MAX_LINE_CHARS
    for number in itertools.count(1):
        line = file.readline(limit + 1)
        if not line:
            return
        if len(line) > limit:
            raise UsageError(
                f"{path}, line {number}: longer than {limit:,} characters, the longest "
                "line skact reads from a CSV file; a table this wide (or a file "
                "without line breaks?) needs another format: save it as .npy or Parquet"
            )
        yield line


def _sniff_delimiter(sample: str) -> str:
    """The separator of a CSV file, from its first characters (see CSV_DELIMITERS)."""
    lines = sample.splitlines()
    if len(sample) == _CSV_SAMPLE_CHARS:
        lines = lines[:-1]  # the last line may be cut short
    lines = [line for line in lines if line.strip()][:100]
    for delimiter in CSV_DELIMITERS:
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() > 1:
            return delimiter
    return ","


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell.strip() == ""  # an empty cell is a missing number
    return True


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow)"
        ) from None
    table = pq.read_table(path)
    cells = np.empty((table.num_rows, table.num_columns), dtype=object)
    for j, name in enumerate(table.column_names):
        cells[:, j] = table.column(name).to_numpy(zero_copy_only=False)
    return list(table.column_names), cells


# ---------------------------------------------------------------------------- tables


def column_index(names: Sequence[str], column: str, path: Path) -> int:
    """Position of a column: by name, else as an integer (negative from the end)."""
    if column in names:
        return list(names).index(column)
    try:
        index = int(column)
    except ValueError:
        index = None
    if index is None or not -len(names) <= index < len(names):
        raise UsageError(
            f"{path}: no column {column!r}; columns are "
            + ", ".join(names[:20])
            + (" ..." if len(names) > 20 else "")
        )
    return index % len(names)


def _is_missing(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, str):
        return cell.strip() == ""
    return isinstance(cell, float | np.floating) and bool(np.isnan(cell))


def _typed(
    cells: np.ndarray, names: list[str], path: Path, categorical: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A table's cells as ACTEncoder should get them, and which columns are categorical.

    A column is numeric when all its cells are numbers (empty ones become NaN), unless
    ``categorical`` marks it; else its cells are text (missing: None). Without any
    categorical column the result is a float64 array, else an object array.
    """
    missing = np.vectorize(_is_missing, otypes=[bool])(cells)
    numeric = np.empty(cells.shape, dtype=np.float64)
    categorical = categorical.copy()
    for j in range(cells.shape[1]):
        if categorical[j]:
            continue
        try:
            numeric[:, j] = np.where(missing[:, j], np.nan, cells[:, j]).astype(np.float64)
        except (TypeError, ValueError):
            bad = next(
                str(c)
                for c, m in zip(cells[:, j], missing[:, j], strict=True)
                if not m and not _is_number(str(c))
            )
            if all(
                m or _is_number(str(c).replace(",", ".", 1))
                for c, m in zip(cells[:, j], missing[:, j], strict=True)
            ):
                raise UsageError(
                    f"{path}: column {names[j]!r} is not numeric; it has decimal commas "
                    f"({bad!r}): save the file with decimal points"
                ) from None
            categorical[j] = True
    if not categorical.any():
        return numeric, categorical
    table = numeric.astype(object)
    for k in np.flatnonzero(categorical):
        table[:, k] = [
            None if m else (c.strip() if isinstance(c, str) else str(c))
            for c, m in zip(cells[:, k], missing[:, k], strict=True)
        ]
    return table, categorical


class Data(NamedTuple):
    """What :func:`read` found in DATA."""

    X: Any  #: features (ndarray: float64, or object with text), or image paths
    y: np.ndarray | None  #: labels as text (blank or -1: unlabeled), if there are any
    columns: list[str] | None  #: the features' names in messages; None: by position
    header: bool  #: whether ``columns`` come from the file (CSV header, Parquet)
    categorical: np.ndarray | None  #: per column of a table: read as categorical

    @property
    def is_images(self) -> bool:
        """Whether DATA is an image folder."""
        return isinstance(self.X, list)


def read_data(path: Path, label: str | None = None) -> tuple[Any, np.ndarray | None]:
    """Read DATA: a CSV, .npy or Parquet table, or a folder of images.

    Parameters
    ----------
    path : Path
        The table file or image folder.
    label : str or None
        Table column holding class labels (a name, or an integer position); it is
        removed from the features. Image folders take labels from their subfolders.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features) or list of str
        Features (float64; an object array when a column holds text), or image paths
        in sorted order.
    y : ndarray of shape (n_samples,) or None
        Labels, when there are any.
    """
    data = read(path, label)
    return data.X, data.y


def read(
    path: Path, label: str | None, categorical: Sequence[str] | np.ndarray = ()
) -> Data:
    """:func:`read_data`, plus the table's column names and categorical columns.

    ``categorical`` names columns to read as categorical even when they hold numbers
    (names or positions, counted without the label column), or is a boolean mask (a
    model's ``is_categorical_``).
    """
    require_file(path, "DATA")
    if path.is_dir():
        if label is not None:
            raise UsageError(
                "--label is for tables; an image folder's labels are its subfolders"
            )
        return Data(*list_images(path), None, False, None)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise UsageError(f"{path}: not a numeric .npy array ({exc})") from None
        if label is None and not len(categorical):
            return Data(array, None, None, False, None)
        if array.ndim != 2:
            raise UsageError(f"{path}: --label needs a 2-d table, got shape {array.shape}")
        names, cells = [str(i) for i in range(array.shape[1])], array.astype(object)
        header = False
    elif suffix == ".csv":
        names, cells, header = read_csv(path)
    elif suffix == ".parquet":
        names, cells = _read_parquet(path)
        header = True
    else:
        raise UsageError(
            f"{path}: unknown format {suffix!r}; DATA must be "
            + ", ".join(TABLE_SUFFIXES)
            + " or a folder of images"
        )
    y = None
    if label is not None:
        j = column_index(names, label, path)
        y = np.array([_label_text(v) for v in cells[:, j]])
        keep = [i for i in range(len(names)) if i != j]
        names, cells = [names[i] for i in keep], cells[:, keep]
    if isinstance(categorical, np.ndarray):
        forced = np.zeros(len(names), dtype=bool)
        forced[: len(categorical)] = categorical[: len(names)]
    else:
        forced = np.zeros(len(names), dtype=bool)
        for column in categorical:
            forced[column_index(names, column, path)] = True
    X, is_categorical = _typed(cells, names, path, forced)
    return Data(X, y, names, header, is_categorical)


def _label_text(value: Any) -> str:
    """A label as text; a missing one (None, NaN: Parquet, .npy) is blank."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return ""
    return str(value)


def read_labels(
    path: Path, n_samples: int, samples: str = "DATA"
) -> tuple[np.ndarray, str | None]:
    """Labels from a .npy array or a one-column CSV / text file (blank: unlabeled), and
    a sentence for the user on how the file's first line was read (None: no guess).

    A text file holds one line per sample, a blank line for an unlabeled one (also the
    lines that end the file), under an optional header line. The count of lines says
    which: ``n_samples`` lines, no header; one more, the first line is a header,
    unless it cannot be a column's name (a number, blank, or one of the labels). Any
    other count is a UsageError that gives both counts: the file's lines cannot be
    matched to the samples (of ``samples``, as the messages call them). Where the first
    line could be either, the sentence says which it was taken for. A .npy array is
    returned whole, whatever its length.
    """
    require_file(path, "labels file")
    if path.suffix.lower() == ".npy":
        labels = np.load(path, allow_pickle=False)
        return np.array([_label_text(v) for v in np.ravel(labels)]), None
    rows, _ = _csv_rows(path)
    width = max((len(row) for row in rows), default=0)
    if width > 1:
        raise UsageError(f"{path}: a labels file needs one column, found {width}")
    lines = [row[0] if row else "" for row in rows]
    # Counted, not guessed from the first line: a class name looks like a header.
    refused = _not_a_header(lines) if lines else "is missing"
    counts = f"{len(lines)} lines for the {n_samples} samples of {samples}"
    if len(lines) == n_samples + 1 and refused is None:
        header = f"{path}: its first line, {lines[0]!r}, is read as a header ({counts})"
        return np.array(lines[1:], dtype=str), header
    if len(lines) != n_samples:
        why = f", and its first line {refused}" if len(lines) == n_samples + 1 else ""
        raise UsageError(
            f"{path}: {counts}{why}; a labels file needs one line per sample, in order "
            "(a blank line for an unlabeled one, also at the end), under an optional "
            "header line"
        )
    note = None
    if refused is None:
        note = (
            f"{path}: its first line, {lines[0]!r}, is read as the first sample's label "
            f"({counts}; with a header line there would be {n_samples + 1})"
        )
    return np.array(lines, dtype=str), note


def _not_a_header(lines: list[str]) -> str | None:
    """Why the first of a labels file's lines cannot be a header, or None if it can."""
    first = lines[0].strip()
    if not first:
        return "is blank, an unlabeled sample, not a header"
    if _is_number(first):
        return f"{first!r} is a label (a number), not a header"
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == first:
            return f"{first!r} is a label (as on line {number}), not a header"
    return None


def missing_mask(data: Data) -> np.ndarray:
    """A float table with DATA's numbers, NaN where a cell is missing (categorical
    columns: 0 where present), for the value checks that name columns."""
    X = data.X
    if X.dtype != object:
        return np.asarray(X, dtype=np.float64)
    probe = np.zeros(X.shape, dtype=np.float64)
    for j in range(X.shape[1]):
        if data.categorical is not None and data.categorical[j]:
            probe[:, j] = [np.nan if c is None else 0.0 for c in X[:, j]]
        else:
            probe[:, j] = X[:, j].astype(np.float64)
    return probe


def as_table(data: Data, X: Any, model: ACTEncoder | None) -> Any:
    """Rows ``X`` of DATA as the estimator should get them: with column names.

    A pandas DataFrame carries the names: at fit (``model`` None) those of the file's
    header, which ``fit`` records as ``feature_names_in_``; with a fitted ``model``, the
    names it recorded, which ``transform`` checks as for any DataFrame
    (:func:`check_columns` has already refused a header that differs; a table without
    one is taken column by column in the model's order). Numeric columns are float64,
    categorical ones hold text (None: missing), so ``fit`` finds them by their dtype as
    for any DataFrame. Otherwise (without pandas, without names, or with a name used
    twice) the array itself: the model records no names, and text columns still take
    ACTEncoder's mixed-table path.
    """
    columns = data.columns if data.header else None
    if model is not None:
        names = getattr(model, "feature_names_in_", None)
        columns = None if names is None else [str(n) for n in names]
    fits = isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == len(columns or ())
    if columns is None or not fits or len(set(columns)) < len(columns):
        return X
    pd = pandas()
    if pd is None:
        return X
    if X.dtype != object:
        return pd.DataFrame(X, columns=columns, copy=False)
    categorical = data.categorical
    return pd.DataFrame(
        {
            name: X[:, j]
            if categorical is not None and categorical[j]
            else X[:, j].astype(np.float64)
            for j, name in enumerate(columns)
        }
    )


def pandas() -> Any:
    """The pandas module, or None: it is not one of skact's dependencies."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def check_columns(model: ACTEncoder, data: Data, path: Path, label: str | None) -> None:
    """Refuse a table whose header differs from the one the model was fitted on."""
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None or not data.header or data.columns is None:
        return
    fitted, columns = [str(n) for n in fitted], data.columns
    if columns == fitted:
        return
    missing = [n for n in fitted if n not in columns]
    unexpected = [n for n in columns if n not in fitted]
    what = []
    if missing:
        what.append("missing " + list_names(missing))
    if unexpected:
        what.append("not in the model " + list_names(unexpected))
    advice = ""
    if len(unexpected) == 1 and label is None:
        advice = f"; if {unexpected[0]!r} holds labels, name it with --label"
    raise CommandError(
        f"{path}: the columns differ from those the model was fitted on "
        f"({'; '.join(what) or 'the same names in another order'}); the model takes "
        f"{list_names(fitted)}{advice}"
    )


def list_names(names: Sequence[str], limit: int = 10) -> str:
    """``'a', 'b' and 3 more``."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ---------------------------------------------------------------------------- features


def utf8_names(names: Sequence[str], what: str) -> tuple[list[str], str | None]:
    """File names (or folder names) as UTF-8 text for a CSV, and a note for the user
    when some were not UTF-8 (None otherwise).

    A name's bytes that are not UTF-8 (which Python keeps as lone surrogates) are
    written as ``\\xNN``, as Python's ``backslashreplace`` shows them: the file of a
    row is the one whose ``os.fsencode(path).decode("utf-8", "backslashreplace")``
    equals the cell. Two names that would read the same (one holding the text
    ``\\xe9``, another the byte) are refused: a row must lead to one file.

    Parameters
    ----------
    names : sequence of str
        The names, as Python lists them (:func:`os.fsdecode`).
    what : str
        What they are, in the note (``"image paths"``).

    Returns
    -------
    names : list of str
    note : str or None
    """
    written = [os.fsencode(name).decode("utf-8", "backslashreplace") for name in names]
    changed = list(dict.fromkeys(b for a, b in zip(names, written, strict=True) if a != b))
    if not changed:
        return list(names), None
    seen: dict[str, str] = {}
    for name, text in zip(names, written, strict=True):
        if seen.setdefault(text, name) != name:
            raise UsageError(
                f"{what}: {text!r} would name two files, one that holds these "
                "characters and one whose name is not UTF-8; rename one of them"
            )
    n = len(changed)
    note = (
        f"{n} of the {what} {'is' if n == 1 else 'are'} not UTF-8 (e.g. {changed[0]}); "
        "the CSV writes their other bytes as \\xNN escapes: the file of a row is the "
        "one whose os.fsencode(path).decode('utf-8', 'backslashreplace') is the cell"
    )
    return written, note


def write_features(
    path: Path,
    features: np.ndarray,
    names: Sequence[str],
    labels: np.ndarray | None = None,
    paths: Sequence[str] | None = None,
) -> None:
    """Write features as .npy, or CSV with a header (and the labels as a last column).

    The file is replaced in one step (see :func:`skact._atomic.atomic_write`): an
    interrupted write leaves the old file as it was.

    Parameters
    ----------
    path : Path
        Output file; its suffix picks the format.
    features : ndarray of shape (n_samples, n_features)
    names : sequence of str
        Column names for CSV (the ``path`` column's and the labels' included).
    labels : ndarray of shape (n_samples,) or None
        Written as the last column of a CSV when given.
    paths : sequence of str or None
        Written as the first column of a CSV when given (the source image of each row).
    """
    if path.suffix.lower() == ".npy":
        with atomic_write(path) as f:
            np.save(f, features)
        return
    with atomic_write(path, text=True) as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for i, row in enumerate(features):
            cells = [f"{v:.8g}" for v in row]
            if paths is not None:
                cells.insert(0, paths[i])
            writer.writerow(cells if labels is None else [*cells, labels[i]])
