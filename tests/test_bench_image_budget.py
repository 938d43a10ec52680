"""The image-budget benchmark (issue 28, item 3): its configurations, the harder
photo set, and how its results are reported."""

import numpy as np
import pytest

from skact import ACTEncoder, _auto, resolved_settings

from _benchmarks import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("bench_image_budget") as module:
        yield module


def _tiles(n=2000):
    return np.zeros((n, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("name", "view", "epochs"),
    [
        ("float32/v32/x1", (32, 32), 20),  # today's default
        ("bf16/v32/x0.5", (32, 32), 10),
        ("bf16/v24/x1", (24, 24), 35),  # 20 * (32 / 24) ** 2 = 35.6 epochs
        ("bf16/v48/x1", (48, 48), 8),
    ],
)
def test_a_configuration_sets_the_cpu_defaults_while_applied(bench, name, view, epochs):
    config = bench.CONFIGS[name]
    before = _auto.CPU_VIEW_SIDE, _auto.CPU_PIXEL_BUDGET
    with config.applied():
        got = resolved_settings(
            ACTEncoder(device="cpu", precision=config.precision), _tiles()
        )
    assert got["input_shape"] == (3, *view)
    assert got["max_iter"] == epochs
    assert got["precision"] == config.precision
    assert (_auto.CPU_VIEW_SIDE, _auto.CPU_PIXEL_BUDGET) == before


def test_a_configuration_is_undone_when_the_fit_fails(bench):
    before = _auto.CPU_VIEW_SIDE, _auto.CPU_PIXEL_BUDGET
    with pytest.raises(RuntimeError, match="boom"):
        with bench.CONFIGS["bf16/v40/x1"].applied():
            assert _auto.CPU_VIEW_SIDE == 40
            raise RuntimeError("boom")
    assert (_auto.CPU_VIEW_SIDE, _auto.CPU_PIXEL_BUDGET) == before


def test_the_old_default_is_what_acencoder_does_today(bench):
    config = bench.CONFIGS[bench.OLD_DEFAULT]
    assert (config.side, config.budget) == (_auto.CPU_VIEW_SIDE, 1.0)
    plain = resolved_settings(ACTEncoder(device="cpu", precision="float32"), _tiles())
    with config.applied():
        assert (
            resolved_settings(ACTEncoder(device="cpu", precision="float32"), _tiles())
            == plain
        )


def _result(config, seconds, linear5, dataset="photo_tiles"):
    scores = [
        {
            "protocol": p,
            "k": k,
            "mean": linear5 if (p, k) == ("linear", 5) else 0.5,
            "std": 0.01,
        }
        for p in ("linear", "knn")
        for k in (1, 5, 10)
    ]
    return {
        "dataset": dataset,
        "config": config,
        "precision": "bfloat16" if config.startswith("bf16") else "float32",
        "view_side": 32,
        "budget": float(config.rsplit("x", 1)[1]),
        "settings": {"max_iter": 20},
        "seeds": [0],
        "fit_seconds": seconds,
        "scores": scores,
        "run": 0,
    }


def _report(timings=()):
    return {
        "runs": [
            {
                "command": "python benchmarks/bench_image_budget.py",
                "date": "2026-12-08",
                "machine": {"platform": "Linux", "cpu_count": 2, "torch_threads": 2},
            }
        ],
        "results": [
            _result("float32/v32/x1", [90.0], 0.70),
            _result("bf16/v32/x1", [95.0], 0.69),
        ],
        "timings": list(timings),
    }


def test_fit_time_comes_from_the_timing_run_when_there_is_one(bench):
    report = _report()
    bf16 = report["results"][1]
    assert bench.config_seconds(report, bf16) == 95.0  # the accuracy run's fit
    report = _report([{"config": "bf16/v32/x1", "fit_seconds": [46.0, 48.0]}])
    assert bench.config_seconds(report, bf16) == 47.0
    text = bench.markdown(report)
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("| bf16") or line.startswith("| float32")
    ]
    # Sorted by fit time: the timed bf16 fit (47 s) before float32's 90 s.
    assert lines[0].startswith("| bf16/v32/x1 | 20 | 47.0 | 0.500 ± 0.010 | 0.690 ± 0.010")
    assert lines[1].startswith("| float32/v32/x1 | 20 | 90.0 |")


def test_the_figure_is_written(bench, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "budget.png"
    bench.figure(_report(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_photo_regions_is_a_harder_labelling_of_other_photographs():
    pytest.importorskip("skimage")
    with benchmark_module("bench_fewshot") as fewshot:
        X_pool, X_test, y_pool, y_test = fewshot.photo_regions()
        assert not set(fewshot.REGION_PHOTOS) & set(fewshot.PHOTOS)
    assert X_pool.shape == (2000, 64, 64, 3) and X_test.shape == (600, 64, 64, 3)
    assert X_pool.dtype == np.uint8
    assert np.bincount(y_pool).tolist() == [100] * 20
    assert np.bincount(y_test).tolist() == [30] * 20
