"""The ``skact`` command derived from ACTEncoder: options, errors, mixed tables,
summaries, image folders and the command-line guide's example."""

import argparse
import csv
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_digits
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils._param_validation import StrOptions

import skact
from skact import ACTEncoder, NonFiniteLossError
from skact._checks import Advice, AdvisedValueError, check_values
from skact.cli import build_parser, main
from skact.cli.commands import render_error
from skact.cli.parser import EXCLUDED, OPTIONS
from skact.evaluation import few_shot_score
from skact.objectives import OBJECTIVES

DOCS = Path(__file__).resolve().parents[1] / "docs"
TINY = ["--epochs", "1", "--hidden-layer-sizes", "8", "--n-components", "3"]
TINY += ["--projection-dim", "4", "--batch-size", "16", "--device", "cpu", "--seed", "0"]
TINY += ["-q"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fit_options():
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    return {
        action.dest: action
        for action in subparsers["fit"]._actions
        if action.option_strings
    }


# ---------------------------------------------------------------------------- options


def test_every_parameter_is_an_option_or_excluded_with_a_reason():
    constraints = set(ACTEncoder._parameter_constraints)
    assert set(OPTIONS) | set(EXCLUDED) == constraints
    assert not set(OPTIONS) & set(EXCLUDED)
    assert all(reason.strip() for reason in EXCLUDED.values())
    actions = fit_options()
    for param, option in OPTIONS.items():
        assert option.flag in actions[param].option_strings, param
    for flag in ("--encoder", "--image-size", "--batch-size", "--learning-rate",
                 "--alpha", "--n-components", "--objective", "--device",
                 "--corruption-rate", "--handle-missing", "--categorical",
                 "--epochs", "--seed"):  # fmt: skip
        assert any(flag in a.option_strings for a in actions.values()), flag


def test_choices_come_from_the_constraints():
    actions = fit_options()
    for param, constraints in ACTEncoder._parameter_constraints.items():
        options = {o for c in constraints if isinstance(c, StrOptions) for o in c.options}
        if param in OPTIONS and actions[param].choices is not None:
            assert set(actions[param].choices) == options, param
    assert set(actions["objective"].choices) == set(OBJECTIVES)
    assert set(actions["encoder"].choices) == {"auto", "mlp", "convnet", "resnet18"}
    assert set(actions["adversary"].choices) == {"ema", "previous", "batch"}


def parse_fit(*options):
    return build_parser().parse_args(["fit", "X.npy", "-o", "m", *options])


def test_numbers_are_checked_against_the_constraints_ranges(capsys):
    args = parse_fit("--epochs", "auto", "--n-components", "none", "--image-size",
                     "48x64", "--corruption-rate", "1", "--batch-size", "2",
                     "--learning-rate", "auto", "--early-stopping")  # fmt: skip
    assert args.max_iter == "auto" and args.n_components is None
    assert args.image_size == (48, 64) and args.corruption_rate == 1.0
    assert args.batch_size == 2 and args.learning_rate == "auto"
    assert args.early_stopping is True
    assert parse_fit("--corruption-rate", "auto").corruption_rate == "auto"
    assert not hasattr(args, "alpha")  # not given: ACTEncoder's default applies
    for option, value, message in [
        (
            "--corruption-rate",
            "1.5",
            "must be a float in the range [0.0, 1.0], got '1.5' (or: auto)",
        ),
        ("--batch-size", "1", "must be an int in the range [2, inf), got '1' (or: auto)"),
        ("--learning-rate", "0", "must be a float in the range (0.0, inf)"),
        ("--n-views", "1", "must be an int in the range [2, inf)"),
        ("--epochs", "abc", "must be a positive integer, got 'abc' (or: auto)"),
    ]:
        with pytest.raises(SystemExit):
            parse_fit(option, value)
        assert f"argument {option}: {message}" in capsys.readouterr().err


def test_help_shows_the_estimator_defaults(capsys):
    code, out, _ = run(["fit", "--help"], capsys)
    out = " ".join(out.split())
    defaults = ACTEncoder().get_params()
    assert code == 0
    assert f"(default: {defaults['alpha']})" in out
    assert "(default: 512,512)" in out  # hidden_layer_sizes
    assert "(default: auto)" in out


def _shown_helps():
    """``(command, action, help as --help prints it, default)`` of every option of every
    command; a training option's default is the estimator's."""
    parser = build_parser()
    defaults = ACTEncoder().get_params()
    for command, sub in parser._subparsers._group_actions[0].choices.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            default = action.default
            if default is argparse.SUPPRESS:
                default = defaults.get(action.dest, default)
            text = " ".join(formatter._expand_help(action).split())
            yield command, action, text, default


_FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction)
_FLAGS += (argparse.BooleanOptionalAction,)


def test_every_help_says_in_words_what_a_none_or_boolean_default_does():
    """ "--no-optimizer-state ... (default: True)" read as if the state were left out,
    and --seed showed no default at all."""
    checked = set()
    for command, action, text, default in _shown_helps():
        where = f"skact {command} {action.option_strings[-1]}: {text}"
        for value in ("true", "false", "none"):
            assert f"(default: {value})" not in text.lower(), where
        unsaid = default is None or isinstance(default, bool)
        if isinstance(action, _FLAGS) or (unsaid and not action.required):
            said = re.search(r"\(default: ([^)]*)", text)
            assert said is not None and len(said.group(1).split()) >= 2, where
            checked.add(action.option_strings[-1])
    assert {"--no-optimizer-state", "--seed", "--no-early-stopping", "--quiet"} <= checked
    helps = {(c, a.option_strings[-1]): t for c, a, t, _ in _shown_helps()}
    assert "(default: MODEL keeps them" in helps["fit", "--no-optimizer-state"]
    seed = helps["fit", "--seed"]
    assert "a fresh seed each run" in seed and "reproducible" in seed
    assert helps["demo", "--seed"].endswith("(default: 0)")  # the demo's own seed


def test_an_option_with_a_none_default_needs_words(monkeypatch):
    """The derivation refuses to show a None default as 'none'."""
    words = OPTIONS["n_components"]._replace(default_text=None)
    monkeypatch.setitem(OPTIONS, "n_components", words)
    with pytest.raises(ValueError, match=r"OPTIONS\['n_components'\] needs a default_text"):
        build_parser()


# ---------------------------------------------------------------------------- errors


def test_value_errors_carry_their_advice_and_the_api_keeps_its_message():
    with pytest.raises(AdvisedValueError) as info:
        check_values(np.array([[1.0, np.nan]]), columns=["a", "b"])
    message = str(info.value)
    assert "NaN (in column(s) b)" in message
    assert "handle_missing='indicator'" in message  # the API's terms
    assert info.value.advice == Advice(
        "Input X contains NaN (in column(s) b).", "nan", {"handle_missing": "indicator"}
    )
    rendered = render_error(info.value, "fit")
    assert "--handle-missing indicator" in rendered
    assert "handle_missing=" not in rendered and "NaN (in column(s) b)" in rendered
    assert "skact fit --handle-missing indicator" in render_error(info.value, "transform")


def test_a_diverging_fit_carries_the_parameters_to_lower():
    X = np.random.default_rng(0).normal(size=(64, 4))
    model = ACTEncoder(learning_rate=1e12, max_iter=2, batch_size=16)
    with pytest.raises(NonFiniteLossError) as info:
        model.fit(X)
    assert "Try a lower learning_rate (now 1000000000000.0)" in str(info.value)
    assert info.value.advice.parameters == {"learning_rate": 1e12, "alpha": 0.03}
    rendered = render_error(info.value, "fit")
    assert "Try a lower --learning-rate (now 1e+12) or --alpha (now 0.03)" in rendered
    assert "learning_rate" not in rendered


# ---------------------------------------------------------------------------- tables


def _mixed_csv(path, n=48, seed=0):
    rng = np.random.default_rng(seed)
    colours = np.array(["red", "green", "blue"])
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["height", "colour", "ward", "kind"])
        for i in range(n):
            c = i % 3
            writer.writerow(
                [f"{c * 3 + rng.normal():.3f}", colours[c], int(rng.integers(1, 4)),
                 "abc"[c]]
            )  # fmt: skip


def test_a_mixed_table_is_fitted_transformed_and_evaluated(tmp_path, capsys):
    data, model = tmp_path / "t.csv", tmp_path / "m.skact"
    _mixed_csv(data)
    code, out, err = run(
        ["fit", data, "--label", "kind", "--categorical", "ward", "-o", model, *TINY],
        capsys,
    )
    assert code == 0, err
    first, last = out.splitlines()
    assert first == (
        "fitting ACTEncoder on 48 samples (mixed table, 3 columns, categorical: "
        "'colour', 'ward'): mlp network, 1 epoch, batch size 16, corruption rate 0.1, "
        "device cpu"
    )
    assert last.startswith("fitted ACTEncoder on 48 samples (mlp network, 1 epoch, ")
    size = re.search(r"\(([\d.]+) kB\)$", last)
    assert size and abs(float(size.group(1)) * 1000 - model.stat().st_size) < 100
    fitted = skact.load(model)
    assert fitted.is_categorical_.tolist() == [False, True, True]
    assert [str(n) for n in fitted.feature_names_in_] == ["height", "colour", "ward"]
    assert sorted(fitted.categories_[0]) == ["blue", "green", "red"]  # text, not floats

    out_csv = tmp_path / "f.csv"
    code, out, err = run(
        ["transform", model, data, "--label", "kind", "-o", out_csv], capsys
    )
    assert code == 0 and "wrote 48 x 3 features" in out, err

    code, out, err = run(
        ["evaluate", data, "--label", "kind", "--model", model, "--baselines",
         "--k", "1", "--draws", "2"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    rows = [line.split(" | ")[0].strip("| ") for line in out.splitlines()[3:]]
    assert rows == [
        "majority class",
        "raw (standardised, text one-hot)",
        "PCA (standardised, text one-hot, 90% variance)",
        "ACTEncoder",
    ]
    # without a model, text columns are not features
    code, _, err = run(["evaluate", data, "--label", "kind"], capsys)
    assert code == 2 and "'colour', 'ward'" not in err and "'colour' hold text" in err


def test_baselines_of_a_mixed_table_with_gaps_impute_like_the_usual_pipeline(
    tmp_path, capsys
):
    pd = pytest.importorskip("pandas")
    data, model, report = tmp_path / "t.csv", tmp_path / "m.skact", tmp_path / "r.json"
    _mixed_csv(data, n=60)
    lines = data.read_text().splitlines()
    for i in range(1, len(lines), 7):  # gaps in a number and in a text column
        height, colour, ward, kind = lines[i].split(",")
        lines[i] = ",".join(["", colour, ward, kind] if i % 2 else [height, "", ward, kind])
    data.write_text("\n".join(lines) + "\n")
    argv = ["fit", data, "--label", "kind", "--handle-missing", "indicator"]
    code, _, err = run([*argv, "-o", model, *TINY], capsys)
    assert code == 0, err
    code, out, err = run(
        ["evaluate", data, "--label", "kind", "--model", model, "--baselines",
         "--k", "2", "--draws", "3", "-o", report],
        capsys,
    )  # fmt: skip
    assert code == 0, err  # the baselines used to fail on NaN (PCA refused it)
    results = json.loads(report.read_text())
    how = "standardised, text one-hot, gaps as mean + indicator"
    assert list(results) == [
        "majority class", f"raw ({how})", f"PCA ({how}, 90% variance)", "ACTEncoder",
    ]  # fmt: skip
    assert f"| raw ({how}) | " in out
    # The raw baseline is impute (mean + indicator) + standardise, and one-hot text
    # with a missing category: the same scores as that pipeline built by hand.
    df = pd.read_csv(data)
    X, y = df.drop(columns="kind"), df["kind"].to_numpy()
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    hand = make_column_transformer(
        (
            make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()),
            ["height", "ward"],
        ),
        (
            make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"),
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
            ),
            ["colour"],
        ),
    ).fit(X_pool)
    assert hand.transform(X_pool).shape[1] == 2 + 1 + 4  # height's indicator; NaN colour
    expected = few_shot_score(hand, X_pool, y_pool, X_test, y_test, k=2, n_draws=3)
    got = {(r["protocol"], r["k"]): r["scores"] for r in results[f"raw ({how})"]}
    for r in expected:
        np.testing.assert_allclose(got[r.protocol, r.k], r.scores)


def test_a_text_column_without_label_is_categorical_and_named(tmp_path, capsys):
    data = tmp_path / "t.csv"
    _mixed_csv(data)
    argv = ["fit", data, "-o", tmp_path / "m.skact", *TINY]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "categorical: 'colour', 'kind'" in out.splitlines()[0]


def test_an_empty_cell_of_a_text_column_is_a_missing_value(tmp_path, capsys):
    data = tmp_path / "t.csv"
    _mixed_csv(data)
    lines = data.read_text().splitlines()
    lines[2] = lines[2].replace(",red,", ",,").replace(",green,", ",,")
    data.write_text("\n".join(lines) + "\n")
    argv = ["fit", data, "--label", "kind", "-o", tmp_path / "m.skact", *TINY]
    code, _, err = run(argv, capsys)
    assert code == 1 and "NaN (in column(s) colour)" in err
    assert "--handle-missing indicator" in err
    code, _, err = run([*argv, "--handle-missing", "indicator"], capsys)
    assert code == 0, err


# ---------------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """45 digits as 8x8 PNG files in one subfolder per class (0, 1, 2), and a model."""
    root = tmp_path_factory.mktemp("digits")
    digits = load_digits(n_class=3)
    for i in range(45):
        folder = root / "images" / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    model = root / "m.skact"
    argv = ["fit", root / "images", "-o", model, "--encoder", "convnet", "--epochs", 1]
    argv += ["--n-components", 8, "--batch-size", 16, "--device", "cpu", "-q"]
    assert main([str(a) for a in argv]) == 0
    return root / "images", model


def test_an_image_fit_says_what_it_trains(digit_folder, capsys):
    folder, _ = digit_folder
    argv = ["fit", folder, "-o", folder.parent / "again.skact", "--epochs", 2, "-q"]
    argv += ["--batch-size", 16, "--device", "cpu", "--n-components", 4]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    first, last = out.splitlines()
    assert re.fullmatch(
        r"fitting ACTEncoder on 45 samples \(images seen at \d+x\d+ pixels, 1 "
        r"channel\): convnet network, 2 epochs, batch size 16, device cpu",
        first,
    ), first
    assert "(convnet network, 2 epochs, " in last
    assert skact.load(folder.parent / "again.skact").n_iter_ == 2


def test_transform_writes_the_paths_in_sorted_order(digit_folder, tmp_path, capsys):
    folder, model = digit_folder
    out = tmp_path / "f.csv"
    code, _, err = run(["transform", model, folder, "-o", out, "--with-paths"], capsys)
    assert code == 0, err
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "path" and rows[0][-1] == "label"
    paths = [r[0] for r in rows[1:]]
    assert paths == sorted(str(p) for p in folder.rglob("*.png"))
    assert [r[-1] for r in rows[1:]] == [Path(p).parent.name for p in paths]
    # the same rows as the .npy output, in the same order
    code, _, _ = run(["transform", model, folder, "-o", tmp_path / "f.npy"], capsys)
    features = np.array([[float(v) for v in r[1:-1]] for r in rows[1:]])
    np.testing.assert_allclose(features, np.load(tmp_path / "f.npy"), rtol=1e-6)
    code, _, err = run(
        ["transform", model, folder, "-o", tmp_path / "g.npy", "--with-paths"], capsys
    )
    assert code == 2 and "--with-paths needs a .csv output" in err


def test_paths_that_are_not_utf8_are_written_escaped(digit_folder, tmp_path, capsys):
    folder, model = digit_folder
    latin1 = tmp_path / os.fsdecode(b"caf\xe9")  # a class folder named in Latin-1
    shutil.copytree(folder / "0", latin1)
    shutil.copy(folder / "1" / "030.png", latin1 / os.fsdecode(b"\xe9t\xe9.png"))
    shutil.copytree(folder / "1", tmp_path / "1")
    out = tmp_path / "f.csv"
    argv = ["transform", model, tmp_path, "-o", out, "--with-paths"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    n = len(list(latin1.iterdir()))
    assert f"{n} of the image paths are not UTF-8 (e.g. {tmp_path}/caf\\xe9/" in stdout
    assert "1 of the class folder names is not UTF-8 (e.g. caf\\xe9)" in stdout
    with out.open(encoding="utf-8", newline="") as f:  # a UTF-8 file: strict decoding
        rows = list(csv.reader(f))[1:]
    files = sorted(str(p) for p in tmp_path.rglob("*.png"))
    # Each row leads to its file by the rule the note gives, one file per row.
    written = {os.fsencode(p).decode("utf-8", "backslashreplace"): p for p in files}
    assert [written[r[0]] for r in rows] == files
    assert {r[-1] for r in rows} == {"caf\\xe9", "1"}
    assert any(r[0].endswith("caf\\xe9/\\xe9t\\xe9.png") for r in rows)
    # A name holding the escape's text as characters would lead to two files.
    shutil.copy(folder / "1" / "030.png", latin1 / "\\xe9t\\xe9.png")
    code, _, err = run(argv, capsys)
    assert code == 2 and "would name two files" in err and "rename one" in err


def test_evaluate_baselines_on_an_image_folder_use_the_pixels(digit_folder, capsys):
    folder, model = digit_folder
    argv = ["evaluate", folder, "--model", model, "--baselines", "--k", 1, 3]
    code, out, err = run([*argv, "--draws", 2], capsys)
    assert code == 0, err
    rows = [line.split(" | ")[0].strip("| ") for line in out.splitlines()[3:]]
    assert rows == ["majority class", "raw pixels", "PCA (90% variance)", "ACTEncoder"]


def test_baselines_on_a_features_file_score_the_features_as_they_are(
    digit_folder, tmp_path, capsys
):
    folder, model = digit_folder
    features = tmp_path / "f.csv"
    assert run(["transform", model, folder, "-o", features, "--with-paths"], capsys)[0] == 0
    argv = ["evaluate", features, "--label", "label", "--k", 1, "--draws", 2]
    code, out, err = run([*argv, "--baselines"], capsys)
    assert code == 0, err
    assert "holds features already extracted" in out
    assert "without standardising them again" in out
    rows = [line.split(" | ")[0].strip("| ") for line in out.splitlines()[4:]]
    assert rows == ["majority class", "features"]
    # the same scores as without --baselines: the path column is not a feature
    code, plain, _ = run(argv, capsys)
    assert code == 0 and plain.splitlines()[-1] == out.splitlines()[-1]
    # a .npy of features is declared with --features
    np.save(tmp_path / "f.npy", np.zeros((4, 2)))
    np.save(tmp_path / "y.npy", np.array(["a", "a", "b", "b"]))
    argv = ["evaluate", tmp_path / "f.npy", "--labels", tmp_path / "y.npy", "--k", 1]
    argv += ["--test-size", 0.5, "--draws", 1, "--baselines"]
    code, out, err = run([*argv, "--features"], capsys)
    assert code == 0 and "holds features already extracted" in out, err
    code, out, _ = run(argv, capsys)  # not declared: a raw table, standardised
    assert code == 0 and "raw (standardised)" in out
    code, _, err = run([*argv, "--features", "--model", model], capsys)
    assert code == 2 and "give one" in err


# ---------------------------------------------------------------------------- the guide


def test_the_guide_s_commands_run(tmp_path, capsys, monkeypatch):
    """The command-line page's Python block makes the folder; its commands then run."""
    monkeypatch.chdir(tmp_path)
    page = (DOCS / "user_guide" / "cli.rst").read_text()
    assert "cli\n" in (DOCS / "user_guide" / "index.rst").read_text()
    python = re.search(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", page)
    exec(compile("\n".join(line[3:] for line in python.group(1).splitlines()), "", "exec"))
    commands = re.findall(r"^   \$ skact (.*)$", page, flags=re.M)
    ran = 0
    for command in commands:
        argv = shlex.split(command)
        if Path(argv[1]).exists():  # patients.csv is the reader's own
            code, _, err = run(argv, capsys)
            assert code == 0, (command, err)
            ran += 1
    assert ran == 4  # fit, transform and two evaluations; the table example has no data
    assert Path("features.csv").read_text().startswith("path,actencoder0,")


def test_an_unavailable_device_is_advised_in_each_front_end_s_terms(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # also on a GPU
    with pytest.raises(AdvisedValueError) as info:
        ACTEncoder(device="cuda").fit(np.zeros((4, 2)))
    assert str(info.value) == (
        "device='cuda' was requested but CUDA is not available; use device='auto' or "
        "device='cpu'."
    )
    assert info.value.advice.parameters == {"device": ("auto", "cpu")}
    with pytest.raises(SystemExit):
        parse_fit("--device", "cuda")
    err = capsys.readouterr().err
    assert "argument --device: 'cuda' was requested but CUDA is not available; use " in err
    assert "auto or cpu" in err and "device=" not in err


@pytest.mark.parametrize("reader", ["parquet", "csv without pandas"])
def test_text_columns_are_categorical_in_parquet_and_without_pandas(
    reader, tmp_path, capsys, monkeypatch
):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "h": rng.normal(size=40),
            "c": np.array(["a", "b"])[rng.integers(0, 2, 40)],
            "k": np.array(["x", "y"])[rng.integers(0, 2, 40)],
        }
    )
    table.loc[3, "c"] = None  # a missing category
    if reader == "parquet":
        pytest.importorskip("pyarrow")
        data = tmp_path / "t.parquet"
        table.to_parquet(data)
    else:
        data = tmp_path / "t.csv"
        table.to_csv(data, index=False)
        monkeypatch.setattr("skact.cli.files.pandas", lambda: None)
    model, out = tmp_path / "m.skact", tmp_path / "f.npy"
    argv = ["fit", data, "--label", "k", "-o", model, "--handle-missing", "indicator"]
    code, printed, err = run([*argv, *TINY], capsys)
    assert code == 0, err
    assert "(mixed table, 2 columns, categorical: 'c')" in printed
    assert skact.load(model).is_categorical_.tolist() == [False, True]
    code, _, err = run(["transform", model, data, "--label", "k", "-o", out], capsys)
    assert code == 0, err
    assert np.load(out).shape == (40, 3)
