"""The trainer's callbacks (issue 19 item 2) and the time shown up front (issue 16
item 2): progress within an epoch, the time estimate and its warning, early stopping,
and Ctrl-C during a slow step."""

from __future__ import annotations

import os
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
from skact._callbacks import Callback, EarlyStopping, ProgressBar, TimeEstimate
from skact._training import Trainer
from skact.objectives import make_objective

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)


def _trainer(callbacks: list[Callback], batch_size: int = 16, **parts: Any) -> Trainer:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    defaults: dict[str, Any] = dict(
        encoder=encoder,
        projector=None,
        criterion=make_objective("act", alpha=0.1),
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


def test_verbose_fit_prints_the_estimated_time_and_samples_per_second(capsys):
    small_encoder(verbose=1, max_iter=3).fit(X)  # 4 steps per epoch: estimated at 5
    captured = capsys.readouterr()
    text = captured.err + captured.out
    assert "ACTEncoder: about" in text and "for 3 epochs" in text
    assert "samples/s" in text


# -------------------------------------------------------------------- the estimate


def test_the_estimate_is_made_once_after_five_steps_and_warns_once():
    estimate = TimeEstimate(verbose=False, advice="Set max_iter.", clock=_Clock(100.0))
    with pytest.warns(UserWarning, match="Set max_iter") as record:
        _fit(_trainer([estimate]), 3)
    assert len(record) == 1
    message = str(record[0].message)
    assert "estimated to take about" in message and "(3 epochs of 64 samples" in message
    # The clock is read at the start and after each step: the first step took 100 s
    # (counted once), the second 100 s more, over the 2 s after which the estimate is
    # made: 100 + 11 x 100 s for 12 steps.
    assert estimate.estimate_ == pytest.approx(100.0 * 12)
    assert estimate.samples_per_second_ == pytest.approx(16 / 100)


def test_the_estimate_comes_after_two_seconds_when_steps_are_slow(capsys):
    estimate = TimeEstimate(verbose=True, clock=_Clock(1.5))
    _fit(_trainer([estimate]), 1)
    # Steps end 1.5, 3 and 4.5 s after the start: 3 s after the first one, the third
    # gives the rate of the steps after the first.
    assert estimate.estimate_ == pytest.approx(1.5 * 4)
    assert "about 6 s for 1 epoch (" in capsys.readouterr().err


def test_no_warning_without_advice_or_under_ten_minutes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(_trainer([TimeEstimate(verbose=False, clock=_Clock(100.0))]), 3)
        fast = TimeEstimate(verbose=False, advice="Set max_iter.", clock=_Clock(1.0))
        _fit(_trainer([fast]), 3)
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


def test_the_first_step_s_one_off_cost_is_counted_once():
    # A first step of 10 s, then steps of 1 s: 10 + 11 x 1 s for 12 steps, not 12 x the
    # average of the first few (which would be 33 s after three steps).
    times = iter([0.0, 10.0, 11.0, 12.0, 13.0] + [13.0 + i for i in range(1, 20)])
    estimate = TimeEstimate(verbose=False, clock=lambda: next(times))
    _fit(_trainer([estimate]), 3)
    assert estimate.estimate_ == pytest.approx(10.0 + 11 * 1.0)
    assert estimate.samples_per_second_ == pytest.approx(16.0)
