"""The throughput benchmark's paired measurement: what is timed and how it is summarised."""

import numpy as np
import pytest
import torch

from skact import _guards

from _benchmarks import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("bench_throughput") as module:
        yield module


def test_summary_takes_medians_of_rates_and_of_per_pair_ratios(bench):
    paired = {
        "seconds": {
            "fit": [1.0, 2.0, 4.0],
            "bare": [0.5, 1.0, 5.0],
            "conventional": [2.0, 4.0, 8.0],
        },
        "samples": {"fit": 100, "bare": 100, "conventional": 50},
    }
    summary = bench.summarise_paired(paired)
    # rates: fit 100, 50, 25; bare 200, 100, 20; conventional 25, 12.5, 6.25
    assert summary["samples_per_s"] == {"fit": 50.0, "bare": 100.0, "conventional": 12.5}
    # per-pair fit / bare: 0.5, 0.5, 1.25 (not the ratio of the medians, 0.5, by chance
    # equal here; fit / conventional: 4 in every pair)
    assert summary["fit_over_bare"] == {"median": 0.5, "q1": 0.5, "q3": 0.875}
    assert summary["fit_over_conventional"] == {"median": 4.0, "q1": 4.0, "q3": 4.0}
    assert summary["bare_over_conventional"]["median"] == 8.0
    assert summary["pairs"] == 3


def test_one_pair_has_its_ratio_as_median_and_quartiles(bench):
    assert bench._quartiles([0.9]) == {"median": 0.9, "q1": 0.9, "q3": 0.9}


def test_fit_epochs_after_the_first_are_each_paired_with_one_chunk_of_each(
    bench, monkeypatch
):
    """The fit runs all its epochs unchanged, the wrapper is gone afterwards, and every
    epoch but the first gets one epoch's worth of bare and conventional steps next to
    it: after the first paired epoch, before the second, neither pipeline always first."""
    bench.clock = bench.time.perf_counter
    params = {"batch_size": 64, "hidden_layer_sizes": (16,), "random_state": 0}
    case = bench.Case(
        "t", "tabular", torch.device("cpu"), (8,), {**params, "device": "cpu"},
        n_train=256, epochs=2, steps=2, transform_n=64, memory_n=64,
    )  # fmt: skip
    X = np.random.default_rng(0).standard_normal((256, 8)).astype(np.float32)
    first = bench.fit_seconds(case, X, 1)[1]
    bound = bench.bind(first, X)
    calls = []
    bare, conventional = bench.Bare(bound), bench.Conventional(case, first, bound, X, 0)
    for name, pipeline in (("Bare", bare), ("Conventional", conventional)):
        chunk = pipeline.chunk

        def recorded(steps, chunk=chunk, name=name):
            calls.append((name, steps))
            return chunk(steps)

        pipeline.chunk = recorded
    real_epoch = _guards.run_epoch_with_oom_retry

    def epoch(trainer, n_samples, take):
        calls.append(("epoch", trainer.step))
        return real_epoch(trainer, n_samples, take)

    monkeypatch.setattr(_guards, "run_epoch_with_oom_retry", epoch)
    paired, encoder = bench.measure_paired(case, X, bare, conventional)
    assert _guards.run_epoch_with_oom_retry is epoch
    assert encoder.n_iter_ == 3 and len(encoder.loss_curve_) == 3
    # 256 rows / 64 = 4 steps an epoch; ("epoch", steps taken before it)
    assert calls == [
        ("epoch", 0),
        ("epoch", 4),
        ("Bare", 4),
        ("Conventional", 4),
        ("Conventional", 4),
        ("Bare", 4),
        ("epoch", 8),
    ]
    assert [len(paired["seconds"][k]) for k in ("fit", "bare", "conventional")] == [2] * 3
    assert paired["samples"] == {"fit": 256, "bare": 256, "conventional": 256}
    assert paired["epoch_s"] == np.median(paired["seconds"]["fit"])
    assert paired["first_epoch_s"] > 0 and paired["outside_epochs_s"] > 0
