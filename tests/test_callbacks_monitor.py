"""The monitor of representation quality (issue 17 items 1, 2 and 4): fit(X, y) with
unlabeled rows, the leave-one-out 1-NN accuracy and the effective rank it keeps in
monitor_curve_, keep_best, the collapse warning and ACTEncoder.score."""

from __future__ import annotations

import math
import pickle
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from _fakes import FakeTrainer

import skact
from skact import ACTEncoder, _callbacks
from skact._callbacks import (
    EarlyStopping,
    Monitor,
    effective_rank,
    few_shot_nn_accuracy,
    loo_nn_accuracy,
    monitored_rows,
    shot_examples,
)
from skact._labels import AmbiguousMinusOneWarning

from _small import small_encoder

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(int)
Y_SEMI = np.where(np.arange(64) % 4 == 0, Y, -1)  # 16 labeled rows, 48 unlabeled


# ---------------------------------------------------------------- the estimates


def test_loo_nn_accuracy_by_hand():
    features = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [7.0, 1.0], [5.5, 3.0]])
    labels = torch.tensor([0, 0, 1, 0, 0])
    # Nearest other rows: 0->1 (right), 1->0 (right), 2->3 (sqrt 5 < sqrt 9.25: wrong),
    # 3->2 (sqrt 5 < 2.5: wrong), 4->3 (2.5 < sqrt 9.25: right).
    distances = torch.cdist(features, features).fill_diagonal_(math.inf)
    assert distances.argmin(dim=1).tolist() == [1, 0, 3, 2, 3]
    assert loo_nn_accuracy(features, labels) == pytest.approx(3 / 5)
    # A tie goes to the lower index: row 1 is as near to row 0 as to row 2.
    line = torch.tensor([[0.0], [1.0], [2.0]])
    assert loo_nn_accuracy(line, torch.tensor([1, 0, 0])) == pytest.approx(1 / 3)


def test_few_shot_nn_accuracy_by_hand():
    features = torch.tensor([[0.0], [1.0], [2.0], [6.0], [7.0], [10.0]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    # One draw, one example per class for each row (never the row itself), sorted.
    examples = torch.tensor([[[2, 5], [0, 3], [1, 3], [2, 5], [0, 5], [1, 3]]])
    # 0 -> 2 (2 < 10) right; 1 -> 0 (1 < 5) right; 2 -> 1 (1 < 4) right;
    # 6 -> a tie at distance 4 with 2 and 10: the lower index, 2, wrong; 7 -> 10 (3 < 7)
    # right; 10 -> 6 (4 < 9) right: 5 of 6.
    assert few_shot_nn_accuracy(features, labels, examples) == pytest.approx(5 / 6)
    # A second draw is averaged in: every other row as the examples, leave-one-out.
    others = torch.tensor([[j for j in range(6) if j != i] for i in range(6)])
    padded = torch.cat([examples[0], torch.full((6, 3), 6)], 1)  # 6: no row
    both = torch.stack([padded, others])
    loo = loo_nn_accuracy(features, labels)
    assert few_shot_nn_accuracy(features, labels, both) == pytest.approx((5 / 6 + loo) / 2)


def test_shot_examples_draw_the_examples_of_every_row_from_every_class():
    codes = np.array([0] * 8 + [1] * 3 + [2] * 1 + [3] * 6)
    examples = shot_examples(codes, seed=4, shots=5, draws=7)
    # Per class: 5 of a larger class, else all its rows; 5 + 3 + 1 + 5 columns.
    assert examples.shape == (7, 18, 14)
    for draw in examples:
        for i, row in enumerate(draw):
            chosen = row[row < 18]
            assert i not in chosen and len(set(chosen)) == len(chosen)  # never itself
            per_class = np.bincount(codes[chosen], minlength=4)
            own = [5, 3, 1, 5]
            own[codes[i]] = min(own[codes[i]], np.sum(codes == codes[i]) - 1)
            assert per_class.tolist() == own
            assert (np.diff(row) >= 0).all()  # sorted: the lower index wins a tie
    assert len({d.tobytes() for d in examples}) == 7  # the draws differ
    np.testing.assert_array_equal(examples, shot_examples(codes, seed=4, shots=5, draws=7))


def test_with_few_labels_per_class_the_estimate_is_the_leave_one_out_accuracy():
    # No class with more than shots + 1 rows: one draw of every other row.
    rng = np.random.default_rng(1)
    codes = np.repeat([0, 1, 2], [6, 4, 2])
    examples = shot_examples(codes, seed=0, shots=5)
    assert examples.shape[0] == 1 and (examples < 12).sum() == 12 * 11
    features = torch.tensor(rng.normal(size=(12, 3)), dtype=torch.float32)
    labels = torch.from_numpy(codes)
    assert few_shot_nn_accuracy(features, labels, torch.from_numpy(examples)) == (
        loo_nn_accuracy(features, labels)
    )


def test_near_duplicates_do_not_inflate_the_few_shot_estimate():
    # Each labeled row has a near-twin and the labels are noise: the leave-one-out
    # 1-NN accuracy reads 1.0 (every row's nearest other row is its twin), as the old
    # monitor did on overlapping crops, while a few-shot classifier is at chance.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 8))
    features = np.concatenate([base, base + 1e-3 * rng.normal(size=base.shape)])
    labels = np.tile(rng.integers(0, 2, 300), 2)
    f, y = torch.tensor(features, dtype=torch.float32), torch.tensor(labels)
    assert loo_nn_accuracy(f, y) == 1.0
    shots = torch.from_numpy(shot_examples(labels, seed=0))
    assert 0.4 < few_shot_nn_accuracy(f, y, shots) < 0.6


def test_effective_rank_by_hand():
    assert effective_rank(torch.eye(6)) == pytest.approx(6.0)
    assert effective_rank(torch.eye(6)[:, :4]) == pytest.approx(4.0)
    rank_one = torch.outer(torch.arange(1.0, 11.0), torch.tensor([1.0, -2.0, 0.5]))
    assert effective_rank(rank_one) == pytest.approx(1.0)
    assert effective_rank(torch.ones(5, 3)) == pytest.approx(1.0)
    # Singular values 3 and 1: p = (3/4, 1/4).
    p = np.array([0.75, 0.25])
    by_hand = math.exp(-(p * np.log(p)).sum())
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(by_hand)
    assert effective_rank(torch.zeros(4, 3)) == 1.0
    assert math.isnan(effective_rank(torch.full((4, 3), math.nan)))


def test_monitored_rows_labeled_sample_or_all_rows():
    y = np.array([0, 1, 0, -1, 1, -1])
    labeled = y != -1
    rows, codes = monitored_rows(6, y, labeled, seed=0)
    assert rows.tolist() == [0, 1, 2, 4] and codes is not None
    assert codes.tolist() == [0, 1, 0, 1]
    # One class with 2 rows is not enough: the label-free estimate on all rows.
    y = np.array([0, 1, 0, -1, -1, -1])
    rows, codes = monitored_rows(6, y, y != -1, seed=0)
    assert rows.tolist() == list(range(6)) and codes is None
    # At most MONITOR_ROWS, drawn once from the seed.
    n = _callbacks.MONITOR_ROWS + 500
    first = monitored_rows(n, None, None, seed=3)[0]
    assert len(first) == _callbacks.MONITOR_ROWS and np.all(np.diff(first) > 0)
    np.testing.assert_array_equal(first, monitored_rows(n, None, None, seed=3)[0])
    big_y = np.arange(2 * n) % 3
    rows, codes = monitored_rows(2 * n, big_y, big_y != 2, seed=3)
    assert len(rows) == _callbacks.MONITOR_ROWS and set(big_y[rows]) == {0, 1}


# ---------------------------------------------------------------- the callback


def _run_monitor(features: list[torch.Tensor], keep_best: bool) -> tuple[Any, Monitor]:
    queue = iter(features)
    monitor, trainer = Monitor(lambda: next(queue), None, keep_best), FakeTrainer()
    monitor.on_fit_begin(trainer.as_trainer(), len(features), 10)
    logs = []
    for epoch in range(len(features)):
        trainer.epoch = epoch + 1
        logs.append({"loss": 0.0})
        assert monitor.on_epoch_end(trainer.as_trainer(), epoch, logs[-1]) is False
    monitor.on_fit_end(trainer.as_trainer(), None)
    return (logs, trainer.restored), monitor


def test_monitor_logs_its_estimate_and_keeps_the_best_epoch():
    ranks = [torch.eye(4)[:, :2], torch.eye(4), torch.eye(4)[:, :3]]  # 2, 4, 3
    (logs, restored), monitor = _run_monitor(ranks, keep_best=True)
    assert [entry["effective_rank"] for entry in logs] == pytest.approx([2, 4, 3])
    assert restored == ["after epoch 2"] and monitor.best_ == pytest.approx(4)
    assert _run_monitor(ranks, keep_best=False)[0][1] == []
    assert _run_monitor(ranks[:2], keep_best=True)[0][1] == []  # the last is the best


def test_monitor_warns_once_when_the_representation_collapses():
    with pytest.warns(
        UserWarning, match="collapsed .the model kept, after epoch 3"
    ) as record:
        _run_monitor([torch.ones(8, 4)] * 3, keep_best=False)
    assert len(record) == 1


def test_an_early_collapse_that_training_undoes_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run_monitor([torch.ones(8, 4), torch.eye(8, 4), torch.eye(8, 4)], False)
    # Unless keep_best goes back to it: epoch 1's rows lie on a line (effective rank
    # 1.67 with the mean, 1 around it); epoch 2's spread in a plane around a large
    # mean (1.44 with the mean, 2 around it).
    on_a_line = torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 2, 0], [1, 3, 0]])
    in_a_plane = torch.tensor([[10.0, 0, 0], [10, 1, 0], [10, 0, 1], [10, 1, 1]])
    assert effective_rank(on_a_line) > effective_rank(in_a_plane)
    with pytest.warns(UserWarning, match="after epoch 1: around their mean"):
        (_, restored), _ = _run_monitor([on_a_line, in_a_plane], keep_best=True)
    assert restored == ["after epoch 1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run_monitor([on_a_line, in_a_plane], keep_best=False)


def test_early_stopping_leaves_the_choice_to_the_monitor():
    stopping, trainer = EarlyStopping(2, tol=0.0, restore_best=False), FakeTrainer()
    stopping.on_fit_begin(trainer.as_trainer(), 3, 10)
    for epoch, loss in enumerate([1.0, 2.0, 3.0]):
        trainer.epoch = epoch + 1
        stopping.on_epoch_end(trainer.as_trainer(), epoch, {"validation_loss": loss})
    stopping.on_fit_end(trainer.as_trainer(), None)
    assert trainer.restored == []


# ---------------------------------------------------------------- the estimator


def _weights(enc: ACTEncoder) -> list[torch.Tensor]:
    return [p.detach().clone() for p in enc.encoder_.state_dict().values()]


def _same(a: ACTEncoder, b: ACTEncoder) -> bool:
    return all(torch.equal(u, v) for u, v in zip(_weights(a), _weights(b)))


def test_fit_without_y_is_unchanged_bit_for_bit(monkeypatch):
    plain = small_encoder(max_iter=3).fit(X)
    assert plain.monitor_name_ == "effective_rank"
    assert len(plain.monitor_curve_) == plain.n_iter_ == 3
    assert all(1.0 <= r <= 3.0 for r in plain.monitor_curve_)
    # Labels feed the monitor only: the objective and every random stream are the same.
    labeled = small_encoder(max_iter=3).fit(X, Y_SEMI)
    assert labeled.monitor_name_ == "few_shot_1nn_accuracy"
    assert _same(plain, labeled) and plain.loss_curve_ == labeled.loss_curve_
    # And the monitor itself changes nothing: a fit without it trains the same weights.
    monkeypatch.setattr(Monitor, "on_epoch_end", lambda self, *args: False)
    unmonitored = small_encoder(max_iter=3).fit(X)
    assert _same(plain, unmonitored) and plain.loss_curve_ == unmonitored.loss_curve_
    np.testing.assert_array_equal(plain.transform(X), unmonitored.transform(X))


@pytest.mark.parametrize(
    "y",
    [
        Y_SEMI,
        np.where(Y_SEMI == -1, np.nan, Y_SEMI.astype(float)),
        np.array([None if v == -1 else f"class {v}" for v in Y_SEMI], dtype=object),
        np.array([np.nan if v == -1 else f"class {v}" for v in Y_SEMI], dtype=object),
    ],
    ids=["minus-one", "float-nan", "object-none", "object-nan"],
)
def test_fit_with_unlabeled_rows_fills_the_curve_with_the_1nn_accuracy(y):
    enc = small_encoder(max_iter=3).fit(X, y)
    assert enc.monitor_name_ == "few_shot_1nn_accuracy"
    assert len(enc.monitor_curve_) == enc.n_iter_ == 3
    # 16 labeled rows (7 and 9 of the two classes), each classified in each of 10
    # draws: each accuracy is a multiple of 1/160.
    for accuracy in enc.monitor_curve_:
        assert 0 <= accuracy <= 1
        assert (accuracy * 160) == pytest.approx(round(accuracy * 160))
    # The estimate is the score of the fitted model on the same labeled rows.
    assert enc.score(X, y) == pytest.approx(enc.monitor_curve_[-1])


def test_text_minus_one_labels_are_unlabeled_rows_for_the_monitor():
    """``np.array(["class 0", -1])`` holds the text "-1": an unlabeled row, no class."""
    as_text = np.array([f"class {v}" if v != -1 else -1 for v in Y_SEMI])
    assert "-1" in as_text
    enc = small_encoder(max_iter=2).fit(X, as_text)
    by_number = small_encoder(max_iter=2).fit(X, Y_SEMI)
    assert enc.monitor_curve_ == by_number.monitor_curve_  # the same 16 labeled rows


def test_a_minus_one_plus_one_target_warns_at_the_callers_line():
    pm = np.where(np.arange(64) % 2, 1, -1)
    for method in ("fit", "partial_fit"):
        with pytest.warns(AmbiguousMinusOneWarning) as caught:
            getattr(small_encoder(max_iter=1), method)(X, pm)
        said = [w for w in caught if w.category is AmbiguousMinusOneWarning]
        assert len(said) == 1 and said[0].filename == __file__
        assert "-1/+1 binary target" in str(said[0].message)


def test_unlabeled_or_too_few_labels_fall_back_to_the_effective_rank():
    assert small_encoder().fit(X, np.full(64, -1)).monitor_name_ == "effective_rank"
    one_each = np.full(64, -1)
    one_each[:2] = [0, 1]
    assert small_encoder().fit(X, one_each).monitor_name_ == "effective_rank"


def test_the_curve_has_one_value_per_epoch_over_calls():
    enc = small_encoder(max_iter=5, early_stopping=True, n_iter_no_change=1, tol=1e9)
    enc.fit(X)
    assert len(enc.monitor_curve_) == enc.n_iter_ == 2  # stopped after two epochs
    enc.set_params(warm_start=True, early_stopping=False).fit(X, Y_SEMI)
    enc.partial_fit(X[:32], Y_SEMI[:32])
    assert len(enc.monitor_curve_) == enc.n_iter_ == 2 + 5 + 1
    assert enc.monitor_name_ == "few_shot_1nn_accuracy"


def test_wrong_length_y_names_both_lengths():
    with pytest.raises(ValueError, match="y has 63 labels but X has 64 rows"):
        small_encoder().fit(X, Y[:63])
    enc = small_encoder().fit(X)
    with pytest.raises(ValueError, match="y has 10 labels but X has 64 rows"):
        enc.partial_fit(X, Y[:10])
    with pytest.raises(ValueError, match="y has 10 labels but X has 64 rows"):
        enc.score(X, Y[:10])


def _scripted(monkeypatch, values: list[float]) -> list[torch.Tensor]:
    """Make the monitor report ``values``; return the features it saw each epoch."""
    seen, queue = [], iter(values)

    def estimate(features: torch.Tensor, codes: Any, shots: Any) -> float:
        seen.append(features.clone())
        return next(queue)

    monkeypatch.setattr(_callbacks, "monitor_estimate", estimate)
    return seen


@pytest.mark.parametrize("early_stopping", [False, True])
def test_keep_best_monitor_restores_the_best_epochs_weights(monkeypatch, early_stopping):
    seen = _scripted(monkeypatch, [2.0, 2.9, 2.5])
    params = dict(max_iter=3, early_stopping=early_stopping, n_iter_no_change=5)
    enc = small_encoder(keep_best="monitor", **params).fit(X)
    assert enc.monitor_curve_ == [2.0, 2.9, 2.5] and enc.n_iter_ == 3
    # Label-free: the monitor follows every row, so transform gives what it saw.
    np.testing.assert_allclose(enc.transform(X), seen[1].numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(enc.transform(X), seen[2].numpy())

    seen = _scripted(monkeypatch, [2.0, 2.9, 2.5])
    last = small_encoder(keep_best="last", **params).fit(X)
    if not early_stopping:
        np.testing.assert_allclose(last.transform(X), seen[2].numpy(), rtol=1e-6, atol=1e-6)


def test_a_collapsed_representation_warns_once_per_fit(monkeypatch):
    def constant(self: ACTEncoder, stored: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(stored), 3)

    monkeypatch.setattr(ACTEncoder, "_embed", constant)
    with pytest.warns(UserWarning, match="representation collapsed") as record:
        small_encoder(max_iter=3).fit(X)
    collapsed = [w for w in record if "collapsed" in str(w.message)]
    assert len(collapsed) == 1
    assert collapsed[0].filename == __file__  # points at the user's line


def test_no_collapse_warning_for_a_healthy_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_encoder(max_iter=2).fit(X)


def test_score_with_and_without_labels():
    enc = small_encoder(max_iter=2).fit(X)
    features = enc.transform(X)
    s = np.linalg.svd(features.astype(np.float64), compute_uv=False)
    p = s / s.sum()
    by_hand = math.exp(-(p * np.log(p)).sum()) / features.shape[1]
    assert enc.score(X) == pytest.approx(by_hand, rel=1e-4)
    assert 1 / 3 <= enc.score(X) <= 1

    rows = np.flatnonzero(Y_SEMI != -1)
    labeled, classes = features[rows].astype(np.float64), Y_SEMI[rows]
    distances = np.linalg.norm(labeled[:, None] - labeled[None], axis=2)
    # The model's draws: each row's examples, at most 5 other rows of each class (the
    # classes have 7 and 9 labeled rows, so 10 draws differ).
    _, codes, shots = enc._monitored_rows(64, (Y_SEMI, Y_SEMI != -1))
    assert codes is not None and shots is not None and shots.shape == (10, 16, 10)
    assert all((np.bincount(classes[r]) == 5).all() for d in shots for r in d)
    # By hand: the distance to each of the row's examples, the nearest one's class.
    accuracy = np.mean(
        [
            np.mean([classes[r[np.argmin(distances[i, r])]] == classes[i]
                     for i, r in enumerate(d)])
            for d in shots
        ]
    )  # fmt: skip
    assert enc.score(X, Y_SEMI) == pytest.approx(accuracy)

    with pytest.raises(ValueError, match="at least 2 classes with at least 2 rows"):
        enc.score(X, np.full(64, -1))


def test_save_load_and_pickle_keep_the_monitor(tmp_path):
    enc = small_encoder(max_iter=2).fit(X, Y_SEMI)
    enc.save(tmp_path / "m.skact")
    for restored in (skact.load(tmp_path / "m.skact"), pickle.loads(pickle.dumps(enc))):
        assert restored.monitor_curve_ == enc.monitor_curve_
        assert restored.monitor_name_ == "few_shot_1nn_accuracy"
        assert restored.score(X, Y_SEMI) == pytest.approx(enc.score(X, Y_SEMI))


def test_a_pickle_from_before_the_monitor_gets_nan_per_epoch():
    enc = small_encoder(max_iter=2).fit(X)
    state = enc.__getstate__()
    del state["monitor_curve_"], state["monitor_name_"]
    old = ACTEncoder.__new__(ACTEncoder)
    old.__setstate__(state)
    assert len(old.monitor_curve_) == 2 and all(math.isnan(v) for v in old.monitor_curve_)
    assert old.monitor_name_ is None


def test_the_progress_bar_and_the_epoch_log_show_the_estimate(capsys):
    shown = _callbacks._shown(
        {"loss": 1.0, "effective_rank": 2.5, "loo_1nn_accuracy": 0.75}
    )
    assert shown == {"loss": "1.0000", "rank": "2.5", "1nn": "0.7500"}
    small_encoder(max_iter=1, verbose=2).fit(X, Y_SEMI)
    assert "1nn " in capsys.readouterr().err  # the epoch lines are on the bar's stream
