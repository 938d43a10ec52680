"""skact.callbacks: the public protocol, the clones each fit runs, stopping, the
loggers, early stopping, pickling and the model file."""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import skact
from skact._training import lr_factor
from skact.callbacks import RECORD_FIELDS, Callback, CSVLogger, EarlyStopping

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
Y = np.repeat([0, 1], 32)


class Recorder(Callback):
    """Records every hook call; ``stop_at_step`` / ``stop_at_epoch`` return True."""

    #: Every instance whose on_fit_begin ran, in this process (held: ids stay unique).
    started: ClassVar[list[Recorder]] = []

    def __init__(self, stop_at_step: int | None = None, stop_at_epoch: int | None = None):
        self.stop_at_step = stop_at_step
        self.stop_at_epoch = stop_at_epoch

    def on_fit_begin(self, estimator: Any, n_epochs: int, n_samples: int) -> None:
        Recorder.started.append(self)
        self.calls_: list[tuple[Any, ...]] = [("fit_begin", n_epochs, n_samples)]
        self.records_: list[dict[str, Any]] = []
        self.estimator_ = estimator

    def on_epoch_begin(self, estimator: Any, epoch: int) -> None:
        self.calls_.append(("epoch_begin", epoch))

    def on_step_end(self, estimator: Any, step: int) -> bool:
        self.calls_.append(("step", step))
        return step == self.stop_at_step

    def on_epoch_end(self, estimator: Any, record: dict[str, Any]) -> bool:
        self.calls_.append(("epoch_end", record["epoch"]))
        self.records_.append(record)
        return record["epoch"] == self.stop_at_epoch

    def on_fit_end(self, estimator: Any, error: BaseException | None) -> None:
        self.calls_.append(("fit_end", error))


def test_hooks_run_in_order_with_the_epoch_record():
    enc = small_encoder(max_iter=2, callbacks=[Recorder()]).fit(X, Y)
    (ran,) = enc.callbacks_
    steps = [c for c in ran.calls_ if c[0] == "step"]
    assert ran.calls_[0] == ("fit_begin", 2, 64)
    assert ran.calls_[1] == ("epoch_begin", 1)
    assert [c[1] for c in steps] == list(range(1, 9))  # 64 rows, batches of 16
    assert ran.calls_[-1] == ("fit_end", None)
    assert [c[1] for c in ran.calls_ if c[0] == "epoch_end"] == [1, 2]
    assert ran.estimator_ is enc
    first, last = ran.records_
    assert list(first) == list(RECORD_FIELDS)
    assert [r["loss"] for r in ran.records_] == enc.loss_curve_
    assert [r["monitor"] for r in ran.records_] == enc.monitor_curve_
    assert first["monitor_name"] == enc.monitor_name_ == "few_shot_1nn_accuracy"
    assert first["validation_loss"] is None
    assert (first["step"], last["step"]) == (4, 8)
    for record in ran.records_:
        assert record["seconds"] > 0
        assert record["samples_per_second"] == pytest.approx(64 / record["seconds"])
    # The rate of each epoch's last step (the 4th and 8th, from 0: 3 and 7) on the
    # schedule: warm-up over 1 step of 8, then cosine decay.
    rates = [1e-3 * lr_factor(step, 1, 8) for step in (3, 7)]
    assert [r["learning_rate"] for r in ran.records_] == pytest.approx(rates, rel=1e-6)


def test_each_fit_runs_clones_and_leaves_the_parameter_alone():
    given = Recorder()
    enc = small_encoder(max_iter=1, callbacks=[given])
    enc.fit(X)
    first = enc.callbacks_[0]
    enc.fit(X)
    second = enc.callbacks_[0]
    assert enc.callbacks[0] is given and not hasattr(given, "calls_")
    assert first is not given and second is not given and first is not second
    assert type(second) is Recorder and second.get_params() == given.get_params()


def test_grid_search_writes_one_log_per_fit_and_no_two_fits_share_a_callback(
    tmp_path: Path,
):
    Recorder.started.clear()
    given = [CSVLogger(tmp_path / "fit-{run}.csv"), Recorder()]
    search = GridSearchCV(
        small_encoder(max_iter=2, callbacks=given), {"alpha": [0.01, 0.1]}, cv=2
    ).fit(X)
    logs = sorted(tmp_path.glob("fit-*.csv"))
    assert len(logs) == 2 * 2 + 1  # 2 candidates x 2 folds, and the refit
    for log in logs:
        rows = list(csv.DictReader(log.open()))
        assert [int(r["epoch"]) for r in rows] == [1, 2]
    started = Recorder.started
    assert len(started) == 5 and len({id(c) for c in started}) == 5
    assert given[1] not in started
    assert search.best_estimator_.callbacks_[1] in started
    assert Path(search.best_estimator_.callbacks_[0].path_) in logs


def test_a_step_stop_ends_the_fit_after_that_step_with_a_usable_model():
    # 4 steps per epoch: step 6 is in the second epoch, which is not counted.
    enc = small_encoder(max_iter=5, callbacks=[Recorder(stop_at_step=6)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean stop warns of nothing
        enc.fit(X)
    ran = enc.callbacks_[0]
    assert enc._step == 6 and enc.n_iter_ == 1
    assert len(enc.loss_curve_) == len(enc.monitor_curve_) == 1
    assert [c[1] for c in ran.calls_ if c[0] == "step"][-1] == 6
    assert ran.calls_[-1] == ("fit_end", None)
    assert np.isfinite(enc.transform(X)).all()
    # The weights are those of step 6: a fit stopped at step 5 differs.
    other = small_encoder(max_iter=5, callbacks=[Recorder(stop_at_step=5)]).fit(X)
    assert not np.allclose(other.transform(X), enc.transform(X))


def test_an_epoch_stop_ends_the_fit_after_that_epoch():
    enc = small_encoder(max_iter=5, callbacks=[Recorder(stop_at_epoch=2)]).fit(X)
    assert enc.n_iter_ == 2 and enc._step == 8 and len(enc.loss_curve_) == 2


def test_the_epochs_of_earlier_fits_count_in_the_record():
    enc = small_encoder(max_iter=1, warm_start=True, callbacks=[Recorder()])
    enc.fit(X).fit(X)
    assert [r["epoch"] for r in enc.callbacks_[0].records_] == [2]
    enc.partial_fit(X)
    assert [r["epoch"] for r in enc.callbacks_[0].records_] == [3]


def test_a_callback_that_is_no_callback_is_refused_before_any_work():
    enc = small_encoder(callbacks=[lambda *a: None])
    with pytest.raises(TypeError, match=r"callbacks\[0\] is .*skact.callbacks.Callback"):
        enc.fit(X)
    assert not hasattr(enc, "encoder_")
    with pytest.raises(ValueError, match=r"'callbacks' parameter .* must be"):
        small_encoder(callbacks=Recorder()).fit(X)  # a list, not one callback


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_csv_logger_writes_each_epoch_in_the_suffix_format(tmp_path: Path, suffix: str):
    path = tmp_path / f"log{suffix}"
    enc = small_encoder(max_iter=3, callbacks=[CSVLogger(path)]).fit(X)
    if suffix == ".csv":
        rows = list(csv.DictReader(path.open()))
        assert list(rows[0]) == list(RECORD_FIELDS)
        assert rows[0]["validation_loss"] == ""  # None
        losses = [float(r["loss"]) for r in rows]
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert list(rows[0]) == list(RECORD_FIELDS)
        assert rows[0]["validation_loss"] is None
        losses = [r["loss"] for r in rows]
    assert losses == pytest.approx(enc.loss_curve_, rel=1e-12)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert enc.callbacks_[0].format_ == suffix[1:]


def test_csv_logger_replaces_or_appends(tmp_path: Path):
    path = tmp_path / "log.csv"
    small_encoder(max_iter=2, callbacks=[CSVLogger(path)]).fit(X)
    small_encoder(max_iter=1, callbacks=[CSVLogger(path)]).fit(X)
    assert len(path.read_text().splitlines()) == 2  # header, 1 epoch
    enc = small_encoder(max_iter=1, callbacks=[CSVLogger(path, append=True)])
    enc.fit(X).partial_fit(X)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines.count(lines[0]) == 1  # one header
    with pytest.raises(ValueError, match=r"format='xml'.*'auto', 'csv' or 'jsonl'"):
        small_encoder(callbacks=[CSVLogger(path, format="xml")]).fit(X)


def test_early_stopping_stops_and_puts_the_best_epoch_back():
    # Nothing beats the first epoch by 1e9: patience 2 stops after epoch 3, epoch 1 kept.
    stop = EarlyStopping("loss", patience=2, tol=1e9)
    enc = small_encoder(max_iter=10, callbacks=[stop]).fit(X)
    assert enc.n_iter_ == 3
    first = small_encoder(max_iter=10, callbacks=[Recorder(stop_at_epoch=1)]).fit(X)
    np.testing.assert_array_equal(enc.transform(X), first.transform(X))
    kept_last = EarlyStopping("loss", patience=2, tol=1e9, restore_best=False)
    last = small_encoder(max_iter=10, callbacks=[kept_last]).fit(X)
    assert not np.allclose(last.transform(X), first.transform(X))


def test_early_stopping_on_the_monitor_and_on_the_validation_loss():
    stop = EarlyStopping("monitor", patience=1, tol=10.0)  # no accuracy gains 10
    assert small_encoder(max_iter=10, callbacks=[stop]).fit(X, Y).n_iter_ == 2
    with pytest.raises(ValueError, match="early_stopping=True"):
        small_encoder(callbacks=[EarlyStopping("validation_loss")]).fit(X)
    stop = EarlyStopping("validation_loss", patience=1, tol=1e9)
    enc = small_encoder(max_iter=10, early_stopping=True, callbacks=[stop]).fit(X)
    assert enc.n_iter_ == 2 and len(enc.validation_loss_curve_) == 2


def test_clone_and_pickle_keep_the_callbacks(tmp_path: Path):
    enc = small_encoder(max_iter=1, callbacks=[CSVLogger(tmp_path / "a.csv"), Recorder()])
    copy = clone(enc)
    assert [type(c) for c in copy.callbacks] == [CSVLogger, Recorder]
    assert copy.callbacks[0] is not enc.callbacks[0]
    assert copy.callbacks[0].get_params() == enc.callbacks[0].get_params()
    enc.fit(X)
    back = pickle.loads(pickle.dumps(enc))
    assert [type(c) for c in back.callbacks] == [CSVLogger, Recorder]
    assert back.callbacks_[1].records_[0]["loss"] == enc.loss_curve_[0]
    np.testing.assert_array_equal(back.transform(X), enc.transform(X))


def test_the_model_file_keeps_skacts_own_callbacks(tmp_path: Path):
    given = [EarlyStopping("loss", 3)]
    enc = small_encoder(max_iter=1, callbacks=given).fit(X)
    enc.save(tmp_path / "m.skact")
    loaded = skact.load(tmp_path / "m.skact")
    assert [type(c) for c in loaded.callbacks] == [EarlyStopping]
    assert loaded.callbacks[0].get_params() == given[0].get_params()
    assert loaded.callbacks_ == []


def test_a_model_file_never_says_where_a_later_fit_writes(tmp_path: Path):
    """A CSVLogger rebuilt from a file would let the file choose what a warm start
    overwrites: it is saved as callbacks=None, with the warning."""
    given = [CSVLogger(tmp_path / "log.jsonl", append=True), EarlyStopping("loss", 3)]
    enc = small_encoder(max_iter=1, callbacks=given).fit(X)
    with pytest.warns(UserWarning, match=r"\(CSVLogger: .*write to a path"):
        enc.save(tmp_path / "m.skact")
    assert skact.load(tmp_path / "m.skact").callbacks is None


def test_a_callback_of_your_own_is_saved_as_none_with_a_warning(tmp_path: Path):
    enc = small_encoder(max_iter=1, callbacks=[CSVLogger(tmp_path / "l.csv"), Recorder()])
    enc.fit(X)
    with pytest.warns(UserWarning, match=r"\(CSVLogger, Recorder: your own.*set_params"):
        enc.save(tmp_path / "m.skact")
    assert skact.load(tmp_path / "m.skact").callbacks is None


def test_a_file_naming_an_unknown_callback_is_refused(tmp_path: Path):
    import io
    import zipfile

    enc = small_encoder(max_iter=1, callbacks=[EarlyStopping("loss")]).fit(X)
    enc.save(tmp_path / "m.skact")
    with zipfile.ZipFile(tmp_path / "m.skact") as z:
        config = json.loads(z.read("skact.json"))
        tensors = z.read("tensors.pt")
    config["params"]["callbacks"]["__callbacks__"][0]["name"] = "os.system"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("skact.json", json.dumps(config))
        z.writestr("tensors.pt", tensors)
    (tmp_path / "bad.skact").write_bytes(buffer.getvalue())
    with pytest.raises(skact.ModelFileError, match="parameters are invalid"):
        skact.load(tmp_path / "bad.skact")


def test_tensorboard_example_writes_the_loss(tmp_path: Path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    class TensorBoard(Callback):
        def __init__(self, log_dir: str = "runs"):
            self.log_dir = log_dir

        def on_fit_begin(self, estimator: Any, n_epochs: int, n_samples: int) -> None:
            self.writer_ = SummaryWriter(self.log_dir)

        def on_epoch_end(self, estimator: Any, record: dict[str, Any]) -> None:
            for key in ("loss", "monitor", "learning_rate", "samples_per_second"):
                self.writer_.add_scalar(key, record[key], record["epoch"])

        def on_fit_end(self, estimator: Any, error: BaseException | None) -> None:
            self.writer_.close()

    enc = small_encoder(max_iter=2, callbacks=[TensorBoard(str(tmp_path))]).fit(X)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    losses = [e.value for e in events.Scalars("loss")]
    assert losses == pytest.approx(enc.loss_curve_, rel=1e-6)


def test_mlflow_example_logs_the_metrics(tmp_path: Path):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed")

    class MLflowLogger(Callback):
        def on_epoch_end(self, estimator: Any, record: dict[str, Any]) -> None:
            metrics = {
                k: v for k, v in record.items() if isinstance(v, float) and math.isfinite(v)
            }
            mlflow.log_metrics(metrics, step=record["epoch"])

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run() as run:
        enc = small_encoder(max_iter=2, callbacks=[MLflowLogger()]).fit(X)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        enc.loss_curve_, rel=1e-6
    )
    assert torch.is_tensor(torch.zeros(1))  # torch stays importable beside mlflow


def test_a_continued_fit_does_not_copy_the_last_fits_callbacks():
    class HoldsALock(Callback):
        def on_fit_end(self, estimator: Any, error: BaseException | None) -> None:
            self.lock_ = threading.Lock()  # cannot be copied nor pickled

    enc = small_encoder(max_iter=1, warm_start=True, callbacks=[HoldsALock()]).fit(X)
    first = enc.callbacks_[0]
    enc.fit(X).partial_fit(X)
    assert enc.n_iter_ == 3 and enc.callbacks_[0] is not first


def test_a_callback_failing_to_begin_still_ends_the_ones_that_began(tmp_path: Path):
    ended = []

    class Opens(Callback):
        def on_fit_end(self, estimator: Any, error: BaseException | None) -> None:
            ended.append(type(error).__name__)

    class Bad(Callback):
        def on_fit_begin(self, estimator: Any, n_epochs: int, n_samples: int) -> None:
            raise RuntimeError("bad config")

    with pytest.raises(RuntimeError, match="bad config"):
        small_encoder(max_iter=1, callbacks=[Opens(), Bad()]).fit(X)
    assert ended == ["RuntimeError"]


def test_a_csv_logger_pickles_during_a_fit(tmp_path: Path):
    """A checkpoint taken from a callback pickles the fit's callbacks_, whose logger
    holds its open file meanwhile."""
    pickled = []

    class Checkpoint(Callback):
        def on_epoch_end(self, estimator: Any, record: dict[str, Any]) -> None:
            pickled.append(pickle.dumps(estimator.callbacks_[0]))  # the logger

    logger = CSVLogger(os.fsencode(tmp_path / "log.csv"))  # a bytes path works too
    enc = small_encoder(max_iter=2, callbacks=[logger, Checkpoint()]).fit(X)
    copy = pickle.loads(pickled[-1])
    assert (
        len(pickled) == 2 and copy._file is None and copy.path_ == str(tmp_path / "log.csv")
    )
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 1 + enc.n_iter_


def test_a_subclass_of_early_stopping_keeps_its_own_hooks():
    seen = []

    class Watching(EarlyStopping):
        def on_epoch_end(self, estimator: Any, record: dict[str, Any]) -> None:
            seen.append(record["epoch"])

    enc = small_encoder(max_iter=3, callbacks=[Watching("loss", patience=5)]).fit(X)
    assert seen == [1, 2, 3] and enc.n_iter_ == 3


def test_every_callback_reads_the_same_epoch_record(caplog: pytest.LogCaptureFixture):
    """One record per epoch: the CSV, the log and each callback agree on its seconds."""
    seen: list[list[dict[str, Any]]] = [[], []]

    class Keep(Callback):
        def __init__(self, index: int = 0):
            self.index = index

        def on_epoch_end(self, estimator: Any, record: dict[str, Any]) -> None:
            seen[self.index].append(record)

    with caplog.at_level("INFO", logger="skact"):
        small_encoder(max_iter=2, callbacks=[Keep(0), Keep(1)]).fit(X)
    assert len(seen[0]) == 2 and all(a is b for a, b in zip(*seen))
    logged = [r.skact_record for r in caplog.records if hasattr(r, "skact_record")]
    assert [r["seconds"] for r in logged] == [r["seconds"] for r in seen[0]]
