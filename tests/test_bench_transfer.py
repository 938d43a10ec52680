"""The transfer benchmark script: its fine-tuned and own-backbone rows, in --quick."""

import json

import numpy as np
import pytest
import torch
from sklearn.frozen import FrozenEstimator

from skact import ACTEncoder, FineTunedClassifier, evaluation
from skact.evaluation import few_shot_score
from skact.networks import ResNet18, resnet18_from_torchvision

from _benchmarks import benchmark_module

pytest.importorskip("skimage", reason="the photographs come from the `bench` extra")
pytest.importorskip("palmerpenguins", reason="the tables come from the `bench` extra")


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("bench_transfer") as module:
        yield module


def _blobs(rng, n):
    """``n`` rows of each of three well-separated classes, labelled by text."""
    y = np.repeat([0, 1, 2], n)
    centers = np.array([[0.0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0]])
    return centers[y] + rng.normal(size=(3 * n, 4)), np.array(["a", "b", "c"])[y]


def _linear_probe_draws(monkeypatch, y_pool, n_test, ks, n_draws, seed):
    """k -> the pool rows few_shot_score's linear probe is trained on, draw by draw."""
    seen = []

    def record(train_features, train_labels, test_features, test_labels, scoring):
        seen.append(train_features[:, 0].astype(int).tolist())  # features = row index
        return 0.0

    monkeypatch.setitem(evaluation._PROBES, "linear", record)
    rows = np.arange(len(y_pool))[:, None]
    few_shot_score(
        None, rows, y_pool, np.zeros((n_test, 1)), np.zeros(n_test), k=ks,
        protocols=["linear"], n_draws=n_draws, random_state=seed,
    )  # fmt: skip
    return {k: seen[i * n_draws : (i + 1) * n_draws] for i, k in enumerate(ks)}


def test_draws_are_those_of_the_linear_probe(bench, monkeypatch):
    y = np.repeat(["x", "y", "z"], [7, 9, 12])
    draws = bench._k_shot_draws(y, [1, 5], 3, random_state=4)
    probe = _linear_probe_draws(monkeypatch, y, 5, [1, 5], 10, seed=4)
    for k in (1, 5):
        assert [d.tolist() for d in draws[k]] == probe[k][:3]  # the first 3 of 10
        for rows in draws[k]:
            assert np.unique(y[rows], return_counts=True)[1].tolist() == [k, k, k]


def test_fine_tune_scores_fit_a_copy_of_the_upstream_encoder_on_each_draw(bench):
    rng = np.random.default_rng(0)
    (X_up, _), (X_pool, y_pool), (X_test, y_test) = (_blobs(rng, n) for n in (40, 12, 10))
    split = bench.Split(X_up, X_pool, y_pool, X_test, y_test)
    upstream = ACTEncoder(
        n_components=8, hidden_layer_sizes=(16,), projection_dim=8, max_iter=5,
        random_state=0,
    ).fit(X_up)  # fmt: skip
    before = upstream.transform(X_test)
    results, draws, seconds = bench.fine_tune_scores(
        upstream, split, [1, 5], 2, 0, 0.0, False
    )
    assert [(r.k, r.protocol, len(r.scores)) for r in results] == [
        (1, "finetune", 2),
        (5, "finetune", 2),
    ]
    assert seconds > 0
    np.testing.assert_array_equal(upstream.transform(X_test), before)  # left as it was
    # Each score is FineTunedClassifier's accuracy, fitted on the draw's rows alone.
    rows = draws[5][1]
    alone = FineTunedClassifier(FrozenEstimator(upstream), random_state=0)
    codes = np.searchsorted(["a", "b", "c"], y_pool)
    alone.fit(X_pool[rows], codes[rows])
    expected = np.mean(np.array(["a", "b", "c"])[alone.predict(X_test)] == y_test)
    assert results[1].scores[1] == expected
    assert results[1].scores.mean() > 0.45  # three classes, well apart: above 1 / 3
    # The semi-supervised row fits the whole pool, the rows outside the draw unlabeled.
    semi, semi_draws, _ = bench.fine_tune_scores(upstream, split, [5], 1, 0, 0.1, False)
    assert [d.tolist() for d in semi_draws[5]] == [draws[5][0].tolist()]
    y = np.full(len(y_pool), -1)
    y[draws[5][0]] = codes[draws[5][0]]
    whole = FineTunedClassifier(FrozenEstimator(upstream), act_weight=0.1, random_state=0)
    whole.fit(X_pool, y)
    assert whole.act_loss_curve_  # the ACT loss on the unlabeled rows was trained
    expected = np.mean(np.array(["a", "b", "c"])[whole.predict(X_test)] == y_test)
    assert semi[0].scores[0] == expected


def test_resnet18_state_is_torchvision_s_layout_seeded(bench):
    state, source = bench.torchvision_resnet18_state(3)
    assert source  # where the weights came from, said in the log
    assert "fc.weight" in state and "layer4.1.bn2.running_var" in state
    outside = torch.random.get_rng_state()
    again, _ = bench.torchvision_resnet18_state(3)
    assert torch.equal(torch.random.get_rng_state(), outside)  # global state untouched
    other, _ = bench.torchvision_resnet18_state(4)
    assert all(torch.equal(state[key], again[key]) for key in state)
    assert not torch.equal(state["conv1.weight"], other["conv1.weight"])
    network = resnet18_from_torchvision(state)
    assert isinstance(network, ResNet18)
    # torchvision's initialisation: Kaiming-normal, fan out (std sqrt(2 / (64 * 7 * 7))).
    std = float(state["conv1.weight"].std())
    assert std == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.1)


def test_paired_difference_pairs_the_draws_both_rows_have(bench):
    def result(row, scores):
        cells = [{"k": 5, "protocol": bench.scored_protocol(row), "scores": scores}]
        return {"task": "t", "row": row, "seeds": [0, 1], "scores": cells}

    results = [
        result("act:own", [[0.5, 0.7, 0.9], [0.4, 0.4, 0.1]]),
        result("finetuned", [[0.8, 0.6], [0.6, 0.5]]),
        result("act:continued", [[0.7, 0.7, 0.7], [0.2, 0.3, 0.4]]),
    ]
    mean, se = bench.paired_difference(results, "t", "finetuned", "act:own")
    # Seed 0: 0.7 - 0.6; seed 1: 0.55 - 0.4 (the first two draws of act:own).
    assert mean == pytest.approx(0.125) and se == pytest.approx(0.025)
    assert bench.paired_difference(results, "t", "finetuned", "act:own", "linear") is None
    best = bench.best_difference(results, "t", ["act:continued", "finetuned"], "act:own")
    assert best is not None and best[0] == "finetuned"
    assert bench.best_difference(results, "t", ["pca"], "act:own") is None


def test_quick_run_adds_the_finetuned_and_backbone_rows(
    bench, tmp_path, capsys, monkeypatch
):
    argv = [
        "--quick", "--tasks", "photos_to_digits", "penguins_by_year",
        "--rows", "act:own", "act:upstream", "finetuned*", "backbone:*",
        "--output-dir", str(tmp_path),
    ]  # fmt: skip
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "transfer.json").read_text())
    assert report["runs"][0]["config"] == {"seeds": [0], "draws": 2, "finetune_draws": 2}
    by_task = {}
    for r in report["results"]:
        by_task.setdefault(r["task"], {})[r["row"]] = r
    new = ["finetuned", "finetuned:semi", "backbone:resnet18"]
    assert list(by_task["photos_to_digits"]) == ["act:own", "act:upstream", *new]
    # Tables have no backbone row, and the log says so.
    assert list(by_task["penguins_by_year"]) == ["act:own", "act:upstream", *new[:2]]
    assert "penguins_by_year: skipping backbone:resnet18 (image tasks only)" in out
    for task, rows in by_task.items():
        ks = [s["k"] for s in rows["act:upstream"]["scores"] if s["protocol"] == "linear"]
        for name in new:
            if name not in rows:
                continue
            protocols = ["finetune"] if name.startswith("finetuned") else ["linear", "knn"]
            assert [(s["k"], s["protocol"]) for s in rows[name]["scores"]] == [
                (k, p) for k in ks for p in protocols
            ]
            for s in rows[name]["scores"]:
                assert np.shape(s["scores"]) == (1, 2)  # one seed, two draws
                assert all(0.0 <= v <= 1.0 for v in s["scores"][0])
        # The fine-tuned rows' labelled rows are the linear probe's, draw by draw.
        split = bench.TASKS[task].load(True)
        with monkeypatch.context() as patched:
            probe = _linear_probe_draws(patched, split.y_pool, len(split.y_test), ks, 2, 0)
        for name in ("finetuned", "finetuned:semi"):
            for s in rows[name]["scores"]:
                assert s["train_rows"] == [probe[s["k"]]]

    md = (tmp_path / "transfer.md").read_text()
    assert "### photos_to_digits, linear probe; fine-tuned" in md
    assert "| row | k=1 | k=5 | fine-tuned k=1 | fine-tuned k=5 | fit s |" in md
    assert "| act:upstream | " in md and "| - | - |" in md
    line = next(x for x in md.splitlines() if x.startswith("| finetuned |"))
    assert line.split(" | ")[1:3] == ["-", "-"]  # no linear probe of a fine-tuned row
    knn = md.split("### photos_to_digits, knn")[1].split("\n#")[0]
    assert "| backbone:resnet18 |" in knn and "finetuned" not in knn
    assert "random weights (users bring theirs)" in md
    assert (
        "| photos_to_digits | best of act:continued / finetuned (finetuned) - act:own |"
        in md
    )


def test_row_selection_errors_name_the_known_rows(bench):
    with pytest.raises(SystemExit, match=r"unknown row: nope; known: .*finetuned:semi"):
        bench.main(["--rows", "nope"])
    with pytest.raises(SystemExit):  # argparse: at least one draw
        bench.main(["--finetune-draws", "0"])
