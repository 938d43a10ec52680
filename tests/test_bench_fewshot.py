"""The few-shot benchmark script, in its --quick configuration."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

from skact import ACTEncoder
from skact.evaluation import few_shot_score, raw_baseline
from skact.objectives import OBJECTIVES

from _benchmarks import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("bench_fewshot") as module:
        yield module


def test_rows_cover_baselines_objectives_adversaries_and_alphas(bench):
    rows = bench.representation_rows()
    defaults = ACTEncoder().get_params()
    assert rows["raw"] is None and rows["pca"] is None and rows["act"] == {}
    objectives = {p["objective"] for p in rows.values() if p and "objective" in p}
    assert objectives == {"barlow_twins", "vicreg", "spectral", "nt_xent"}
    adversaries = {p["adversary"] for p in rows.values() if p and "adversary" in p}
    assert adversaries | {defaults["adversary"]} == {"ema", "previous", "batch"}
    assert defaults["adversary"] not in adversaries  # the default row is not repeated
    alphas = {p["alpha"] for p in rows.values() if p and "alpha" in p}
    assert len(alphas | {defaults["alpha"]}) >= 4


def test_each_baseline_sweeps_its_parameter_over_as_many_values_as_alpha(bench):
    rows = bench.representation_rows()
    for objective, (name, values) in bench.BASELINE_SWEEPS.items():
        sweep = [p for p in rows.values() if p and p.get("objective") == objective]
        assert len(sweep) == len(values) == len(bench.ALPHAS)
        default = OBJECTIVES[objective]().get_params()[name]
        seen = []
        for params in sweep:
            built = bench.resolve_objective(params)["objective"]
            # The default row keeps the name: the objective with its defaults.
            seen.append(default if isinstance(built, str) else getattr(built, name))
            assert isinstance(built, str) or type(built) is OBJECTIVES[objective]
        assert sorted(seen, key=str) == sorted(values, key=str)
    assert json.dumps(rows)  # the rows are stored in fewshot.json as they are


def test_corruption_rows_are_skipped_for_images(bench, capsys):
    rows = bench.representation_rows()
    # The default, "auto", is 0.2 on these all-numeric sets: `act` is that rate, and
    # the others are rows (0.1, the mixed-table rate, among them).
    assert {r for r in rows if r.startswith("act:corruption_rate=")} == {
        "act:corruption_rate=0.1", "act:corruption_rate=0.15", "act:corruption_rate=0.4"
    }  # fmt: skip
    images = bench.DATASETS["digits_images"]
    params = {**bench.QUICK_ENCODER, "max_iter": 1}
    kept = {"raw": None, "act:corruption_rate=0.4": rows["act:corruption_rate=0.4"]}
    results = bench.run_dataset(images, kept, params, [0], 1, 100, print)
    assert [r["row"] for r in results] == ["raw"]
    capsys.readouterr()


def test_epoch_rows_scale_the_default_epochs_of_each_input_kind(bench):
    rows = bench.representation_rows()
    half, double = rows["act:epochs=x0.5"], rows["act:epochs=x2"]
    images, table = np.zeros((4, 8, 8)), np.zeros((4, 64))
    # ACTEncoder's max_iter="auto": 50 epochs for images, 100 for tables.
    assert bench.resolve_epochs(half, {}, images) == {"max_iter": 25}
    assert bench.resolve_epochs(double, {}, table) == {"max_iter": 200}
    assert bench.resolve_epochs(double, {"max_iter": 3}, images) == {"max_iter": 6}
    assert bench.resolve_epochs({"alpha": 0.3}, {}, table) == {"alpha": 0.3}


def test_quick_run_writes_json_and_markdown(bench, tmp_path, capsys):
    argv = [
        "--quick", "--datasets", "wine", "digits_images",
        "--rows", "raw", "act", "act:adversary=batch", "vicreg",
        "--output-dir", str(tmp_path),
    ]  # fmt: skip
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "fewshot.json").read_text())
    (run,) = report["runs"]
    assert run["command"] == "python benchmarks/bench_fewshot.py " + " ".join(argv)
    assert run["machine"]["cpu_count"] >= 1 and run["machine"]["platform"]
    assert {"torch", "scikit-learn"} <= set(run["versions"])
    assert run["date"][:2] == "20"

    # digits_images runs where ACTEncoder takes images, and is skipped with a note before.
    datasets = {r["dataset"] for r in report["results"]}
    if "digits_images" in run["skipped"]:
        assert "note: skipping digits_images" in out
        assert datasets == {"wine"}
    else:
        assert datasets == {"wine", "digits_images"}

    wine = {r["row"]: r for r in report["results"] if r["dataset"] == "wine"}
    assert list(wine) == ["raw", "act", "act:adversary=batch", "vicreg"]
    assert wine["act:adversary=batch"]["params"] == {"adversary": "batch"}
    for result in wine.values():
        assert [(s["protocol"], s["k"]) for s in result["scores"]] == [
            (p, k) for k in (1, 5, 10) for p in ("linear", "knn")
        ]
        for s in result["scores"]:
            flat = np.concatenate(s["scores"])
            assert flat.shape == (2,)  # quick: one seed, two draws
            assert s["mean"] == pytest.approx(flat.mean()) and s["std"] == pytest.approx(
                flat.std()
            )

    # The raw row is the documented protocol: standardised wine, draws seeded by the seed.
    X, y = load_wine(return_X_y=True)
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    expected = few_shot_score(
        raw_baseline().fit(X_pool), X_pool, y_pool, X_test, y_test, k=[1, 5, 10],
        n_draws=2, random_state=0,
    )  # fmt: skip
    for got, want in zip(wine["raw"]["scores"], expected, strict=True):
        np.testing.assert_allclose(got["scores"][0], want.scores)

    md = (tmp_path / "fewshot.md").read_text()
    assert run["command"] in md and "## wine" in md
    for row in wine:
        assert f"| {row} |" in md
    assert "Default `act` against the other self-supervised rows" in md


def test_merge_replaces_only_recomputed_rows(bench, tmp_path, capsys):
    common = ["--quick", "--datasets", "wine", "--output-dir", str(tmp_path)]
    assert bench.main([*common, "--rows", "raw", "pca"]) == 0
    first = json.loads((tmp_path / "fewshot.json").read_text())
    assert bench.main([*common, "--rows", "pca", "spectral", "--merge"]) == 0
    merged = json.loads((tmp_path / "fewshot.json").read_text())
    assert len(merged["runs"]) == 2
    rows = {r["row"]: r for r in merged["results"]}
    assert set(rows) == {"raw", "pca", "spectral"}
    assert (
        rows["raw"]["run"] == 0 and rows["pca"]["run"] == 1 and rows["spectral"]["run"] == 1
    )
    assert rows["raw"] == first["results"][0]
    # Without --merge the file starts afresh.
    assert bench.main([*common, "--rows", "raw"]) == 0
    fresh = json.loads((tmp_path / "fewshot.json").read_text())
    assert len(fresh["runs"]) == 1 and [r["row"] for r in fresh["results"]] == ["raw"]
    # A row that no longer exists (a default changed) is dropped by the next merge.
    path = tmp_path / "fewshot.json"
    report = json.loads(path.read_text())
    report["results"].append({**report["results"][0], "row": "act:alpha=12345"})
    path.write_text(json.dumps(report))
    assert bench.main([*common, "--rows", "pca", "--merge"]) == 0
    assert "dropping rows that no longer exist: act:alpha=12345" in capsys.readouterr().out
    merged = json.loads(path.read_text())
    assert sorted(r["row"] for r in merged["results"]) == ["pca", "raw"]


def test_selection_errors_and_listing(bench, capsys):
    with pytest.raises(SystemExit, match="unknown rows: nope"):
        bench.main(["--rows", "nope"])
    with pytest.raises(SystemExit, match="unknown data sets: mnist"):
        bench.main(["--datasets", "mnist"])
    assert bench.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "dataset digits_images" in out and "row act:adversary=batch" in out


def test_photo_tiles_keep_test_tiles_apart_from_pool_tiles(bench):
    # Each pixel holds its column index (mod 256 twice: high and low byte), so a tile
    # tells which columns of its photograph it came from.
    width = 300
    cols = np.arange(width)
    high, low = (np.broadcast_to(c, (100, width)) for c in (cols // 256, cols % 256))
    photo = np.stack([high, low, np.zeros((100, width), int)], axis=2).astype(np.uint8)
    grey = np.zeros((80, 120), np.uint8)
    X_pool, X_test, y_pool, y_test = bench.cut_tiles(
        [photo, grey], tile=16, n_pool=50, n_test=20, seed=0
    )
    assert X_pool.shape == (100, 16, 16, 3) and X_test.shape == (40, 16, 16, 3)
    assert np.bincount(y_pool).tolist() == [50, 50] and np.bincount(y_test).tolist() == [
        20,
        20,
    ]
    cut = int(0.7 * width)
    pool_cols = X_pool[y_pool == 0][..., 0].astype(int) * 256 + X_pool[y_pool == 0][..., 1]
    test_cols = X_test[y_test == 0][..., 0].astype(int) * 256 + X_test[y_test == 0][..., 1]
    assert pool_cols.max() < cut <= test_cols.min()
    assert not y_pool[:10].tolist() == sorted(y_pool[:10].tolist())  # interleaved
    # The same seed gives the same tiles.
    again = bench.cut_tiles([photo, grey], tile=16, n_pool=50, n_test=20, seed=0)
    assert np.array_equal(again[0], X_pool)
