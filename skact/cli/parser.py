"""The ``skact`` argument parser, derived from ``ACTEncoder``'s parameters.

Each training option of ``skact fit`` (and ``skact demo``) is an ``ACTEncoder``
parameter: its choices and numeric range come from the estimator's
``_parameter_constraints`` and the default shown in ``--help`` from ``get_params()``,
so that the command and the estimator cannot drift apart. :data:`OPTIONS` says which
option each parameter is; :data:`EXCLUDED` says why the others have none.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from numbers import Integral
from pathlib import Path
from typing import Any, NamedTuple

from sklearn.metrics import get_scorer_names
from sklearn.utils._param_validation import Interval, StrOptions

from .. import ACTEncoder, __version__
from .._cli_support import (
    EXPORT_FORMATS,
    MINUS_ONE,
    Advice,
    names_a_folder,
    resolve_device,
)

__all__ = ["EXCLUDED", "OPTIONS", "build_parser"]


class Option(NamedTuple):
    """How one ``ACTEncoder`` parameter appears on the command line."""

    flag: str  #: the option, e.g. ``--epochs``
    help: str
    metavar: str | None = None
    #: What the default does, in words, shown where it is None or a boolean (then
    #: required): the value ("none", "False") says nothing about what the fit does.
    default_text: str | None = None


#: ACTEncoder parameter -> its option. The type, choices and range are derived.
OPTIONS: dict[str, Option] = {
    "objective": Option(
        "--objective", "training objective: ACT or a baseline sharing everything else"
    ),
    "n_components": Option(
        "--n-components",
        "width of the learned representation (the output of transform); 'none': the "
        "network's own width",
        "N",
        "none, the network's own width",
    ),
    "alpha": Option(
        "--alpha",
        "weight of ACT's regulariser (the paper's lambda); the first thing to tune",
        "A",
    ),
    "n_views": Option(
        "--n-views", "augmented views per sample (the loss averages over all pairs)", "N"
    ),
    "adversary": Option(
        "--adversary",
        "where ACT's adversary G comes from: a moving average of past batches, the "
        "previous batch, or the current batch",
    ),
    "adversary_momentum": Option(
        "--adversary-momentum", "momentum of the moving-average adversary", "M"
    ),
    "encoder": Option(
        "--encoder",
        "network: mlp for tables, convnet (small, fast on a CPU) or resnet18 (the "
        "paper's CIFAR ResNet-18) for images; auto picks by input and device",
    ),
    "hidden_layer_sizes": Option(
        "--hidden-layer-sizes",
        "hidden widths of the MLP encoder, comma-separated (tables only)",
        "W,W",
    ),
    "projection_dim": Option(
        "--projection-dim",
        "width of the projection head used in the loss only; 'none' for no head",
        "N",
    ),
    "corruption_rate": Option(
        "--corruption-rate",
        "tables: share of cells replaced by another row's value in each view; auto: "
        "0.1 with a categorical column, 0.2 for numbers only",
        "P",
    ),
    "noise_scale": Option(
        "--noise-scale",
        "tables: standard deviation of Gaussian noise added to each view",
        "S",
    ),
    "categorical_features": Option(
        "--categorical",
        "tables: columns to treat as categorical (names or positions, without the "
        "label column), besides those holding text, which always are",
        "COL",
    ),
    "handle_missing": Option(
        "--handle-missing",
        "tables: empty cells are an error, or are encoded with a missing-value "
        "indicator column",
    ),
    "image_size": Option(
        "--image-size",
        "images: size to store them at, N or HxW pixels; 'none': the most common size "
        "in the folder",
        "N",
        "none, the most common size in the folder",
    ),
    "image_layout": Option(
        "--image-layout",
        "images in a 4-d .npy array: where the channels are",
    ),
    "channel_mismatch": Option(
        "--channel-mismatch",
        "images: what the model does later (transform, partial fits) with images of "
        "another channel count than DATA's: convert them (grey repeated to RGB, RGB "
        "to grey by luma, alpha dropped) with a warning, or refuse them",
    ),
    "batch_size": Option("--batch-size", "samples per optimisation step", "N"),
    "max_iter": Option("--epochs", "training epochs (ACTEncoder's max_iter)", "N"),
    "learning_rate": Option("--learning-rate", "peak learning rate of Adam", "LR"),
    "weight_decay": Option("--weight-decay", "Adam's weight decay", "W"),
    "early_stopping": Option(
        "--early-stopping",
        "hold out --validation-fraction of DATA and stop when its loss stops improving",
        default_text="no early stopping: every row is trained on, for all --epochs",
    ),
    "validation_fraction": Option(
        "--validation-fraction", "share of DATA held out for early stopping", "F"
    ),
    "tol": Option(
        "--tol", "smallest improvement of the validation loss that counts", "TOL"
    ),
    "n_iter_no_change": Option(
        "--n-iter-no-change",
        "epochs without improvement before early stopping stops",
        "N",
    ),
    "keep_best": Option(
        "--keep-best",
        "weights to keep: the last epoch's, or the epoch with the best monitor "
        "estimate (1-NN accuracy of the labeled rows, else the effective rank)",
    ),
    "device": Option(
        "--device", "'auto' (CUDA, else MPS, else CPU), 'cpu', 'cuda', 'cuda:1', 'mps'"
    ),
    "precision": Option(
        "--precision",
        "precision of the forward passes: 'auto' (bfloat16 on GPUs that compute in "
        "it), or float32 or bfloat16 on any device",
    ),
    "random_state": Option(
        "--seed",
        "random seed of the training ('none': a fresh one each run)",
        "SEED",
        "none, a fresh seed each run: two fits differ; give a seed to make a fit "
        "reproducible",
    ),
}

#: ACTEncoder parameters that are no option, and why.
EXCLUDED: dict[str, str] = {
    # A Python object: the default views are chosen from the images' size and device.
    "augment": "an ImageAugment or TabularAugment object, which a shell cannot pass",
    # `skact fit` always trains a new model from DATA; continuing one is the API's job.
    "warm_start": "each `skact fit` trains a new model",
    # One process writes one model file; multi-process training is started from Python
    # (see the distributed guide), where 'auto' already follows torchrun.
    "distributed": "the command trains in one process",
    # The command's own -q/--quiet: a progress bar unless asked not to.
    "verbose": "the command's -q/--quiet",
    # Python objects; the one the command offers, a log file, is `skact fit --log`.
    "callbacks": "Python objects; `skact fit --log FILE` writes the epoch records",
    # Both are for a pretrained network of your own (encoder=), a Python object.
    "freeze": "for a pretrained encoder module, which a shell cannot pass",
    "image_normalization": "for a pretrained encoder module, which a shell cannot pass",
}


# ---------------------------------------------------------------------------- types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _output_file(text: str) -> Path:
    """An output file's path; one ending with a separator names a folder, refused.

    ``Path`` drops a trailing ``/``: ``-o notes.csv/`` would replace the file
    ``notes.csv`` and ``-o newdir/`` write a file named ``newdir``.
    """
    if names_a_folder(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} ends with a path separator, which names a folder; name the file "
            f"to write, e.g. {text + 'model.skact'!r}"
        )
    return Path(text)


def _describe(interval: Interval) -> str:
    """An interval in words, as the option's error says it."""
    if (
        interval.type is Integral
        and interval.left == 1
        and interval.right is None
        and interval.closed in ("left", "both")
    ):
        return "a positive integer"
    return str(interval)


def _from_constraints(constraints: list[Any]) -> Callable[[str], Any]:
    """A converter accepting what ``constraints`` accept: strings of a StrOptions,
    'none' where None is, numbers in an Interval."""
    intervals = [c for c in constraints if isinstance(c, Interval)]
    options = sorted(
        {o for c in constraints if isinstance(c, StrOptions) for o in c.options}
    )
    allows_none = None in constraints
    alternatives = [*options, *(["none"] if allows_none else [])]

    def convert(text: str) -> Any:
        if text in options:
            return text
        if allows_none and text.lower() == "none":
            return None
        for interval in intervals:
            try:
                value = int(text) if interval.type is Integral else float(text)
            except ValueError:
                continue
            if interval.is_satisfied_by(value):
                return value
        what = " or ".join(_describe(i) for i in intervals)
        other = f" (or: {', '.join(alternatives)})" if alternatives else ""
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}{other}")

    return convert


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


def _image_size(text: str) -> int | tuple[int, int] | None:
    if text.lower() == "none":
        return None
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected N or HxW in pixels (e.g. 32 or 48x64) or 'none', got {text!r}"
        )
    return sizes[0] if len(sizes) == 1 else (sizes[0], sizes[1])


def _device(text: str) -> str:
    """A device string ACTEncoder accepts here, checked before any data is read."""
    try:
        resolve_device(text)
    except ValueError as exc:
        advice = getattr(exc, "advice", None)
        if not isinstance(advice, Advice):
            raise argparse.ArgumentTypeError(str(exc)) from None
        instead = advice.parameters.get("device", ())
        use = f"; use {' or '.join(instead)}" if instead else ""
        raise argparse.ArgumentTypeError(advice.problem + use) from None
    return text


def _scorer_name(text: str) -> str:
    """A scikit-learn scorer name, checked before any data is read."""
    names = get_scorer_names()
    if text in names:
        return text
    close = difflib.get_close_matches(text, names, n=3)
    like = f"; did you mean {' or '.join(close)}?" if close else ""
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a scikit-learn scorer name{like} (all of them: "
        "python -c 'import sklearn.metrics; print(sklearn.metrics.get_scorer_names())')"
    )


def _optional_seed(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer or 'none', got {text!r}"
        ) from None


#: Parameters whose constraints (array-like, tuple, torch.device, random_state) say
#: too little for a shell: their converters are written out.
_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "hidden_layer_sizes": _layer_sizes,
    "image_size": _image_size,
    "device": _device,
    "random_state": _optional_seed,
}


def _option_kwargs(param: str) -> dict[str, Any]:
    """``add_argument``'s keywords for ``param``, from its constraints."""
    constraints = ACTEncoder._parameter_constraints[param]
    if param == "categorical_features":
        return {"nargs": "+"}  # names or positions, resolved against DATA's columns
    if param in _CONVERTERS:
        return {"type": _CONVERTERS[param]}
    if constraints == ["boolean"]:
        return {"action": argparse.BooleanOptionalAction}
    if not any(isinstance(c, Interval) or c is None for c in constraints):
        options = {o for c in constraints if isinstance(c, StrOptions) for o in c.options}
        return {"choices": sorted(options)}
    return {"type": _from_constraints(constraints)}


def _default_text(param: str, value: Any) -> str:
    """``param``'s default as its help shows it: in words where the value is None or a
    boolean (:attr:`Option.default_text`), else the value (``512,512`` for a tuple)."""
    if value is None or isinstance(value, bool):
        words = OPTIONS[param].default_text
        if words is not None:
            return words
        # A help saying "(default: none)" or "(default: False)" leaves the user to
        # guess what the fit does then: the option's entry must say it.
        raise ValueError(
            f"OPTIONS[{param!r}] needs a default_text: its default {value!r} does not "
            "say what the fit does without the option"
        )
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def add_training_options(
    parser: argparse.ArgumentParser, seed_default: Any, tables: bool = True
) -> None:
    """Add an option per :data:`OPTIONS` entry; dests are ACTEncoder's parameter names.

    An option not given is not set (``argparse.SUPPRESS``), so ACTEncoder's default
    applies; ``--seed`` defaults to ``seed_default`` (``argparse.SUPPRESS``: the
    estimator's). ``tables=False`` leaves out ``--categorical``, which names columns
    of DATA. Each help ends with the default, in words where it is None or a boolean.
    """
    group = parser.add_argument_group(
        "training options (ACTEncoder's parameters; defaults are its own)"
    )
    defaults = ACTEncoder().get_params()
    if seed_default is not argparse.SUPPRESS:
        defaults["random_state"] = seed_default
    for param, option in OPTIONS.items():
        if param == "categorical_features" and not tables:
            continue
        kwargs = _option_kwargs(param)
        default = seed_default if param == "random_state" else argparse.SUPPRESS
        if param == "categorical_features":
            shown = "text columns only"
        else:
            shown = _default_text(param, defaults[param])
        group.add_argument(
            option.flag,
            dest=param,
            default=default,
            metavar=option.metavar if "choices" not in kwargs else None,
            help=f"{option.help} (default: {shown})",
            **kwargs,
        )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar while training (default: a progress bar with the time "
        "left, on stderr)",
    )


# ---------------------------------------------------------------------------- parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default value, unless its help says the default already.

    A help whose default is None or a boolean says it in words, ``(default: ...)``:
    the value itself ("None", "True") does not say what the command then does.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if (
            action.help is None
            or "(default: " in action.help
            or action.default is None
            or isinstance(action.default, bool)
        ):
            return action.help
        return super()._get_help_string(action)


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


def _add_minus_one_option(parser: argparse.ArgumentParser) -> None:
    """``--minus-one``: what a label of -1 means, the choices of the library's rule."""
    parser.add_argument(
        "--minus-one",
        choices=MINUS_ONE,
        default=MINUS_ONE[0],
        help="what a label of -1 (or -1.0) means: an unlabeled row, as a blank one "
        "(the rule of skact's Python API too), or a class of its own, for labels whose "
        "classes include -1",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``skact`` argument parser; ``args.command`` names the command to run.

    Returns
    -------
    argparse.ArgumentParser
    """
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
    for add in (_add_demo, _add_fit, _add_transform, _add_export, _add_evaluate):
        add(commands)
    return parser


_DATA_HELP = (
    "a table (.csv with an optional header, .npy, .parquet with pyarrow; text "
    "columns are categorical) or a folder of images (.png, .jpg, ...; searched "
    "recursively, taken in sorted path order)"
)
_LABEL_HELP = (
    "column of DATA holding class labels, by name or position (-1: last); it is not "
    "used as a feature"
)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    """``skact demo``: its options, the training ones without ``--categorical``."""
    demo = commands.add_parser(
        "demo",
        formatter_class=_HelpFormatter,
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
        type=_output_file,
        metavar="FILE",
        help="also save a figure of accuracy against k, which needs matplotlib "
        "(default: no figure)",
    )
    add_training_options(demo, seed_default=0, tables=False)


def _add_fit(commands: argparse._SubParsersAction) -> None:
    """``skact fit DATA -o MODEL``: inputs, labels (for the monitor), training options."""
    fit = commands.add_parser(
        "fit",
        formatter_class=_HelpFormatter,
        help="train an ACTEncoder on unlabeled DATA",
        description="Train an ACTEncoder on DATA and save it. Every row is trained on; "
        "labels (--label, --labels, an image folder's class subfolders) only feed the "
        "monitor after each epoch: the 1-NN accuracy of the labeled rows, each compared "
        "with at most 5 other labeled rows per class (mean of 10 draws), "
        "shown in the progress bar and the last line (without labels: the effective "
        "rank of the representation). Before training, one line says what will be "
        "trained (samples, input kind, network, epochs, batch size, device). The "
        "model keeps a table's header (with pandas installed), and 'skact transform' "
        "checks it. Ctrl-C stops after the current step and saves the model trained so "
        "far.",
    )
    fit.add_argument("data", type=Path, metavar="DATA", help=_DATA_HELP)
    fit.add_argument(
        "-o",
        "--output",
        type=_output_file,
        required=True,
        metavar="MODEL",
        help="where to write the fitted model",
    )
    fit.add_argument(
        "--label",
        metavar="COL",
        help=_LABEL_HELP + "; its labels only feed the monitor, and a blank or -1 "
        "label marks an unlabeled row, see --minus-one (default: none; labels then come "
        "from --labels or an image folder's class subfolders, else the monitor is "
        "label-free)",
    )
    fit.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="labels of DATA in their own file (.npy, or a one-column CSV / text file; "
        "an image folder's in its sorted path order), blank or -1 where unlabeled "
        "(default: none; see --label)",
    )
    _add_minus_one_option(fit)
    fit.add_argument(
        "--no-optimizer-state",
        dest="optimizer_state",
        action="store_false",
        help="leave Adam's moments out of MODEL: a file about a third the size, with "
        "the same features; further training of it starts a fresh optimizer (default: "
        "MODEL keeps them, and further training continues from them)",
    )
    fit.add_argument(
        "--log",
        type=_output_file,
        metavar="FILE",
        help="also write each epoch's record (epoch, step, loss, validation loss, "
        "monitor, learning rate, seconds, samples/s) to FILE, a line per epoch as it "
        "ends: JSON lines for a name ending with .jsonl, .ndjson or .json, else CSV; "
        "through skact.callbacks.CSVLogger, which MODEL does not keep (default: no "
        "log file)",
    )
    add_training_options(fit, seed_default=argparse.SUPPRESS)


def _add_transform(commands: argparse._SubParsersAction) -> None:
    """``skact transform MODEL DATA -o FEATURES``."""
    transform = commands.add_parser(
        "transform",
        formatter_class=_HelpFormatter,
        help="encode DATA with a fitted model",
        description="Write the representation of DATA computed by a model from "
        "'skact fit', one row per sample in DATA's order (an image folder's: its "
        "sorted paths). Model files hold weights and settings only: loading one never "
        "runs code from it.",
    )
    transform.add_argument(
        "model", type=Path, metavar="MODEL", help="file from 'skact fit'"
    )
    transform.add_argument("data", type=Path, metavar="DATA", help=_DATA_HELP)
    transform.add_argument(
        "-o",
        "--output",
        type=_output_file,
        required=True,
        metavar="FEATURES",
        help="output file, .npy or .csv (with a header)",
    )
    transform.add_argument(
        "--label",
        metavar="COL",
        help=_LABEL_HELP + "; a CSV output keeps the labels as its last column (an image "
        "folder's subfolder names too, in a column named 'label') (default: none, every "
        "column of DATA is encoded)",
    )
    transform.add_argument(
        "--with-paths",
        action="store_true",
        help="image folders: write each row's image file first, in a column named "
        "'path', for a CSV output (default: the features alone, in sorted path order)",
    )


def _add_export(commands: argparse._SubParsersAction) -> None:
    """``skact export MODEL -o FILE``, in a format ``ACTEncoder.export`` writes."""
    export = commands.add_parser(
        "export",
        formatter_class=_HelpFormatter,
        help="write a fitted model as an ONNX file or a torch.export program",
        description="Write the whole feature extractor of a model from 'skact fit', "
        "preprocessing included, for serving without skact: an ONNX file (.onnx, for "
        "onnxruntime; needs pip install 'skact[export]') or a torch.export program "
        "(.pt2, for torch.export.load). It computes what 'skact transform' writes. "
        "Its inputs (names, types, columns, category codes) are written beside it, as "
        "FILE.inputs.json.",
    )
    export.add_argument("model", type=Path, metavar="MODEL", help="file from 'skact fit'")
    export.add_argument(
        "-o",
        "--output",
        type=_output_file,
        required=True,
        metavar="FILE",
        help="where to write the exported model: .onnx or .pt2 (see --format)",
    )
    export.add_argument(
        "--format",
        choices=sorted(set(EXPORT_FORMATS.values())),
        help="the format to write (default: from FILE's suffix, .onnx or .pt2)",
    )


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    """``skact evaluate DATA``: inputs, labels, the split, the probes, the report."""
    evaluate = commands.add_parser(
        "evaluate",
        formatter_class=_HelpFormatter,
        help="few-shot accuracy of features (or of a model's features) on labelled DATA",
        description="Score a representation with few labels: draw k labelled samples per "
        "class from a pool, train a linear probe (logistic regression) and k-NN on them, "
        "and report the mean and standard deviation of the test score (--metric, "
        "accuracy by default) over many draws, beside the score of always predicting "
        "the pool's majority class. DATA holds features (e.g. from 'skact transform'), "
        "or raw inputs with --model. Samples with a blank or -1 label are unlabeled: "
        "they are left out (see --minus-one).",
    )
    evaluate.add_argument("data", type=Path, metavar="DATA", help=_DATA_HELP)
    evaluate.add_argument(
        "--label",
        metavar="COL",
        help=_LABEL_HELP + " (default: none; labels then come from --labels or an image "
        "folder's class subfolders)",
    )
    evaluate.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="labels of DATA in their own file: .npy, or a one-column CSV / text file "
        "(default: none, see --label)",
    )
    _add_minus_one_option(evaluate)
    evaluate.add_argument(
        "--model",
        type=Path,
        metavar="MODEL",
        help="encode DATA with this model from 'skact fit' first (default: none, DATA "
        "is scored as it is)",
    )
    evaluate.add_argument(
        "--features",
        action="store_true",
        help="DATA holds features already extracted; --baselines then scores them as "
        "they are (default: only a header written by 'skact transform' says so; other "
        "tables are raw data, which --baselines standardises)",
    )
    evaluate.add_argument(
        "--test",
        type=Path,
        metavar="TEST",
        help="held-out data in DATA's format (same --label) (default: none, DATA is "
        "split, see --test-size)",
    )
    evaluate.add_argument(
        "--test-labels",
        type=Path,
        metavar="FILE",
        help="labels of TEST in their own file (default: none, TEST's --label column or "
        "class subfolders)",
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
        "--metric",
        type=_scorer_name,
        default="accuracy",
        metavar="NAME",
        help="what to score, as a scikit-learn scorer name: balanced_accuracy weighs "
        "every class equally (for imbalanced classes, where accuracy rewards predicting "
        "the largest one), f1_macro, ...; see sklearn.metrics.get_scorer_names()",
    )
    evaluate.add_argument(
        "--baselines",
        action="store_true",
        help="also score the raw inputs and their PCA: a table standardised (text "
        "columns one-hot, empty numbers as the mean plus a missing indicator; the "
        "row's name says which), an image folder's pixels as they are, with --model "
        "(default: the representation alone)",
    )
    evaluate.add_argument(
        "--seed", type=int, default=0, help="seed of the split and of the label draws"
    )
    evaluate.add_argument(
        "-o",
        "--output",
        type=_output_file,
        metavar="FILE",
        help="also save the results, as .json (every draw) or .md (default: none, "
        "printed only)",
    )
