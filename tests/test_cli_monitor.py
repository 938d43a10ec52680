"""``skact fit`` with labels: blank ones are unlabeled rows, the labeled ones feed the
monitor, whose last estimate the command prints."""

import csv
import math
import re

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import skact
from skact.cli import commands, main

TINY = [
    "--epochs", "2", "--hidden-layer-sizes", "8", "--n-components", "3",
    "--projection-dim", "4", "--batch-size", "16", "--device", "cpu", "--seed", "0",
]  # fmt: skip
#: 60 rows in 3 classes; 4 labels per class, the other 48 rows blank.
LABELED = np.r_[0:4, 20:24, 40:44]


def _blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(3, 5))
    X = np.concatenate([c + rng.normal(size=(20, 5)) for c in centres])
    y = np.repeat(np.array(["a", "b", "c"]), 20)
    return X, y


def _partly_labeled(y, rows=LABELED):
    partial = np.full(len(y), "", dtype=object)
    partial[rows] = y[rows]
    return partial


def _write_csv(path, X, labels=None):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        label = [] if labels is None else ["label"]
        writer.writerow([f"f{i}" for i in range(X.shape[1])] + label)
        for i, row in enumerate(X):
            cells = [repr(float(v)) for v in row]
            writer.writerow(cells + ([] if labels is None else [labels[i]]))


def _write_labels(path, labels):
    path.write_text("label\n" + "\n".join(str(v) for v in labels) + "\n")


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _printed_monitor(out):
    last = out.strip().splitlines()[-1]
    match = re.search(r", monitor \(([^)]*)\) ([\d.]+)(?: of (\d+))?\); saved to ", last)
    assert match, last
    return match.group(1), float(match.group(2)), match.group(3)


def few_shot(n: int) -> str:
    """What the fit's last line says the monitor is, for ``n`` labeled rows."""
    return (
        f"1-NN accuracy of {n} labeled rows, each compared with at most 5 other "
        "labeled rows per class, mean of 10 draws; a rough guide to few-shot accuracy"
    )


def test_blank_labels_are_unlabeled_rows_and_the_labeled_ones_feed_the_monitor(
    tmp_path, capsys
):
    X, y = _blobs()
    data, model = tmp_path / "d.csv", tmp_path / "m.skact"
    _write_csv(data, X, _partly_labeled(y))
    code, out, err = run(
        ["fit", data, "--label", "label", "-o", model, *TINY, "-q"], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"{data}: 48 of 60 samples have no label in column 'label' (blank or -1): "
        "they are trained on as unlabeled rows; the 12 labeled ones also feed the "
        "monitor"
    )
    assert lines[-1].startswith("fitted ACTEncoder on 60 samples (mlp network, 2 epochs")
    what, value, _ = _printed_monitor(out)
    assert what == few_shot(12)
    fitted = skact.load(model)
    assert fitted.monitor_name_ == "few_shot_1nn_accuracy"
    assert len(fitted.monitor_curve_) == fitted.n_iter_ == 2
    assert value == pytest.approx(fitted.monitor_curve_[-1], abs=5e-4)
    # The monitor followed exactly the labeled rows: scoring them again agrees.
    y_semi = np.where(np.isin(np.arange(60), LABELED), y, None)
    if hasattr(fitted, "feature_names_in_"):  # the header, kept when pandas is there
        X = pytest.importorskip("pandas").DataFrame(X, columns=fitted.feature_names_in_)
    assert fitted.score(X, y_semi) == pytest.approx(fitted.monitor_curve_[-1])


def test_the_fit_matches_the_api_fit_on_every_row_with_y(tmp_path, capsys):
    X, y = _blobs()
    data, model = tmp_path / "d.csv", tmp_path / "m.skact"
    _write_csv(data, X, _partly_labeled(y))
    assert run(["fit", data, "--label", "label", "-o", model, *TINY, "-q"], capsys)[0] == 0
    params = {
        "max_iter": 2, "hidden_layer_sizes": (8,), "n_components": 3,
        "projection_dim": 4, "batch_size": 16, "device": "cpu", "random_state": 0,
    }  # fmt: skip
    api = skact.ACTEncoder(**params).fit(
        X, np.where(np.isin(np.arange(60), LABELED), np.repeat([0, 1, 2], 20), -1)
    )
    fitted = skact.load(model)
    # Every row was trained on (dropping the 48 unlabeled ones would change the loss).
    np.testing.assert_allclose(fitted.loss_curve_, api.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(fitted.monitor_curve_, api.monitor_curve_, rtol=1e-6)


def test_minus_one_labels_are_unlabeled_rows_unless_minus_one_is_a_class(tmp_path, capsys):
    """-1 marks an unlabeled row, as in Python: the monitor follows the 12 labeled
    rows. With --minus-one class, -1 is a fourth class and every row feeds it."""
    X, y = _blobs()
    data = tmp_path / "d.csv"
    labels = np.where(np.isin(np.arange(60), LABELED), y, "-1")
    _write_csv(data, X, labels)
    argv = ["fit", data, "--label", "label", *TINY, "-q"]
    code, out, err = run([*argv, "-o", tmp_path / "m.skact"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"{data}: 48 of 60 samples have no label in column 'label' (blank or -1): "
        "they are trained on as unlabeled rows; the 12 labeled ones also feed the "
        "monitor"
    )
    assert _printed_monitor(out)[0] == few_shot(12)
    blank = tmp_path / "blank.csv"
    _write_csv(blank, X, _partly_labeled(y))
    code, _, err = run(["fit", blank, *argv[2:], "-o", tmp_path / "b.skact"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(  # -1 and blank: the same fit, the same monitor
        skact.load(tmp_path / "m.skact").monitor_curve_,
        skact.load(tmp_path / "b.skact").monitor_curve_,
    )
    argv += ["--minus-one", "class", "-o", tmp_path / "c.skact"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "skact fit: warning: " in err and "48 of the 60" in err
    assert _printed_monitor(out)[0] == few_shot(60)


def test_every_label_blank_fits_without_labels_and_says_so(tmp_path, capsys):
    X, y = _blobs()
    data, model = tmp_path / "d.csv", tmp_path / "m.skact"
    _write_csv(data, X, [" "] * len(y))
    code, out, err = run(
        ["fit", data, "--label", "label", "-o", model, *TINY, "-q"], capsys
    )
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"{data}: every label in column 'label' is blank or -1: fitting without labels "
        "(the monitor follows the label-free effective rank)"
    )
    what, value, width = _printed_monitor(out)
    assert (what, width) == ("effective rank, label-free", "3")
    fitted = skact.load(model)
    assert fitted.monitor_name_ == "effective_rank"
    assert value == pytest.approx(fitted.monitor_curve_[-1], rel=1e-2)
    assert 1 <= value <= 3


def test_labels_too_few_for_the_monitor_say_why_it_is_label_free(tmp_path, capsys):
    X, y = _blobs()
    data, model = tmp_path / "d.csv", tmp_path / "m.skact"
    _write_csv(data, X, _partly_labeled(y, rows=np.array([0, 1, 20])))  # 1 class of 2
    code, out, err = run(
        ["fit", data, "--label", "label", "-o", model, *TINY, "-q"], capsys
    )
    assert code == 0, err
    what, _, width = _printed_monitor(out)
    assert what == (
        "effective rank, label-free; the labels need 2 classes of at least 2 rows each"
    )
    assert width == "3"


def test_a_fit_without_labels_prints_the_label_free_monitor(tmp_path, capsys):
    X, _ = _blobs()
    data, model = tmp_path / "d.csv", tmp_path / "m.skact"
    _write_csv(data, X)
    code, out, err = run(["fit", data, "-o", model, *TINY, "-q"], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 2  # no word about labels
    assert _printed_monitor(out)[0] == "effective rank, label-free"


def test_the_progress_bar_shows_the_monitor(tmp_path, capsys):
    X, y = _blobs()
    data, model = tmp_path / "d.csv", tmp_path / "m.skact"
    _write_csv(data, X, _partly_labeled(y))
    code, _, err = run(["fit", data, "--label", "label", "-o", model, *TINY], capsys)
    assert code == 0, err
    shown = re.findall(r"1nn=([\d.]+)", err)
    assert shown, err
    assert float(shown[-1]) == pytest.approx(skact.load(model).monitor_curve_[-1], 1e-3)


def test_a_labels_file_with_blank_lines(tmp_path, capsys):
    X, y = _blobs()
    data, labels, model = tmp_path / "d.csv", tmp_path / "y.csv", tmp_path / "m.skact"
    _write_csv(data, X)
    _write_labels(labels, _partly_labeled(y))
    argv = ["fit", data, "--labels", labels, "-o", model, *TINY, "-q"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert f"48 of 60 samples have no label in {labels} (blank or -1)" in out
    assert _printed_monitor(out)[0] == few_shot(12)
    assert skact.load(model).monitor_name_ == "few_shot_1nn_accuracy"


def test_a_labels_file_without_a_header_labels_every_row(tmp_path, capsys):
    """Its first label, a class name, was taken for a header: the labels then fell one
    short and the closing blank lines could not make up for it."""
    X, y = _blobs()
    data, labels, model = tmp_path / "d.csv", tmp_path / "y.txt", tmp_path / "m.skact"
    _write_csv(data, X)
    labels.write_text("".join(f"{v}\n" for v in _partly_labeled(y)))  # 60 lines
    code, out, err = run(["fit", data, "--labels", labels, "-o", model, *TINY], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"{data}: 48 of 60 samples have no label in {labels} (blank or -1): they are "
        "trained on as unlabeled rows; the 12 labeled ones also feed the monitor"
    )
    assert _printed_monitor(out)[0] == few_shot(12)


def test_a_labels_file_with_a_header_says_it_read_one(tmp_path, capsys):
    X, y = _blobs()
    data, labels, model = tmp_path / "d.csv", tmp_path / "y.csv", tmp_path / "m.skact"
    _write_csv(data, X)
    _write_labels(labels, _partly_labeled(y))  # a header, then 60 lines
    code, out, err = run(["fit", data, "--labels", labels, "-o", model, *TINY], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"{labels}: its first line, 'label', is read as a header (61 lines for the 60 "
        f"samples of {data})"
    )


@pytest.mark.parametrize("header", ["label\n", ""])
def test_a_labels_file_of_blank_lines_fits_without_labels(tmp_path, capsys, header):
    """It was refused: "CSV file has a header but no rows", "empty CSV file"."""
    X, _ = _blobs()
    data, labels, model = tmp_path / "d.csv", tmp_path / "y.csv", tmp_path / "m.skact"
    _write_csv(data, X)
    labels.write_text(header + "\n" * 60)
    code, out, err = run(["fit", data, "--labels", labels, "-o", model, *TINY], capsys)
    assert code == 0, err
    assert (
        f"{data}: every label in {labels} is blank or -1: fitting without labels (the "
        "monitor follows the label-free effective rank)"
    ) in out.splitlines()
    assert _printed_monitor(out)[0] == "effective rank, label-free"
    assert skact.load(model).monitor_name_ == "effective_rank"


def test_keep_best_monitor_prints_the_kept_epoch_s_value(tmp_path, capsys):
    """The last line gave the last epoch's value, though the file holds another's."""
    X, y = _blobs()
    data, model = tmp_path / "d.csv", tmp_path / "m.skact"
    _write_csv(data, X, _partly_labeled(y))
    argv = ["fit", data, "--label", "label", "-o", model, *TINY, "--epochs", 6]
    code, out, err = run([*argv, "--keep-best", "monitor", "--learning-rate", 0.05], capsys)
    assert code == 0, err
    curve = skact.load(model).monitor_curve_
    kept = int(np.argmax(curve))  # the first of the highest
    match = re.search(r"\) ([\d.]+) at epoch (\d+), the epoch kept\); saved to ", out)
    assert match, out
    assert float(match.group(1)) == pytest.approx(curve[kept], abs=5e-4)
    assert int(match.group(2)) == kept + 1


@pytest.mark.parametrize(
    ("keep_best", "name", "ending"),
    [
        ("monitor", "few_shot_1nn_accuracy", "accuracy) 0.900 at epoch 3, the epoch kept"),
        ("last", "few_shot_1nn_accuracy", "12 labeled rows, each compared with at most "
         "5 other labeled rows per class, mean of 10 draws; a rough guide to few-shot "
         "accuracy) 0.600"),
        ("monitor", "effective_rank", "label-free; the labels need 2 classes of at "
         "least 2 rows each) 0.9 of 3 at epoch 3, the epoch kept"),
    ],
)  # fmt: skip
def test_the_monitor_summary_follows_keep_best(keep_best, name, ending):
    encoder = skact.ACTEncoder(keep_best=keep_best)
    # An epoch a Ctrl-C cut short has no estimate; the first of equals is the kept one.
    encoder.monitor_curve_ = [0.5, math.nan, 0.9, 0.7, 0.9, 0.6]
    encoder.monitor_name_ = name
    encoder.get_feature_names_out = lambda: ["a", "b", "c"]
    _, y = _blobs()
    assert commands._monitor_summary(encoder, _semi(y)).endswith(ending)


def _semi(y):
    return np.where(np.isin(np.arange(len(y)), LABELED), y, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--label", "label"], "give either --label (a column) or --labels (a file)"),
        ([], "59 lines for the 60 samples of"),
    ],
)
def test_labels_file_errors(tmp_path, capsys, extra, message):
    X, y = _blobs()
    data, labels, model = tmp_path / "d.csv", tmp_path / "y.csv", tmp_path / "m.skact"
    _write_csv(data, X, y)
    _write_labels(labels, y[:58] if not extra else y)  # with the header: 59 lines
    if not extra:
        _write_csv(data, X)
    argv = ["fit", data, "--labels", labels, *extra, "-o", model, *TINY, "-q"]
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err
    assert not model.exists()


def test_an_image_folder_labeled_by_file_where_only_some_are_labeled(tmp_path, capsys):
    """Images partly in class subfolders have no labels; a labels file gives them."""
    digits = load_digits(n_class=3)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(24):
        pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    y = _partly_labeled(digits.target[:24].astype(str), rows=np.arange(12))
    labels, model = tmp_path / "y.csv", tmp_path / "m.skact"
    _write_labels(labels, y)
    argv = ["fit", folder, "--labels", labels, "-o", model, "--epochs", 1, "-q"]
    argv += ["--batch-size", 8, "--device", "cpu", "--n-components", 4]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "12 of 24 samples have no label in" in out
    assert _printed_monitor(out)[0] == few_shot(12)


def test_an_image_folder_s_class_subfolders_feed_the_monitor(tmp_path, capsys):
    digits = load_digits(n_class=3)
    for i in range(18):
        folder = tmp_path / "images" / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    model = tmp_path / "m.skact"
    argv = ["fit", tmp_path / "images", "-o", model, "--epochs", 1, "-q"]
    argv += ["--batch-size", 8, "--device", "cpu", "--n-components", 4]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert _printed_monitor(out)[0] == few_shot(18)
    assert skact.load(model).monitor_name_ == "few_shot_1nn_accuracy"
