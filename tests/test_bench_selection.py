"""The few-label model-selection benchmark's pieces, and a --quick run on wine."""

import json

import numpy as np
import pytest

from _benchmarks import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("bench_selection") as module:
        yield module


def test_rank_correlation_by_hand(bench):
    # Ranks of the score 1, 3, 2 against accuracy ranks 1, 2, 3:
    # rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 24 = 0.5.
    assert bench.rank_correlation([0.1, 0.9, 0.5], [0.2, 0.4, 0.6]) == pytest.approx(0.5)
    assert bench.rank_correlation([3, 2, 1], [0.2, 0.4, 0.6]) == pytest.approx(-1.0)
    # A constant score (or accuracy) ranks nothing: NaN, left out of the means.
    assert np.isnan(bench.rank_correlation([1, 1, 1], [0.2, 0.4, 0.6]))


def test_regret_is_the_accuracy_lost_by_the_scores_first_choice(bench):
    assert bench.regret([0.1, 0.9, 0.5], [0.2, 0.4, 0.6]) == pytest.approx(0.2)
    assert bench.regret([0.1, 0.2, 0.5], [0.2, 0.4, 0.6]) == 0.0


def test_partially_labeled_keeps_k_per_class_and_marks_the_rest(bench):
    y = np.repeat([0, 1, 2], [10, 7, 9])
    target = bench.partially_labeled(y, 3, draw=4)
    kept = target >= 0
    assert np.bincount(target[kept]).tolist() == [3, 3, 3]
    assert (target[kept] == y[kept]).all() and (target[~kept] == -1).all()
    assert (bench.partially_labeled(y, 3, draw=4) == target).all()
    assert not (bench.partially_labeled(y, 3, draw=5) == target).all()


def test_summary_leaves_nan_out(bench):
    summary = bench._summary([0.5, float("nan"), 1.0])
    assert summary == {"mean": 0.75, "std": 0.25, "n": 2}


def test_quick_run_writes_json_and_markdown(bench, tmp_path, capsys):
    argv = ["--quick", "--datasets", "wine", "--output-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "selection.json").read_text())
    (result,) = report["results"]
    assert report["runs"][0]["command"] == "python benchmarks/bench_selection.py " + (
        " ".join(argv)
    )
    assert result["n_labeled"] == 5 * 3
    # The grid: every alpha at both epoch factors, scored on every draw.
    grid = {(s["alpha"], s["epoch_factor"]) for s in result["settings"]}
    assert grid == {(a, f) for a in bench.ALPHAS for f in bench.EPOCH_FACTORS}
    assert all(len(s["test_accuracy"]) == result["draws"] for s in result["settings"])
    assert all(0 < s["label_free"] <= 1 for s in result["settings"])
    (search,) = result["search"]
    assert search["chosen_alpha"] in bench.ALPHAS
    assert set(result["classifiers"]) == {"ACT", "raw"}
    (keep,) = result["keep_best"]
    assert 1 <= keep["best_epoch"] <= keep["epochs"]
    markdown = (tmp_path / "selection.md").read_text()
    assert "## wine" in markdown and "GridSearchCV" in markdown
    assert "label spreading" in capsys.readouterr().out


def test_summary_and_render_rewrite_the_markdown_from_json(bench, tmp_path):
    assert bench.main(["--quick", "--datasets", "wine", "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "selection.json").read_text())
    (result,) = report["results"]
    summary = "\n".join(bench.summary_markdown(report["results"]))
    rho = result["ranking"]["monitor"]["rho"]["mean"]
    chosen = np.mean([s["chosen"] for s in result["search"]])
    expected = f"{rho:+.2f}" if not np.isnan(rho) else "n/a"  # constant scores
    assert f"| wine | {expected} |" in summary and f"{chosen:.3f}" in summary
    (tmp_path / "selection.md").write_text("stale")
    assert bench.main(["--render", "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / "selection.md").read_text() == bench.markdown(report)


def test_the_search_s_encoder_is_the_grid_s_model(bench):
    """What refit=False relies on: TransferClassifier fits its encoder on the same rows
    with labels, and the labels change nothing but the monitor, so the chosen alpha's
    model is the grid's fit of that alpha."""
    from skact import ACTEncoder, TransferClassifier

    X_pool, X_test, y_pool, _ = bench.pool_test_split(bench.DATASETS["wine"], 90)
    target = bench.partially_labeled(y_pool, 3, draw=0)
    params = {**bench.QUICK_ENCODER, "max_iter": 2, "alpha": 0.1, "random_state": 0}
    grid_fit = ACTEncoder(**params).fit(X_pool)
    searched = TransferClassifier(ACTEncoder(**params), bench.probe()).fit(X_pool, target)
    np.testing.assert_array_equal(
        grid_fit.transform(X_test), searched.encoder_.transform(X_test)
    )
    assert len(searched.encoder_.monitor_curve_) == 2  # the labels did reach the monitor


def test_ranking_only_merges_part_one_and_keeps_the_other_parts(bench, tmp_path):
    base = ["--quick", "--datasets", "wine", "--output-dir", str(tmp_path)]
    assert bench.main(base) == 0
    before = json.loads((tmp_path / "selection.json").read_text())["results"][0]
    assert bench.main([*base, "--ranking-only"]) == 0
    report = json.loads((tmp_path / "selection.json").read_text())
    (after,) = report["results"]
    assert len(report["runs"]) == 2 and after["ranking_run"] == 1 and after["run"] == 0
    for part in ("search", "classifiers", "keep_best"):
        assert after[part] == before[part]
    # 5 labels per class: each row's examples are every other labeled row, so the
    # monitor is the previous, leave-one-out, monitor exactly.
    for setting in after["settings"]:
        assert setting["monitor"] == pytest.approx(setting["monitor_loo"])
    assert "settings and ranking: run 1" in (tmp_path / "selection.md").read_text()
