"""Continued pretraining: how "auto" schedules a fit that continues a fitted encoder."""

from __future__ import annotations

import numpy as np
import pytest

from skact import ACTEncoder, _auto, _callbacks, resolved_settings

from _small import small_encoder

FRESH_TABLE_LR = _auto.table_settings(1).learning_rate


class _LearningRates(_callbacks.Callback):
    """Records the learning rate each optimiser step ran with."""

    def __init__(self, out: list[float]) -> None:
        self.out = out

    def on_step_end(self, trainer, n_rows):
        self.out.append(trainer.optimizer.param_groups[0]["lr"])


class RecordingEncoder(ACTEncoder):
    """ACTEncoder that records every step's learning rate in ``rates_``."""

    def _make_callbacks(self, *args, **kwargs):
        self.rates_ = []
        return [*super()._make_callbacks(*args, **kwargs), _LearningRates(self.rates_)]


def _data(seed: int, n: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 5))


def _fitted(**params) -> RecordingEncoder:
    enc = small_encoder(RecordingEncoder, warm_start=True, **params)
    return enc.fit(_data(0))


def test_continued_auto_fit_has_a_tenth_of_the_peak_and_no_warmup():
    enc = _fitted(learning_rate="auto", max_iter=20)  # 80 steps: 8 of warm-up
    fresh = list(enc.rates_)
    assert fresh[0] < fresh[1] <= FRESH_TABLE_LR  # a fresh fit warms up
    assert max(fresh) == pytest.approx(FRESH_TABLE_LR)
    enc.fit(_data(1))
    continued = enc.rates_
    peak = FRESH_TABLE_LR * _auto.CONTINUED_LEARNING_RATE_FACTOR
    assert continued[0] == pytest.approx(peak)  # the first step is at the peak
    assert max(continued) == pytest.approx(peak)
    assert continued[-1] < continued[0]  # then the cosine decay


def test_continued_auto_fit_runs_a_quarter_of_the_epochs():
    enc = small_encoder(warm_start=True, max_iter="auto").fit(_data(0))
    assert enc.n_iter_ == _auto.TABLE_EPOCHS
    enc.fit(_data(1))
    quarter = round(_auto.TABLE_EPOCHS * _auto.CONTINUED_EPOCHS_FACTOR)
    assert enc.n_iter_ == _auto.TABLE_EPOCHS + quarter
    assert len(enc.loss_curve_) == _auto.TABLE_EPOCHS + quarter


def test_continued_schedule_epochs_at_least_one():
    schedule = _auto.continued_schedule(continuing=True)
    assert schedule.epochs(1) == 1
    assert schedule.epochs(100) == 25
    assert not schedule.warmup
    fresh = _auto.continued_schedule(continuing=False)
    assert (fresh.learning_rate_factor, fresh.epochs(7), fresh.warmup) == (1.0, 7, True)


def test_explicit_values_are_respected_when_continuing():
    enc = _fitted(learning_rate=0.004, max_iter=20)
    enc.fit(_data(1))
    assert enc.n_iter_ == 40
    rates = enc.rates_
    assert rates[0] < rates[1]  # an explicit rate keeps its warm-up
    assert max(rates) == pytest.approx(0.004)


def test_a_refit_without_warm_start_is_a_fresh_fit():
    enc = _fitted(learning_rate="auto")
    first = list(enc.rates_)
    enc.set_params(warm_start=False).fit(_data(0))
    assert enc.rates_ == first


def test_partial_fit_keeps_its_schedule_after_a_fit():
    enc = _fitted(learning_rate="auto")
    enc.partial_fit(_data(1))
    # partial_fit's own warm-up to the fresh peak: it is not a continued fit.
    assert enc.rates_[0] == pytest.approx(FRESH_TABLE_LR / 100)


def test_resolved_settings_reports_the_continued_schedule():
    X = _data(1)
    enc = small_encoder(warm_start=True, max_iter="auto", learning_rate="auto")
    before = resolved_settings(enc, X)
    assert (before["max_iter"], before["learning_rate"]) == (
        _auto.TABLE_EPOCHS,
        FRESH_TABLE_LR,
    )
    enc.set_params(max_iter=2).fit(_data(0)).set_params(max_iter="auto")
    after = resolved_settings(enc, X)
    assert set(after) == set(before)
    assert after["max_iter"] == 25
    assert after["learning_rate"] == pytest.approx(FRESH_TABLE_LR / 10)
    assert resolved_settings(enc.set_params(warm_start=False), X) == before
    explicit = enc.set_params(warm_start=True, learning_rate=0.01, max_iter=7)
    got = resolved_settings(explicit, X)
    assert (got["max_iter"], got["learning_rate"]) == (7, 0.01)
