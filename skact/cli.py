"""The ``skact`` command: a few-shot demo, and fit / transform / evaluate on files.

``skact demo`` shows the main job on scikit-learn's bundled digits; ``skact fit``,
``skact transform`` and ``skact evaluate`` do the same on the user's data (a CSV, .npy or
Parquet table, or a folder of images). Run ``skact COMMAND --help`` for the options.
Exit status: 0 on success, 2 for bad arguments or unreadable inputs, 1 when the work
itself fails (for example a table whose width does not match the model), 130 after
Ctrl-C. Output files are written whole or not at all, and never over an input.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from . import __version__, _persistence, _training
from ._atomic import atomic_write
from ._encoder import ACTEncoder
from ._guards import check_values
from .evaluation import (
    FewShotResult,
    few_shot_score,
    pca_baseline,
    raw_baseline,
    results_table,
)
from .objectives import OBJECTIVES

__all__ = ["main"]

#: File suffixes read as images when DATA is a folder.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
TABLE_SUFFIXES = (".csv", ".npy", ".parquet")
FEATURE_SUFFIXES = (".csv", ".npy")

#: Command-line option (argparse dest) -> ACTEncoder parameter.
_TRAINING_OPTIONS = {
    "objective": "objective",
    "n_components": "n_components",
    "alpha": "alpha",
    "adversary": "adversary",
    "n_views": "n_views",
    "epochs": "max_iter",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "hidden_layer_sizes": "hidden_layer_sizes",
    "projection_dim": "projection_dim",
    "corruption_rate": "corruption_rate",
    "noise_scale": "noise_scale",
    "handle_missing": "handle_missing",
    "device": "device",
    "seed": "random_state",
}


class CommandError(Exception):
    """A failure reported as ``skact COMMAND: error: ...`` with exit status 1."""

    exit_code = 1


class UsageError(CommandError):
    """Bad arguments or unreadable inputs: exit status 2, like argparse's own errors."""

    exit_code = 2


# ---------------------------------------------------------------------------- model files


def _save_model(model: ACTEncoder, path: Path) -> None:
    """Write a fitted model to ``path`` in skact's weights-only format."""
    model.save(path)


def _load_model(path: Path) -> ACTEncoder:
    """Read a model written by :func:`_save_model`; never runs code from the file."""
    _require_file(path, "model")
    try:
        return _persistence.load(path)
    except _persistence.ModelFileError as exc:
        raise UsageError(str(exc)) from None  # it names the file and what is wrong
    except (ValueError, OSError) as exc:
        raise UsageError(
            f"{path}: not a model file written by `skact fit` ({exc})"
        ) from None


# ---------------------------------------------------------------------------- data files


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise UsageError(f"{what} {str(path)!r} does not exist")


def _check_output(path: Path, suffixes: Sequence[str] | None, what: str) -> None:
    """Fail before any work if ``path`` cannot be written in a known format."""
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise UsageError(
            f"{what} {str(path)!r}: unknown format {path.suffix!r}; use one of "
            + ", ".join(suffixes)
        )
    if not path.parent.is_dir():
        raise UsageError(
            f"{what} {str(path)!r}: folder {str(path.parent)!r} does not exist"
        )
    if path.is_dir():
        raise UsageError(f"{what} {str(path)!r} is a folder; name a file in it")


def _check_not_an_input(path: Path, what: str, inputs: dict[str, Path | None]) -> None:
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
        Image file paths, as ACTEncoder takes them.
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


#: Cell separators a CSV file may use. The first that splits every sampled line into
#: the same number (more than one) of cells is the file's; else a comma.
CSV_DELIMITERS = (",", ";", "\t", "|")
_CSV_SAMPLE_CHARS = 1 << 16


def _read_csv(path: Path, blank_rows: bool = False) -> tuple[list[str], np.ndarray, bool]:
    """Column names, cells (as strings) and whether the file has a header (else the
    names are the positions) of a CSV file.

    The file is UTF-8 (a byte-order mark is skipped); the separator is guessed among
    :data:`CSV_DELIMITERS`. Blank lines are skipped, except before the last non-blank
    one when ``blank_rows`` (a one-column file, where they are empty cells). A trailing
    unnamed column that is empty throughout (every line ends with a separator) is
    dropped; other unnamed columns are called ``Unnamed: j``, as pandas does.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            delimiter = _sniff_delimiter(f.read(_CSV_SAMPLE_CHARS))
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            try:
                rows = list(reader)
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
    if blank_rows:
        while rows and not any(cell.strip() for cell in rows[-1]):
            rows.pop()
        rows = [row or [""] for row in rows]
    else:
        rows = [row for row in rows if row]
    if not rows:
        raise UsageError(f"{path}: empty CSV file")
    seen = [d for d in CSV_DELIMITERS[1:] if d in rows[0][0]]
    one_column = all(len(row) == 1 for row in rows)
    if delimiter == "," and seen and one_column and not blank_rows:
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


def _column_index(names: list[str], label: str, path: Path) -> int:
    """Position of the label column: by name, else as an integer (negative from the end)."""
    if label in names:
        return names.index(label)
    try:
        index = int(label)
    except ValueError:
        index = None
    if index is None or not -len(names) <= index < len(names):
        raise UsageError(
            f"{path}: no column {label!r}; columns are "
            + ", ".join(names[:20])
            + (" ..." if len(names) > 20 else "")
        )
    return index % len(names)


def _to_float(cells: np.ndarray, names: list[str], path: Path) -> np.ndarray:
    """Numeric features; empty cells become NaN (which ACTEncoder then rejects)."""
    missing = np.vectorize(lambda c: c is None or c == "", otypes=[bool])(cells)
    try:
        return np.where(missing, np.nan, cells).astype(np.float64)
    except (TypeError, ValueError):
        pass
    for j in range(cells.shape[1]):  # find the culprit for the message
        try:
            np.where(missing[:, j], np.nan, cells[:, j]).astype(np.float64)
        except (TypeError, ValueError):
            bad = next(str(c) for c in cells[:, j] if not _is_number(str(c)))
            advice = "name it with --label if it holds the labels, else remove it"
            if _is_number(bad.replace(",", ".", 1)):
                advice = (
                    f"it has decimal commas ({bad!r}): save the file with decimal points"
                )
            raise UsageError(
                f"{path}: column {names[j]!r} is not numeric; {advice}"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


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
        Numeric features, or image paths.
    y : ndarray of shape (n_samples,) or None
        Labels, when there are any.
    """
    data = _read(path, label)
    return data.X, data.y


class _Data(NamedTuple):
    """What :func:`_read` found in DATA."""

    X: Any  #: numeric features (ndarray), or image paths (list of str)
    y: np.ndarray | None  #: labels (blank: unlabeled), when there are any
    columns: list[str] | None  #: the features' names in messages; None: by position
    header: bool  #: whether ``columns`` come from the file (CSV header, Parquet)


def _read(path: Path, label: str | None) -> _Data:
    """:func:`read_data`, plus the table's column names."""
    _require_file(path, "DATA")
    if path.is_dir():
        if label is not None:
            raise UsageError(
                "--label is for tables; an image folder's labels are its subfolders"
            )
        return _Data(*list_images(path), None, False)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise UsageError(f"{path}: not a numeric .npy array ({exc})") from None
        if label is None:
            return _Data(array, None, None, False)
        if array.ndim != 2:
            raise UsageError(f"{path}: --label needs a 2-d table, got shape {array.shape}")
        names, cells = [str(i) for i in range(array.shape[1])], array.astype(object)
        header = False
    elif suffix == ".csv":
        names, cells, header = _read_csv(path)
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
        j = _column_index(names, label, path)
        y = np.array([_label_text(v) for v in cells[:, j]])
        keep = [i for i in range(len(names)) if i != j]
        names, cells = [names[i] for i in keep], cells[:, keep]
    return _Data(_to_float(cells, names, path), y, names, header)


def _label_text(value: Any) -> str:
    """A label as text; a missing one (None, NaN: Parquet, .npy) is blank."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return ""
    return str(value)


def _read_labels(path: Path) -> np.ndarray:
    """Labels from a .npy array or a one-column CSV / text file (an optional header)."""
    _require_file(path, "labels file")
    if path.suffix.lower() == ".npy":
        labels = np.load(path, allow_pickle=False)
    else:
        _, cells, _ = _read_csv(path, blank_rows=True)
        if cells.shape[1] != 1:
            raise UsageError(
                f"{path}: a labels file needs one column, found {cells.shape[1]}"
            )
        labels = cells[:, 0]
    return np.array([_label_text(v) for v in np.ravel(labels)])


def write_features(
    path: Path, features: np.ndarray, names: Sequence[str], labels: np.ndarray | None = None
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
        Column names for CSV.
    labels : ndarray of shape (n_samples,) or None
        Written as the last column of a CSV, under the name ``names[-1]`` when given.
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
            writer.writerow(cells if labels is None else [*cells, labels[i]])


# ---------------------------------------------------------------------------- commands


def _encoder_from(args: argparse.Namespace) -> ACTEncoder:
    """An ACTEncoder with the training options given on the command line."""
    params = {
        param: getattr(args, dest)
        for dest, param in _TRAINING_OPTIONS.items()
        if hasattr(args, dest)
    }
    params["verbose"] = 0 if args.quiet else 1
    encoder = ACTEncoder(**params)
    try:
        encoder._validate_params()
    except InvalidParameterError as exc:
        options = {param: dest for dest, param in _TRAINING_OPTIONS.items()}
        message = str(exc)
        for param, dest in options.items():
            message = message.replace(
                f"'{param}' parameter", f"--{dest.replace('_', '-')} option"
            )
        raise UsageError(message) from None
    return encoder


#: The ends of the value checks' messages, in the commands' terms.
_FIT_ADVICE = {
    "nan": "{name} encodes missing values itself with --handle-missing indicator; or "
    "fill the empty cells first.",
    "inf": "{name} needs finite values: clip them, or empty those cells and fit with "
    "--handle-missing indicator.",
    "range": "Rescale those columns first (e.g. take their logarithm).",
}
_MODEL_ADVICE = {
    **_FIT_ADVICE,
    "nan": "This model rejects missing values: fill the empty cells, or fit a model "
    "that encodes them with skact fit --handle-missing indicator.",
    "inf": "{name} needs finite values: clip them, or empty those cells and use a model "
    "fitted with --handle-missing indicator.",
}


def _check_table(
    X: Any, names: list[str] | None, encoder: ACTEncoder, fitting: bool
) -> None:
    """The estimator's check of a table's values, in the command's terms.

    The checks are those of the path ``encoder`` sends the table down (missing values
    pass where ``handle_missing`` encodes them; the mixed-table path standardises in
    float64). Columns are named by the file's header; ``names`` is None for a plain
    .npy (columns by position) and for images, which are not checked here.
    """
    if names is None and not (isinstance(X, np.ndarray) and X.ndim == 2):
        return
    check_values(
        X,
        "ACTEncoder",
        columns=names,
        allow_nan=encoder.handle_missing != "error",
        allow_huge=encoder._is_mixed(X, reset=fitting),
        advice=_FIT_ADVICE if fitting else _MODEL_ADVICE,
    )


class Interrupted(CommandError):
    """Ctrl-C: exit status 130, as a shell reports a process stopped by SIGINT."""

    exit_code = 130


def _cmd_fit(args: argparse.Namespace) -> int:
    _check_output(args.output, None, "MODEL")
    _check_not_an_input(args.output, "MODEL", {"DATA": args.data})
    encoder = _encoder_from(args)
    data = _read(args.data, args.label)
    _check_table(data.X, data.columns, encoder, fitting=True)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # It tells a Python script what the estimator kept; the command says below
            # what it wrote instead.
            warnings.filterwarnings("ignore", "ACTEncoder.fit was interrupted")
            encoder.fit(_as_table(data.X, data.columns if data.header else None, None))
    except KeyboardInterrupt:
        raise Interrupted(_save_interrupted(encoder, args.output)) from None
    _save_model(encoder, args.output)
    print(
        f"fitted ACTEncoder on {len(data.X)} samples ({encoder.n_iter_} epochs, "
        f"{time.perf_counter() - start:.1f} s, final loss {encoder.loss_curve_[-1]:.4f}); "
        f"saved to {args.output}"
    )
    return 0


def _save_interrupted(encoder: ACTEncoder, path: Path) -> str:
    """Save what an interrupted fit kept, if anything; say what was written."""
    try:
        check_is_fitted(encoder)
    except NotFittedError:
        return (
            f"interrupted (Ctrl-C) before any training step; nothing was written to {path}"
        )
    _save_model(encoder, path)  # a second Ctrl-C here leaves the old file: atomic
    n = encoder.n_iter_
    return (
        f"interrupted (Ctrl-C); saved the model trained so far ({n} complete epoch"
        f"{'' if n == 1 else 's'}) to {path}"
    )


def _as_table(X: Any, columns: list[str] | None, model: ACTEncoder | None) -> Any:
    """``X`` as the estimator should get it: with column names where they are known.

    A pandas DataFrame carries the names: at fit (``model`` None) those of the file's
    header (``columns``; None when the file has none), which ``fit`` records as
    ``feature_names_in_``; with a fitted ``model``, the names it recorded, which
    ``transform`` checks as for any DataFrame. :func:`_check_columns` has already
    refused a header that differs; a table without one is taken column by column in
    the model's order (scikit-learn would warn that it has no names). Otherwise, and
    without pandas, or with a name used twice, the array itself: the model records no
    names, and :func:`_check_columns` still compares a header with a model's names.
    """
    if model is not None:
        names = getattr(model, "feature_names_in_", None)
        columns = None if names is None else [str(n) for n in names]
    fits = isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == len(columns or ())
    if columns is None or not fits or len(set(columns)) < len(columns):
        return X
    pd = _pandas()
    return X if pd is None else pd.DataFrame(X, columns=columns, copy=False)


def _pandas() -> Any:
    """The pandas module, or None: it is not one of skact's dependencies."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _check_columns(model: ACTEncoder, data: _Data, path: Path, label: str | None) -> None:
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
        what.append("missing " + _list_names(missing))
    if unexpected:
        what.append("not in the model " + _list_names(unexpected))
    advice = ""
    if len(unexpected) == 1 and label is None:
        advice = f"; if {unexpected[0]!r} holds labels, name it with --label"
    raise CommandError(
        f"{path}: the columns differ from those the model was fitted on "
        f"({'; '.join(what) or 'the same names in another order'}); the model takes "
        f"{_list_names(fitted)}{advice}"
    )


def _list_names(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _cmd_transform(args: argparse.Namespace) -> int:
    _check_output(args.output, FEATURE_SUFFIXES, "FEATURES")
    _check_not_an_input(args.output, "FEATURES", {"MODEL": args.model, "DATA": args.data})
    model = _load_model(args.model)
    data = _read(args.data, args.label)
    _check_columns(model, data, args.data, args.label)
    _check_table(data.X, data.columns, model, fitting=False)
    features = model.transform(
        _as_table(data.X, data.columns if data.header else None, model)
    )
    names = [str(n) for n in model.get_feature_names_out()]
    if data.y is not None and args.output.suffix.lower() == ".csv":
        # An image folder's class labels (its subfolders) go in a column named "label".
        label_name = args.label if args.label is not None else "label"
        write_features(args.output, features, [*names, label_name], data.y)
    else:
        write_features(args.output, features, names)
    print(f"wrote {features.shape[0]} x {features.shape[1]} features to {args.output}")
    return 0


def _labelled(
    path: Path, label: str | None, labels: Path | None
) -> tuple[_Data, np.ndarray]:
    """DATA and its labels; rows with a blank label are set aside (and counted)."""
    if label is not None and labels is not None:
        raise UsageError("give either --label (a column) or --labels (a file), not both")
    data = _read(path, label)
    y = data.y if labels is None else _read_labels(labels)
    if y is None:
        raise UsageError(
            f"{path}: no labels; name the label column with --label, give a labels file "
            "with --labels, or put the images of each class in their own subfolder"
        )
    if len(y) != len(data.X):
        raise UsageError(f"{path}: {len(data.X)} samples but {len(y)} labels")
    # A blank cell is a row nobody labelled, not a class named ''.
    labelled = np.flatnonzero(np.char.strip(y.astype(str)) != "")
    if len(labelled) == 0:
        raise UsageError(f"{path}: every label is blank")
    X = data.X
    if len(labelled) < len(y):
        print(
            f"{path}: {len(y) - len(labelled)} of {len(y)} samples have a blank label; "
            "they are left out as unlabeled"
        )
        X = [X[i] for i in labelled] if isinstance(X, list) else X[labelled]
    return data._replace(X=X, y=y[labelled]), y[labelled]


def _check_enough_labels(y_pool: np.ndarray, args: argparse.Namespace) -> None:
    """Fail before any encoding if a class has fewer than k samples to draw from."""
    k = max(args.k)
    classes, counts = np.unique(y_pool, return_counts=True)
    short = [(str(c), int(n)) for c, n in zip(classes, counts, strict=True) if n < k]
    if not short:
        return
    if len(short) == 1:
        ((name, n),) = short
        who = f"class {name!r} has {n} labelled sample{'' if n == 1 else 's'}"
    else:
        who = f"classes {_list_names([f'{c!r} ({n})' for c, n in short])} have"
        who = who.replace('"', "") + " labelled samples"
    if args.test is not None:
        where, advice = f"in {args.data}", "lower --k or label more samples"
    else:
        where = (
            f"left in {args.data} after holding out {args.test_size:.0%} for testing "
            f"(--test-size {args.test_size:g})"
        )
        advice = "lower --k or --test-size, or label more samples"
    raise CommandError(f"{who} {where}, fewer than k={k}; {advice}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.output is not None:
        _check_output(args.output, (".json", ".md"), "--output")
        _check_not_an_input(
            args.output,
            "--output",
            {
                "DATA": args.data,
                "--labels": args.labels,
                "--model": args.model,
                "--test": args.test,
                "--test-labels": args.test_labels,
            },
        )
    if args.test is None and (args.test_labels is not None):
        raise UsageError("--test-labels needs --test")
    model = _load_model(args.model) if args.model is not None else None
    data, y = _labelled(args.data, args.label, args.labels)
    if model is None and isinstance(data.X, list):
        raise UsageError("an image folder can only be evaluated through a model (--model)")
    inputs = [(data, args.data)]
    if args.test is not None:
        test, y_test = _labelled(args.test, args.label, args.test_labels)
        inputs.append((test, args.test))
    if model is not None:  # once every input is read: unreadable inputs are exit 2
        for read, path in inputs:
            _check_columns(model, read, path, args.label)
            _check_table(read.X, read.columns, model, fitting=False)
    if args.test is not None:
        X_pool, y_pool, X_test = data.X, y, test.X
    else:
        try:
            X_pool, X_test, y_pool, y_test = train_test_split(
                data.X,
                y,
                test_size=args.test_size,
                stratify=y,
                random_state=args.seed,
            )
        except ValueError as exc:
            raise UsageError(
                f"cannot split {args.data} into a pool and a test set: {exc}"
            ) from None
    _check_enough_labels(y_pool, args)
    columns = data.columns if data.header else None
    X_pool, X_test = (_as_table(X, columns, model) for X in (X_pool, X_test))
    representations: dict[str, Any] = {}
    if args.baselines:
        if isinstance(X_pool, list):
            raise UsageError("--baselines needs a table, not an image folder")
        representations["raw (standardised)"] = raw_baseline().fit(X_pool)
        representations["PCA (standardised, 90% variance)"] = pca_baseline().fit(X_pool)
    representations["ACTEncoder" if model is not None else "features"] = model
    split = (X_pool, y_pool, X_test, y_test)
    results = _score_all(representations, split, args, args.protocol)
    table = results_table(results)
    print(
        f"{len(y_pool)} samples to draw labels from, {len(y_test)} test samples, "
        f"{args.draws} draws; accuracy mean ± std:"
    )
    print(table)
    if args.output is not None:
        if args.output.suffix.lower() == ".json":
            payload = {name: [r.to_dict() for r in rs] for name, rs in results.items()}
            text = json.dumps(payload, indent=2)
        else:
            text = table + "\n"
        with atomic_write(args.output, text=True) as f:
            f.write(text)
    return 0


def _require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "--plot needs matplotlib (pip install matplotlib, or skact[bench])"
        )


def _score_all(
    representations: dict[str, Any],
    split: tuple[Any, Any, Any, Any],
    args: argparse.Namespace,
    protocols: Sequence[str] = ("linear", "knn"),
) -> dict[str, list[FewShotResult]]:
    """Few-shot scores of each representation on ``(X_pool, y_pool, X_test, y_test)``,
    with the command's ``k``, ``draws`` and ``seed``."""
    X_pool, y_pool, X_test, y_test = split
    return {
        name: few_shot_score(
            rep,
            X_pool,
            y_pool,
            X_test,
            y_test,
            k=args.k,
            protocols=protocols,
            n_draws=args.draws,
            random_state=args.seed,
        )
        for name, rep in representations.items()
    }


def _plot(results: dict[str, list[FewShotResult]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = [
        p
        for p in ("linear", "knn")
        if any(r.protocol == p for rs in results.values() for r in rs)
    ]
    fig, axes = plt.subplots(
        1, len(protocols), figsize=(5 * len(protocols), 4), sharey=True
    )
    axes = np.atleast_1d(axes)
    titles = {"linear": "linear probe", "knn": "k-NN (5 neighbours or fewer)"}
    for ax, protocol in zip(axes, protocols):
        for name, rs in results.items():
            rows = sorted((r for r in rs if r.protocol == protocol), key=lambda r: r.k)
            ax.errorbar(
                [r.k for r in rows],
                [r.mean for r in rows],
                yerr=[r.std for r in rows],
                marker="o",
                capsize=3,
                label=name,
            )
        ax.set(title=titles[protocol], xlabel="labels per class", ylabel="test accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    try:
        with atomic_write(path) as f:
            fig.savefig(f, format=path.suffix[1:].lower() or None)
    finally:
        plt.close(fig)


def _cmd_demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_digits

    if args.plot is not None:
        _require_matplotlib()
        _check_output(args.plot, None, "--plot")
    encoder = _encoder_from(args)
    started = time.perf_counter()
    digits = load_digits()
    X = digits.images if args.data == "images" else digits.data
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, digits.target, test_size=0.3, stratify=digits.target, random_state=0
    )
    what = "8x8 images" if args.data == "images" else "rows of 64 pixels"
    print(
        f"digits: fitting ACTEncoder on {len(X_pool)} unlabeled training {what}; "
        f"{len(X_test)} held-out test samples"
    )
    start = time.perf_counter()
    encoder.fit(X_pool)
    print(f"trained {encoder.n_iter_} epochs in {time.perf_counter() - start:.1f} s")
    representations = {
        # Pixels share one unit: the classic, stronger baselines skip standardisation.
        "raw pixels": raw_baseline(standardize=False).fit(X_pool),
        "PCA (90% variance)": pca_baseline(standardize=False).fit(X_pool),
        "ACT": encoder,
    }
    results = _score_all(representations, (X_pool, y_pool, X_test, y_test), args)
    print(
        f"\ntest accuracy with k labels per class (mean ± std over {args.draws} draws; "
        "linear: logistic regression, knn: 5-NN or k-NN for k < 5)"
    )
    print(results_table(results))
    if args.plot is not None:
        _plot(results, args.plot)
        print(f"saved figure to {args.plot}")
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    return 0


# ---------------------------------------------------------------------------- parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the uninformative None and False."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _device(text: str) -> str:
    """A device string ACTEncoder accepts here, checked before any data is read."""
    try:
        _training.resolve_device(text)
    except ValueError as exc:
        message = str(exc).replace(f"device={text!r}", repr(text))
        message = message.replace("device='auto' or device='cpu'", "auto or cpu")
        raise argparse.ArgumentTypeError(message) from None
    return text


def _layer_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated widths such as 512,512, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return sizes


def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else _positive_int(text)


def _optional_seed(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer or 'none', got {text!r}"
        ) from None


def _add_training_options(parser: argparse.ArgumentParser, seed_default: Any) -> None:
    group = parser.add_argument_group(
        "training options (default: ACTEncoder's own defaults)"
    )
    add = group.add_argument
    # SUPPRESS: an option not given is not passed, so ACTEncoder's default applies.
    default = argparse.SUPPRESS
    add(
        "--objective",
        choices=sorted(OBJECTIVES),
        default=default,
        help="training objective: ACT or a baseline sharing everything else",
    )
    add(
        "--n-components",
        type=_positive_int,
        default=default,
        metavar="N",
        help="width of the learned representation (the output of transform)",
    )
    add(
        "--alpha",
        type=float,
        default=default,
        help="weight of ACT's regulariser (the paper's lambda); the first thing to tune",
    )
    add(
        "--adversary",
        choices=["ema", "previous", "batch"],
        default=default,
        help="where ACT's adversary G comes from: a moving average of past batches, "
        "the previous batch, or the current batch",
    )
    add(
        "--n-views",
        type=_positive_int,
        default=default,
        metavar="N",
        help="augmented views per sample (the loss averages over all pairs)",
    )
    add(
        "--epochs",
        type=_positive_int,
        default=default,
        metavar="N",
        help="training epochs (ACTEncoder's max_iter)",
    )
    add(
        "--batch-size",
        type=_positive_int,
        default=default,
        metavar="N",
        help="samples per optimisation step",
    )
    add(
        "--learning-rate",
        type=float,
        default=default,
        metavar="LR",
        help="peak learning rate of Adam",
    )
    add(
        "--hidden-layer-sizes",
        type=_layer_sizes,
        default=default,
        metavar="W,W",
        help="hidden widths of the MLP encoder, comma-separated (tables only)",
    )
    add(
        "--projection-dim",
        type=_optional_int,
        default=default,
        metavar="N",
        help="width of the projection head used in the loss only; 'none' for no head",
    )
    add(
        "--corruption-rate",
        type=float,
        default=default,
        metavar="P",
        help="tables: share of cells replaced by another row's value in each view",
    )
    add(
        "--noise-scale",
        type=float,
        default=default,
        metavar="S",
        help="tables: standard deviation of Gaussian noise added to each view",
    )
    add(
        "--handle-missing",
        choices=("error", "indicator"),
        default=default,
        help="tables: empty cells are an error, or are encoded with a missing-value "
        "indicator column",
    )
    add(
        "--device",
        type=_device,
        default=default,
        help="'auto' (CUDA, else MPS, else CPU), 'cpu', 'cuda', 'cuda:1', 'mps'",
    )
    add(
        "--seed",
        type=_optional_seed,
        default=seed_default,
        help="random seed of the training ('none': a fresh one each run)",
    )
    add("-q", "--quiet", action="store_true", help="no progress bar while training")


def _add_probe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--k",
        type=_positive_int,
        nargs="+",
        default=[1, 5, 10],
        metavar="K",
        help="labels per class to score with",
    )
    parser.add_argument(
        "--draws",
        type=_positive_int,
        default=10,
        metavar="N",
        help="random draws of the labelled samples per k",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``skact`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
    """
    formatter = _HelpFormatter
    parser = argparse.ArgumentParser(
        prog="skact",
        description="Self-supervised features by Adversarial Contrastive Training (ACT), "
        "for few-shot classification.",
        epilog="Exit status: 0 on success, 2 for bad arguments or unreadable inputs, "
        "1 when the work fails, 130 after Ctrl-C. Run 'skact COMMAND --help' for a "
        "command's options.",
    )
    parser.add_argument("--version", action="version", version=f"skact {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data_help = (
        "a table (.csv with an optional header, .npy, .parquet with pyarrow) or a folder "
        "of images (.png, .jpg, ...; searched recursively)"
    )
    label_help = (
        "column of DATA holding class labels, by name or position (-1: last); it is not "
        "used as a feature"
    )

    demo = commands.add_parser(
        "demo",
        formatter_class=formatter,
        help="few-shot transfer on scikit-learn's digits: ACT vs raw pixels and PCA",
        description="Fit ACTEncoder on the unlabeled training part of a 70/30 stratified "
        "split of scikit-learn's digits (random_state=0), then print the test accuracy of "
        "a linear probe and of k-NN trained on k labelled samples per class, for ACT "
        "features, raw pixels and PCA.",
    )
    demo.add_argument(
        "--data",
        choices=["images", "table"],
        default="images",
        help="feed the digits to ACTEncoder as 8x8 images or as rows of 64 pixels",
    )
    _add_probe_options(demo)
    demo.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also save a figure of accuracy against k (needs matplotlib)",
    )
    _add_training_options(demo, seed_default=0)
    demo.set_defaults(func=_cmd_demo)

    fit = commands.add_parser(
        "fit",
        formatter_class=formatter,
        help="train an ACTEncoder on unlabeled DATA",
        description="Train an ACTEncoder on DATA and save it; labels are not used. The "
        "model keeps a table's header (with pandas installed), and 'skact transform' "
        "checks it. Ctrl-C stops after the current step and saves the model trained so "
        "far.",
    )
    fit.add_argument("data", type=Path, metavar="DATA", help=data_help)
    fit.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="MODEL",
        help="where to write the fitted model",
    )
    fit.add_argument("--label", metavar="COL", help=label_help)
    _add_training_options(fit, seed_default=argparse.SUPPRESS)
    fit.set_defaults(func=_cmd_fit)

    transform = commands.add_parser(
        "transform",
        formatter_class=formatter,
        help="encode DATA with a fitted model",
        description="Write the representation of DATA computed by a model from "
        "'skact fit'. Model files hold weights and settings only: loading one never "
        "runs code from it.",
    )
    transform.add_argument(
        "model", type=Path, metavar="MODEL", help="file from 'skact fit'"
    )
    transform.add_argument("data", type=Path, metavar="DATA", help=data_help)
    transform.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FEATURES",
        help="output file, .npy or .csv (with a header)",
    )
    transform.add_argument(
        "--label",
        metavar="COL",
        help=label_help + "; a CSV output keeps the labels as its last column (an image "
        "folder's subfolder names too, in a column named 'label')",
    )
    transform.set_defaults(func=_cmd_transform)

    evaluate = commands.add_parser(
        "evaluate",
        formatter_class=formatter,
        help="few-shot accuracy of features (or of a model's features) on labelled DATA",
        description="Score a representation with few labels: draw k labelled samples per "
        "class from a pool, train a linear probe (logistic regression) and k-NN on them, "
        "and report the mean and standard deviation of the test accuracy over many draws. "
        "DATA holds features (e.g. from 'skact transform'), or raw inputs with --model. "
        "Samples with a blank label are unlabeled: they are left out.",
    )
    evaluate.add_argument("data", type=Path, metavar="DATA", help=data_help)
    evaluate.add_argument("--label", metavar="COL", help=label_help)
    evaluate.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="labels of DATA in their own file (.npy, or a one-column CSV / text file)",
    )
    evaluate.add_argument(
        "--model",
        type=Path,
        metavar="MODEL",
        help="encode DATA with this model from 'skact fit' first",
    )
    evaluate.add_argument(
        "--test",
        type=Path,
        metavar="TEST",
        help="held-out data in DATA's format (same --label); default: split DATA",
    )
    evaluate.add_argument(
        "--test-labels", type=Path, metavar="FILE", help="labels of TEST in their own file"
    )
    evaluate.add_argument(
        "--test-size",
        type=float,
        default=0.3,
        metavar="F",
        help="share of DATA held out for testing when no --test is given",
    )
    _add_probe_options(evaluate)
    evaluate.add_argument(
        "--protocol",
        nargs="+",
        choices=["linear", "knn"],
        default=["linear", "knn"],
        help="probes to run",
    )
    evaluate.add_argument(
        "--baselines",
        action="store_true",
        help="also score standardised raw DATA and its PCA (tables only)",
    )
    evaluate.add_argument(
        "--seed", type=int, default=0, help="seed of the split and of the label draws"
    )
    evaluate.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="also save the results, as .json (every draw) or .md",
    )
    evaluate.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skact`` command.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad arguments or inputs, 1 when the work fails.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's usage errors
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args))
    except CommandError as exc:
        error, code = str(exc), exc.exit_code
    except (ValueError, OSError, FloatingPointError) as exc:  # NonFiniteLossError too
        # The estimator's advice, in the command's terms.
        error = str(exc).replace("handle_missing='indicator'", "--handle-missing indicator")
        for param in ("learning_rate", "alpha"):  # a failed fit's advice
            error = error.replace(f"{param} (now", f"--{param.replace('_', '-')} (now")
        code = 1
    except KeyboardInterrupt:  # outputs are written whole or not at all
        error, code = "interrupted (Ctrl-C); no file was written", 130
    print(f"skact {args.command}: error: {error}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
