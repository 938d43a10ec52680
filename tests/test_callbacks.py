"""The trainer's callbacks (issue 19 item 2) and the time shown up front (issue 16
item 2): progress within an epoch, the time estimate and its warning, early stopping,
and Ctrl-C during a slow step."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from _fakes import FakeTrainer
from torch import nn

from skact import ACTEncoder, _callbacks
from skact._callbacks import (
    RECENT_STEPS,
    Callback,
    EarlyStopping,
    EpochLog,
    ProgressBar,
    TimeEstimate,
)
from skact._training import Trainer
from skact.objectives import ACTLoss, make_objective

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)


def _trainer(callbacks: list[Callback], batch_size: int = 16, **parts: Any) -> Trainer:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    defaults: dict[str, Any] = dict(
        encoder=encoder,
        projector=None,
        criterion=make_objective(ACTLoss(alpha=0.1)),
        optimizer=torch.optim.Adam(encoder.parameters(), lr=1e-3),
        view_fn=lambda batch, generator: batch,
        n_views=2,
        batch_size=batch_size,
        learning_rate=1e-3,
        warmup_steps=1,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        shuffle_rng=np.random.default_rng(0),
        callbacks=callbacks,
    )
    return Trainer(**{**defaults, **parts})


def _fit(trainer: Trainer, n_epochs: int) -> None:
    data = torch.from_numpy(X)
    trainer.fit(len(data), lambda idx: data.index_select(0, idx), n_epochs)


class _Recorder(Callback):
    """Records the hooks' calls, and the progress bar's position after each step."""

    def __init__(self, bar: ProgressBar | None = None) -> None:
        self.calls: list[str] = []
        self.bar = bar
        self.positions: list[float] = []

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self.calls.append(f"fit_begin {n_epochs} {n_samples}")

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        self.calls.append(f"epoch_begin {epoch} {n_steps}")

    def on_step_end(self, trainer: Trainer, n_rows: int) -> None:
        self.calls.append(f"step {n_rows}")
        if self.bar is not None:
            self.positions.append(self.bar.bar.n)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")
        return False

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        self.calls.append(f"fit_end {type(error).__name__}")


class _Clock:
    """A clock that advances ``tick`` seconds each time it is read."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


# ----------------------------------------------------------------------- the hooks


def test_hooks_are_called_in_order_with_the_epochs_logs():
    recorder = _Recorder()
    trainer = _trainer([recorder])
    _fit(trainer, 2)
    epoch = ["epoch_begin {e} 4"] + ["step 16"] * 4 + ["epoch_end {e} ['loss']"]
    expected = ["fit_begin 2 64"]
    expected += [c.format(e=e) for e in range(2) for c in epoch] + ["fit_end NoneType"]
    assert recorder.calls == expected
    assert trainer.epoch == 2 and trainer.step == 8 and len(trainer.history) == 2


def test_a_callback_ends_the_fit_and_on_fit_end_sees_errors():
    class StopAfterOne(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            return True

    recorder = _Recorder()
    trainer = _trainer([StopAfterOne(), recorder])
    _fit(trainer, 5)
    assert trainer.epoch == 1 and recorder.calls[-1] == "fit_end NoneType"

    def failing_view(batch, generator):
        raise RuntimeError("boom")

    recorder = _Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        _fit(_trainer([recorder], view_fn=failing_view), 2)
    assert recorder.calls[-1] == "fit_end RuntimeError"


# ------------------------------------------------------------------------ progress


def test_the_progress_bar_advances_within_an_epoch():
    """Each step moves the bar by its share of an epoch (a slow epoch's bar does not
    sit still), and each epoch ends on a whole number."""
    bar = ProgressBar()
    recorder = _Recorder(bar)
    _fit(_trainer([bar, recorder]), 2)
    expected = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    np.testing.assert_allclose(recorder.positions, expected, atol=1e-9)
    assert bar.bar is None  # closed at the end of the fit


def _bar_lines(err: str) -> list[str]:
    """What the bar drew, one state per item (tqdm redraws a line after a \\r)."""
    return [line.strip() for line in re.split(r"[\r\n]", err) if line.strip()]


def test_the_bar_ends_on_the_epochs_run_without_tqdm_artefacts(capsys):
    """3 steps per epoch: thirds summed pass 3.0 at the last step, where tqdm warned
    "clamping frac to range [0, 1]" and showed a time left of "<-00:00"."""
    bar = ProgressBar(mininterval=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's TqdmWarning
        _fit(_trainer([bar], batch_size=22), 3)  # 64 rows: batches of 22, 21, 21
    lines = _bar_lines(capsys.readouterr().err)
    assert lines[-1].startswith("ACTEncoder: 100%") and "| 3/3 epochs [" in lines[-1]
    assert "loss=" in lines[-1] and "left" not in lines[-1]
    assert not any("clamping" in line or "<-" in line for line in lines)


def test_a_fit_stopped_early_ends_its_bar_where_it_stopped(capsys):
    class StopAfterOne(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            return True

    _fit(_trainer([ProgressBar(mininterval=0), StopAfterOne()]), 3)
    last = _bar_lines(capsys.readouterr().err)[-1]
    assert "| 1/3 epochs [" in last and "stopped early, loss=" in last


def test_the_bar_and_the_epoch_log_show_the_time_left(capsys):
    """The time left is the estimate's, updated after each step."""
    clock = _SetClock()
    estimate = TimeEstimate(verbose=False, clock=clock)
    data = torch.from_numpy(X)

    def take(idx: torch.Tensor) -> torch.Tensor:
        clock.now += 2.0  # every step takes 2 s
        return data.index_select(0, idx)

    bar = ProgressBar(mininterval=0, estimate=estimate)
    _trainer([estimate, bar, EpochLog(1, estimate)]).fit(len(data), take, 3)
    captured = capsys.readouterr()
    lines = _bar_lines(captured.err)
    # Made when a step ends 2 s after the first: 10 steps of 2 s left, then 9, ...
    left = [re.search(r"about (\d+) s left", line) for line in lines]
    shown = sorted({int(m.group(1)) for m in left if m}, reverse=True)
    assert shown == list(range(20, -1, -2))
    # The log's line for epoch 2 (4 steps left), above the bar on stderr: the progress
    # display leaves stdout to the program (a command's output).
    line = r"(?:^|\r)epoch 2: loss [\d.]+, about 8 s left$"
    assert re.search(line, captured.err, re.M) and captured.out == ""
    assert "left" not in lines[-1]


def test_verbose_fit_prints_the_estimated_time_and_samples_per_second(capsys):
    small_encoder(verbose=1, max_iter=3).fit(X)  # 4 steps per epoch: estimated at 5
    captured = capsys.readouterr()
    text = captured.err + captured.out
    assert "ACTEncoder: about" in text and "for 3 epochs" in text
    assert "samples/s" in text


# -------------------------------------------------------------------- the estimate


class _SetClock:
    """A clock that reads what the test set: reading it takes no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drive(
    estimate: TimeEstimate,
    step_seconds: list[float],
    steps_per_epoch: int,
    rows: int = 16,
    between_epochs: float = 0.0,
) -> list[float | None]:
    """Run ``estimate``'s hooks over a fit whose steps take ``step_seconds`` (on a
    :class:`_SetClock`), and return its ``remaining_`` after each step."""
    clock = estimate.clock
    assert isinstance(clock, _SetClock)
    n_epochs = len(step_seconds) // steps_per_epoch
    trainer = FakeTrainer().as_trainer()
    estimate.on_fit_begin(trainer, n_epochs, steps_per_epoch * rows)
    remaining = []
    for epoch in range(n_epochs):
        estimate.on_epoch_begin(trainer, epoch, steps_per_epoch)
        for step in range(steps_per_epoch):
            clock.now += step_seconds[epoch * steps_per_epoch + step]
            estimate.on_step_end(trainer, rows)
            remaining.append(estimate.remaining_)
        clock.now += between_epochs  # the validation loss, the monitor
        estimate.on_epoch_end(trainer, epoch, {"loss": 0.0})
    estimate.on_fit_end(trainer, None)
    return remaining


def _estimate(**kwargs: Any) -> TimeEstimate:
    return TimeEstimate(verbose=kwargs.pop("verbose", False), clock=_SetClock(), **kwargs)


def test_the_estimate_follows_a_slowdown_and_a_speed_up():
    # 4 epochs of 10 steps: 1 s each for two epochs, then 3 s (the machine got busy).
    remaining = _drive(_estimate(), [1.0] * 20 + [3.0] * 20, 10)
    assert remaining[19] == pytest.approx(20 * 1.0)  # steady: 20 steps of 1 s left
    # Once most of the recent steps are slow, the steps left are 3 s each.
    slow = RECENT_STEPS // 2 + 1
    assert remaining[19 + slow] == pytest.approx((20 - slow) * 3.0)
    assert remaining[29] == pytest.approx(10 * 3.0)
    # And back: 3 s steps, then 1 s ones.
    remaining = _drive(_estimate(), [3.0] * 20 + [1.0] * 20, 10)
    assert remaining[19] == pytest.approx(20 * 3.0)
    assert remaining[29] == pytest.approx(10 * 1.0)
    assert remaining[-1] == 0.0


def test_a_few_stalled_steps_do_not_move_the_estimate():
    """A busy machine stalls some steps: the median of the recent steps ignores them
    (the mean of the last 11 steps would make the 14 steps left take 2 min)."""
    seconds = [1.0] * 40
    seconds[22:26] = [30.0] * 4
    remaining = _drive(_estimate(), seconds, 10)
    assert remaining[25] == pytest.approx(14 * 1.0)


def test_the_estimate_counts_the_time_between_epochs_and_the_first_step_once():
    # Steps of 1 s, and 5 s after each epoch (the validation loss, the monitor).
    remaining = _drive(_estimate(), [1.0] * 30, 10, between_epochs=5.0)
    # After the first step of the second epoch: 19 steps and 2 epoch ends left.
    assert remaining[10] == pytest.approx(19 * 1.0 + 2 * 5.0)
    # A first step of 10 s (one-off costs) is in the time so far, not in the rate.
    estimate = _estimate()
    remaining = _drive(estimate, [10.0] + [1.0] * 29, 10)
    assert remaining[5] == pytest.approx(24 * 1.0)
    assert estimate.estimate_ == pytest.approx(10.0 + 29 * 1.0)
    assert estimate.samples_per_second_ == pytest.approx(16.0)


def test_the_estimate_is_made_after_five_steps_or_two_seconds():
    remaining = _drive(_estimate(), [0.1] * 12, 4)
    # The first step, then 5 more.
    assert remaining[:5] == [None] * 5 and remaining[5] == pytest.approx(6 * 0.1)
    remaining = _drive(_estimate(), [1.5] * 4, 4)
    # Steps of 1.5 s: the third ends 3 s after the first.
    assert remaining[:2] == [None] * 2 and remaining[2] == pytest.approx(1.5)


def test_the_long_fit_warning_comes_once_and_only_while_most_of_the_fit_is_ahead():
    estimate = _estimate(advice="Set max_iter.")
    with pytest.warns(UserWarning, match="Set max_iter") as record:
        # Slow from the start, and slower later: the estimate passes 600 s twice.
        _drive(estimate, [100.0] * 12 + [300.0] * 12, 4)
    assert len(record) == 1
    message = str(record[0].message)
    assert "estimated to take about" in message and "(6 epochs of 64 samples" in message
    assert "0 samples/s" in message  # 16 rows per 100 s: 0.16 samples/s
    # Slow only near the end: too late to be worth a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _drive(_estimate(advice="Set max_iter."), [1.0] * 30 + [500.0] * 10, 10)


def test_verbose_writes_the_first_estimate_once(capsys):
    _drive(_estimate(verbose=True), [1.5] * 8, 4)
    err = capsys.readouterr().err
    # Steps of 1.5 s: after the third (3 s after the first), 8 x 1.5 s in all.
    assert err.count("ACTEncoder: about") == 1
    assert "about 12 s for 2 epochs (11 samples/s, 1.5 s per step)" in err


def test_no_warning_without_advice_or_under_ten_minutes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _drive(_estimate(), [100.0] * 12, 4)
        fast = _estimate(advice="Set max_iter.")
        _drive(fast, [1.0] * 12, 4)
    assert fast.estimate_ == pytest.approx(12.0)


@pytest.fixture
def slow_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step of a fit seems to take a minute."""
    monkeypatch.setattr(_callbacks, "_now", _Clock(60.0))


def test_a_long_auto_fit_on_the_cpu_warns_with_the_parameters_to_change(slow_clock):
    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    enc = ACTEncoder(encoder="convnet", n_components=4, device="cpu", random_state=0)
    with warnings.catch_warnings():
        # The warning, raised as an error, ends the fit at the estimate: no long run.
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(UserWarning) as info:
            enc.fit(images)
    message = str(info.value)
    assert "estimated to take about" in message and "on the CPU" in message
    for name in ("max_iter", "image_size", "batch_size"):
        assert name in message
    # The network in use is not offered as the way out.
    assert "encoder='convnet'" not in message


def test_the_long_fit_warning_points_at_the_caller(slow_clock):
    with pytest.warns(UserWarning, match="estimated to take about") as record:
        small_encoder(max_iter="auto").fit(X)
    assert [w.filename for w in record] == [__file__]


def test_an_explicit_max_iter_does_not_warn(slow_clock):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        small_encoder(max_iter=20).fit(X)


def test_only_the_process_that_shows_progress_logs_and_warns():
    """Under data-parallel training every rank runs the fit: ranks other than 0 must
    not repeat the epoch lines (verbose=2) nor the long-fit warning."""
    enc = small_encoder(max_iter=1).fit(X).set_params(verbose=2)

    def made(show: bool) -> dict[str, Callback]:
        callbacks = enc._make_callbacks(show=show, auto_epochs=True)
        return {type(c).__name__: c for c in callbacks}

    shown, hidden = made(True), made(False)
    assert {"ProgressBar", "EpochLog"} <= set(shown) and shown["TimeEstimate"].advice
    assert not {"ProgressBar", "EpochLog"} & set(hidden)
    assert hidden["TimeEstimate"].advice is None and not hidden["TimeEstimate"].verbose


def test_format_duration():
    assert _callbacks.format_duration(59.4) == "59 s"
    assert _callbacks.format_duration(600) == "10 min 00 s"
    assert _callbacks.format_duration(3 * 3600 + 61) == "3 h 01 min"


# ------------------------------------------------------------------ early stopping


def _run_early_stopping(
    losses: list[float], patience: int, error: BaseException | None = None
) -> tuple[list[bool], list[str]]:
    stopping, trainer = EarlyStopping(patience, tol=0.1), FakeTrainer()
    stopping.on_fit_begin(trainer.as_trainer(), len(losses), 10)
    stops = []
    for epoch, loss in enumerate(losses):
        trainer.epoch = epoch + 1
        logs = {"loss": 0.0, "validation_loss": loss}
        stops.append(stopping.on_epoch_end(trainer.as_trainer(), epoch, logs))
    stopping.on_fit_end(trainer.as_trainer(), error)
    return stops, trainer.restored


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch():
    # 1.95 is not better than 2.0 by more than tol: it does not count.
    stops, restored = _run_early_stopping([3.0, 2.0, 1.95, 2.5], patience=2)
    assert stops == [False, False, False, True]
    assert restored == ["after epoch 2"]


def test_early_stopping_keeps_the_best_epoch_when_the_epochs_run_out():
    assert _run_early_stopping([3.0, 2.0, 2.5], patience=5) == (
        [False, False, False],
        ["after epoch 2"],
    )
    # The last epoch is the best: nothing to restore.
    assert _run_early_stopping([3.0, 2.0, 1.0], patience=5)[1] == []
    # A fit that fails keeps what it has.
    assert _run_early_stopping([3.0, 2.0, 2.5], 5, KeyboardInterrupt())[1] == []


# ---------------------------------------------------------- the validation views


def test_validation_views_are_seeded_from_the_fit_not_a_fixed_seed():
    def seed(random_state: int) -> int:
        enc = small_encoder(max_iter=1, random_state=random_state).fit(X)
        held_out = torch.from_numpy(X[:8])
        trainer = enc._make_trainer(
            len(X), 1, view_fn=lambda batch, generator: batch, held_out=held_out
        )
        assert trainer.validation is not None
        return trainer.validation.seed

    assert seed(0) == seed(0) != seed(1)
    assert 12345 not in (seed(0), seed(1))


# -------------------------------------------------------------------------- Ctrl-C


class _Sleep(nn.Module):
    """A layer that takes ``seconds``: one slow operation of a large network."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


def _slow_network(input_shape: tuple[int, ...]) -> nn.Module:
    """About 2 s per forward pass, in layers of 0.25 s."""
    layers: list[nn.Module] = [nn.Linear(input_shape[0], 8)]
    layers += [_Sleep(0.25) for _ in range(8)] + [nn.Linear(8, 4)]
    return nn.Sequential(*layers)


@pytest.fixture
def weights_after_each_step(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[], list[dict[str, torch.Tensor]]]]:
    """Record the encoder's parameters after each complete step; after the first one,
    send SIGINT to this process 0.3 s later (in the middle of the second step)."""
    recorded: list[dict[str, torch.Tensor]] = []
    original = Trainer.training_step

    def training_step(self: Trainer, batch: torch.Tensor) -> torch.Tensor:
        loss = original(self, batch)
        params = {k: v.detach().clone() for k, v in self.encoder.named_parameters()}
        recorded.append(params)
        if len(recorded) == 1:
            timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
        return loss

    monkeypatch.setattr(Trainer, "training_step", training_step)
    yield lambda: recorded


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to self")
def test_ctrl_c_abandons_a_slow_step_within_a_second(weights_after_each_step):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    enc = ACTEncoder(
        encoder=_slow_network,
        n_components=None,
        projection_dim=None,
        batch_size=16,
        max_iter=3,
        device="cpu",
        random_state=0,
    )
    sent = threading.Event()
    original_kill = os.kill
    moments: dict[str, float] = {}

    def kill(pid: int, sig: int) -> None:
        moments["sent"] = time.perf_counter()
        sent.set()
        original_kill(pid, sig)

    with (
        pytest.MonkeyPatch.context() as patch,
        pytest.warns(UserWarning, match="interrupted; keeping the model"),
        pytest.raises(KeyboardInterrupt),
    ):
        patch.setattr(os, "kill", kill)
        enc.fit(np.random.default_rng(0).normal(size=(32, 3)))
    returned = time.perf_counter()
    assert sent.is_set()
    # Without the per-layer checks the second step would run its 1.7 s left: the fit
    # returns within about one layer (0.25 s).
    assert returned - moments["sent"] < 1.0
    steps = weights_after_each_step()
    assert len(steps) == 1 and enc._step == 1 and enc.n_iter_ == 0
    final = dict(enc.encoder_.named_parameters())
    for name, value in steps[0].items():
        assert torch.equal(final[name], value), name
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
