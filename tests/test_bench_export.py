"""The export throughput benchmark: a --quick run writes what it measured."""

import json

import pytest

from _benchmarks import benchmark_module

pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime)")
pytest.importorskip("onnxscript", reason="the export extra (onnxscript)")


def test_quick_run_writes_json_and_markdown(tmp_path, capsys):
    with benchmark_module("bench_export") as bench:
        argv = ["--quick", "--cases", "table", "--output-dir", str(tmp_path)]
        assert bench.main(argv) == 0
    report = json.loads((tmp_path / "export.json").read_text())
    (result,) = report["results"]
    assert result["rows"] == 2_000 and len(result["seconds"]["transform"]) == 2
    # The exported program computes transform's features.
    assert result["max_abs_difference"] <= 1e-4
    rates = result["rows_per_second"]
    assert rates["transform"] > 0 and rates["onnxruntime"] > 0
    markdown = (tmp_path / "export.md").read_text()
    assert report["run"]["command"] in markdown and "| table: rows of 64" in markdown
