"""The ``skact`` command and the user's files: nothing overwritten, nothing half-written,
CSVs read as people save them, labels and headers taken for what they mean."""

import csv
import errno
import os
import signal
import stat
import sys
import tracemalloc
import warnings
from unittest import mock

import numpy as np
import pytest
import torch

import skact
from skact import ACTEncoder, ModelFileError, cli
from skact._atomic import PARTIAL_SUFFIX, STALE_SECONDS, atomic_write
from skact._training import Trainer
from skact.cli import UsageError, main, read_data

TINY = [
    "--epochs", "1", "--hidden-layer-sizes", "8", "--n-components", "3",
    "--projection-dim", "4", "--batch-size", "16", "--device", "cpu", "--seed", "0", "-q",
]  # fmt: skip


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _blobs(n=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(3, 4))
    X = np.concatenate([c + rng.normal(size=(n, 4)) for c in centres])
    return X, np.repeat(np.array(["a", "b", "c"]), n)


def _csv_text(X, y=None, names=("a", "b", "c", "d"), sep=","):
    lines = (
        [] if names is None else [sep.join([*names, *(["label"] if y is not None else [])])]
    )
    for i, row in enumerate(X):
        cells = [repr(float(v)) for v in row] + ([y[i]] if y is not None else [])
        lines.append(sep.join(cells))
    return "\n".join(lines) + "\n"


def _partials(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(PARTIAL_SUFFIX)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A model fitted by the command on a CSV with the header a, b, c, d."""
    d = tmp_path_factory.mktemp("files")
    X, y = _blobs()
    (d / "data.csv").write_text(_csv_text(X, y))
    np.save(d / "X.npy", X)
    code = main(
        ["fit", str(d / "data.csv"), "--label", "label", "-o", str(d / "m.skact"), *TINY]
    )
    assert code == 0
    return d, X, y


# ------------------------------------------------------------- 1. outputs that are inputs


def test_fit_refuses_to_write_the_model_over_its_data(tmp_path, capsys):
    X, _ = _blobs()
    data = tmp_path / "data.csv"
    data.write_text(_csv_text(X))
    before = data.read_bytes()
    (tmp_path / "link.csv").symlink_to(data)
    os.link(data, tmp_path / "hard.csv")
    for output in (data, tmp_path / "link.csv", tmp_path / "hard.csv"):
        code, out, err = run(["fit", data, "-o", output, *TINY], capsys)
        assert code == 2 and out == ""  # before any training
        assert f"MODEL '{output}' is DATA" in err
        assert "writing it would destroy that input; choose another output file" in err
    # through a link to the data, the data is named too
    code, _, err = run(["fit", tmp_path / "link.csv", "-o", data, *TINY], capsys)
    assert code == 2 and f"is DATA ('{tmp_path / 'link.csv'}')" in err
    assert data.read_bytes() == before


def test_transform_and_evaluate_refuse_to_overwrite_an_input(fitted, tmp_path, capsys):
    d, _, _ = fitted
    model = d / "m.skact"
    np.save(tmp_path / "x.npy", np.zeros((4, 4)))
    before = (tmp_path / "x.npy").read_bytes()
    code, _, err = run(
        ["transform", model, tmp_path / "x.npy", "-o", tmp_path / "x.npy"], capsys
    )
    assert code == 2 and f"FEATURES '{tmp_path / 'x.npy'}' is DATA" in err
    assert (tmp_path / "x.npy").read_bytes() == before
    (tmp_path / "f.npy").symlink_to(model)
    code, _, err = run(
        ["transform", model, tmp_path / "x.npy", "-o", tmp_path / "f.npy"], capsys
    )
    assert code == 2 and "is MODEL" in err
    assert skact.load(model).n_features_in_ == 4  # still the model
    (tmp_path / "r.md").symlink_to(d / "data.csv")
    argv = ["evaluate", d / "data.csv", "--label", "label", "-o", tmp_path / "r.md"]
    code, out, err = run(argv, capsys)
    assert code == 2 and "--output" in err and "is DATA" in err and out == ""


def test_fit_refuses_an_image_of_its_folder_and_a_folder(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "cat" / "1.png")
    before = (tmp_path / "imgs" / "cat" / "1.png").read_bytes()
    argv = ["fit", tmp_path / "imgs", "-o", tmp_path / "imgs" / "cat" / "1.png", *TINY]
    code, _, err = run(argv, capsys)
    assert code == 2 and "is an image of the DATA folder" in err
    assert (tmp_path / "imgs" / "cat" / "1.png").read_bytes() == before
    code, _, err = run(["fit", tmp_path / "imgs", "-o", tmp_path / "imgs", *TINY], capsys)
    assert code == 2 and "is a folder; name a file in it" in err


def _read_only_file_system(*args, **kwargs):
    """What creating a file raises on a read-only file system, for root too."""
    raise OSError(errno.EROFS, "Read-only file system")


def test_fit_checks_that_the_model_can_be_written_before_training(tmp_path, capsys):
    X, _ = _blobs()
    data = tmp_path / "data.csv"
    data.write_text(_csv_text(X))
    (tmp_path / "notes.txt").write_text("mine")
    notes = f"'{tmp_path / 'notes.txt'}' is a file, not a folder"
    cases = {
        tmp_path / "notes.txt" / "m.skact": notes,
        tmp_path / "notes.txt" / "sub" / "m.skact": notes,
        tmp_path / "missing" / "m.skact": f"folder '{tmp_path / 'missing'}' does not",
    }
    for output, message in cases.items():
        code, out, err = run(["fit", data, "-o", output, *TINY], capsys)
        assert code == 2 and out == "", output  # nothing trained
        assert message in err and "Traceback" not in err
    # A read-only file system stops root as well as users: the check creates a file.
    with mock.patch("skact._atomic._create_beside", _read_only_file_system):
        code, out, err = run(["fit", data, "-o", tmp_path / "m.skact", *TINY], capsys)
    assert code == 2 and out == ""
    assert f"cannot write in folder '{tmp_path}' (Read-only file system)" in err
    assert not (tmp_path / "m.skact").exists() and _partials(tmp_path) == []
    # ... and the check leaves nothing behind where it can write.
    assert run(["fit", data, "-o", tmp_path / "m.skact", *TINY], capsys)[0] == 0
    assert _partials(tmp_path) == []


def test_an_output_ending_with_a_separator_replaces_no_file(tmp_path, capsys):
    """``-o notes.csv/`` replaced the file notes.csv with a model and ``-o newdir/``
    wrote a file named newdir: a trailing separator names a folder."""
    X, _ = _blobs()
    data = tmp_path / "data.csv"
    data.write_text(_csv_text(X))
    (tmp_path / "notes.csv").write_text("mine")
    for output in (f"{tmp_path / 'notes.csv'}/", f"{tmp_path / 'newdir'}/"):
        code, out, err = run(["fit", data, "-o", output, *TINY], capsys)
        assert code == 2 and out == ""
        assert "ends with a path separator, which names a folder" in err
    assert (tmp_path / "notes.csv").read_text() == "mine"
    assert not (tmp_path / "newdir").exists()
    model = tmp_path / "m.skact"
    assert run(["fit", data, "-o", model, *TINY], capsys)[0] == 0
    code, _, err = run(["transform", model, data, "-o", f"{tmp_path}/"], capsys)
    assert code == 2 and "names a folder" in err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root writes in folders without write permission",
)
def test_fit_refuses_a_folder_without_write_permission(tmp_path, capsys):
    X, _ = _blobs()
    (tmp_path / "data.csv").write_text(_csv_text(X))
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        argv = ["fit", tmp_path / "data.csv", "-o", tmp_path / "ro" / "m.skact", *TINY]
        code, out, err = run(argv, capsys)
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert code == 2 and out == ""
    assert "cannot write in folder" in err and "Permission denied" in err


def test_transform_and_evaluate_check_their_output_before_working(fitted, tmp_path, capsys):
    d, _, _ = fitted
    model, data = d / "m.skact", d / "data.csv"
    commands = [
        ["transform", model, d / "X.npy", "-o", tmp_path / "f.npy"],
        ["evaluate", data, "--label", "label", "-o", tmp_path / "r.md"],
        ["demo", "--plot", tmp_path / "p.png"],
    ]
    for argv in commands:
        with mock.patch("skact._atomic._create_beside", _read_only_file_system):
            code, out, err = run(argv, capsys)
        assert code == 2 and out == "", argv
        assert f"cannot write in folder '{tmp_path}' (Read-only" in err


def test_networks_too_large_for_the_memory_are_an_error_not_a_traceback(tmp_path, capsys):
    X, _ = _blobs()
    (tmp_path / "data.csv").write_text(_csv_text(X))
    argv = ["fit", tmp_path / "data.csv", "-o", tmp_path / "m.skact", *TINY]
    with mock.patch("skact._checks.available_memory", return_value=1000):
        code, _, err = run(argv, capsys)
    assert code == 1 and "Traceback" not in err
    assert "skact fit: error: ACTEncoder's networks need about" in err
    assert "more than the 1.0 kB of memory available on cpu now" in err
    assert not (tmp_path / "m.skact").exists()


def test_an_overlong_line_is_refused_before_it_is_read_whole(tmp_path, capsys, monkeypatch):
    from skact.cli import files

    monkeypatch.setattr(files, "CSV_MAX_LINE_CHARS", 100)
    header = ",".join(["c"] * 2_000_000)  # a 4 MB line: 2 million cells if split
    (tmp_path / "wide.csv").write_text(header + "\n" + ",".join(["1"] * 40) + "\n")
    tracemalloc.start()
    try:
        code, out, err = run(
            ["fit", tmp_path / "wide.csv", "-o", tmp_path / "m.skact"], capsys
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # the line is never read whole (nor split)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"{tmp_path / 'wide.csv'}, line 1: longer than 100 characters" in err
    assert "save it as .npy or Parquet" in err
    # A data line is bounded too; lines within the bound are read as before.
    lines = ["a,b", "1,2", "3," + "4" * 200, "5,6"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run(["fit", tmp_path / "t.csv", "-o", tmp_path / "m.skact"], capsys)
    assert code == 2 and f"{tmp_path / 't.csv'}, line 3: longer than 100" in err
    (tmp_path / "t.csv").write_text("\n".join(["a,b", *(["1," + "2" * 96] * 9)]))
    names, cells, header = files.read_csv(tmp_path / "t.csv")  # lines of 98 and 99
    assert names == ["a", "b"] and cells.shape == (9, 2) and header


# ---------------------------------------------------------------- 2. atomic writes


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("old\n")
    for error in (OSError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)), atomic_write(path, text=True) as f:
            f.write("new, half")
            raise error
        assert path.read_text() == "old\n"
        assert _partials(tmp_path) == []
    with atomic_write(path, text=True) as f:
        f.write("new\n")
    assert path.read_text() == "new\n" and _partials(tmp_path) == []


def test_atomic_write_keeps_the_mode_and_the_link_and_names_the_path(tmp_path):
    target = tmp_path / "target.npy"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    (tmp_path / "link.npy").symlink_to(target)
    with atomic_write(tmp_path / "link.npy") as f:
        f.write(b"new")
    assert (tmp_path / "link.npy").is_symlink() and target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "fresh.npy") as f:
            f.write(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh.npy").stat().st_mode) == 0o644
    missing = tmp_path / "nofolder" / "f.npy"
    with pytest.raises(FileNotFoundError) as info:
        with atomic_write(missing):
            pass
    assert info.value.filename == str(missing)


def test_the_next_write_removes_what_killed_writes_left(tmp_path):
    dead = 2**22 + 1  # above Linux's pid_max default: no such process
    names = {
        "dead_old": f".f.npy.{dead}-0123abcd{PARTIAL_SUFFIX}",
        "dead_new": f".g.npy.{dead}-0123abce{PARTIAL_SUFFIX}",
        "alive_old": f".h.npy.{os.getpid()}-0123abcf{PARTIAL_SUFFIX}",
        "unrelated": f"notes.{dead}-0123abcd.txt",
    }
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"x")
        if key != "dead_new":
            old = (tmp_path / name).stat().st_mtime - STALE_SECONDS - 1
            os.utime(tmp_path / name, (old, old))
    with atomic_write(tmp_path / "f.npy") as f:
        f.write(b"new")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"f.npy", *(names[k] for k in ("dead_new", "alive_old", "unrelated"))}


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_transform_failing_mid_write_keeps_the_old_features(
    fitted, tmp_path, capsys, suffix
):
    """As kill -9 during the write would: the old file stays whole, no temporary file."""
    d, _, _ = fitted
    out = tmp_path / f"f{suffix}"
    argv = ["transform", d / "m.skact", d / "X.npy", "-o", out]
    assert run(argv, capsys)[0] == 0
    before = out.read_bytes()

    class Killed(Exception):
        pass

    def dies_mid_write(*args, **kwargs):
        file = next(a for a in args if hasattr(a, "write"))
        file.write(b"\x93NUMPY half" if suffix == ".npy" else "0.5,half\n")
        raise Killed

    target = "skact.cli.files.np.save" if suffix == ".npy" else "skact.cli.files.csv.writer"
    with mock.patch(target, dies_mid_write), pytest.raises(Killed):
        main([str(a) for a in argv])
    assert out.read_bytes() == before
    assert _partials(tmp_path) == []


def test_evaluate_results_are_written_whole(fitted, tmp_path, capsys):
    d, _, _ = fitted
    out = tmp_path / "r.json"
    out.write_text("old")
    argv = ["evaluate", d / "data.csv", "--label", "label", "--k", 1, "--draws", 1]
    # Ctrl-C after the text is written, before the file is in place
    with mock.patch("skact._atomic.os.fsync", side_effect=KeyboardInterrupt):
        code, _, err = run([*argv, "-o", out], capsys)
    assert (
        code == 130
        and "interrupted (Ctrl-C); no file was written" in err
        and out.read_text() == "old"
        and _partials(tmp_path) == []
    )


def test_the_plot_is_written_whole(tmp_path):
    pytest.importorskip("matplotlib")
    from skact.evaluation import FewShotResult

    results = {"ACT": [FewShotResult(1, "linear", np.array([0.5, 0.6]))]}
    path = tmp_path / "p.png"
    path.write_bytes(b"old")
    from matplotlib.figure import Figure

    def dies_mid_write(self, file, **kwargs):
        file.write(b"\x89PNG half")
        raise KeyboardInterrupt

    with mock.patch.object(Figure, "savefig", dies_mid_write):
        with pytest.raises(KeyboardInterrupt):
            cli.commands._plot(results, path)
    assert path.read_bytes() == b"old" and _partials(tmp_path) == []
    cli.commands._plot(results, path)
    assert path.read_bytes()[:4] == b"\x89PNG" and _partials(tmp_path) == []


# ----------------------------------------------------------------- 3, 17. CSV files


def test_a_byte_order_mark_is_not_data(tmp_path):
    X, _ = _blobs(n=2)
    (tmp_path / "plain.csv").write_text("\ufeff" + _csv_text(X, names=None))
    features, _ = read_data(tmp_path / "plain.csv")
    np.testing.assert_array_equal(features, X)  # the first row is data, not a header
    (tmp_path / "named.csv").write_text("\ufeff" + _csv_text(X))
    features, labels = read_data(tmp_path / "named.csv", "a")  # not "\ufeffa"
    assert labels.tolist() == [repr(float(v)) for v in X[:, 0]]
    assert cli.files.read(tmp_path / "named.csv", None).columns == ["a", "b", "c", "d"]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_the_separator_is_sniffed(tmp_path, sep):
    X, y = _blobs(n=3)
    (tmp_path / "t.csv").write_text(_csv_text(X, y, sep=sep))
    features, labels = read_data(tmp_path / "t.csv", "label")
    np.testing.assert_array_equal(features, X)
    assert labels.tolist() == y.tolist()


def test_decimal_commas_are_named_with_the_fix(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("a;b\n1,5;2\n3;4,25\n")
    code, _, err = run(["fit", tmp_path / "t.csv", "-o", tmp_path / "m.skact"], capsys)
    assert code == 2
    assert "column 'a' is not numeric; it has decimal commas ('1,5'): save the" in err


def test_missing_parquet_labels_are_blank(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"a": [1.0, 2.0, 3.0], "label": ["x", None, "y"]})
    pq.write_table(table, tmp_path / "t.parquet")
    _, labels = read_data(tmp_path / "t.parquet", "label")
    assert labels.tolist() == ["x", "", "y"]  # not "None", a class


def test_quoted_commas_keep_the_comma_as_separator(tmp_path):
    (tmp_path / "t.csv").write_text('a,b,name\n1,2,"x; y"\n3,4,"z; w"\n')
    features, labels = read_data(tmp_path / "t.csv", "name")
    np.testing.assert_array_equal(features, [[1, 2], [3, 4]])
    assert labels.tolist() == ["x; y", "z; w"]


def test_trailing_separators_are_not_a_column(tmp_path):
    X, y = _blobs(n=3)
    lines = _csv_text(X, y).splitlines()
    (tmp_path / "t.csv").write_text("".join(line + ",\n" for line in lines))
    data = cli.files.read(tmp_path / "t.csv", "label")
    np.testing.assert_array_equal(data.X, X)
    assert data.columns == ["a", "b", "c", "d"]
    # an unnamed column that holds values is kept, under a name the messages can use
    (tmp_path / "u.csv").write_text("a,\n1,\n2,3\n")
    data = cli.files.read(tmp_path / "u.csv", None)
    assert data.columns == ["a", "Unnamed: 1"]


def test_an_unnamed_gap_is_named_in_the_message(tmp_path, capsys):
    rows = ["a,,c", *(f"{i},{'' if i == 2 else i},{i}" for i in range(8))]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    code, _, err = run(
        ["fit", tmp_path / "t.csv", "-o", tmp_path / "m.skact", *TINY], capsys
    )
    assert code == 1 and "NaN (in column(s) Unnamed: 1)" in err


def test_a_file_that_is_not_utf8_is_a_usage_error_naming_it(tmp_path, capsys):
    (tmp_path / "latin1.csv").write_bytes("na\xefve,b\n1,2\n3,4\n".encode("latin-1"))
    code, _, err = run(["fit", tmp_path / "latin1.csv", "-o", tmp_path / "m.skact"], capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{tmp_path / 'latin1.csv'}: not UTF-8 text (it holds the byte 0xef)" in err
    assert "save it as UTF-8" in err


def test_an_overlong_field_is_a_usage_error_naming_file_and_line(tmp_path, capsys):
    long = "1" * (csv.field_size_limit() + 1)
    (tmp_path / "t.csv").write_text(f"a,b\n1,2\n3,{long}\n")
    code, _, err = run(["fit", tmp_path / "t.csv", "-o", tmp_path / "m.skact"], capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{tmp_path / 't.csv'}, line 3: not a readable CSV table (field larger" in err


def test_ragged_rows_say_which_separator_was_used(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("a;b;c\n1;2\n3;4;5\n")
    code, _, err = run(["fit", tmp_path / "t.csv", "-o", tmp_path / "m.skact"], capsys)
    assert code == 2 and "rows have [2, 3] cells, the header 3" in err
    assert "separated by ';'" in err  # though no separator splits every line alike


# --------------------------------------------------------------- 18. blank labels


def test_evaluate_sets_blank_labels_aside(tmp_path, capsys):
    X, y = _blobs(n=12)
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "full.csv").write_text(_csv_text(X, y))
    y_blank = y.copy()
    blank = np.arange(0, len(y) - 1, 5)  # not the last: a blank last line is no row
    y_blank[blank] = ""
    X_more = np.vstack([X, X[blank]])  # labelled rows plus the blank ones
    y_more = np.concatenate([y, np.full(len(blank), " ")])
    (tmp_path / "more.csv").write_text(_csv_text(X_more, y_more))
    argv = ["--label", "label", "--k", 1, 2, "--draws", 2]
    code, out_full, _ = run(["evaluate", tmp_path / "full.csv", *argv], capsys)
    assert code == 0
    code, out_more, _ = run(["evaluate", tmp_path / "more.csv", *argv], capsys)
    assert code == 0
    assert f"{len(blank)} of {len(y_more)} samples have no label (blank or -1)" in out_more
    assert out_more.splitlines()[1:] == out_full.splitlines()  # the same scores
    # a labels file with blank lines (one-column CSV) reads them as blank labels
    (tmp_path / "y.csv").write_text("label\n" + "\n".join(y_blank) + "\n")
    code, out, err = run(
        ["evaluate", tmp_path / "X.npy", "--labels", tmp_path / "y.csv", *argv[2:]], capsys
    )
    assert code == 0, err
    assert f"{len(blank)} of {len(y)} samples have no label (blank or -1)" in out
    assert "| '' " not in out and "''" not in out


def test_evaluate_leaves_minus_one_labels_out_unless_minus_one_is_a_class(tmp_path, capsys):
    """A -1 label marks an unlabeled row, as in Python: scored rows are the labeled
    ones only. With --minus-one class, -1 is a class like the others."""
    X, y = _blobs(n=12)
    classes = np.searchsorted(["a", "b", "c"], y).astype(str)  # classes 0, 1, 2
    (tmp_path / "full.csv").write_text(_csv_text(X, classes))
    rng = np.random.default_rng(1)
    X_more = np.vstack([X, rng.normal(size=(24, 4))])  # plus 24 rows labeled -1
    (tmp_path / "more.csv").write_text(_csv_text(X_more, np.r_[classes, ["-1"] * 24]))
    argv = ["--label", "label", "--k", 1, 2, "--draws", 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the -1 labels look like what they are
        code, out_full, _ = run(["evaluate", tmp_path / "full.csv", *argv], capsys)
        assert code == 0
        code, out_more, _ = run(["evaluate", tmp_path / "more.csv", *argv], capsys)
        assert code == 0
    assert out_more.splitlines()[0] == (
        f"{tmp_path / 'more.csv'}: 24 of 60 samples have no label (blank or -1); "
        "they are left out as unlabeled"
    )
    assert out_more.splitlines()[1:] == out_full.splitlines()  # the same scores
    code, out, _ = run(
        ["evaluate", tmp_path / "more.csv", *argv, "--minus-one", "class"], capsys
    )
    assert code == 0  # -1 is a class of 24 rows: imbalanced classes, a note says so
    assert out.splitlines()[0].startswith("note: the classes are imbalanced")
    assert out.splitlines()[1].startswith("42 samples to draw labels from, 18 test ")


def test_minus_one_labels_that_look_like_the_other_meaning_warn(tmp_path, capsys):
    X, y = _blobs(n=12)
    labels = np.r_[np.searchsorted(["a", "b", "c"], y[:12]).astype(str), ["-1"] * 24]
    (tmp_path / "d.csv").write_text(_csv_text(X, labels))
    argv = ["evaluate", tmp_path / "d.csv", "--label", "label", "--k", 1, "--draws", 1]
    # Two thirds of the rows are -1 beside classes 0 to 2: the mark of unlabeled rows.
    # The command prints warnings as its own lines on stderr.
    code, out, err = run([*argv, "--minus-one", "class"], capsys)
    assert code == 0
    assert err.splitlines()[0] == "skact evaluate: warning: " + (
        f"{tmp_path / 'd.csv'}, column 'label': 24 of the 36 labels are -1, read as a "
        "class, while the other labels are non-negative integers: -1 looks like the "
        "mark of unlabeled rows (scikit-learn's semi-supervised convention). If it "
        "marks unlabeled rows, leave out --minus-one class."
    )
    # A -1/+1 target read by the default rule: -1 looks like a class.
    (tmp_path / "pm.csv").write_text(_csv_text(X, np.where(y == "a", "1", "-1")))
    argv = ["fit", tmp_path / "pm.csv", "--label", "label", "-o", tmp_path / "m.skact"]
    code, out, err = run([*argv, *TINY], capsys)
    assert code == 0 and "24 of 36 samples have no label in column 'label'" in out
    (warning,) = [line for line in err.splitlines() if "-1/+1 binary target" in line]
    assert warning.startswith("skact fit: warning: ")
    assert "pass --minus-one class" in warning


# ------------------------------------------- a labels file's header, by its line count


def _labels(tmp_path, text, n_samples):
    path = tmp_path / "y.csv"
    path.write_text(text)
    return cli.files.read_labels(path, n_samples, "d.csv")


def test_a_labels_file_without_a_header_keeps_its_first_label(tmp_path):
    """A class name is not a number, which made the first line a header."""
    labels, note = _labels(tmp_path, "cat\ndog\ncat\n", 3)
    assert labels.tolist() == ["cat", "dog", "cat"]
    assert note is None  # 'cat' is a label further down: nothing was guessed


@pytest.mark.parametrize(
    ("n_samples", "labels", "note"),
    [
        (
            5,
            ["cat", "dog", "", "", ""],
            "its first line, 'cat', is read as the first sample's label (5 lines for "
            "the 5 samples of d.csv; with a header line there would be 6)",
        ),
        (
            4,
            ["dog", "", "", ""],
            "its first line, 'cat', is read as a header (5 lines for the 4 samples of "
            "d.csv)",
        ),
    ],
)
def test_the_line_count_says_whether_a_labels_file_has_a_header(
    tmp_path, n_samples, labels, note
):
    """Five lines (two labels, three blank): no header for 5 samples, one for 4, and
    the command says which, since either could be meant."""
    got, said = _labels(tmp_path, "cat\ndog\n\n\n\n", n_samples)
    assert got.tolist() == labels
    assert said == f"{tmp_path / 'y.csv'}: {note}"


@pytest.mark.parametrize(
    ("text", "n_samples", "message"),
    [
        # Closing blank lines were padding up to any count: labels shifted by a row.
        ("cat\ndog\n\n\n\n", 3, "5 lines for the 3 samples of d.csv; a labels file"),
        ("cat\ndog\n\n\n\n", 7, "5 lines for the 7 samples of d.csv; a labels file"),
        ("a\nb\nc\n", 1, "3 lines for the 1 samples of d.csv; a labels file"),
        (
            "cat\ndog\ncat\n\n",
            3,
            "4 lines for the 3 samples of d.csv, and its first line 'cat' is a label "
            "(as on line 3), not a header; ",
        ),
        (
            "0\n1\n0\n",
            2,
            "3 lines for the 2 samples of d.csv, and its first line '0' is a label "
            "(a number), not a header; ",
        ),
        ("\n\n\n", 2, "3 lines for the 2 samples of d.csv, and its first line is blank"),
        ("", 2, "0 lines for the 2 samples of d.csv; "),
    ],
)
def test_a_labels_file_whose_count_fits_neither_way_is_refused(
    tmp_path, text, n_samples, message
):
    with pytest.raises(UsageError) as error:
        _labels(tmp_path, text, n_samples)
    assert message in str(error.value)
    assert str(error.value).endswith(
        "a labels file needs one line per sample, in order (a blank line for an "
        "unlabeled one, also at the end), under an optional header line"
    )


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("label\n\n\n\n", ["", "", ""]),
        ("\n\n\n", ["", "", ""]),
        ('label\r\n\r\n \r\n""\r\n', ["", " ", ""]),
    ],
)
def test_a_labels_file_of_blank_labels_gives_one_per_sample(tmp_path, text, labels):
    """It was "CSV file has a header but no rows" or "empty CSV file"."""
    assert _labels(tmp_path, text, 3)[0].tolist() == labels


# --------------------------------------------------------------- 19. column names


def test_fit_records_the_header_and_transform_checks_it(fitted, tmp_path, capsys):
    d, X, _ = fitted
    model = skact.load(d / "m.skact")
    assert model.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    (tmp_path / "other.csv").write_text(_csv_text(X, names=("a", "b", "x", "d")))
    argv = ["transform", d / "m.skact", tmp_path / "other.csv", "-o", tmp_path / "f.npy"]
    code, _, err = run(argv, capsys)
    assert code == 1 and not (tmp_path / "f.npy").exists()
    assert "the columns differ from those the model was fitted on" in err
    assert "missing 'c'; not in the model 'x'" in err
    assert "the model takes 'a', 'b', 'c', 'd'" in err
    # an extra (numeric) column is named, with the option that leaves it out
    ids = np.column_stack([X, np.arange(len(X))])
    (tmp_path / "ids.csv").write_text(_csv_text(ids, names=("a", "b", "c", "d", "id")))
    code, _, err = run([*argv[:2], tmp_path / "ids.csv", *argv[3:]], capsys)
    assert code == 1 and "(not in the model 'id'); the model takes" in err
    assert err.endswith("; if 'id' holds labels, name it with --label\n")


def test_matching_or_absent_headers_transform_without_warnings(fitted, tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    d, X, _ = fitted
    expected = skact.load(d / "m.skact").transform(pd.DataFrame(X, columns=list("abcd")))
    (tmp_path / "plain.csv").write_text(_csv_text(X, names=None))
    (tmp_path / "same.csv").write_text(_csv_text(X))
    for data in (tmp_path / "plain.csv", tmp_path / "same.csv", d / "X.npy"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "X does not have valid feature names"
            code, _, err = run(
                ["transform", d / "m.skact", data, "-o", tmp_path / "f.npy"], capsys
            )
        assert code == 0, err
        np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), expected)


def test_evaluate_through_a_model_checks_the_header(fitted, tmp_path, capsys):
    d, X, y = fitted
    (tmp_path / "other.csv").write_text(_csv_text(X, y, names=("a", "b", "x", "d")))
    argv = [
        "evaluate",
        tmp_path / "other.csv",
        "--label",
        "label",
        "--model",
        d / "m.skact",
    ]
    code, _, err = run(argv, capsys)
    assert code == 1 and "missing 'c'; not in the model 'x'" in err


def test_without_pandas_fit_records_no_names(tmp_path, monkeypatch, capsys):
    X, _ = _blobs()
    (tmp_path / "t.csv").write_text(_csv_text(X))
    monkeypatch.setattr(cli.files, "pandas", lambda: None)  # as if it were not installed
    code, _, err = run(
        ["fit", tmp_path / "t.csv", "-o", tmp_path / "m.skact", *TINY], capsys
    )
    assert code == 0, err
    assert not hasattr(skact.load(tmp_path / "m.skact"), "feature_names_in_")


# --------------------------------------------------------------- 20. k before encoding


def test_evaluate_checks_k_before_encoding_and_counts_after_the_split(fitted, capsys):
    d, _, _ = fitted
    argv = ["evaluate", d / "data.csv", "--label", "label", "--model", d / "m.skact"]
    with mock.patch.object(ACTEncoder, "transform", side_effect=AssertionError("encoded")):
        code, out, err = run([*argv, "--k", 15], capsys)
    assert code == 1 and out == ""
    # 20 per class, 30% held out: 14 left to draw from
    assert (
        "classes 'a' (14), 'b' (14), 'c' (14) have labelled samples left in "
        f"{d / 'data.csv'} after holding out 30% for testing (--test-size 0.3), fewer "
        "than k=15; lower --k or --test-size, or label more samples"
    ) in err
    rows = ["a,b,c,d,label", *(f"{i},{i},{i},{i},{'xy'[i % 2]}" for i in range(10))]
    rows.append("1,1,1,1,z")
    (d / "odd.csv").write_text("\n".join(rows) + "\n")
    test = ["--test", d / "odd.csv"]
    with mock.patch.object(ACTEncoder, "transform", side_effect=AssertionError("encoded")):
        code, _, err = run([*argv[:1], d / "odd.csv", *argv[2:], *test, "--k", 2], capsys)
    assert code == 1
    assert f"class 'z' has 1 labelled sample in {d / 'odd.csv'}, fewer than k=2" in err
    assert "--test-size" not in err


# --------------------------------------------------------------- 16. Ctrl-C


def _interrupt_at(step):
    original = Trainer.training_step

    def training_step(self, batch):
        if self.step == step:
            raise KeyboardInterrupt
        return original(self, batch)

    return mock.patch.object(Trainer, "training_step", training_step)


def test_ctrl_c_during_fit_saves_the_model_trained_so_far(tmp_path, capsys):
    X, _ = _blobs(n=40)
    np.save(tmp_path / "X.npy", X)
    argv = ["fit", tmp_path / "X.npy", "-o", tmp_path / "m.skact", *TINY, "--epochs", 3]
    with _interrupt_at(17):  # 120 rows in 7 steps of 16: in the third epoch
        code, _, err = run(argv, capsys)
    assert code == 130
    assert (
        "skact fit: error: interrupted (Ctrl-C); saved the model trained so far (2 "
        f"complete epochs) to {tmp_path / 'm.skact'}"
    ) in err
    assert "catch it to continue your script" not in err  # the library's advice
    assert skact.load(tmp_path / "m.skact").n_iter_ == 2


def test_ctrl_c_before_any_step_writes_nothing_and_says_so(tmp_path, capsys):
    X, _ = _blobs()
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "m.skact").write_bytes(b"an older file")
    argv = ["fit", tmp_path / "X.npy", "-o", tmp_path / "m.skact", *TINY]
    with _interrupt_at(0):
        code, _, err = run(argv, capsys)
    assert code == 130
    assert f"before any training step; nothing was written to {tmp_path / 'm.skact'}" in err
    assert (tmp_path / "m.skact").read_bytes() == b"an older file"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to self")
def test_two_ctrl_c_in_the_first_epoch_save_the_steps_done(tmp_path, capsys):
    """The second Ctrl-C, in the middle of step 5, drops that step only: the 5 steps
    done are saved, and the message says so (it once said nothing was trained)."""
    X, _ = _blobs(n=40)
    np.save(tmp_path / "X.npy", X)
    path = tmp_path / "m.skact"
    argv = ["fit", tmp_path / "X.npy", "-o", path, *TINY, "--epochs", 3]
    original = Trainer.training_step

    def training_step(self, batch):
        if self.step == 5:  # 120 rows in 8 steps of 15: in the first epoch
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        return original(self, batch)

    with mock.patch.object(Trainer, "training_step", training_step):
        code, _, err = run(argv, capsys)
    assert code == 130
    assert (
        "skact fit: error: interrupted (Ctrl-C); saved the model trained so far (part of "
        f"the first epoch) to {path}"
    ) in err
    model = skact.load(path)
    assert model.n_iter_ == 0 and model._step == 5
    assert np.isfinite(model.transform(X)).all()


@pytest.mark.parametrize(
    "error",
    [RuntimeError("device lost"), torch.cuda.OutOfMemoryError("CUDA out of memory")],
    ids=["error in a step", "out of memory"],
)
def test_a_fit_failing_in_training_writes_nothing(tmp_path, capsys, error):
    X, _ = _blobs(n=40)
    np.save(tmp_path / "X.npy", X)
    path = tmp_path / "m.skact"
    path.write_bytes(b"an older file")
    original = Trainer.training_step

    def training_step(self, batch):
        if self.step == 5:
            raise error
        return original(self, batch)

    argv = ["fit", tmp_path / "X.npy", "-o", path, *TINY, "--epochs", 3]
    with (
        mock.patch.object(Trainer, "training_step", training_step),
        pytest.raises(type(error)),  # the command does not name these: a traceback
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # out of memory: the retries' warnings
        main([str(a) for a in argv])
    assert path.read_bytes() == b"an older file"


def test_the_interrupt_warning_points_at_the_caller():
    X, _ = _blobs()
    for method in ("fit", "partial_fit"):
        enc = ACTEncoder(max_iter=1, batch_size=16, hidden_layer_sizes=(8,), verbose=0)
        with (
            _interrupt_at(0),
            pytest.raises(KeyboardInterrupt),
            pytest.warns(UserWarning, match="interrupted") as record,
        ):
            getattr(enc, method)(X)
        assert record[0].filename == __file__, method


# --------------------------------------------------------------- 7. model files


def test_a_refused_model_file_is_one_line_exit_2(fitted, tmp_path, capsys):
    d, _, _ = fitted
    path = tmp_path / "bad.skact"
    path.write_bytes(b"junk")
    message = f"{path}: skact.json is not valid JSON"
    error = ModelFileError(message, path=str(path), member="skact.json")
    with mock.patch("skact.cli.files.load", side_effect=error):  # skact.load
        code, _, err = run(
            ["transform", path, d / "X.npy", "-o", tmp_path / "f.npy"], capsys
        )
    assert code == 2 and err == f"skact transform: error: {message}\n"


def test_transform_help_does_not_contradict_the_safe_format(capsys):
    code, out, _ = run(["transform", "--help"], capsys)
    assert code == 0 and "trust" not in out
    assert "never runs code from it" in " ".join(out.split())


def _image_folder(root, n_per_class, size, mode, seed):
    """An ImageFolder of two classes (bright squares on dark, dark on bright)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, (low, high) in enumerate(((0, 120), (135, 255))):
        (root / f"class{label}").mkdir(parents=True)
        for i in range(n_per_class):
            pixels = rng.integers(low, high, size=(size, size, 3), dtype=np.uint8)
            image = Image.fromarray(pixels, "RGB").convert(mode)
            image.save(root / f"class{label}" / f"{i}.png")
    return root


def test_evaluate_a_downstream_folder_with_a_model_fitted_elsewhere(tmp_path, capsys):
    """skact fit on RGB 12 px images, skact evaluate --model on grey 8 px images of
    other classes: resized and converted to RGB, said once, and scored."""
    upstream = _image_folder(tmp_path / "up", 12, 12, "RGB", seed=0)
    downstream = _image_folder(tmp_path / "down", 8, 8, "L", seed=1)
    model = tmp_path / "up.skact"
    code, _, err = run(
        ["fit", upstream, "-o", model, "--epochs", "1", "--seed", "0"], capsys
    )
    assert code == 0, err
    code, out, err = run(
        ["evaluate", downstream, "--model", model, "--k", "1", "2", "--draws", "2"],
        capsys,
    )
    assert code == 0, err
    # The conversion is said once, though the pool and the test rows are transformed.
    assert err.count("converted grey -> RGB") == 1, err
    assert "images have 1 channel, the model was fitted on 3" in err
    scores = [line for line in out.splitlines() if line.startswith("| ACTEncoder |")]
    assert len(scores) == 1 and scores[0].count("±") == 4  # linear and k-NN, k = 1, 2
