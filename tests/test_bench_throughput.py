"""The throughput benchmark's paired measurement: what is timed and how it is summarised."""

import json

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


# ------------------------------------------------------------ image throughput benchmark


@pytest.fixture(scope="module")
def images_bench():
    with benchmark_module("bench_image_throughput") as module:
        yield module


def test_variants_are_parsed_from_joined_tokens(images_bench):
    v = images_bench.parse_variant("bf16+channels_last+compile")
    assert (v.precision, v.channels_last, v.compile) == ("bfloat16", True, True)
    assert v.base == "bf16+channels_last"
    plain = images_bench.parse_variant("float32")
    assert (plain.precision, plain.channels_last, plain.compile) == (
        "float32", False, False
    )  # fmt: skip
    for bad in ("fp16", "bf16+float32", "bf16+bf16"):
        with pytest.raises(ValueError, match="variant"):
            images_bench.parse_variant(bad)


@pytest.mark.parametrize(
    ("variant", "dtype", "channels_last"),
    [("float32", torch.float32, False), ("bf16+channels_last", torch.bfloat16, True)],
)
def test_the_three_sides_share_network_batch_and_precision(
    images_bench, variant, dtype, channels_last
):
    """skact's step, the bare step and the pipeline run one network on batches of one
    shape, in the variant's precision and memory format."""
    v = images_bench.parse_variant(variant)
    with images_bench.memory_format(v.channels_last):
        setup = images_bench.make_setup("convnet", 16, v, 8, 32)
        trainer = setup.bound.trainer
        assert trainer.amp_dtype == (torch.bfloat16 if v.precision == "bfloat16" else None)
        assert setup.bare.bound is setup.bound
        seen = []
        trainer.encoder.register_forward_hook(
            lambda module, args, out: seen.append((args[0].shape, out.dtype))
        )
        layout = torch.channels_last if channels_last else torch.contiguous_format
        weight = next(p for p in trainer.encoder.parameters() if p.ndim == 4)
        assert weight.is_contiguous(memory_format=layout)
        premade = setup.bare.premade[0]
        piped = setup.pipeline_input()
        assert premade.shape == piped.shape == (2 * 8, 3, 24, 24)  # 16 px: 24 px views
        assert premade.is_contiguous(memory_format=layout)
        assert piped.is_contiguous(memory_format=layout)
        for side in (setup.skact_steps, setup.bare_steps, setup.pipeline_steps):
            side(1)
    assert len(seen) == 3
    assert {shape for shape, _ in seen} == {premade.shape}
    assert {out for _, out in seen} == {dtype}


def test_the_report_has_one_row_per_configuration(images_bench, tmp_path):
    argv = [
        "--quick", "--sizes", "16", "--networks", "convnet", "mlp", "--threads", "1",
        "--variants", "float32", "bf16+channels_last", "--batch-size", "8",
        "--images", "32", "--out", str(tmp_path),
    ]  # fmt: skip
    report = images_bench.main(argv)
    saved = json.loads((tmp_path / "throughput-images-cpu.json").read_text())
    assert saved["command"] == " ".join(argv) and saved["quick"] is True
    assert {"cpu", "torch", "torch_threads", "cpu_flags"} <= set(saved["machine"])
    assert set(saved["machine"]["cpu_flags"]) >= {"avx512_bf16", "amx_bf16"}
    assert saved["date"] and saved["load_average_end"] is not None
    rows = saved["results"]
    # The MLP has no memory format: its channels_last variant is skipped.
    assert [(r["network"], r["variant"]) for r in rows] == [
        ("convnet", "float32"),
        ("convnet", "bf16+channels_last"),
        ("mlp", "float32"),
    ]
    assert [r["autocast_dtype"] for r in rows] == ["None", "torch.bfloat16", "None"]
    for r in rows:
        assert r["batch_size"] == 8 and r["threads"] == 1 and r["n_views"] == 2
        assert set(r["images_per_s"]) == {"skact", "bare", "pipeline"}
        assert all(v > 0 for v in r["images_per_s"].values())
        assert set(r["ratios"]) == {
            "skact_over_bare", "skact_over_pipeline", "bare_over_pipeline"
        }  # fmt: skip
        assert [len(s) for s in r["seconds"].values()] == [saved["rounds"]] * 3
    markdown = (tmp_path / "throughput-images-cpu.md").read_text()
    table = [ln for ln in markdown.splitlines() if ln.startswith("| 16 ")]
    assert len(table) == 2 and "| convnet | 1 | bf16+channels_last |" in table[1]
    assert report["results"] == rows


def test_compile_pays_back_when_its_saving_over_a_default_fit_exceeds_it(images_bench):
    def row(variant, images_per_s, compile_s=None):
        return {
            "size": 64, "network": "convnet", "threads": 2, "variant": variant,
            "base_variant": variant.replace("+compile", ""), "batch_size": 100,
            "images_per_s": {"skact": images_per_s}, "compile_s": compile_s,
        }  # fmt: skip

    # 2,000 64 px images: views at 32 px, 20 epochs of 20 batches of 100 = 400 steps.
    assert images_bench.default_fit_steps("convnet", 64, 2000) == 400
    base = row("channels_last", 100.0)  # 1 s a step
    fast = row("channels_last+compile", 200.0, compile_s=100.0)  # saves 0.5 s a step
    slow = row("channels_last+compile", 200.0, compile_s=300.0)
    images_bench.payback([base, fast], 2000)
    assert fast["payback"]["saved_s_per_step"] == pytest.approx(0.5)
    assert fast["payback"]["paid_back"] is True  # 200 s saved > 100 s
    images_bench.payback([base, slow], 2000)
    assert slow["payback"]["paid_back"] is False
    assert "payback" not in base
