"""The ``skact`` command, run in-process on tiny data."""

import csv
import json
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import skact
from skact import ACTEncoder
from skact._training import Trainer
from skact.cli import UsageError, build_parser, list_images, main, read_data
from skact.cli.files import file_size
from skact.evaluation import (
    few_shot_score,
    majority_score,
    raw_baseline,
    results_table,
)

TINY = [
    "--epochs", "1", "--hidden-layer-sizes", "8", "--n-components", "3",
    "--projection-dim", "4", "--batch-size", "16", "--device", "cpu", "--seed", "0", "-q",
]  # fmt: skip


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(3, 5))
    X = np.concatenate([c + rng.normal(size=(20, 5)) for c in centres])
    y = np.repeat(np.array(["a", "b", "c"]), 20)
    return X, y


def _write_csv(path, X, y=None, header=True):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(
                [f"f{i}" for i in range(X.shape[1])] + (["label"] if y is not None else [])
            )
        for i, row in enumerate(X):
            writer.writerow(
                [repr(float(v)) for v in row] + ([y[i]] if y is not None else [])
            )


def _read_csv(path):
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny labelled data as CSV and .npy, and a model fitted on it by the command."""
    d = tmp_path_factory.mktemp("cli")
    X, y = _blobs()
    _write_csv(d / "data.csv", X, y)
    np.save(d / "X.npy", X)
    np.save(d / "y.npy", y)
    assert (
        main(
            [
                "fit",
                str(d / "data.csv"),
                "--label",
                "label",
                "-o",
                str(d / "model.skact"),
                *TINY,
            ]
        )
        == 0
    )
    return d, X, y


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------- round trips


def test_fit_saves_a_model_with_the_options_given(files):
    d, X, _ = files
    import skact

    model = skact.load(d / "model.skact")
    assert isinstance(model, ACTEncoder)
    assert model.n_features_in_ == 5  # the label column was dropped
    params = model.get_params()
    assert (params["max_iter"], params["n_components"], params["random_state"]) == (1, 3, 0)
    assert tuple(params["hidden_layer_sizes"]) == (8,)
    assert params["verbose"] == 0
    assert model.transform(X).shape == (60, 3)


def test_csv_round_trip_fit_transform_evaluate(files, capsys):
    d, X, y = files
    import skact

    model = skact.load(d / "model.skact")
    code, out, _ = run(
        [
            "transform",
            d / "model.skact",
            d / "data.csv",
            "--label",
            "label",
            "-o",
            d / "f.csv",
        ],
        capsys,
    )
    assert code == 0 and "wrote 60 x 3 features" in out
    header, rows = _read_csv(d / "f.csv")
    assert header == ["actencoder0", "actencoder1", "actencoder2", "label"]
    features = np.array([[float(v) for v in r[:3]] for r in rows])
    np.testing.assert_allclose(features, model.transform(X), rtol=1e-6, atol=1e-6)
    assert [r[3] for r in rows] == y.tolist()

    code, out, _ = run(
        [
            "evaluate",
            d / "f.csv",
            "--label",
            "label",
            "--k",
            1,
            2,
            "--draws",
            3,
            "-o",
            d / "r.json",
        ],
        capsys,
    )
    assert code == 0
    # The command is the documented protocol: a stratified 70/30 split (seed 0), then
    # few_shot_score with the same seed.
    F_pool, F_test, y_pool, y_test = train_test_split(
        features, y, test_size=0.3, stratify=y, random_state=0
    )
    expected = few_shot_score(None, F_pool, y_pool, F_test, y_test, k=[1, 2], n_draws=3)
    saved = json.loads((d / "r.json").read_text())
    assert list(saved) == ["majority class", "features"]
    assert [(r["k"], r["protocol"]) for r in saved["features"]] == [
        (1, "linear"), (1, "knn"), (2, "linear"), (2, "knn"),
    ]  # fmt: skip
    for got, want in zip(saved["features"], expected, strict=True):
        np.testing.assert_allclose(got["scores"], want.scores)
    floor = majority_score(y_pool, y_test, k=[1, 2], n_draws=3)
    assert results_table({"majority class": floor, "features": expected}) in out


def test_npy_round_trip_and_evaluate_through_the_model(files, capsys):
    d, X, _ = files
    import skact

    model = skact.load(d / "model.skact")
    code, _, _ = run(
        ["transform", d / "model.skact", d / "X.npy", "-o", d / "f.npy"], capsys
    )
    assert code == 0
    features = np.load(d / "f.npy")
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, model.transform(X))

    code, out_features, _ = run(
        ["evaluate", d / "f.npy", "--labels", d / "y.npy", "--draws", 2, "--k", 2], capsys
    )
    assert code == 0
    code, out_model, _ = run(
        [
            "evaluate", d / "X.npy", "--labels", d / "y.npy", "--model", d / "model.skact",
            "--baselines", "--draws", 2, "--k", 2, "-o", d / "r.md",
        ],
        capsys,
    )  # fmt: skip
    assert code == 0
    table = (d / "r.md").read_text()
    assert table.strip() in out_model
    rows = {line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]}
    assert rows == {
        "majority class", "raw (standardised)", "PCA (standardised, 90% variance)",
        "ACTEncoder",
    }  # fmt: skip
    # Scoring the model's features or the model on raw data is the same computation.
    feature_row = out_features.strip().splitlines()[-1].split(" | ", 1)[1]
    model_row = next(r for r in table.splitlines() if r.startswith("| ACTEncoder"))
    assert model_row.split(" | ", 1)[1] == feature_row


@pytest.fixture
def imbalanced(tmp_path):
    """Features of two classes, 3 to 1, as .npy files: a pool and a test set."""
    rng = np.random.default_rng(0)
    paths = {}
    for name, n in (("pool", 40), ("test", 20)):
        y = np.array(["big"] * (3 * n // 4) + ["small"] * (n // 4))
        X = rng.normal(size=(n, 3)) + (y == "small")[:, None]
        np.save(tmp_path / f"{name}.npy", X)
        np.save(tmp_path / f"{name}_y.npy", y)
        paths[name] = (tmp_path / f"{name}.npy", tmp_path / f"{name}_y.npy", X, y)
    return paths


def test_evaluate_with_a_metric_gives_the_python_api_s_numbers(imbalanced, capsys):
    """The command calls skact.evaluation: the same draws (the same seed) give the
    same numbers, the majority class's row too."""
    (X_path, y_path, X, y), (T_path, t_path, T, t) = imbalanced.values()
    out_json = X_path.parent / "r.json"
    argv = ["evaluate", X_path, "--labels", y_path, "--features", "--test", T_path]
    argv += ["--test-labels", t_path, "--k", 1, 3, "--draws", 3, "--seed", 7]
    code, out, err = run([*argv, "--metric", "balanced_accuracy", "-o", out_json], capsys)
    assert code == 0, err
    kwargs = {"k": [1, 3], "n_draws": 3, "scoring": "balanced_accuracy"}
    expected = {
        "majority class": majority_score(y, t, **kwargs),
        "features": few_shot_score(None, X, y, T, t, random_state=7, **kwargs),
    }
    saved = json.loads(out_json.read_text())
    assert list(saved) == list(expected)
    for name, results in expected.items():
        for got, want in zip(saved[name], results, strict=True):
            assert (got["k"], got["protocol"], got["scoring"]) == (
                want.k, want.protocol, "balanced_accuracy",
            )  # fmt: skip
            np.testing.assert_allclose(got["scores"], want.scores)
    assert "3 draws; balanced_accuracy mean ± std:" in out
    assert results_table(expected) in out
    assert "| majority class | 0.500 ± 0.000 |" in out
    assert "note:" not in out  # balanced accuracy asked for already


def test_evaluate_suggests_balanced_accuracy_for_imbalanced_classes(
    imbalanced, files, capsys
):
    X_path, y_path, _, _ = imbalanced["pool"]
    argv = ["evaluate", X_path, "--labels", y_path, "--features", "--k", 1]
    code, out, err = run([*argv, "--draws", 2, "--test-size", 0.5], capsys)
    assert code == 0, err
    note = next(line for line in out.splitlines() if line.startswith("note:"))
    assert "the largest holds 75% of the test samples, 3.0 times the smallest" in note
    assert "--metric balanced_accuracy" in note and "'majority class' row" in note
    assert "| majority class | 0.750 ± 0.000 | 0.750 ± 0.000 |" in out
    # Three classes of 20: no note.
    d, _, _ = files
    code, out, _ = run(["evaluate", d / "X.npy", "--labels", d / "y.npy", "--k", 1], capsys)
    assert code == 0 and "note:" not in out
    # A name that is no scorer is a bad argument, with the names it may have meant.
    code, _, err = run([*argv, "--metric", "balanced_acuracy"], capsys)
    assert code == 2 and "did you mean balanced_accuracy" in err


def test_parquet_table(files, tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    d, X, y = files
    table = pa.table({**{f"f{i}": X[:, i] for i in range(5)}, "label": y})
    pq.write_table(table, tmp_path / "data.parquet")
    features, labels = read_data(tmp_path / "data.parquet", "label")
    np.testing.assert_array_equal(features, X)
    assert labels.tolist() == y.tolist()
    code, _, _ = run(
        [
            "transform", d / "model.skact", tmp_path / "data.parquet", "--label", "label",
            "-o", tmp_path / "f.npy",
        ],
        capsys,
    )  # fmt: skip
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), np.load(d / "f.npy"))


def test_csv_without_header_and_label_by_position(tmp_path):
    X, _ = _blobs()
    _write_csv(tmp_path / "plain.csv", X, header=False)
    features, labels = read_data(tmp_path / "plain.csv")
    np.testing.assert_array_equal(features, X)
    assert labels is None
    features, labels = read_data(tmp_path / "plain.csv", "-1")
    np.testing.assert_array_equal(features, X[:, :4])
    assert labels.tolist() == [repr(float(v)) for v in X[:, 4]]


def test_fit_options_reach_the_estimator(tmp_path, capsys):
    X, _ = _blobs()
    np.save(tmp_path / "X.npy", X)
    argv = [
        "fit", tmp_path / "X.npy", "-o", tmp_path / "m.skact", *TINY, "--alpha", "0.3",
        "--adversary", "batch", "--n-views", "3", "--learning-rate", "0.01",
        "--corruption-rate", "0.2", "--noise-scale", "0.1", "--projection-dim", "none",
    ]  # fmt: skip
    code, out, _ = run(argv, capsys)
    assert code == 0 and "fitted ACTEncoder on 60 samples (mlp network, 1 epoch," in out
    assert "batch size 16, corruption rate 0.2, device cpu" in out
    import skact

    params = skact.load(tmp_path / "m.skact").get_params()
    assert params["alpha"] == 0.3 and params["adversary"] == "batch"
    assert params["n_views"] == 3 and params["learning_rate"] == 0.01
    assert params["corruption_rate"] == 0.2 and params["noise_scale"] == 0.1
    assert params["projection_dim"] is None
    # Options not given keep ACTEncoder's defaults.
    assert params["objective"] == ACTEncoder().objective


def test_no_optimizer_state_writes_a_smaller_model_and_prints_its_size(tmp_path, capsys):
    """Issue 16: --no-optimizer-state leaves Adam's moments out of the model, and the
    final line gives the size of the file actually written."""
    X, _ = _blobs()
    np.save(tmp_path / "X.npy", X)
    sizes, moments = {}, {}
    for flags in ([], ["--no-optimizer-state"]):
        path = tmp_path / f"model{len(flags)}.skact"
        argv = ["fit", tmp_path / "X.npy", "-o", path, *TINY, "--hidden-layer-sizes", "64"]
        code, out, _ = run(argv + flags, capsys)
        size = path.stat().st_size
        assert code == 0
        assert out.rstrip().endswith(f"saved to {path} ({file_size(size)})")
        model = skact.load(path)
        assert (model._optimizer_state is None) is bool(flags)
        sizes[bool(flags)] = size
        parameters = [*model.encoder_.parameters(), *model.projector_.parameters()]
        moments[bool(flags)] = 2 * sum(p.numel() * p.element_size() for p in parameters)
    assert moments[True] == moments[False]
    assert sizes[False] - sizes[True] >= moments[True]


def test_ctrl_c_saves_without_optimizer_state_when_asked(tmp_path, capsys):
    X, _ = _blobs()
    np.save(tmp_path / "X.npy", X)
    path = tmp_path / "m.skact"
    argv = ["fit", tmp_path / "X.npy", "-o", path, *TINY, "--epochs", "3"]
    original = Trainer.training_step

    def training_step(self, batch):
        if self.step == 5:  # 60 rows in 4 steps of 16: in the second epoch
            raise KeyboardInterrupt
        return original(self, batch)

    with mock.patch.object(Trainer, "training_step", training_step):
        code, _, err = run([*argv, "--no-optimizer-state"], capsys)
    assert code == 130 and "saved the model trained so far (1 complete epoch)" in err
    model = skact.load(path)
    assert model.n_iter_ == 1 and model._optimizer_state is None


# ---------------------------------------------------------------------------- image folders


def test_list_images_uses_subfolders_as_labels(tmp_path):
    from PIL import Image

    for rel in ["cat/1.png", "cat/2.JPG", "dog/a.png", "dog/deeper/b.bmp", ".cache/x.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4)).save(tmp_path / rel, format="PNG")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    paths, labels = list_images(tmp_path)
    assert [p[len(str(tmp_path)) + 1 :] for p in paths] == [
        "cat/1.png", "cat/2.JPG", "dog/a.png", "dog/deeper/b.bmp",
    ]  # fmt: skip
    assert labels.tolist() == ["cat", "cat", "dog", "dog"]
    X, y = read_data(tmp_path)
    assert X == paths and y.tolist() == labels.tolist()


def test_transform_of_grey_files_with_an_rgb_model_says_the_conversion_once(
    tmp_path, capsys
):
    """Upstream RGB photographs, downstream grey scans: converted as Python converts
    them (grey repeated on the three channels), and said once, on one line."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder, mode, n in (("rgb", "RGB", 12), ("grey", "L", 5)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            pixels = rng.integers(0, 256, (8, 8, 3) if mode == "RGB" else (8, 8))
            Image.fromarray(pixels.astype(np.uint8), mode).save(
                tmp_path / folder / f"{i}.png"
            )
    model = tmp_path / "m.skact"
    code, _, _ = run(
        ["fit", tmp_path / "rgb", "-o", model, "--epochs", "1", "--batch-size", "4",
         "--n-components", "3", "--seed", "0", "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 0
    out = tmp_path / "f.npy"
    code, _, err = run(["transform", model, tmp_path / "grey", "-o", out], capsys)
    assert code == 0
    lines = [line for line in err.splitlines() if "channel" in line]
    assert lines == [
        "skact transform: warning: ACTEncoder: images have 1 channel, the model was "
        "fitted on 3: converted grey -> RGB by repeating the channel "
        "(channel_mismatch='convert'); pass channel_mismatch='error' to refuse"
    ]
    paths, _ = list_images(tmp_path / "grey")
    repeated = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    np.testing.assert_allclose(
        np.load(out), skact.load(model).transform(repeated), atol=1e-6
    )


def test_list_images_without_class_folders_has_no_labels(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "top.png").write_bytes(b"")
    (tmp_path / "sub" / "low.png").write_bytes(b"")
    paths, labels = list_images(tmp_path)
    assert len(paths) == 2 and labels is None


def test_image_folder_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no image files"):
        list_images(tmp_path / "empty")
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "a" / "1.png").write_bytes(b"")
    with pytest.raises(UsageError, match="--label is for tables"):
        read_data(tmp_path / "imgs", "label")
    code, _, err = run(["evaluate", tmp_path / "imgs"], capsys)
    assert code == 2 and "only be evaluated through a model (--model)" in err


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ["fit", "{d}/missing.csv", "-o", "{d}/m"],
            2,
            "DATA '{d}/missing.csv' does not exist",
        ),
        (["fit", "{d}/data.txt", "-o", "{d}/m"], 2, "unknown format '.txt'"),
        (["fit", "{d}/data.csv", "--label", "y", "-o", "{d}/m"], 2, "no column 'y'"),
        (["fit", "{d}/X.npy", "-o", "{d}/nofolder/m"], 2, "folder '{d}/nofolder' does not"),
        (
            ["fit", "{d}/X.npy", "-o", "{d}/m", "--alpha", "-1"],
            2,
            "argument --alpha: must be a float in the range [0.0, inf), got '-1'",
        ),
        (
            ["fit", "{d}/X.npy", "-o", "{d}/m", "--epochs", "0"],
            2,
            "must be a positive integer",
        ),
        (
            ["fit", "{d}/X.npy", "-o", "{d}/m", "--epochs", "abc"],
            2,
            "argument --epochs: must be a positive integer, got 'abc'",
        ),
        (
            ["fit", "{d}/X.npy", "-o", "{d}/m", "--seed", "x"],
            2,
            "argument --seed: expected an integer or 'none', got 'x'",
        ),
        (
            ["fit", "{d}/X.npy", "-o", "{d}/m", "--device", "bogus"],
            2,
            "argument --device: 'bogus' is not a valid torch device",
        ),
        (["fit", "{d}/X.npy", "-o", "{d}/m", "--adversary", "future"], 2, "invalid choice"),
        (["fit", "{d}/X.npy"], 2, "the following arguments are required: -o/--output"),
        (
            ["transform", "{d}/model.skact", "{d}/X.npy", "-o", "{d}/f.txt"],
            2,
            "unknown format",
        ),
        (
            ["transform", "{d}/data.csv", "{d}/X.npy", "-o", "{d}/f.npy"],
            2,
            "not a model",  # skact.ModelFileError's message names the file
        ),
        (
            ["transform", "{d}/model.skact", "{d}/X4.npy", "-o", "{d}/f.npy"],
            1,
            "X has 4 feat",
        ),
        (["evaluate", "{d}/X.npy"], 2, "no labels; name the label column with --label"),
        (
            ["evaluate", "{d}/X.npy", "--labels", "{d}/y.npy", "--k", "30"],
            1,
            "fewer than k=30",
        ),
        (["evaluate", "{d}/X.npy", "--label", "0", "--labels", "{d}/y.npy"], 2, "not both"),
        (["evaluate", "{d}/X.npy", "--labels", "{d}/y9.npy"], 2, "60 samples but 9 labels"),
        (["bogus"], 2, "invalid choice: 'bogus'"),
        ([], 2, "the following arguments are required: COMMAND"),
    ],
)
def test_errors_exit_non_zero_with_a_message(files, capsys, argv, code, message):
    d, X, _ = files
    np.save(d / "X4.npy", X[:, :4])
    np.save(d / "y9.npy", np.arange(9))
    (d / "data.txt").write_text("1,2\n")
    got, _, err = run([a.format(d=d) for a in argv], capsys)
    assert got == code
    assert message.format(d=d) in err
    assert "Traceback" not in err


def test_parquet_without_pyarrow_is_a_clear_error(files, monkeypatch, capsys):
    d, _, _ = files
    (d / "t.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, _, err = run(["fit", d / "t.parquet", "-o", d / "m"], capsys)
    assert code == 2 and "reading Parquet needs pyarrow (pip install pyarrow)" in err


def test_plot_without_matplotlib_fails_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(["demo", "--data", "table", "--plot", tmp_path / "p.png"], capsys)
    assert code == 2 and "--plot needs matplotlib" in err
    assert out == ""  # nothing was trained


# ---------------------------------------------------------------------------- help


def test_help_explains_every_option(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("demo", "fit", "transform", "evaluate"):
        assert command in out
    code, out, _ = run(["fit", "--help"], capsys)
    assert code == 0 and "the paper's lambda" in out and "--epochs" in out
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"skact {name} {action.option_strings or action.dest}"


def test_warnings_are_plain_lines_of_the_command(monkeypatch, capsys):
    """Python's display names the line that warned (the skact script's
    ``sys.exit(main())``); the command prints what it says, and puts Python's back."""
    import warnings

    before = warnings.showwarning

    def warns(args):
        warnings.warn("the data looks odd", UserWarning, stacklevel=2)
        return 0

    monkeypatch.setitem(skact.cli.COMMANDS, "transform", warns)
    code, _, err = run(["transform", "model", "data", "-o", "out.npy"], capsys)
    assert code == 0 and err == "skact transform: warning: the data looks odd\n"
    assert warnings.showwarning is before


def test_a_long_fit_warns_once_without_the_source_line(files, monkeypatch, capsys):
    d, _, _ = files
    ticks = iter(range(0, 10**9, 60))  # every step seems to take a minute
    monkeypatch.setattr("skact._callbacks._now", lambda: float(next(ticks)))
    argv = ["fit", d / "data.csv", "--label", "label", "-o", d / "long.skact"]
    argv += [*TINY[2:], "--batch-size", "60"]  # --epochs auto: 100 epochs here
    assert "--epochs" not in argv
    code, _, err = run(argv, capsys)
    assert code == 0, err
    warned = [line for line in err.splitlines() if "warning" in line.lower()]
    assert len(warned) == 1, err
    assert warned[0].startswith("skact fit: warning: ACTEncoder: this fit is estimated")
    assert "max_iter" in warned[0] and "UserWarning" not in err and ".py:" not in err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("skact ")


# ---------------------------------------------------------------------------- demo


def test_demo_prints_the_table_and_saves_a_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    argv = [
        "demo", "--data", "table", "--epochs", "1", "--hidden-layer-sizes", "16",
        "--draws", "2", "--k", "1", "5", "-q", "--plot", tmp_path / "demo.png",
    ]  # fmt: skip
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "fitting ACTEncoder on 1257 unlabeled training rows of 64 pixels" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("| representation"))
    assert header == "| representation | linear k=1 | linear k=5 | knn k=1 | knn k=5 |"
    rows = [line.split(" | ")[0].strip("| ") for line in lines if line.startswith("| ")][1:]
    assert rows == ["raw pixels", "PCA (90% variance)", "ACT"]
    # The raw-pixel row is the documented protocol on the documented split.
    digits = load_digits()
    X_pool, X_test, y_pool, y_test = train_test_split(
        digits.data, digits.target, test_size=0.3, stratify=digits.target, random_state=0
    )
    raw = raw_baseline(standardize=False).fit(X_pool)
    expected = few_shot_score(raw, X_pool, y_pool, X_test, y_test, k=[1, 5], n_draws=2)
    expected_row = results_table({"raw pixels": expected}).splitlines()[-1]
    assert expected_row in lines
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unavailable_device_is_a_bad_argument_before_any_data_is_read(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU
    code, _, err = run(
        ["fit", tmp_path / "never-read.npy", "-o", tmp_path / "m", "--device", "cuda"],
        capsys,
    )
    assert code == 2
    assert "argument --device: 'cuda' was requested but CUDA is not available" in err
    assert "never-read" not in err


def test_python_dash_m_skact_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "skact", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"skact {skact.__version__}"


def test_empty_cells_need_handle_missing_and_the_advice_names_the_option(tmp_path, capsys):
    rows = ["a,b", "1,2", ",3", "4,", *(f"{i},{i + 1}" for i in range(8))]
    (tmp_path / "gaps.csv").write_text("\n".join(rows) + "\n")
    argv = ["fit", tmp_path / "gaps.csv", "-o", tmp_path / "m.skact", "-q", "--epochs", 1]
    argv += ["--batch-size", 4, "--hidden-layer-sizes", "8"]
    code, _, err = run(argv, capsys)
    assert code == 1 and "--handle-missing indicator" in err
    assert "NaN (in column(s) a, b)" in err  # the header's names, not positions
    assert "handle_missing=" not in err and "SimpleImputer" not in err
    code, _, _ = run([*argv, "--handle-missing", "indicator"], capsys)
    assert code == 0
    model = skact.load(tmp_path / "m.skact")
    assert model.handle_missing == "indicator"
    assert np.isfinite(model.transform(read_data(tmp_path / "gaps.csv")[0])).all()


def test_value_errors_name_the_columns_of_the_header_in_every_command(tmp_path, capsys):
    rows = [
        "id,height,weight,kind",
        *(f"{i},{i}.5,{i + 1},{'xy'[i % 2]}" for i in range(12)),
    ]
    (tmp_path / "ok.csv").write_text("\n".join(rows) + "\n")
    rows[3] = "2,inf,3,x"  # height
    rows[5] = "4,4.5,,x"  # weight
    (tmp_path / "bad.csv").write_text("\n".join(rows) + "\n")
    model, out = tmp_path / "m.skact", tmp_path / "f.npy"
    options = ["-q", "--epochs", 1, "--batch-size", 4, "--hidden-layer-sizes", "8"]
    fit = ["fit", tmp_path / "bad.csv", "--label", "kind", "-o", model, *options]
    messages = []

    code, _, err = run(fit, capsys)
    messages.append(err)
    assert code == 1 and "NaN (in column(s) weight)" in err
    assert "--handle-missing indicator" in err
    # with missing values allowed, the infinity is next; a label column given by its
    # position is removed and the other columns keep their names
    fit[3] = -1
    code, _, err = run([*fit, "--handle-missing", "indicator"], capsys)
    messages.append(err)
    assert code == 1 and "infinity (in column(s) height)" in err

    fit[1], fit[3] = tmp_path / "ok.csv", "kind"
    assert run(fit, capsys)[0] == 0
    transform = ["transform", model, tmp_path / "bad.csv", "--label", "kind", "-o", out]
    code, _, err = run(transform, capsys)
    messages.append(err)
    assert code == 1 and "NaN (in column(s) weight)" in err and not out.exists()
    # transform has no --handle-missing: the advice is to fit another model
    assert "skact fit --handle-missing indicator" in err

    evaluate = ["evaluate", tmp_path / "bad.csv", "--label", "kind", "--model", model]
    code, _, err = run(evaluate, capsys)
    messages.append(err)
    assert code == 1 and "NaN (in column(s) weight)" in err
    # inputs that cannot be read are reported first, as usage errors (exit 2)
    code, _, err = run([*evaluate, "--test", tmp_path / "missing.csv"], capsys)
    assert code == 2 and "missing.csv" in err
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    code, _, err = run(["evaluate", unlabelled, "--model", model], capsys)
    assert code == 2 and "no labels" in err

    for message in messages:  # advice in the command's terms, not Python code
        assert "SimpleImputer" not in message and "handle_missing=" not in message


def test_the_command_line_checks_what_the_estimator_checks(tmp_path, capsys):
    """Values beyond float32's range are refused on the float32 path only: the mixed
    path (--handle-missing indicator) standardises in float64, as the estimator does."""
    rows = ["a,b", *(f"{i}e300,{i}" for i in range(1, 13))]
    (tmp_path / "huge.csv").write_text("\n".join(rows) + "\n")
    model = tmp_path / "m.skact"
    argv = ["fit", tmp_path / "huge.csv", "-o", model, "-q", "--epochs", 1]
    argv += ["--batch-size", 4, "--hidden-layer-sizes", "8"]
    code, _, err = run(argv, capsys)
    assert code == 1 and "beyond float32's range" in err and "column(s) a;" in err
    assert "take their logarithm" in err
    code, _, err = run([*argv, "--handle-missing", "indicator"], capsys)
    assert code == 0, err
    out = tmp_path / "f.npy"
    code, _, err = run(["transform", model, tmp_path / "huge.csv", "-o", out], capsys)
    assert code == 0, err
    assert np.isfinite(np.load(out)).all()


def test_a_plain_npy_table_gets_the_command_s_advice(tmp_path, capsys):
    np.save(tmp_path / "gaps.npy", np.array([[1.0, np.nan], [2, 3], [3, 4], [4, 5]]))
    argv = ["fit", tmp_path / "gaps.npy", "-o", tmp_path / "m.skact", "-q"]
    code, _, err = run(argv, capsys)
    assert code == 1 and "NaN (in column(s) 1)" in err  # no header: by position
    assert "--handle-missing indicator" in err and "SimpleImputer" not in err


def test_a_diverging_fit_is_an_error_message_with_the_options(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(64, 4))
    np.save(tmp_path / "x.npy", X)
    argv = ["fit", tmp_path / "x.npy", "-o", tmp_path / "m.skact", "-q", "--epochs", 3]
    code, _, err = run([*argv, "--learning-rate", 1e12, "--batch-size", 16], capsys)
    assert code == 1 and "training diverged in epoch 1" in err  # not a traceback
    assert "--learning-rate (now" in err and not (tmp_path / "m.skact").exists()


def test_a_fit_non_finite_before_any_update_blames_the_data(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(64, 4))
    np.save(tmp_path / "x.npy", X)
    original = Trainer.training_step

    def poisoned(self, batch):  # as extreme values in DATA would
        with torch.no_grad():
            next(self.encoder.parameters()).fill_(float("nan"))
        return original(self, batch)

    argv = ["fit", tmp_path / "x.npy", "-o", tmp_path / "m.skact", "-q", "--epochs", 2]
    with mock.patch.object(Trainer, "training_step", poisoned):
        code, _, err = run(argv, capsys)
    assert code == 1 and "before any update" in err
    assert "The learning rate is not the cause: look for extreme values in DATA." in err
    assert "--learning-rate" not in err and "warm_start" not in err
    assert not (tmp_path / "m.skact").exists()


def test_a_mixed_model_that_rejects_gaps_says_so_in_the_command_s_terms(tmp_path, capsys):
    """A model fitted in Python on a mixed table with handle_missing='error' takes the
    mixed path, but still rejects missing values: the CLI names the header's column."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=40), rng.integers(0, 3, 40)])
    model = ACTEncoder(categorical_features=[1], max_iter=1, hidden_layer_sizes=(8,))
    model.set_params(batch_size=8, verbose=0).fit(X)
    model.save(tmp_path / "m.skact")
    rows = ["num,cat", *(f"{a},{int(b)}" for a, b in X)]
    rows[3] = "," + rows[3].split(",")[1]
    (tmp_path / "gaps.csv").write_text("\n".join(rows) + "\n")
    argv = ["transform", tmp_path / "m.skact", tmp_path / "gaps.csv", "-o"]
    code, _, err = run([*argv, tmp_path / "f.npy"], capsys)
    assert code == 1 and "NaN (in column(s) num)" in err
    assert "skact fit --handle-missing indicator" in err and "x0" not in err


# ---------------------------------------------------------------------------- export


def test_export_writes_a_program_that_computes_transform(files, capsys, tmp_path):
    d, X, _ = files
    out = tmp_path / "features.pt2"
    code, printed, _ = run(["export", d / "model.skact", "-o", out], capsys)
    assert code == 0
    assert f"wrote {out} (inputs: X float64 (n, 5); output: features float32 (n, 3))" in (
        printed
    )
    inputs = json.loads((tmp_path / "features.pt2.inputs.json").read_text())
    assert inputs["inputs"][0]["columns"] == ["f0", "f1", "f2", "f3", "f4"]
    program = torch.export.load(str(out))
    got = program.module()(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, skact.load(d / "model.skact").transform(X), atol=1e-4)


def test_export_format_from_the_option_or_the_suffix(files, capsys, tmp_path):
    d, X, _ = files
    code, _, err = run(["export", d / "model.skact", "-o", tmp_path / "m.bin"], capsys)
    assert code == 2 and "unknown format '.bin'; use one of .onnx, .pt2" in err
    assert not (tmp_path / "m.bin").exists()
    argv = ["export", d / "model.skact", "-o", tmp_path / "m.bin", "--format", "pt2"]
    assert run(argv, capsys)[0] == 0
    program = torch.export.load(str(tmp_path / "m.bin"))
    assert program.module()(torch.from_numpy(X[:2])).shape == (2, 3)


def test_export_refuses_to_overwrite_its_model(files, capsys):
    d, _, _ = files
    argv = ["export", d / "model.skact", "-o", d / "model.skact", "--format", "pt2"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "would destroy that input" in err


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_fit_log_writes_each_epochs_record_by_the_suffix(files, tmp_path, capsys, suffix):
    d, _, _ = files
    log = tmp_path / f"epochs{suffix}"
    model = tmp_path / "m.skact"
    argv = ["fit", d / "data.csv", "--label", "label", "-o", model, "--log", log]
    code, _, _ = run([*argv, *TINY, "--epochs", "2"], capsys)
    assert code == 0
    import skact

    fitted = skact.load(model)
    if suffix == ".csv":
        with log.open(newline="") as f:
            rows = list(csv.DictReader(f))
        losses = [float(r["loss"]) for r in rows]
    else:
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        losses = [r["loss"] for r in rows]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert losses == pytest.approx(fitted.loss_curve_, rel=1e-12)
    assert fitted.callbacks is None  # the log is the command's output, not MODEL's


def test_fit_log_refuses_the_model_path_and_a_missing_folder(files, tmp_path, capsys):
    d, _, _ = files
    model = tmp_path / "m.skact"
    code, _, err = run(["fit", d / "data.csv", "-o", model, "--log", model, *TINY], capsys)
    assert code == 2 and "is MODEL" in err and not model.exists()
    missing = tmp_path / "no" / "log.csv"
    code, _, err = run(
        ["fit", d / "data.csv", "-o", model, "--log", missing, *TINY], capsys
    )
    assert code == 2 and "does not exist" in err and not model.exists()
