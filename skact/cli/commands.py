"""The ``skact`` commands: ``demo``, ``fit``, ``transform``, ``export`` and ``evaluate``.

Each takes the parsed arguments and returns the exit status; failures are raised as
:class:`~skact.cli.errors.CommandError` (or, from the library, as errors whose advice
:func:`render_error` says in the command's terms).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from .. import ACTEncoder, resolved_settings
from .._cli_support import (
    EXPORT_FORMATS,
    INPUTS_SUFFIX,
    MONITOR_DRAWS,
    MONITOR_ROWS,
    MONITOR_SHOTS,
    Advice,
    atomic_write,
    check_values,
    labeled_mask,
    warn_if_minus_one_ambiguous,
)
from ..callbacks import CSVLogger
from ..evaluation import (
    FewShotResult,
    few_shot_score,
    image_baselines,
    majority_score,
    results_table,
    table_baselines,
)
from . import files
from .errors import CommandError, Interrupted, UsageError
from .files import Data
from .parser import OPTIONS

__all__ = ["COMMANDS", "render_error"]


# ---------------------------------------------------------------------------- errors


def _as_options(parameters: dict[str, Any]) -> str:
    """``{"handle_missing": "indicator"}`` -> ``--handle-missing indicator``."""
    return " ".join(f"{OPTIONS[p].flag} {v}" for p, v in parameters.items())


def render_error(exc: BaseException, command: str) -> str:
    """A library error in the command's terms: its advice (:class:`Advice`) names the
    command's options instead of Python parameters; other errors as they are."""
    advice = getattr(exc, "advice", None)
    if not isinstance(advice, Advice):
        return str(exc)
    fitting = command in ("fit", "demo")
    if advice.reason == "nan":
        setting = _as_options(advice.parameters)
        fix = (
            f"ACTEncoder encodes missing values itself with {setting}; or fill the "
            "empty cells first."
            if fitting
            else "This model rejects missing values: fill the empty cells, or fit a "
            f"model that encodes them with skact fit {setting}."
        )
    elif advice.reason == "inf":
        fix = "ACTEncoder needs finite values: clip them, or empty those cells and " + (
            "fit with --handle-missing indicator."
            if fitting
            else "use a model fitted with --handle-missing indicator."
        )
    elif advice.reason == "range":
        fix = "Rescale those columns first (e.g. take their logarithm)."
    elif advice.reason == "diverged":
        lower = " or ".join(
            f"{OPTIONS[p].flag} (now {v:g})" for p, v in advice.parameters.items()
        )
        fix = f"Try a lower {lower}, or look for extreme values in DATA."
    elif advice.reason == "diverged_at_start":
        # Each skact fit trains a new model: the starting weights are new ones.
        fix = "The learning rate is not the cause: look for extreme values in DATA."
    else:
        return str(exc)
    return f"{advice.problem} {fix}"


def _check_values(data: Data, handle_missing: str) -> None:
    """Refuse missing (unless ``handle_missing`` encodes them) and infinite values
    before any training, naming the columns of the file's header.

    Values beyond float32's range are left to the estimator, which accepts them on the
    mixed-table path (it standardises in float64) and refuses them on the other.
    """
    if data.is_images or (data.X.ndim != 2 and data.columns is None):
        return
    check_values(
        files.missing_mask(data),
        "ACTEncoder",
        columns=data.columns,
        allow_nan=handle_missing != "error",
        allow_huge=True,
    )


# ---------------------------------------------------------------------------- fit


def _encoder_from(args: argparse.Namespace) -> ACTEncoder:
    """An ACTEncoder with the training options given on the command line.

    The options' types already check the parameters' constraints (they are derived
    from them), so a value the estimator would refuse never gets here.
    """
    names = ACTEncoder().get_params()
    params = {
        k: v for k, v in vars(args).items() if k in names and k != "categorical_features"
    }
    params["verbose"] = 0 if args.quiet else 1
    return ACTEncoder(**params)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(settings: dict[str, Any], data: Data) -> str:
    """The line ``skact fit`` prints before training."""
    kind = settings["kind"]
    if data.is_images:
        c, h, w = settings["input_shape"]
        what = f"images seen at {h}x{w} pixels, {_plural(c, 'channel')}"
    else:
        what = f"{kind}, {_plural(data.X.shape[1], 'column')}"
        if data.categorical is not None and data.categorical.any():
            names = [
                n for n, c in zip(data.columns or [], data.categorical, strict=True) if c
            ]
            what += f", categorical: {files.list_names(names, 5)}"
    views = (
        ""
        if settings["corruption_rate"] is None
        else f", corruption rate {settings['corruption_rate']:g}"
    )
    return (
        f"fitting ACTEncoder on {settings['n_samples']} samples ({what}): "
        f"{settings['encoder']} network, {_plural(settings['max_iter'], 'epoch')}, "
        f"batch size {settings['batch_size']}{views}, device {settings['device']}"
    )


def fit(args: argparse.Namespace) -> int:
    """``skact fit DATA -o MODEL``: train and save a model."""
    files.check_output(args.output, None, "MODEL")
    files.check_not_an_input(
        args.output, "MODEL", {"DATA": args.data, "--labels": args.labels}
    )
    log = getattr(args, "log", None)
    if log is not None:
        files.check_output(log, None, "--log")
        files.check_not_an_input(log, "--log", {"DATA": args.data, "--labels": args.labels})
        if log.resolve() == args.output.resolve():
            raise UsageError(f"--log {str(log)!r} is MODEL; name another file")
    encoder = _encoder_from(args)
    if log is not None:
        encoder.set_params(callbacks=[CSVLogger(log)])
    extra = getattr(args, "categorical_features", None) or ()
    if extra and args.data.is_dir():
        raise UsageError("--categorical is for tables, not an image folder")
    data = files.read(args.data, args.label, extra)
    y = _fit_target(data, args)
    if extra and data.categorical is not None:
        # The columns given and those holding text: a list replaces "from_dtype".
        encoder.set_params(categorical_features=np.flatnonzero(data.categorical).tolist())
    _check_values(data, encoder.handle_missing)
    table = data.X if data.is_images else files.as_table(data, data.X, None)
    settings = resolved_settings(encoder, table)
    print(_summary(settings, data), flush=True)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # It tells a Python script what the estimator kept; the command says below
            # what it wrote instead.
            warnings.filterwarnings("ignore", "ACTEncoder.fit was interrupted")
            encoder.fit(table, y)
    except KeyboardInterrupt:
        encoder.set_params(callbacks=None)  # the log is the command's, not MODEL's
        raise Interrupted(
            _save_interrupted(encoder, args.output, args.optimizer_state)
        ) from None
    encoder.set_params(callbacks=None)
    size = files.save_model(encoder, args.output, optimizer_state=args.optimizer_state)
    print(
        f"fitted ACTEncoder on {len(data.X)} samples ({settings['encoder']} network, "
        f"{_plural(encoder.n_iter_, 'epoch')}, {time.perf_counter() - start:.1f} s, "
        f"final loss {encoder.loss_curve_[-1]:.4f}{_monitor_summary(encoder, y)}); "
        f"saved to {args.output} ({files.file_size(size)})"
    )
    return 0


def _fit_target(data: Data, args: argparse.Namespace) -> np.ndarray | None:
    """The labels ``fit`` gives the estimator's monitor, as class codes (-1: unlabeled).

    A blank label, or -1 unless ``--minus-one class``, marks a row nobody labeled (the
    library's rule, :func:`skact._cli_support.labeled_mask`): it is trained on like every
    row and kept out of the monitor. The monitor needs the classes only, so they go as
    codes, -1 for the unlabeled rows whatever the labels were (a class named -1 too).
    None when DATA has no labels, or no labeled row (said, with what the monitor
    follows instead).
    """
    if args.label is not None and args.labels is not None:
        raise UsageError("give either --label (a column) or --labels (a file), not both")
    n_samples = len(data.X)
    y = data.y
    if args.labels is not None:
        y = _read_labels(args.labels, args.data, n_samples)
    if y is None:
        return None
    if len(y) != len(data.X):
        raise UsageError(
            f"{args.labels}: {len(y)} labels for the {len(data.X)} samples of {args.data}"
        )
    where = _label_source(args.label, args.labels)
    labeled = _labeled_rows(y, args.minus_one, f"{args.data}, {where}")
    unlabeled = _UNLABELED[args.minus_one]
    if not labeled.any():
        print(
            f"{args.data}: every label in {where} is {unlabeled}: fitting without labels "
            "(the monitor follows the label-free effective rank)"
        )
        return None
    if not labeled.all():
        print(
            f"{args.data}: {(~labeled).sum()} of {len(y)} samples have no label in "
            f"{where} ({unlabeled}): they are trained on as unlabeled rows; the "
            f"{labeled.sum()} labeled ones also feed the monitor"
        )
    codes = np.full(len(y), -1)
    codes[labeled] = np.unique(y[labeled], return_inverse=True)[1]
    return codes


def _label_source(label: str | None, labels: Path | None) -> str:
    """Where DATA's labels come from, for messages."""
    if label is not None:
        return f"column {label!r}"
    return str(labels) if labels is not None else "its subfolders"


#: How an unlabeled row's label reads under each ``--minus-one`` choice.
_UNLABELED = {"unlabeled": "blank or -1", "class": "blank"}


def _labeled_rows(y: np.ndarray, minus_one: str, name: str) -> np.ndarray:
    """Which of the labels ``y`` (named ``name`` in messages) are labeled, by the
    library's rule with ``--minus-one``; warns when its -1 labels look like they mean
    the other thing."""
    fix = {
        "unlabeled": "If -1 is a class there, pass --minus-one class.",
        "class": "If it marks unlabeled rows, leave out --minus-one class.",
    }[minus_one]
    warn_if_minus_one_ambiguous(y, minus_one=minus_one, name=name, fix=fix)
    return labeled_mask(y, minus_one=minus_one)


def _read_labels(path: Path, data: Path, n_samples: int) -> np.ndarray:
    """The labels in file ``path`` for DATA's ``n_samples`` rows; says how the file's
    first line was read where it could be a header or a label."""
    y, note = files.read_labels(path, n_samples, str(data))
    if note is not None:
        print(note)
    return y


def _monitor_summary(encoder: ACTEncoder, y: np.ndarray | None) -> str:
    """``, monitor (...) 0.910``: the monitor's estimate for the model kept (the last
    epoch's, or with ``keep_best="monitor"`` the kept epoch's, named) and what it
    measures."""
    curve = np.asarray(encoder.monitor_curve_, dtype=np.float64)
    value, kept = (curve[-1] if len(curve) else np.nan), ""
    if encoder.keep_best == "monitor" and not np.isnan(curve).all():
        # The epoch the Monitor callback put back: the first of the highest estimates
        # (`fit` starts the curve anew, so position i is epoch i + 1).
        epoch = int(np.nanargmax(curve))
        value, kept = curve[epoch], f" at epoch {epoch + 1}, the epoch kept"
    if np.isnan(value):
        return ""
    if encoder.monitor_name_ == "few_shot_1nn_accuracy":
        n = int(np.count_nonzero(labeled_mask(y)))
        rows = f"{n} labeled rows"
        if n > MONITOR_ROWS:  # the monitor follows a seeded sample of them
            rows = f"a sample of {MONITOR_ROWS} of the {n} labeled rows"
        return (
            f", monitor (1-NN accuracy of {rows}, each compared with at most "
            f"{MONITOR_SHOTS} other labeled rows per class, mean of {MONITOR_DRAWS} "
            f"draws; a rough guide to few-shot accuracy) {value:.3f}{kept}"
        )
    width = len(encoder.get_feature_names_out())
    why = ""
    if y is not None:
        why = "; the labels need 2 classes of at least 2 rows each"
    return f", monitor (effective rank, label-free{why}) {value:.3g} of {width}{kept}"


def _save_interrupted(encoder: ACTEncoder, path: Path, optimizer_state: bool) -> str:
    """Save what an interrupted fit kept, if anything; say what was written.

    The estimator keeps every training step that finished (a second Ctrl-C drops only
    the step under way), so it is unfitted only when none did.
    """
    try:
        check_is_fitted(encoder)
    except NotFittedError:
        return (
            f"interrupted (Ctrl-C) before any training step; nothing was written to {path}"
        )
    # A second Ctrl-C here leaves the old file: the save is atomic.
    files.save_model(encoder, path, optimizer_state=optimizer_state)
    n = encoder.n_iter_
    trained = _plural(n, "complete epoch") if n else "part of the first epoch"
    return f"interrupted (Ctrl-C); saved the model trained so far ({trained}) to {path}"


# ---------------------------------------------------------------------------- transform


def _read_for(model: ACTEncoder, path: Path, label: str | None) -> Data:
    """DATA read for ``model``: the columns it encodes as categories hold text."""
    mask = getattr(model, "is_categorical_", None)
    return files.read(path, label, () if mask is None else np.asarray(mask, dtype=bool))


def transform(args: argparse.Namespace) -> int:
    """``skact transform MODEL DATA -o FEATURES``: encode DATA."""
    files.check_output(args.output, files.FEATURE_SUFFIXES, "FEATURES")
    files.check_not_an_input(
        args.output, "FEATURES", {"MODEL": args.model, "DATA": args.data}
    )
    csv_output = args.output.suffix.lower() == ".csv"
    if args.with_paths and not args.data.is_dir():
        raise UsageError(
            "--with-paths is for image folders; a table's rows keep the table's order"
        )
    if args.with_paths and not csv_output:
        raise UsageError(
            "--with-paths needs a .csv output: a .npy file holds numbers only (its rows "
            "follow the images' sorted paths)"
        )
    model = files.load_model(args.model)
    data = _read_for(model, args.data, args.label)
    files.check_columns(model, data, args.data, args.label)
    _check_values(data, model.handle_missing)
    # Names are checked before the work: a row must lead to one file.
    paths, labels, notes = None, data.y, []
    if args.with_paths:
        paths, note = files.utf8_names(data.X, "image paths")
        notes.append(note)
    if labels is not None and csv_output and data.is_images:
        written, note = files.utf8_names(list(labels), "class folder names")
        labels = np.array(written)
        notes.append(note)
    for note in notes:
        if note is not None:
            print(note)
    X = data.X if data.is_images else files.as_table(data, data.X, model)
    features = model.transform(X)
    names = [str(n) for n in model.get_feature_names_out()]
    if paths is not None:
        names.insert(0, files.PATH_COLUMN)
    if labels is not None and csv_output:
        # An image folder's class labels (its subfolders) go in a column named "label".
        label_name = args.label if args.label is not None else "label"
        files.write_features(args.output, features, [*names, label_name], labels, paths)
    else:
        files.write_features(args.output, features, names, paths=paths)
    print(f"wrote {features.shape[0]} x {features.shape[1]} features to {args.output}")
    return 0


# ---------------------------------------------------------------------------- export


def export(args: argparse.Namespace) -> int:
    """``skact export MODEL -o FILE``: the feature extractor for serving."""
    suffixes = None if args.format is not None else tuple(EXPORT_FORMATS)
    files.check_output(args.output, suffixes, "FILE")
    files.check_not_an_input(args.output, "FILE", {"MODEL": args.model})
    model = files.load_model(args.model)
    try:
        inputs = model.export(args.output, format=args.format)
    except ImportError as exc:  # onnx missing: the message names the extra
        raise CommandError(str(exc)) from None
    described = ", ".join(
        f"{spec['name']} {spec['dtype']} ({', '.join(map(str, spec['shape']))})"
        for spec in inputs["inputs"]
    )
    print(
        f"wrote {args.output} (inputs: {described}; output: features float32 "
        f"(n, {inputs['output']['shape'][1]})); its inputs are described in "
        f"{args.output}{INPUTS_SUFFIX}"
    )
    return 0


# ---------------------------------------------------------------------------- evaluate

#: Column names of a CSV written by ``skact transform`` (get_feature_names_out).
_FEATURE_NAME = re.compile(r"actencoder\d+")


def _labelled(
    path: Path,
    label: str | None,
    labels: Path | None,
    model: ACTEncoder | None,
    minus_one: str,
) -> tuple[Data, np.ndarray]:
    """DATA and its labels; unlabeled rows (a blank label, or -1 unless ``minus_one``
    is ``"class"``) are set aside (and counted)."""
    if label is not None and labels is not None:
        raise UsageError("give either --label (a column) or --labels (a file), not both")
    data = _read_for(model, path, label) if model is not None else files.read(path, label)
    y = data.y if labels is None else _read_labels(labels, path, len(data.X))
    if y is None:
        raise UsageError(
            f"{path}: no labels; name the label column with --label, give a labels file "
            "with --labels, or put the images of each class in their own subfolder"
        )
    if len(y) != len(data.X):
        raise UsageError(f"{path}: {len(data.X)} samples but {len(y)} labels")
    # A blank cell (or -1) is a row nobody labelled, not a class named '' (or -1).
    where = _label_source(label, labels)
    labelled = np.flatnonzero(_labeled_rows(y, minus_one, f"{path}, {where}"))
    unlabeled = _UNLABELED[minus_one]
    if len(labelled) == 0:
        raise UsageError(f"{path}: every label is {unlabeled}, so no row is labeled")
    X = data.X
    if len(labelled) < len(y):
        print(
            f"{path}: {len(y) - len(labelled)} of {len(y)} samples have no label "
            f"({unlabeled}); they are left out as unlabeled"
        )
        X = [X[i] for i in labelled] if isinstance(X, list) else X[labelled]
    return data._replace(X=X, y=y[labelled]), y[labelled]


def _extracted_features(data: Data, declared: bool) -> Data | None:
    """DATA as features when it holds features already extracted, else None.

    Features are declared with ``--features``, or recognised in a CSV or Parquet
    header written by ``skact transform`` (``actencoder0``, ...; a ``path`` column,
    from ``--with-paths``, is dropped).
    """
    if data.is_images:
        return None
    columns = data.columns if data.header else None
    keep = list(range(data.X.shape[1])) if data.X.ndim == 2 else []
    if columns is not None and files.PATH_COLUMN in columns:
        keep.remove(columns.index(files.PATH_COLUMN))
    written = (
        columns is not None
        and bool(keep)
        and all(_FEATURE_NAME.fullmatch(columns[j]) for j in keep)
    )
    if not (declared or written):
        return None
    if columns is None or len(keep) == data.X.shape[1]:
        return data
    X = data.X[:, keep].astype(np.float64)
    categorical = None if data.categorical is None else data.categorical[keep]
    return data._replace(X=X, columns=[columns[j] for j in keep], categorical=categorical)


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
        who = f"classes {files.list_names([f'{c!r} ({n})' for c, n in short])} have"
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


def evaluate(args: argparse.Namespace) -> int:
    """``skact evaluate DATA``: few-shot accuracy of features or of a model's."""
    if args.output is not None:
        files.check_output(args.output, (".json", ".md"), "--output")
        files.check_not_an_input(
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
    if args.features and args.model is not None:
        raise UsageError(
            "--features says DATA is already encoded; --model encodes it: give one"
        )
    model = files.load_model(args.model) if args.model is not None else None
    data, y = _labelled(args.data, args.label, args.labels, model, args.minus_one)
    if model is None and data.is_images:
        raise UsageError("an image folder can only be evaluated through a model (--model)")
    inputs = [(data, args.data)]
    test = None
    if args.test is not None:
        test, y_test = _labelled(
            args.test, args.label, args.test_labels, model, args.minus_one
        )
        inputs.append((test, args.test))
    features = None
    if model is not None:  # once every input is read: unreadable inputs are exit 2
        for read, path in inputs:
            files.check_columns(model, read, path, args.label)
            _check_values(read, model.handle_missing)
    else:
        features = _extracted_features(data, args.features)
        if features is not None:
            data = features
            if test is not None:
                test = _extracted_features(test, True)
        if data.categorical is not None and data.categorical.any():
            names = [n for n, c in zip(data.columns or [], data.categorical) if c]
            raise UsageError(
                f"{args.data}: columns {files.list_names(names)} hold text, so DATA is "
                "not numeric features; name a label column with --label, or give the "
                "model that encodes DATA with --model"
            )
    if test is not None:
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
    # Each representation with the inputs it encodes: an image folder's baselines take
    # its pixels, the model its files.
    representations: dict[str, tuple[Any, tuple[Any, Any, Any, Any]]] = {}
    if data.is_images:
        split = (X_pool, y_pool, X_test, y_test)
        if args.baselines:
            pixels = files.read_pixels([*X_pool, *X_test])
            P_pool, P_test = pixels[: len(X_pool)], pixels[len(X_pool) :]
            pixel_split = (P_pool, y_pool, P_test, y_test)
            for name, baseline in image_baselines().items():
                representations[name] = (baseline.fit(P_pool), pixel_split)
    else:
        X_pool, X_test = (files.as_table(data, X, model) for X in (X_pool, X_test))
        split = (X_pool, y_pool, X_test, y_test)
        if args.baselines and features is not None:
            print(
                f"{args.data} holds features already extracted: --baselines scores "
                "them as they are, without standardising them again; for raw-input "
                "baselines, evaluate the raw data with --model MODEL --baselines"
            )
        elif args.baselines:
            # Named by the whole table's gaps, fitted on the pool's rows.
            for name, baseline in table_baselines(data.X, data.categorical).items():
                representations[name] = (baseline.fit(X_pool), split)
    representations["ACTEncoder" if model is not None else "features"] = (model, split)
    floor = majority_score(y_pool, y_test, args.k, args.protocol, args.draws, args.metric)
    results = {
        "majority class": floor,
        **_score_all(representations, args, args.seed, args.protocol, args.metric),
    }
    table = results_table(results)
    note = _imbalance_note(y_test, args.metric)
    if note is not None:
        print(note)
    print(
        f"{len(y_pool)} samples to draw labels from, {len(y_test)} test samples, "
        f"{args.draws} draws; {args.metric} mean ± std:"
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


def _score_all(
    representations: dict[str, tuple[Any, tuple[Any, Any, Any, Any]]],
    args: argparse.Namespace,
    seed: int | None,
    protocols: Sequence[str] = ("linear", "knn"),
    scoring: str = "accuracy",
) -> dict[str, list[FewShotResult]]:
    """Few-shot scores of each representation on its ``(X_pool, y_pool, X_test,
    y_test)``, with the command's ``k`` and ``draws``, and labels drawn by ``seed``."""
    return {
        name: few_shot_score(
            rep,
            *split,
            k=args.k,
            protocols=protocols,
            n_draws=args.draws,
            random_state=seed,
            scoring=scoring,
        )
        for name, (rep, split) in representations.items()
    }


#: Classes are imbalanced, for ``evaluate``'s note, when the largest has at least this
#: many times the test samples of the smallest: accuracy then weighs one class at
#: least twice as much as another (two classes: a 67% / 33% split or more).
IMBALANCE_RATIO = 2.0


def _imbalance_note(y_test: np.ndarray, metric: str) -> str | None:
    """A line suggesting balanced accuracy when plain accuracy scores imbalanced
    classes; None otherwise."""
    if metric != "accuracy":
        return None
    counts = np.unique(y_test, return_counts=True)[1]
    if len(counts) < 2 or counts.max() < IMBALANCE_RATIO * counts.min():
        return None
    share = counts.max() / counts.sum()
    return (
        f"note: the classes are imbalanced (the largest holds {share:.0%} of the test "
        f"samples, {counts.max() / counts.min():.1f} times the smallest): accuracy "
        "weighs each class by its size, and always predicting the largest scores about "
        "its share (the 'majority class' row); --metric balanced_accuracy weighs every "
        "class equally"
    )


# ---------------------------------------------------------------------------- demo


def _require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "--plot needs matplotlib (pip install matplotlib, or skact[bench])"
        )


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
    for ax, protocol in zip(axes, protocols, strict=False):
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


def demo(args: argparse.Namespace) -> int:
    """``skact demo``: few-shot transfer on scikit-learn's digits."""
    from sklearn.datasets import load_digits

    if args.plot is not None:
        _require_matplotlib()
        files.check_output(args.plot, None, "--plot")
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
    print(
        f"trained {_plural(encoder.n_iter_, 'epoch')} in "
        f"{time.perf_counter() - start:.1f} s"
    )
    split = (X_pool, y_pool, X_test, y_test)
    representations = {
        name: (baseline.fit(X_pool), split) for name, baseline in image_baselines().items()
    }
    representations["ACT"] = (encoder, split)
    results = _score_all(representations, args, args.random_state)
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


#: Command name -> the function that runs it.
COMMANDS = {
    "demo": demo,
    "fit": fit,
    "transform": transform,
    "export": export,
    "evaluate": evaluate,
}
