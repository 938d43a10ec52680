"""Bad input, failing fits, Ctrl-C and CUDA out of memory (skact._checks, skact._guards).

The catalogue ``CASES`` is also the source of the table in
docs/user_guide/troubleshooting.rst: run ``python tests/test_errors.py`` to regenerate it
after changing a message (``test_troubleshooting_table_is_current`` checks it).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import pickle
import re
import signal
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

import skact
from skact import ACTEncoder, ModelFileError, NonFiniteLossError, _checks, _guards
from skact._training import Trainer
from skact.augment import ImageAugment, TabularAugment
from skact.callbacks import EarlyStopping
from skact.evaluation import LabeledStratifiedKFold, labeled_scorer
from skact.objectives import ACTLoss

from _small import small_encoder

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "user_guide" / "troubleshooting.rst"
BEGIN, END = ".. begin-generated-table", ".. end-generated-table"

X = np.random.default_rng(0).normal(size=(64, 3))


def small(**params: Any) -> ACTEncoder:
    """A tiny, fast, deterministic estimator."""
    return small_encoder(**{"n_components": 2, **params})


@contextlib.contextmanager
def patched_step(
    fn: Callable[[Trainer, torch.Tensor, Callable], torch.Tensor],
) -> Iterator[None]:
    """Replace ``Trainer.training_step`` by ``fn(trainer, batch, original)``."""
    original = Trainer.training_step

    def step(self: Trainer, batch: torch.Tensor) -> torch.Tensor:
        return fn(self, batch, original)

    with mock.patch.object(Trainer, "training_step", step):
        yield


def nan_at(step: int) -> Callable:
    """A step function that poisons the weights (as a divergence would) at ``step``."""

    def fn(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step == step:
            with torch.no_grad():
                next(trainer.encoder.parameters()).fill_(float("nan"))
        return original(trainer, batch)

    return fn


def oom_above(rows: int) -> Callable:
    """A step function that runs out of CUDA memory for batches larger than ``rows``."""

    def fn(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if batch.shape[0] > rows:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return original(trainer, batch)

    return fn


# --------------------------------------------------------------------------- catalogue


class Case(NamedTuple):
    problem: str
    code: str  # what the user did, as shown in the docs
    run: Callable[[], Any]
    error: type[BaseException]
    source: str  # "skact": the message is ours; "sklearn": its text may vary by version


def _with(value: float) -> np.ndarray:
    Z = X.copy()
    Z[3, 1] = value
    return Z


def _fitted() -> ACTEncoder:
    return small(max_iter=1).fit(X)


def _pickle_file() -> None:
    with open("model.skact", "wb") as f:
        pickle.dump(_fitted(), f)
    skact.load("model.skact")


def _newer_file() -> None:
    _fitted().save("model.skact")
    with zipfile.ZipFile("model.skact") as z:
        config = json.loads(z.read("skact.json"))
        tensors = z.read("tensors.pt")
    config["format_version"] += 1
    with zipfile.ZipFile("model.skact", "w") as z:
        z.writestr("skact.json", json.dumps(config))
        z.writestr("tensors.pt", tensors)
    skact.load("model.skact")


def _payload_file() -> None:
    _fitted().save("model.skact")
    with zipfile.ZipFile("model.skact") as z:
        config = z.read("skact.json")
    buffer = io.BytesIO()
    torch.save({"encoder": Payload("pwned.txt")}, buffer)
    with zipfile.ZipFile("model.skact", "w") as z:
        z.writestr("skact.json", config)
        z.writestr("tensors.pt", buffer.getvalue())
    skact.load("model.skact")


def _truncated_file() -> None:
    _fitted().save("model.skact")
    with open("model.skact", "rb") as f:
        data = f.read()
    with open("model.skact", "wb") as f:
        f.write(data[: len(data) // 2])
    skact.load("model.skact")


def _custom_encoder_file() -> None:
    small(max_iter=1, encoder=torch.nn.Linear(3, 2)).fit(X).save("model.skact")
    skact.load("model.skact")


def _image_files(*extra: str) -> list[str]:
    """Two good 8x8 PNG files in the current directory, then the names in ``extra``."""
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(f"{i}.png")
    Path("notes.txt").write_text("not an image")
    Path("broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return ["0.png", "1.png", *extra]


def _changed_column_type() -> None:
    frame = pd.DataFrame({"a": X[:, 0], "b": [True, False] * 32})
    model = small(max_iter=1, warm_start=True).fit(frame)
    model.fit(frame.assign(b=["yes", "no"] * 32))


#: What ``_with_memory`` says the device has: networks needing more are refused.
MEMORY_CAP = 100 * 10**6


def _with_memory(call: Callable[[], Any]) -> Any:
    with mock.patch.object(_checks, "available_memory", lambda device: MEMORY_CAP):
        return call()


class Payload:
    """Pickles to a call that writes ``path``: what a malicious model file would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (Path(self.path), "this ran"))


CASES = [
    Case(
        "NaN values",
        "fit(X) with X[3, 1] = np.nan",
        lambda: small().fit(_with(np.nan)),
        ValueError,
        "skact",
    ),
    Case(
        "Infinite values",
        "fit(X) with X[3, 1] = np.inf",
        lambda: small().fit(_with(np.inf)),
        ValueError,
        "skact",
    ),
    Case(
        "Values beyond float32",
        "fit(X) with X[3, 1] = 1e300",
        lambda: small().fit(_with(1e300)),
        ValueError,
        "skact",
    ),
    Case(
        "Column mixing strings and numbers",
        "fit(pd.DataFrame({'a': [1.0, 2.0], 'b': ['x', 3]}))",
        lambda: small().fit(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", 3]})),
        TypeError,
        "skact",
    ),
    Case(
        "Complex numbers",
        "fit(X.astype(complex))",
        lambda: small().fit(X.astype(complex)),
        ValueError,
        "skact",
    ),
    Case("One sample", "fit(X[:1])", lambda: small().fit(X[:1]), ValueError, "skact"),
    Case("Zero samples", "fit(X[:0])", lambda: small().fit(X[:0]), ValueError, "sklearn"),
    Case(
        "Zero features",
        "fit(X[:, :0])",
        lambda: small().fit(X[:, :0]),
        ValueError,
        "sklearn",
    ),
    Case(
        "One dimension",
        "fit(X[:5, 0])",
        lambda: small().fit(X[:5, 0]),
        ValueError,
        "sklearn",
    ),
    Case(
        "A pandas Series (one column)",
        "fit(df['a'])",
        lambda: small().fit(pd.Series(X[:, 0], name="a")),
        ValueError,
        "skact",
    ),
    Case(
        "A dict of columns",
        "fit({'a': [1.0, 2.0], 'b': [3.0, 4.0]})",
        lambda: small().fit({"a": [1.0, 2.0], "b": [3.0, 4.0]}),
        TypeError,
        "skact",
    ),
    Case(
        "A list of dicts (records)",
        "fit([{'a': 1.0, 'b': 3.0}, {'a': 2.0, 'b': 4.0}])",
        lambda: small().fit([{"a": 1.0, "b": 3.0}, {"a": 2.0, "b": 4.0}]),
        TypeError,
        "skact",
    ),
    Case(
        "Three dimensions (read as tiny images)",
        "fit(X.reshape(64, 3, 1))",
        lambda: small().fit(X.reshape(64, 3, 1)),
        ValueError,
        "skact",
    ),
    Case(
        "Image arrays of different shapes in a list",
        "fit([np.zeros((8, 8)), np.zeros((8, 8, 3))])",
        lambda: small().fit([np.zeros((8, 8)), np.zeros((8, 8, 3))]),
        ValueError,
        "skact",
    ),
    Case(
        "Missing image file",
        'fit(["0.png", "1.png", "missing.png"])',
        lambda: small().fit(_image_files("missing.png")),
        FileNotFoundError,
        "skact",
    ),
    Case(
        "A file that is not an image",
        'fit(["0.png", "1.png", "notes.txt"])',
        lambda: small().fit(_image_files("notes.txt")),
        ValueError,
        "skact",
    ),
    Case(
        "A corrupt image file",
        'fit(["0.png", "1.png", "broken.png"])',
        lambda: small().fit(_image_files("broken.png")),
        ValueError,
        "skact",
    ),
    Case(
        "Grey images for an RGB model that refuses conversions",
        "ACTEncoder(channel_mismatch='error').fit(rgb).transform(grey)",
        lambda: (
            small(channel_mismatch="error", max_iter=1)
            .fit(np.zeros((4, 8, 8, 3), dtype=np.uint8))
            .transform(np.zeros((2, 8, 8), dtype=np.uint8))
        ),
        ValueError,
        "skact",
    ),
    Case(
        "Sparse matrix",
        "fit(scipy.sparse.csr_matrix(X))",
        lambda: small().fit(sp.csr_matrix(X)),
        TypeError,
        "sklearn",
    ),
    Case(
        "Objects that are not numbers",
        "fit(X.astype(object)) with X[0, 0] = {}",
        lambda: small().fit(np.array([[{}, 1.0], [2.0, 3.0]], dtype=object)),
        TypeError,
        "sklearn",
    ),
    Case(
        "Other number of features in transform",
        "fit(X).transform(X[:, :2])",
        lambda: _fitted().transform(X[:, :2]),
        ValueError,
        "sklearn",
    ),
    Case(
        "Transform before fit",
        "ACTEncoder().transform(X)",
        lambda: small().transform(X),
        NotFittedError,
        "sklearn",
    ),
    Case(
        "Values far outside the fitted range",
        "fit(X * 1e-20).transform(X * 1e20)",
        lambda: small(max_iter=1).fit(X * 1e-20).transform(X * 1e20),
        ValueError,
        "skact",
    ),
    Case(
        "Negative alpha",
        "ACTEncoder(alpha=-1).fit(X)",
        lambda: small(alpha=-1).fit(X),
        ValueError,
        "sklearn",
    ),
    Case(
        "Zero batch_size",
        "ACTEncoder(batch_size=0).fit(X)",
        lambda: small(batch_size=0).fit(X),
        ValueError,
        "sklearn",
    ),
    Case(
        "ACT's alpha with another objective",
        "ACTEncoder(objective='vicreg', alpha=0.1).fit(X)",
        lambda: small(objective="vicreg", alpha=0.1).fit(X),
        ValueError,
        "skact",
    ),
    Case(
        "ACT's alpha on the estimator and on an ACTLoss",
        "ACTEncoder(objective=ACTLoss(), alpha=0.1).fit(X)",
        lambda: small(objective=ACTLoss(), alpha=0.1).fit(X),
        ValueError,
        "skact",
    ),
    Case(
        "Image views for a table",
        "ACTEncoder(augment=ImageAugment()).fit(X)",
        lambda: small(augment=ImageAugment()).fit(X),
        ValueError,
        "skact",
    ),
    Case(
        "Two corruption rates for a table",
        "ACTEncoder(augment=TabularAugment(0.3), corruption_rate=0.1).fit(X)",
        lambda: small(augment=TabularAugment(0.3), corruption_rate=0.1).fit(X),
        ValueError,
        "skact",
    ),
    Case(
        "Table views for images",
        "ACTEncoder(augment=TabularAugment()).fit(images)",
        lambda: small(augment=TabularAugment()).fit(np.zeros((4, 8, 8), np.uint8)),
        ValueError,
        "skact",
    ),
    Case(
        "A corruption rate for images",
        "ACTEncoder(corruption_rate=0.3).fit(images)",
        lambda: small(corruption_rate=0.3).fit(np.zeros((4, 8, 8), np.uint8)),
        ValueError,
        "skact",
    ),
    Case(
        "Unknown encoder name",
        "ACTEncoder(encoder='transformer').fit(X)",
        lambda: small(encoder="transformer").fit(X),
        ValueError,
        "sklearn",
    ),
    Case(
        "Too few samples for early stopping",
        "ACTEncoder(early_stopping=True).fit(X[:3])",
        lambda: small(early_stopping=True).fit(X[:3]),
        ValueError,
        "skact",
    ),
    Case(
        "A callback that is no skact Callback",
        "ACTEncoder(callbacks=[print]).fit(X)",
        lambda: small(callbacks=[print]).fit(X),
        TypeError,
        "skact",
    ),
    Case(
        "Early stopping on a validation loss without held-out data",
        "ACTEncoder(callbacks=[EarlyStopping('validation_loss')]).fit(X)",
        lambda: small(callbacks=[EarlyStopping("validation_loss")]).fit(X),
        ValueError,
        "skact",
    ),
    Case(
        "Loss turns NaN (diverging training)",
        "fit(X) diverging in epoch 2",
        lambda: _run_patched(nan_at(5), lambda: small().fit(X)),
        NonFiniteLossError,
        "skact",
    ),
    Case(
        "CUDA out of memory at every batch size",
        "fit(X) on a GPU that is too small",
        lambda: _run_patched(oom_above(0), lambda: small(batch_size=64).fit(X)),
        torch.cuda.OutOfMemoryError,
        "skact",
    ),
    Case(
        "A search fold without labeled rows",
        "labeled_scorer('accuracy')(model, X, y) with y = -1 throughout",
        lambda: labeled_scorer("accuracy")(
            DummyClassifier().fit(X[:2], [0, 1]), X, np.full(64, -1)
        ),
        ValueError,
        "skact",
    ),
    Case(
        "Fewer labeled rows per class than folds",
        "list(LabeledStratifiedKFold(5).split(X, y)) with 2 labels per class",
        lambda: list(
            LabeledStratifiedKFold(5).split(X, np.r_[[0, 0, 1, 1], np.full(60, -1)])
        ),
        ValueError,
        "skact",
    ),
    Case(
        "Weights blow up (a far too high learning rate)",
        "ACTEncoder(learning_rate=1e12).fit(X)",
        lambda: small(learning_rate=1e12).fit(X),
        NonFiniteLossError,
        "skact",
    ),
    Case(
        "Continuing a model whose weights are broken",
        "model.set_params(warm_start=True).fit(X), weights NaN",
        lambda: _broken_model().fit(X),
        NonFiniteLossError,
        "skact",
    ),
    Case(
        "An empty DataFrame",
        "fit(pd.DataFrame())",
        lambda: small().fit(pd.DataFrame()),
        ValueError,
        "skact",
    ),
    Case(
        "A DataFrame without rows",
        "fit(pd.DataFrame({'a': [], 'b': []}))",
        lambda: small().fit(pd.DataFrame({"a": [], "b": []})),
        ValueError,
        "skact",
    ),
    Case(
        "A DataFrame without columns",
        "fit(pd.DataFrame(index=range(5)))",
        lambda: small().fit(pd.DataFrame(index=range(5))),
        ValueError,
        "skact",
    ),
    Case(
        "A generator of rows",
        "fit(row for row in X)",
        lambda: small().fit(row for row in X),
        TypeError,
        "skact",
    ),
    Case(
        "An encoder module for another input width",
        "ACTEncoder(encoder=nn.Linear(5, 2), n_components=None).fit(X)",
        lambda: small(encoder=torch.nn.Linear(5, 2), n_components=None).fit(X),
        ValueError,
        "skact",
    ),
    Case(
        "Networks too large for the memory",
        "ACTEncoder().fit(X_wide), X_wide of shape (10, 100000), 100 MB free",
        lambda: _with_memory(lambda: ACTEncoder().fit(np.zeros((10, 100_000)))),
        MemoryError,
        "skact",
    ),
    Case(
        "A column whose type changed since the fit",
        "warm_start=True; fit(df) with df.b bool, then with df.b text",
        _changed_column_type,
        ValueError,
        "skact",
    ),
    Case(
        "Missing model file",
        "skact.load('model.skact')",
        lambda: skact.load("model.skact"),
        FileNotFoundError,
        "python",
    ),
    Case(
        "A pickle or joblib file",
        "pickle.dump(model, f); skact.load('model.skact')",
        _pickle_file,
        ModelFileError,
        "skact",
    ),
    Case(
        "A model file from a newer skact",
        "skact.load('model.skact')",
        _newer_file,
        ModelFileError,
        "skact",
    ),
    Case(
        "A model file carrying a pickle payload",
        "skact.load('model.skact')",
        _payload_file,
        ModelFileError,
        "skact",
    ),
    Case(
        "A model file cut short (an interrupted copy)",
        "skact.load('model.skact')",
        _truncated_file,
        ModelFileError,
        "skact",
    ),
    Case(
        "A model with a user encoder, loaded without it",
        "ACTEncoder(encoder=nn.Linear(3, 2)).fit(X).save(path); skact.load(path)",
        _custom_encoder_file,
        ValueError,
        "skact",
    ),
    Case(
        "Saving to a folder path (a trailing slash)",
        "model.save('models/')",
        lambda: _fitted().save("models/"),
        ValueError,
        "skact",
    ),
    Case(
        "An empty model path",
        "model.save(''), skact.load('')",
        lambda: _fitted().save(""),
        ValueError,
        "skact",
    ),
    Case(
        "Exporting to a file of unknown format",
        "model.export('model.bin')",
        lambda: _fitted().export("model.bin"),
        ValueError,
        "skact",
    ),
    Case(
        "Exporting an encoder torch.export cannot trace",
        "ACTEncoder(encoder=Branchy()).fit(X).export('model.pt2'), forward: if x.sum() > 0",
        lambda: (
            small(max_iter=1, encoder=Branchy(), n_components=None)
            .fit(X)
            .export("model.pt2")
        ),
        ValueError,
        "skact",
    ),
]


class Branchy(torch.nn.Module):
    """A network whose forward branches on its input's values: not traceable."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) if bool(x.sum() > 0) else -self.linear(x)


def _broken_model() -> ACTEncoder:
    """A fitted model with NaN weights (as a diverged fit of an older skact left them),
    set to continue."""
    model = small(warm_start=True).fit(X)
    _poison(model)
    return model


def _run_patched(step_fn: Callable, call: Callable[[], Any]) -> Any:
    with patched_step(step_fn), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


def case_message(case: Case) -> str:
    """Run ``case`` in a scratch directory and return its one-line error message."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        try:
            case.run()
        except case.error as exc:
            return " ".join(str(exc).split())
    raise AssertionError(f"{case.problem}: no {case.error.__name__} raised")


# ------------------------------------------------------------------------ the cases


@pytest.mark.parametrize("case", CASES, ids=[c.problem for c in CASES])
def test_bad_input_raises_documented_error(case: Case) -> None:
    message = case_message(case)
    assert message
    if case.source == "skact":
        # Every message of ours says what to do, not only what went wrong.
        assert re.search(
            r"first|Pass|try|Try|convert|Upgrade|Encode|use|needs|never|Check|Free|Rescale|Save",
            message,
        ), message


def test_messages_name_the_problem_and_fix() -> None:
    messages = {c.problem: case_message(c) for c in CASES}
    assert "SimpleImputer" in messages["NaN values"]
    assert "handle_missing='indicator'" in messages["NaN values"]
    assert "column(s) 1" in messages["NaN values"]
    assert "infinity" in messages["Infinite values"]
    assert "2 samples" in messages["One sample"] and "BatchNorm" in messages["One sample"]
    assert "mixes strings and numbers" in messages["Column mixing strings and numbers"]
    assert messages["Complex numbers"].startswith("Complex data not supported")
    assert ".toarray()" in messages["Sparse matrix"]
    assert (
        "X has 2 features, but ACTEncoder is expecting 3"
        in messages["Other number of features in transform"]
    )
    assert "'alpha' parameter" in messages["Negative alpha"]
    assert "'batch_size' parameter" in messages["Zero batch_size"]
    assert "'encoder' parameter" in messages["Unknown encoder name"]
    assert "learning_rate" in messages["Loss turns NaN (diverging training)"]
    blown_up = messages["Weights blow up (a far too high learning rate)"]
    assert "the weights grew" in blown_up and "left unfitted" in blown_up
    broken = messages["Continuing a model whose weights are broken"]
    assert "starting weights are the likely cause" in broken
    assert "warm_start=False" in broken
    assert "batch_size=16" in messages["CUDA out of memory at every batch size"]
    assert "format version 2" in messages["A model file from a newer skact"]
    assert "pickle payload" in messages["A model file carrying a pickle payload"]
    assert "encoder=" in messages["A model with a user encoder, loaded without it"]
    tiny = messages["Three dimensions (read as tiny images)"]
    assert tiny.startswith("images of 3x1 pixels (views of 5x2) are too small")
    assert "'models/model.skact'" in messages["Saving to a folder path (a trailing slash)"]
    assert "'model.skact'" in messages["An empty model path"]
    cut_short = messages["A model file cut short (an interrupted copy)"]
    assert "corrupt or truncated" in cut_short
    assert "LabeledStratifiedKFold" in messages["A search fold without labeled rows"]
    folds = messages["Fewer labeled rows per class than folds"]
    assert "labeled rows per class: 0: 2, 1: 2" in folds


def test_one_dimensional_containers_say_how_to_pass_a_column() -> None:
    import polars as pl

    messages = {c.problem: case_message(c) for c in CASES}
    series = messages["A pandas Series (one column)"]
    assert series.startswith("X is a 1-D pandas Series") and "X.to_frame()" in series
    assert "pd.DataFrame(X)" in messages["A dict of columns"]
    assert "list of dicts (one per row)" in messages["A list of dicts (records)"]
    assert "pd.DataFrame(X)" in messages["A list of dicts (records)"]
    column = X[:, 0]
    others = {
        "categorical pandas Series": pd.Series(["x", "y"] * 32, dtype="category"),
        "pandas Index": pd.Index(column),
        "polars Series": pl.Series("a", column),
    }
    for kind, value in others.items():
        with pytest.raises(ValueError, match=rf"X is a 1-D {kind.split()[-2]} ") as info:
            small().fit(value)
        assert "X.to_frame()" in str(info.value), kind
    # transform refuses them too, for tables of numbers and of categories.
    numeric = small(max_iter=1).fit(X[:, :1])
    with pytest.raises(ValueError, match=r"X\.to_frame\(\)"):
        numeric.transform(pd.Series(column))
    with pytest.raises(TypeError, match=r"pd\.DataFrame\(X\)"):
        numeric.transform({"a": column})
    mixed = small(max_iter=1).fit(pd.DataFrame({"c": ["x", "y"] * 32}))
    with pytest.raises(ValueError, match=r"X\.to_frame\(\)"):
        mixed.transform(pd.Series(["x", "y"], dtype="category"))
    # ... and what they suggest works.
    assert small(max_iter=1).fit(pd.Series(column).to_frame()).n_features_in_ == 1
    assert small(max_iter=1).fit(pd.DataFrame({"a": column})).n_features_in_ == 1


def test_a_series_of_image_paths_is_still_images(tmp_path: Path) -> None:
    with contextlib.chdir(tmp_path):
        paths = pd.Series(_image_files() * 2)
        assert small(max_iter=1).fit(paths).transform(paths).shape == (4, 2)


def test_strings_that_are_no_files_hint_at_a_one_column_table() -> None:
    with pytest.raises(FileNotFoundError, match=r"s\.to_frame\(\) for a Series"):
        small().fit(pd.Series(["cat", "dog"] * 4))
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        with pytest.raises(FileNotFoundError) as info:
            small().fit(_image_files("missing.png"))
    assert "categorical" not in str(info.value)  # a file name: no hint


def test_nan_message_names_dataframe_columns() -> None:
    df = pd.DataFrame(X, columns=["age", "income", "height"])
    df.loc[2, "income"] = np.nan
    with pytest.raises(ValueError, match=r"column\(s\) income\)"):
        small().fit(df)


def test_inf_in_transform_is_rejected_too() -> None:
    enc = _fitted()
    with pytest.raises(ValueError, match="infinity"):
        enc.transform(_with(-np.inf))


@pytest.mark.parametrize(
    "frame, shape",
    [
        (pd.DataFrame(), "no rows and no columns: shape (0, 0)"),
        (pd.DataFrame({"a": [], "b": []}), "no rows: shape (0, 2)"),
        (pd.DataFrame({"a": pd.Series([], dtype=object)}), "no rows: shape (0, 1)"),
        (pd.DataFrame(index=range(5)), "no columns: shape (5, 0)"),
    ],
)
def test_an_empty_dataframe_is_named_as_such(frame: pd.DataFrame, shape: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"X is an empty DataFrame ({shape})")):
        small().fit(frame)
    fitted = _fitted()
    with pytest.raises(ValueError, match="X is an empty DataFrame"):
        fitted.transform(frame)
    # Arrays keep scikit-learn's messages, which its estimator checks expect.
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(5, 0\)\)"):
        small().fit(np.zeros((5, 0)))


@pytest.mark.filterwarnings("ignore:ACTEncoder. the representation collapsed")
def test_iterators_are_refused_with_the_conversion() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (8, 8), dtype=np.uint8) for i in range(4)]
    for X_once, kind in [
        ((row for row in X), "generator"),
        (iter(X), "iterator"),
        (iter(X.tolist()), "list_iterator"),
        (map(list, X), "map"),
        ((image for image in images), "generator"),
    ]:
        with pytest.raises(TypeError, match=rf"X is an iterator \({kind}\)") as info:
            small().fit(X_once)
        assert "np.array(list(X))" in str(info.value)
        assert "list(X) for images" in str(info.value)
    with pytest.raises(TypeError, match=r"X is an iterator \(generator\)"):
        _fitted().transform(row for row in X)
    # ... and what the message suggests works.
    assert small(max_iter=1).fit(np.array(list(row for row in X))).n_features_in_ == 3
    assert small(max_iter=1).fit(list(image for image in images)).n_iter_ == 1


def _first_step_never_runs() -> Any:
    def fail(*args: Any) -> None:
        raise AssertionError("the check belongs before training")

    return mock.patch.object(Trainer, "training_step", fail)


def test_an_encoder_module_of_another_width_names_both_shapes() -> None:
    linear = torch.nn.Linear(5, 2)
    with _first_step_never_runs(), pytest.raises(ValueError) as info:
        small(encoder=linear, n_components=None).fit(X)
    message = str(info.value)
    assert "it gets batches of shape (n, 3): rows of the table's 3 columns" in message
    assert "its first layer is Linear(in_features=5, out_features=2" in message
    assert "the input shape (3,)" in message and "mat1 and mat2" in message
    # A mixed table's network gets its prepared columns: numbers and embeddings.
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": ["x", "y", "z", "w"] * 16})
    model = small(max_iter=1, encoder=lambda shape: torch.nn.Linear(shape[0], 2))
    model.set_params(n_components=None).fit(frame)  # a callable gets the shape
    width = model.encoder_[0].out_features  # the embedding front end's
    assert width > 3
    with _first_step_never_runs(), pytest.raises(ValueError) as info:
        small(encoder=torch.nn.Linear(3, 2), n_components=None).fit(frame)
    message = str(info.value)
    assert f"it gets batches of shape (n, {width}): the table's 3 columns as " in message
    assert "(2 standardised numeric columns, " in message
    assert f"{width - 2} embedding values for 1 categorical column)" in message
    assert f"the input shape ({width},)" in message
    # Images: the views' shape.
    images = np.zeros((8, 8, 8), dtype=np.uint8)
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 2))
    with _first_step_never_runs(), pytest.raises(ValueError) as info:
        small(encoder=flat, n_components=None).fit(images)
    (c, h, w) = skact.resolved_settings(small(), images)["input_shape"]
    assert f"it gets batches of shape (n, {c}, {h}, {w}): images of 1 channel" in str(
        info.value
    )
    rgb = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    with pytest.raises(ValueError, match=r"its first layer is Conv2d\(3, 4"):
        small(encoder=rgb, n_components=None).fit(images)


def test_networks_too_large_for_the_memory_are_refused_before_building() -> None:
    wide = np.random.default_rng(0).normal(size=(10, 2000))
    model = small(max_iter=1, hidden_layer_sizes=(64, 32))
    built = model.fit(wide)
    n = sum(p.numel() for m in (built.encoder_, built.projector_) for p in m.parameters())
    never = mock.patch.object(ACTEncoder, "_placed", side_effect=AssertionError)
    # Just enough memory: the networks are built. One byte less: refused, with the sum.
    with mock.patch.object(_checks, "available_memory", return_value=16 * n):
        model.fit(wide)
    with (
        mock.patch.object(_checks, "available_memory", return_value=16 * n - 1),
        never,
        pytest.raises(MemoryError) as info,
    ):
        small(max_iter=1, hidden_layer_sizes=(64, 32)).fit(wide)
    message = str(info.value)
    assert f"({n:,} parameters, 16 bytes each: float32 weights, their gradients" in message
    assert f"need about {16 * n / 1e6:.1f} MB" in message
    assert "its first layer alone is 2,000 x 64 weights" in message
    assert "hidden_layer_sizes (now (64, 32))" in message and "PCA" in message
    # A mixed table's embeddings count too.
    frame = pd.DataFrame({"a": X[:, 0], "c": [f"k{i}" for i in range(64)]})
    built = small(max_iter=1).fit(frame)
    n = sum(p.numel() for m in (built.encoder_, built.projector_) for p in m.parameters())
    with (
        mock.patch.object(_checks, "available_memory", return_value=16 * n - 1),
        pytest.raises(MemoryError, match=f"\\({n:,} parameters"),
    ):
        small(max_iter=1).fit(frame)
    # A user's module is counted as it is.
    linear = torch.nn.Linear(2000, 3)
    with (
        mock.patch.object(_checks, "available_memory", return_value=100),
        pytest.raises(MemoryError, match=r"need about 96\.0 kB .*\(6,003 parameters"),
    ):
        small(max_iter=1, encoder=linear, projection_dim=None).fit(wide)


def _cannot_allocate(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 8192000000 bytes. Error code 12"
    )


@pytest.mark.parametrize(
    "where", ["building", "the optimizer's first step", "a cuda network's placing"]
)
def test_allocation_failures_say_what_to_change(where: str) -> None:
    target, fail = {
        "building": ((ACTEncoder, "_placed"), _cannot_allocate),
        "the optimizer's first step": ((torch.optim.Adam, "step"), _cannot_allocate),
        "a cuda network's placing": (
            (ACTEncoder, "_placed"),
            mock.Mock(side_effect=torch.OutOfMemoryError("CUDA out of memory.")),
        ),
    }[where]
    model = small()
    with mock.patch.object(*target, fail), pytest.raises(MemoryError) as info:
        model.fit(X)
    message = str(info.value)
    assert message.startswith("ACTEncoder's networks need about ")
    assert "torch could not allocate the memory (" in message
    assert "hidden_layer_sizes (now (8,))" in message and "batch_size" in message
    with pytest.raises(NotFittedError):
        check_is_fitted(model)  # a failed new fit leaves nothing behind
    # Other errors of torch pass as they are.
    other = RuntimeError("something else")
    with mock.patch.object(*target, side_effect=other), pytest.raises(RuntimeError) as e:
        small().fit(X)
    assert e.value is other


def test_available_memory_takes_the_smallest_limit(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemAvailable:  64 kB\n")
    (tmp_path / "max").write_text("max\n")
    assert _checks._read_number(str(tmp_path / "meminfo"), "MemAvailable") == 65536
    assert _checks._read_number(str(tmp_path / "max")) is None  # no cgroup limit
    assert _checks._read_number(str(tmp_path / "missing")) is None
    sources = ("_system_available", "_cgroup_available", "_address_space_left")
    for values, expected in [((5, 3, None), 3), ((None, None, None), None)]:
        with contextlib.ExitStack() as stack:
            for name, value in zip(sources, values, strict=True):
                stack.enter_context(mock.patch.object(_checks, name, return_value=value))
            assert _checks.available_memory(torch.device("cpu")) == expected
    memory = _checks.available_memory(torch.device("cpu"))
    assert memory is None or memory > 0


def test_a_cgroup_s_page_cache_counts_as_available(tmp_path: Path) -> None:
    """memory.current counts the page cache of files read just before fit, which the
    kernel reclaims: it must not make a fit look too large."""
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("900000\n")
    assert _checks._cgroup_available(str(tmp_path)) == 100000
    (tmp_path / "memory.stat").write_text("anon 100000\ninactive_file 600000\n")
    assert _checks._cgroup_available(str(tmp_path)) == 700000
    (tmp_path / "memory.max").write_text("max\n")
    assert _checks._cgroup_available(str(tmp_path)) is None


def test_a_column_whose_type_changed_since_the_fit_says_so() -> None:
    frame = pd.DataFrame({"a": X[:, 0], "b": [True, False] * 32})
    text = frame.assign(b=["yes", "no"] * 32)
    model = small(max_iter=1, warm_start=True).fit(frame)
    for call in (model.fit, model.partial_fit, model.transform):
        with pytest.raises(ValueError) as info:
            call(text)
        message = str(info.value)
        assert "fitted on a table of numbers (every column numeric or boolean)" in message
        assert "now holds text in column 'b'" in message
        assert "warm_start=False" in message and "OneHotEncoder" not in message
    assert model.n_iter_ == 1  # kept as it was
    # Numbers in other containers than the fit's are still numbers.
    numbers = frame.astype({"b": object}).assign(a=frame["a"].astype("category"))
    assert model.transform(numbers).shape == (64, 2)
    # What the message suggests works: a new fit encodes the text column itself.
    model.set_params(warm_start=False).fit(text)
    assert model.is_categorical_ is not None and model.is_categorical_.tolist() == [
        False,
        True,
    ]


def test_troubleshooting_table_is_current() -> None:
    text = DOC.read_text()
    assert BEGIN in text and END in text
    for case in CASES:
        assert _rst_escape(case.problem) in text
        if case.source == "skact":
            # The whole row: problem, call, exception class and message.
            assert "\n".join(_table_row(case)) in text, (
                f"{case.problem}: its row changed; run python tests/test_errors.py"
            )


# ---------------------------------------------------------------- failed fits roll back


def test_failed_fit_leaves_estimator_unfitted() -> None:
    enc = small().fit(X)
    with pytest.raises(ValueError, match="NaN"):
        enc.fit(_with(np.nan))
    with pytest.raises(NotFittedError):
        check_is_fitted(enc)
    assert not hasattr(enc, "n_features_in_") and not hasattr(enc, "_adapter")


def test_failure_inside_training_leaves_estimator_unfitted() -> None:
    def boom(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step == 5:
            raise RuntimeError("device lost")
        return original(trainer, batch)

    enc = small()
    with patched_step(boom), pytest.raises(RuntimeError, match="device lost"):
        enc.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(enc)
    # The configuration survives the rollback.
    enc.set_output(transform="pandas")
    assert isinstance(enc.fit(X).transform(X), pd.DataFrame)


@pytest.mark.parametrize("failure", ["bad input", "in training", "out of memory"])
def test_failed_warm_start_leaves_estimator_as_before(failure: str) -> None:
    enc = small(warm_start=True).fit(X)
    before_out, before = enc.transform(X), copy.deepcopy(_guards.fitted_state(enc))

    def boom(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step == before["_step"] + 3:
            raise RuntimeError("device lost")
        return original(trainer, batch)

    with pytest.raises((ValueError, RuntimeError)), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the out-of-memory retries' warnings
        if failure == "bad input":
            enc.fit(X[:, :2])
        else:
            with patched_step(boom if failure == "in training" else oom_above(0)):
                enc.fit(X)
    _assert_as_before(enc, before)
    np.testing.assert_array_equal(enc.transform(X), before_out)
    assert enc.n_iter_ == before["n_iter_"] and enc._step == before["_step"]
    assert enc.loss_curve_ == before["loss_curve_"]
    # Training goes on exactly as if the failed call had not happened.
    reference = copy.deepcopy(enc)
    np.testing.assert_array_equal(enc.fit(X).transform(X), reference.fit(X).transform(X))


def test_failed_partial_fit_leaves_estimator_as_before() -> None:
    enc = small().partial_fit(X)
    out = enc.transform(X)
    with pytest.raises(ValueError, match="features"):
        enc.partial_fit(X[:, :2])
    np.testing.assert_array_equal(enc.transform(X), out)
    assert enc.n_iter_ == 1


def test_a_failing_validation_loss_keeps_the_epochs_of_a_warm_start() -> None:
    enc = small(warm_start=True, early_stopping=True, max_iter=2).fit(X)
    original, calls = Trainer.validation_loss, {"n": 0}

    def validation_loss(self: Trainer) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("device lost")
        return original(self)

    with (
        mock.patch.object(Trainer, "validation_loss", validation_loss),
        pytest.raises(RuntimeError) as info,
    ):
        enc.set_params(max_iter=3).fit(X)
    assert "the model trained so far (4 epochs) is kept" in "\n".join(info.value.__notes__)
    assert enc.n_iter_ == 4 and np.isfinite(enc.transform(X)).all()


def test_a_partial_fit_failing_in_training_leaves_estimator_as_before() -> None:
    enc = small().partial_fit(X)
    before = copy.deepcopy(_guards.fitted_state(enc))

    def boom(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step == before["_step"] + 2:
            raise RuntimeError("device lost")
        return original(trainer, batch)

    with patched_step(boom), pytest.raises(RuntimeError, match="device lost"):
        enc.partial_fit(X)
    _assert_as_before(enc, before)


def test_batch_size_larger_than_the_data() -> None:
    enc = small(batch_size=1000, max_iter=3).fit(X[:10])
    assert enc.n_iter_ == 3
    assert enc._step == 3  # one batch of all 10 samples per epoch
    assert np.isfinite(enc.transform(X[:10])).all()


def test_transform_of_one_sample() -> None:
    enc = _fitted()
    # float32 matrix products of another batch size may differ in the last bit.
    np.testing.assert_allclose(enc.transform(X[:1]), enc.transform(X)[:1], rtol=1e-6)


def test_float64_precision_of_standardisation() -> None:
    # A timestamp-like offset made E[x^2] - E[x]^2 cancel; tiny scales were "constant".
    rng = np.random.default_rng(0)
    Z = np.c_[1.7e9 + 0.5 * rng.normal(size=500), 1e-30 * rng.normal(size=500)]
    enc = small(max_iter=1).fit(Z)
    stored = enc._adapter.to_storage(Z).numpy()
    np.testing.assert_allclose(stored.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(stored.std(axis=0), 1, atol=1e-4)


def test_wide_integers_are_not_rounded_to_float32() -> None:
    """float32 holds integers exactly only up to 2**24: int64 timestamps are read as
    float64 (as float64 input is), small integers stay float32 (no float64 copy)."""
    rng = np.random.default_rng(0)
    stamps = 1_700_000_000 + rng.integers(0, 100, size=(200, 1))
    Z = np.c_[stamps, rng.integers(0, 5, size=(200, 1))]
    as_int = small(max_iter=1).fit(Z)
    as_float = small(max_iter=1).fit(Z.astype(np.float64))
    stored = as_int._adapter.to_storage(Z).numpy()
    assert len(np.unique(stored[:, 0])) == len(np.unique(stamps))
    np.testing.assert_array_equal(as_int.transform(Z), as_float.transform(Z))
    enc = small()
    for data, dtype in [
        (Z, np.float64),
        (Z.astype(np.int32), np.float64),
        (
            pd.DataFrame({"t": pd.array(stamps[:, 0], dtype="Int64"), "k": Z[:, 1]}),
            np.float64,
        ),
        (Z[:, 1:].astype(np.int16), np.float32),
        (Z[:, 1:].astype(np.uint8), np.float32),
        (Z.astype(np.float32), np.float32),
    ]:
        assert _checks.validate_table(enc, data, reset=True).dtype == dtype


@pytest.mark.parametrize(
    "params",
    [
        {"hidden_layer_sizes": (0,)},
        {"hidden_layer_sizes": (-1,)},
        {"hidden_layer_sizes": (8.7,)},
        {"hidden_layer_sizes": (True,)},
        {"hidden_layer_sizes": np.array([[8, 8]])},
        {"hidden_layer_sizes": "512"},
        {"image_size": (0, 6)},
        {"image_size": ("a", 6)},
        {"image_size": (6.5, 6)},
        {"image_size": (6, 6, 6)},
    ],
)
def test_bad_layer_widths_and_image_sizes_are_invalid_parameters(params) -> None:
    """Values inside the two shape parameters are checked before any data is read,
    naming the parameter (not a torch error from inside the network)."""
    from sklearn.utils._param_validation import InvalidParameterError

    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter"):
        small(**params).fit(X)


@pytest.mark.parametrize("sizes", [(), np.array([8]), [np.int64(8), 4]])
def test_layer_widths_may_be_numpy_integers_or_empty(sizes) -> None:
    enc = small(hidden_layer_sizes=sizes).fit(X)
    linear = [m for m in enc.encoder_.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [*list(sizes), 2]


# ----------------------------------------------------------------------- non-finite loss


def _record_epochs() -> tuple[list[dict[str, torch.Tensor]], Any]:
    """Record the encoder weights after each finished epoch."""
    states: list[dict[str, torch.Tensor]] = []
    original = Trainer.run_epoch

    def run_epoch(self: Trainer, n: int, take: Callable) -> float:
        loss = original(self, n, take)
        states.append(copy.deepcopy(self.encoder.state_dict()))
        return loss

    return states, mock.patch.object(Trainer, "run_epoch", run_epoch)


def test_non_finite_loss_keeps_last_finite_epoch() -> None:
    states, recording = _record_epochs()
    enc = small(max_iter=5, alpha=0.2)
    # 64 samples in batches of 16: 4 steps an epoch, so step 9 is in the third epoch.
    with recording, patched_step(nan_at(9)), pytest.raises(NonFiniteLossError) as info:
        enc.fit(X)
    message = str(info.value)
    assert "learning_rate (now 0.001)" in message and "alpha (now 0.2)" in message
    assert "in epoch 3" in message
    assert "2 epochs trained" in message
    assert enc.n_iter_ == 2 and len(enc.loss_curve_) == 2 and enc._step == 8
    assert len(states) == 2
    for name, value in enc.encoder_.state_dict().items():
        torch.testing.assert_close(value, states[-1][name], rtol=0, atol=0)
    assert np.isfinite(enc.transform(X)).all()
    assert not enc.encoder_.training


@pytest.mark.parametrize(
    ("objective", "named"),
    [
        ("barlow_twins", {}),  # no alpha: naming it would send the user after nothing
        (ACTLoss(alpha=0.5), {"objective__alpha": 0.5}),  # the instance's, not 0.03
    ],
    ids=["baseline", "ACTLoss instance"],
)
def test_non_finite_loss_names_only_parameters_of_the_objective(objective, named) -> None:
    enc = small(max_iter=3, objective=objective)
    with patched_step(nan_at(5)), pytest.raises(NonFiniteLossError) as info:
        enc.fit(X)
    assert info.value.advice.parameters == {"learning_rate": 0.001, **named}
    message = str(info.value)
    assert "Try a lower learning_rate (now 0.001)" in message
    assert ("objective__alpha (now 0.5)" in message) == bool(named)
    assert "alpha (now 0.03)" not in message


def test_non_finite_loss_in_first_epoch_leaves_estimator_unfitted() -> None:
    enc = small()
    with patched_step(nan_at(1)), pytest.raises(NonFiniteLossError, match="unfitted"):
        enc.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(enc)


def test_non_finite_loss_is_a_floating_point_error() -> None:
    assert issubclass(NonFiniteLossError, FloatingPointError)


def _assert_same(a: Any, b: Any, where: str = "state") -> None:
    """``a`` and ``b`` hold the same values, bit for bit (NaN equal to NaN)."""
    if isinstance(a, torch.nn.Module):
        _assert_same(a.state_dict(), b.state_dict(), where)
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same(u, v, f"{where}[{i}]")
    elif isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, where
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float | int | str | bool | type(None) | torch.device):
        assert a == b or (a != a and b != b), where
    else:  # adapters and the like: built once per model, not changed by training
        assert type(a) is type(b), where


def _assert_as_before(enc: ACTEncoder, before: dict[str, Any]) -> None:
    """``enc``'s fitted state is ``before`` (a deep copy of ``fitted_state``)."""
    _assert_same(_guards.fitted_state(enc), before, "fitted_state")


def test_a_fit_that_blows_up_the_weights_leaves_a_fresh_estimator_unfitted() -> None:
    """At learning_rate=1e12 the loss stays finite (the objective normalises the
    embeddings) while the weights become ~1e12: the fit must not keep them."""
    enc = small(learning_rate=1e12, max_iter=3)
    with pytest.raises(NonFiniteLossError) as info:
        enc.fit(X)
    message = str(info.value)
    assert "in epoch 1 (by step 4, the weights grew more than 1000-fold" in message
    assert "the estimator is left unfitted" in message
    assert "Try a lower learning_rate (now 1000000000000.0)" in message
    assert info.value.advice.reason == "diverged" and not info.value.at_start
    with pytest.raises(NotFittedError):
        check_is_fitted(enc)
    with pytest.raises(NotFittedError):
        enc.save("never.skact")


def test_weights_that_blow_up_in_a_later_epoch_go_back_to_the_last_sound_one() -> None:
    states, recording = _record_epochs()
    enc = small(max_iter=4)

    def explode(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        loss = original(trainer, batch)
        if trainer.step == 10:  # in the third epoch: finite, but 1e6 times too large
            with torch.no_grad():
                for p in trainer.encoder.parameters():
                    p.mul_(1e6)
        return loss

    with recording, patched_step(explode), pytest.raises(NonFiniteLossError) as info:
        enc.fit(X)
    assert "in epoch 3 (by step 12, the weights grew more than" in str(info.value)
    assert "the weights of the last sound epoch are kept (2 epochs trained)" in str(
        info.value
    )
    assert enc.n_iter_ == 2 and enc._step == 8 and len(enc.loss_curve_) == 2
    _assert_same(enc.encoder_.state_dict(), states[1])


def test_a_warm_start_that_blows_up_later_keeps_its_sound_epochs() -> None:
    enc = small(warm_start=True).fit(X)  # 2 epochs, 8 steps
    states, recording = _record_epochs()

    def explode(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        loss = original(trainer, batch)
        if trainer.step == 8 + 10:  # in the third epoch of this call
            with torch.no_grad():
                for p in trainer.encoder.parameters():
                    p.mul_(1e6)
        return loss

    enc.set_params(max_iter=4)
    with recording, patched_step(explode), pytest.raises(NonFiniteLossError) as info:
        enc.fit(X)
    assert "the weights of the last sound epoch are kept (4 epochs trained)" in str(
        info.value
    )
    assert enc.n_iter_ == 4 and enc._step == 16 and len(enc.loss_curve_) == 4
    _assert_same(enc.encoder_.state_dict(), states[1])


def test_the_divergence_check_leaves_room_for_normal_training() -> None:
    from skact._training import MIN_REFERENCE_SCALE, WEIGHT_GROWTH_LIMIT, divergence

    assert divergence(2.5, 0.1, 0.1 * WEIGHT_GROWTH_LIMIT) is None
    assert "1000-fold" in str(divergence(2.5, 0.1, 0.1 * WEIGHT_GROWTH_LIMIT * 1.01))
    # Weights that start tiny (a very wide first layer) get the floor's room.
    assert divergence(2.5, 1e-6, MIN_REFERENCE_SCALE * WEIGHT_GROWTH_LIMIT) is None
    assert divergence(-3.0, 0.1, 0.2) is None  # a negative loss is fine
    assert divergence(None, 0.1, 0.2, moments_finite=False) is not None
    # A long fit at a high rate without weight decay never trips it.
    enc = small(max_iter=30, learning_rate=1e-2, weight_decay=0.0).fit(X)
    assert enc.n_iter_ == 30 and np.isfinite(enc.loss_curve_).all()


def test_a_warm_start_that_diverges_leaves_the_model_bit_identical() -> None:
    enc = small(warm_start=True).fit(X)
    before, out = copy.deepcopy(_guards.fitted_state(enc)), enc.transform(X)
    reference = copy.deepcopy(enc)
    with pytest.raises(NonFiniteLossError) as info:
        enc.set_params(learning_rate=1e12).fit(X)
    message = str(info.value)
    assert "the estimator is left as it was before this call" in message
    assert "Try a lower learning_rate (now 1000000000000.0)" in message
    _assert_as_before(enc, before)
    np.testing.assert_array_equal(enc.transform(X), out)
    # A sane rate then trains on as if the failed call had not happened.
    enc.set_params(learning_rate=reference.learning_rate).fit(X)
    np.testing.assert_array_equal(enc.transform(X), reference.fit(X).transform(X))
    assert enc.n_iter_ == 4 and np.isfinite(enc.loss_curve_).all()


def test_a_partial_fit_that_diverges_leaves_the_model_bit_identical() -> None:
    enc = small().partial_fit(X)
    before = copy.deepcopy(_guards.fitted_state(enc))
    with pytest.raises(NonFiniteLossError, match="left as it was before this call"):
        enc.set_params(learning_rate=1e12).partial_fit(X)
    _assert_as_before(enc, before)
    enc.set_params(learning_rate=1e-3).partial_fit(X)
    assert enc.n_iter_ == 2 and np.isfinite(enc.transform(X)).all()


def test_a_model_saved_after_a_diverged_fit_trains_on(tmp_path: Path) -> None:
    good = small(warm_start=True).fit(X)
    enc = copy.deepcopy(good)
    with pytest.raises(NonFiniteLossError):
        enc.set_params(learning_rate=1e12).fit(X)
    enc.save(tmp_path / "m.skact")
    loaded = skact.load(tmp_path / "m.skact")
    _assert_same(loaded.encoder_.state_dict(), good.encoder_.state_dict())
    for rate in (1e-3, 1e-4):  # what the user tries next: each trains
        loaded.set_params(learning_rate=rate).partial_fit(X)
        loaded.set_params(learning_rate=rate).fit(X)
    assert loaded.n_iter_ == 2 + 2 * 3 and np.isfinite(loaded.transform(X)).all()


def _poison(enc: ACTEncoder) -> None:
    """Give ``enc`` the weights a diverged fit of an older skact could leave."""
    with torch.no_grad():
        next(enc.encoder_.parameters()).fill_(float("nan"))


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_continued_fit_that_diverges_at_once_names_the_starting_weights(method) -> None:
    enc = small(warm_start=True).fit(X)
    _poison(enc)
    before = copy.deepcopy(_guards.fitted_state(enc))
    with pytest.raises(NonFiniteLossError) as info:
        getattr(enc, method)(X)
    message = str(info.value)
    assert "(the training loss was nan at the first step, before any update" in message
    assert "The starting weights are the likely cause, not the learning rate" in message
    assert "Try a lower" not in message and "warm_start=False" in message
    assert ("clone(estimator).partial_fit(X)" in message) == (method == "partial_fit")
    assert info.value.at_start
    assert info.value.advice.reason == "diverged_at_start"
    assert info.value.advice.parameters == {"warm_start": False}
    _assert_as_before(enc, before)
    # What the message suggests works.
    enc.set_params(warm_start=False).fit(X)
    assert np.isfinite(enc.transform(X)).all()


def test_a_fresh_fit_non_finite_at_once_blames_the_data_not_the_rate() -> None:
    enc = small()
    with patched_step(nan_at(0)), pytest.raises(NonFiniteLossError) as info:
        enc.fit(X)
    message = str(info.value)
    assert "before any update" in message and "look for extreme values in X" in message
    assert "Try a lower" not in message and "warm_start" not in message
    assert info.value.advice.reason == "diverged_at_start"
    assert info.value.advice.parameters == {}
    with pytest.raises(NotFittedError):
        check_is_fitted(enc)


# ----------------------------------------------------------------------------- Ctrl-C


def sigint_at(step: int) -> Callable:
    def fn(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step == step:
            os.kill(os.getpid(), signal.SIGINT)
        return original(trainer, batch)

    return fn


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to self")
def test_ctrl_c_stops_after_the_step_and_keeps_the_model() -> None:
    enc = small(max_iter=5)
    with (
        patched_step(sigint_at(5)),
        pytest.raises(KeyboardInterrupt),
        pytest.warns(UserWarning, match="keeping the model trained so far"),
    ):
        enc.fit(X)
    # Step 5 (the second of epoch 2) finished; then training stopped.
    assert enc._step == 6 and enc.n_iter_ == 1 and len(enc.loss_curve_) == 1
    assert np.isfinite(enc.transform(X)).all()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # The interrupted model goes on training with warm_start.
    enc.set_params(warm_start=True, max_iter=1).fit(X)
    assert enc.n_iter_ == 2


def _recording_steps(
    cut_at: int, where: str
) -> tuple[list[dict[str, Any]], Callable[[Trainer, torch.Tensor, Callable], torch.Tensor]]:
    """A step function that records the state after each complete step and raises
    KeyboardInterrupt in step ``cut_at``: ``where`` "before" it starts, or "after the
    loss" (the forward pass and ACT's estimate of G done, the update not)."""
    record: list[dict[str, Any]] = []

    def fn(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step == cut_at and where == "before":
            raise KeyboardInterrupt
        if trainer.step == cut_at:
            criterion = trainer._train_criterion

            def cut(views: Any) -> torch.Tensor:
                criterion(views)
                raise KeyboardInterrupt

            trainer._train_criterion = cut
        loss = original(trainer, batch)
        record.append(
            {
                "step": trainer.step,
                "parameters": [p.detach().clone() for p in trainer.encoder.parameters()],
                "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
                "adversary": trainer.adversary.state,
            }
        )
        return loss

    return record, fn


@pytest.mark.parametrize("where", ["before", "after the loss"])
def test_a_keyboard_interrupt_mid_step_keeps_the_completed_steps(where: str) -> None:
    """A KeyboardInterrupt in the middle of a step (a second Ctrl-C, or one our handler
    does not see) drops that step only: the weights, the optimiser and ACT's G are
    those of the last complete step."""
    record, fn = _recording_steps(6, where)
    enc = small(max_iter=5)
    with (
        patched_step(fn),
        pytest.raises(KeyboardInterrupt),
        pytest.warns(UserWarning) as warned,
    ):
        enc.fit(X)
    assert "keeping the model trained so far (1 complete epoch, 6 training steps)" in str(
        warned[0].message
    )
    assert enc.n_iter_ == 1 and enc._step == 6 and len(enc.loss_curve_) == 1
    last = record[-1]
    assert last["step"] == 6
    _assert_same(list(enc.encoder_.parameters()), last["parameters"])
    # (The optimiser's learning rate is set at each step's start: not its state.)
    _assert_same(enc._optimizer_state["state"], last["optimizer"]["state"])
    _assert_same(enc._adversary_state["state"], last["adversary"])


@pytest.mark.parametrize("method", ["fit", "partial_fit", "warm_start"])
def test_a_keyboard_interrupt_in_the_first_epoch_keeps_the_steps_done(method) -> None:
    enc = small(batch_size=8, max_iter=1)  # 8 steps an epoch
    if method == "warm_start":
        enc.set_params(warm_start=True).fit(X)
    start = getattr(enc, "_step", 0)
    record, fn = _recording_steps(start + 5, "before")
    with patched_step(fn), pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning):
        getattr(enc, "partial_fit" if method == "partial_fit" else "fit")(X)
    check_is_fitted(enc)
    assert enc.n_iter_ == start // 8 and enc._step == start + 5
    assert len(enc.loss_curve_) == start // 8
    _assert_same(list(enc.encoder_.parameters()), record[-1]["parameters"])
    assert np.isfinite(enc.transform(X)).all() and not enc.encoder_.training
    # ... and goes on training with warm_start.
    enc.set_params(warm_start=True, max_iter=1).fit(X)
    assert enc.n_iter_ == start // 8 + 1 and enc._step == start + 5 + 8


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to self")
def test_two_ctrl_c_keep_the_steps_done() -> None:
    """Two Ctrl-C in quick succession (the second in the middle of step 5 of the first
    epoch) keep the 5 complete steps: the fit is not rolled back."""

    def twice(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step == 5:
            signal.raise_signal(signal.SIGINT)  # the first: a request
            signal.raise_signal(signal.SIGINT)  # the second: KeyboardInterrupt here
        return original(trainer, batch)

    enc = small(batch_size=8)
    with (
        patched_step(twice),
        pytest.raises(KeyboardInterrupt),
        pytest.warns(UserWarning, match="keeping the model trained so far"),
    ):
        enc.fit(X)
    assert enc._step == 5 and enc.n_iter_ == 0
    assert np.isfinite(enc.transform(X)).all()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to self")
def test_ctrl_c_inside_the_update_waits_until_it_is_done() -> None:
    """Two Ctrl-C during the optimiser's update: it finishes, the step counts, then the
    KeyboardInterrupt is raised."""
    updated: list[list[torch.Tensor]] = []

    def twice(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step != 5:
            return original(trainer, batch)
        update = trainer.optimizer.step

        def interrupted_update(*args: Any, **kwargs: Any) -> Any:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            result = update(*args, **kwargs)
            updated.append([p.detach().clone() for p in trainer.encoder.parameters()])
            return result

        # The update itself replaced, to interrupt it from inside (undone below).
        trainer.optimizer.step = interrupted_update  # type: ignore[method-assign]
        try:
            return original(trainer, batch)
        finally:
            del trainer.optimizer.step

    enc = small(batch_size=8)
    with patched_step(twice), pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning):
        enc.fit(X)
    assert enc._step == 6 and len(updated) == 1
    _assert_same(list(enc.encoder_.parameters()), updated[0])


def test_an_interrupt_raised_inside_the_update_goes_back_to_the_epoch_start() -> None:
    """A KeyboardInterrupt that is no signal (so not held back) raised inside the
    optimiser's update may leave it half done: back to the end of the last epoch."""

    def torn(trainer: Trainer, batch: torch.Tensor, original: Callable) -> torch.Tensor:
        if trainer.step != 6:
            return original(trainer, batch)
        update = trainer.optimizer.step

        def half_update(*args: Any, **kwargs: Any) -> Any:
            update(*args, **kwargs)
            raise KeyboardInterrupt

        # The update itself replaced, to cut it in half (undone below).
        trainer.optimizer.step = half_update  # type: ignore[method-assign]
        try:
            return original(trainer, batch)
        finally:
            del trainer.optimizer.step

    states, recording = _record_epochs()
    enc = small(max_iter=5)
    with recording, patched_step(torn), pytest.raises(KeyboardInterrupt):
        with pytest.warns(UserWarning):
            enc.fit(X)
    assert enc.n_iter_ == 1 and enc._step == 4
    _assert_same(enc.encoder_.state_dict(), states[0])


def test_ctrl_c_before_any_step_leaves_estimator_unfitted() -> None:
    def interrupt(
        trainer: Trainer, batch: torch.Tensor, original: Callable
    ) -> torch.Tensor:
        raise KeyboardInterrupt

    enc = small()
    with (
        patched_step(interrupt),
        pytest.raises(KeyboardInterrupt),
        pytest.warns(UserWarning, match="left unfitted"),
    ):
        enc.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(enc)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to self")
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_ctrl_c_in_a_continued_fit_keeps_its_steps(method) -> None:
    enc = small(warm_start=True, max_iter=2).fit(X)  # 8 steps
    with (
        patched_step(sigint_at(8 + 2)),
        pytest.raises(KeyboardInterrupt),
        pytest.warns(UserWarning, match=r"trained so far \(2 complete epochs, 11 training"),
    ):
        getattr(enc, method)(X)
    assert enc._step == 11 and enc.n_iter_ == 2
    assert np.isfinite(enc.transform(X)).all()


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_ctrl_c_before_any_step_of_a_continued_fit_leaves_it_as_before(method) -> None:
    enc = small(warm_start=True).fit(X)
    before = copy.deepcopy(_guards.fitted_state(enc))

    def interrupt(
        trainer: Trainer, batch: torch.Tensor, original: Callable
    ) -> torch.Tensor:
        raise KeyboardInterrupt

    with (
        patched_step(interrupt),
        pytest.raises(KeyboardInterrupt),
        pytest.warns(UserWarning, match="no training step finished: the estimator is "),
    ):
        getattr(enc, method)(X)
    _assert_as_before(enc, before)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to self")
def test_second_ctrl_c_interrupts_at_once() -> None:
    with _guards.deferred_interrupt() as requested:
        assert not requested()
        os.kill(os.getpid(), signal.SIGINT)
        assert requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the default handler raises as soon as the signal arrives
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ------------------------------------------------------------------ CUDA out of memory


def test_cuda_oom_halves_the_batch_size() -> None:
    enc = small(batch_size=64, max_iter=3)
    with patched_step(oom_above(16)), pytest.warns(UserWarning) as record:
        enc.fit(X)
    messages = [str(w.message) for w in record if "out of memory" in str(w.message)]
    assert messages == [
        "CUDA ran out of memory with batch_size=64; retrying the epoch with "
        "batch_size=32 for the rest of this fit.",
        "CUDA ran out of memory with batch_size=32; retrying the epoch with "
        "batch_size=16 for the rest of this fit.",
    ]
    assert enc.n_iter_ == 3 and len(enc.loss_curve_) == 3
    assert enc._step == 3 * 4  # 64 samples in batches of 16; failed epochs undone
    assert np.isfinite(enc.transform(X)).all()


def test_the_cuda_oom_warning_points_at_the_caller() -> None:
    with patched_step(oom_above(32)), pytest.warns(UserWarning, match="memory") as record:
        small(batch_size=64, max_iter=1).fit(X)
    assert [w.filename for w in record] == [__file__]


def test_cuda_oom_moves_the_end_of_the_schedule() -> None:
    trainers: list[Trainer] = []
    original = Trainer.run_epoch

    def run_epoch(self: Trainer, n: int, take: Callable) -> float:
        trainers.append(self)
        return original(self, n, take)

    with mock.patch.object(Trainer, "run_epoch", run_epoch), patched_step(oom_above(16)):
        with pytest.warns(UserWarning):
            small(batch_size=32, max_iter=3).fit(X)
    # 2 steps an epoch became 4: the cosine now ends after 3 epochs of 4 steps.
    assert trainers[-1].total_steps == 12


def test_cuda_oom_below_the_floor_raises_and_leaves_estimator_unfitted() -> None:
    enc = small(batch_size=64)
    with (
        patched_step(oom_above(0)),
        pytest.warns(UserWarning),
        pytest.raises(torch.cuda.OutOfMemoryError, match="device='cpu'") as info,
    ):
        enc.fit(X)
    assert "batch_size=16" in str(info.value)
    assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)
    with pytest.raises(NotFittedError):
        check_is_fitted(enc)


# ------------------------------------------------------------------ the docs table


def _rst_escape(text: str) -> str:
    return re.sub(r"([\\`*_|])", r"\\\1", text)


def render_table() -> str:
    """The troubleshooting table, as reStructuredText."""
    lines = [
        BEGIN,
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 20 25 15 40",
        "",
        "   * - Problem",
        "     - What was called",
        "     - Exception",
        "     - Message",
    ]
    for case in CASES:
        lines += _table_row(case)
    return "\n".join([*lines, "", END])


def _table_row(case: Case) -> list[str]:
    """``case``'s row of the table. scikit-learn lists a parameter's options in the
    order of a set of strings, which changes with the hash seed: sorted here, so that
    regenerating the page changes only what changed."""
    message = re.sub(
        r"\{('[^'{}]*'(?:, '[^'{}]*')*)\}",
        lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}",
        case_message(case),
    )
    return [
        f"   * - {_rst_escape(case.problem)}",
        f"     - ``{case.code}``",
        f"     - ``{case.error.__name__}``",
        f"     - {_rst_escape(message)}",
    ]


def test_failure_semantics_tests_exist() -> None:
    """The troubleshooting page's failure-semantics table names the tests that check
    it: each must exist (a renamed or removed test would leave a statement unchecked)."""
    import ast

    named = re.findall(r"^   (tests/\w+\.py)::(\w+)$", DOC.read_text(), re.MULTILINE)
    assert len(named) >= 30
    for module, name in named:
        tree = ast.parse((ROOT / module).read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in functions, f"{module}::{name}, named in {DOC.name}, is gone"


def write_table() -> None:
    """Replace the generated block of the troubleshooting page."""
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + render_table() + tail)


if __name__ == "__main__":
    torch.set_num_threads(1)
    write_table()
    print(f"wrote {DOC}")


def test_a_sparse_dok_matrix_is_not_a_dict_of_columns():
    # dok_matrix subclasses dict: it gets scikit-learn's sparse-input error, not the
    # "dict of columns" advice (found by parametrize_with_checks).
    import scipy.sparse as sp

    X = sp.dok_matrix(np.eye(4))
    with pytest.raises(TypeError, match=r"[Ss]parse"):
        ACTEncoder(max_iter=1).fit(X)
