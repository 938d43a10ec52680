"""The ResNet initialisation benchmark: its `torchvision` row is encoder="resnet18"."""

import functools
import json

import numpy as np
import pytest

from skact import ACTEncoder

from _benchmarks import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("bench_resnet_init") as module:
        yield module


def test_torchvision_variant_is_the_builtin_resnet18(bench):
    images = np.random.default_rng(0).random((24, 8, 8)).astype(np.float32)
    params = {"max_iter": 1, "batch_size": 12, "random_state": 3, "projection_dim": 8}
    builtin = ACTEncoder(encoder="resnet18", **params).fit(images)
    callable_ = functools.partial(bench.resnet, **bench.VARIANTS["torchvision"])
    variant = ACTEncoder(encoder=callable_, **params).fit(images)
    np.testing.assert_array_equal(builtin.transform(images), variant.transform(images))
    other = functools.partial(bench.resnet, **bench.VARIANTS["pytorch"])
    changed = ACTEncoder(encoder=other, **params).fit(images)
    assert not np.allclose(builtin.transform(images), changed.transform(images))


@pytest.mark.slow  # three ResNet-18 fits: ~20 s on 2 cores
def test_run_writes_a_table_per_data_set(bench, tmp_path):
    argv = ["--epochs", "1", "--seeds", "0", "--draws", "2", "--max-samples", "60"]
    argv += ["--output-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "resnet_init.json").read_text())
    assert [r["variant"] for r in report["results"]] == list(bench.VARIANTS)
    assert report["run"]["command"].endswith("--output-dir " + str(tmp_path))
    markdown = (tmp_path / "resnet_init.md").read_text()
    assert "## digits_images" in markdown
    assert "| torchvision, zero_init_residual |" in markdown


def test_paired_differences_by_hand(bench):
    def row(name, scores):
        return {"variant": name, "scores": [{"scores": scores}]}

    lines = bench.paired_differences(
        [row("pytorch", [0.5, 0.6, 0.7]), row("torchvision", [0.6, 0.6, 0.9])],
        ["linear k=1"],
    )
    # Differences 0.1, 0, 0.2: mean 0.1, std (ddof 1) 0.1, standard error 0.1 / sqrt 3.
    assert lines[-1] == "| torchvision | +0.100 ± 0.058 (2 / 0 of 3) |"
