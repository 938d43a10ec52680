"""Throughput of the exported ONNX feature extractor (onnxruntime) against ``transform``.

For each case a model is fitted (one epoch: throughput does not depend on what the
weights learned), exported with ``ACTEncoder.export(path.onnx)``, and the same inputs
are encoded by ``transform`` and by an onnxruntime session, alternately, ``--repeats``
times each (side by side, so that a drift of the machine's speed hits both). Reported:
rows (or images) per second of each (median over the repeats), the median of the
per-pair ratios, and the largest absolute difference between the two outputs.

Both sides run on the CPU with the same number of threads (``--threads``, default: the
machine's cores): torch's intra-op threads for ``transform``, onnxruntime's
``intra_op_num_threads`` for the session. The session is fed the whole input in
batches of ``--batch`` rows, as a server would; ``transform`` batches on its own.

Writes ``export.json`` and ``export.md`` (command, machine, versions, date) under
``benchmarks/results/``. Needs the ``export`` extra (onnx, onnxscript, onnxruntime).

    python benchmarks/bench_export.py
    python benchmarks/bench_export.py --quick          # smoke configuration
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_fewshot import run_record
from sklearn.datasets import load_digits

from skact import ACTEncoder

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _digits_table(n: int) -> np.ndarray:
    X = load_digits().data
    return np.resize(X, (n, X.shape[1])).astype(np.float64)


def _digits_images(n: int) -> np.ndarray:
    images = (load_digits().images * 16).clip(0, 255).astype(np.uint8)
    return np.resize(images, (n, *images.shape[1:]))


def _rgb_images(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


#: name -> (what a row is, data maker, rows, rows in --quick).
CASES: dict[str, tuple[str, Callable[[int], np.ndarray], int, int]] = {
    "table": ("rows of 64 numbers (digits as a table), default MLP", _digits_table,
              100_000, 2_000),
    "digits_images": ("8x8 grey images (digits), default network", _digits_images,
                      20_000, 500),
    "rgb_32": ("32x32 RGB uint8 images, default network", _rgb_images, 5_000, 200),
}  # fmt: skip


def _session(path: Path, threads: int) -> Any:
    import onnxruntime  # the export extra

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )


def _run_session(session: Any, name: str, X: np.ndarray, batch: int) -> np.ndarray:
    parts = [
        session.run(None, {name: X[i : i + batch]})[0] for i in range(0, len(X), batch)
    ]
    return np.concatenate(parts)


def run_case(
    name: str, n_rows: int, repeats: int, batch: int, threads: int
) -> dict[str, Any]:
    """Fit, export and time one case; see the module docstring."""
    what, make, _, _ = CASES[name]
    X = make(n_rows)
    fit_rows = X[: min(len(X), 2_000)]
    encoder = ACTEncoder(max_iter=1, random_state=0, device="cpu").fit(fit_rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        spec = encoder.export(path)
        (input_name,) = [i["name"] for i in spec["inputs"]]
        session = _session(path, threads)
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            expected = encoder.transform(X)  # warm-up of both sides, and the parity
            got = _run_session(session, input_name, X, batch)
            seconds: dict[str, list[float]] = {"transform": [], "onnxruntime": []}
            for _ in range(repeats):
                start = time.perf_counter()
                encoder.transform(X)
                seconds["transform"].append(time.perf_counter() - start)
                start = time.perf_counter()
                _run_session(session, input_name, X, batch)
                seconds["onnxruntime"].append(time.perf_counter() - start)
        finally:
            torch.set_num_threads(torch_threads)
    ratios = [t / o for t, o in zip(seconds["transform"], seconds["onnxruntime"])]
    return {
        "case": name,
        "description": what,
        "rows": len(X),
        "network": type(encoder.encoder_).__name__,
        "n_components": int(expected.shape[1]),
        "seconds": seconds,
        "rows_per_second": {
            side: len(X) / float(np.median(times)) for side, times in seconds.items()
        },
        "onnx_over_transform": float(np.median(ratios)),
        "ratio_range": [float(np.min(ratios)), float(np.max(ratios))],
        "max_abs_difference": float(np.max(np.abs(expected - got))),
    }


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown."""
    run = report["run"]
    machine = run["machine"]
    lines = [
        "# The exported feature extractor: onnxruntime against transform (CPU)",
        "",
        "Side by side in one process, alternating, on the same inputs; rows (images) "
        "per second at the median of the repeats; ratio: median of the per-pair ratios "
        "(range in brackets). See benchmarks/bench_export.py.",
        "",
        f"Command: `{run['command']}`  ",
        f"{run['date']}; {machine['platform']}, {machine['cpu_count']} CPUs; "
        + ", ".join(f"{k} {v}" for k, v in run["versions"].items())
        + f"; {report['threads']} threads on both sides, onnxruntime batches of "
        f"{report['batch']} rows, {report['repeats']} repeats"
        + (f"  \nnote: {report['note']}" if report.get("note") else ""),
        "",
        "| case | rows | network | transform rows/s | onnxruntime rows/s | "
        "onnxruntime / transform | max abs difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        low, high = r["ratio_range"]
        lines.append(
            f"| {r['case']}: {r['description']} | {r['rows']:,} | {r['network']} | "
            f"{r['rows_per_second']['transform']:,.0f} | "
            f"{r['rows_per_second']['onnxruntime']:,.0f} | "
            f"{r['onnx_over_transform']:.2f} ({low:.2f}-{high:.2f}) | "
            f"{r['max_abs_difference']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--note", help="a note stored with the run")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    report: dict[str, Any] = {
        "run": run_record("bench_export.py", argv, {"quick": args.quick}),
        "threads": args.threads,
        "batch": args.batch,
        "repeats": repeats,
        "note": args.note,
        "results": [],
    }
    for name in args.cases:
        rows = CASES[name][3] if args.quick else CASES[name][2]
        result = run_case(name, rows, repeats, args.batch, args.threads)
        report["results"].append(result)
        print(
            f"{name}: transform {result['rows_per_second']['transform']:,.0f} rows/s, "
            f"onnxruntime {result['rows_per_second']['onnxruntime']:,.0f} rows/s, "
            f"ratio {result['onnx_over_transform']:.2f}",
            flush=True,
        )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "export.json").write_text(json.dumps(report, indent=1))
    (args.output_dir / "export.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
