"""Few-shot accuracy against fit time of the CPU's image defaults (issue 28, item 3).

A configuration is what ``ACTEncoder()`` would do on a CPU if ``skact._auto`` said so:
a precision (``float32``, today's CPU default, or ``bfloat16``), the longer side of the
views (``CPU_VIEW_SIDE``) and a share of the pixel budget that sets the epochs
(``CPU_PIXEL_BUDGET``). Each is fitted with everything else left to "auto" on 2,000
64 px tiles of :func:`bench_fewshot.photo_tiles` (labelled by photograph) and
:func:`bench_fewshot.photo_regions` (labelled by region within a photograph, the harder
set), timed, and probed as in ``bench_fewshot.py`` (linear probe and k-NN, 1/5/10
labels per class, the same label draws for every configuration of a seed).

Usage::

    python benchmarks/bench_image_budget.py --seeds 0 --draws 10
    python benchmarks/bench_image_budget.py --configs float32/v32/x1 bf16/v24/x0.8 \
        --seeds 1 2 --merge

Fit times are wall-clock seconds: take them on an otherwise idle machine. Results go to
``benchmarks/results/image-budget.{json,md}`` (``--output-dir`` to change), and the
accuracy-against-time figure to ``docs/_static/image_budget.png`` (``--figure``).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import functools
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_fewshot import DATASETS, KS, pool_test_split, run_record, seed_scores

from skact import ACTEncoder, _auto, resolved_settings
from skact.evaluation import few_shot_score

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FIGURE = Path(__file__).resolve().parent.parent / "docs" / "_static" / "image_budget.png"
BENCH_DATASETS = ("photo_tiles", "photo_regions")
#: Today's pixel budget and view side (before any override).
BASE_BUDGET, BASE_SIDE = _auto.CPU_PIXEL_BUDGET, _auto.CPU_VIEW_SIDE


@dataclass(frozen=True)
class Config:
    """One candidate default: precision, view side and pixel-budget factor."""

    precision: str
    side: int
    budget: float

    @property
    def name(self) -> str:
        precision = "bf16" if self.precision == "bfloat16" else self.precision
        return f"{precision}/v{self.side}/x{self.budget:g}"

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """``skact._auto``'s view side and pixel budget set to this configuration's."""
        saved = _auto.CPU_VIEW_SIDE, _auto.CPU_PIXEL_BUDGET
        _auto.CPU_VIEW_SIDE = self.side
        _auto.CPU_PIXEL_BUDGET = round(BASE_BUDGET * self.budget)
        try:
            yield
        finally:
            _auto.CPU_VIEW_SIDE, _auto.CPU_PIXEL_BUDGET = saved


def _configs() -> dict[str, Config]:
    grid = [Config("float32", 32, f) for f in (0.25, 0.5, 1.0)]
    grid += [Config("bfloat16", 32, f) for f in (0.25, 0.5, 0.75, 1.0, 1.5)]
    grid += [Config("bfloat16", side, 1.0) for side in (24, 40, 48)]
    grid += [Config("bfloat16", 24, f) for f in (0.5, 0.8)]
    return {c.name: c for c in grid}


CONFIGS = _configs()
#: Today's CPU default for images.
OLD_DEFAULT = "float32/v32/x1"


@functools.cache
def _split(dataset: str) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The data set's pool and test parts, cut once per process for every
    configuration."""
    return pool_test_split(DATASETS[dataset])


def run_config(
    config: Config, dataset: str, seeds: Sequence[int], n_draws: int, log: Any
) -> dict[str, Any]:
    """Fit, time and probe one configuration on one data set, once per seed."""
    X_pool, X_test, y_pool, y_test = _split(dataset)
    per_seed, fit_seconds, settings = [], [], {}
    for seed in seeds:
        with config.applied():
            encoder = ACTEncoder(precision=config.precision, random_state=seed)
            settings = resolved_settings(encoder, X_pool)
            start = time.perf_counter()
            encoder.fit(X_pool)
            fit_seconds.append(time.perf_counter() - start)
        log(f"  {dataset} | {config.name} | seed {seed}: fit {fit_seconds[-1]:.1f} s")
        per_seed.append(
            few_shot_score(
                encoder, X_pool, y_pool, X_test, y_test, k=KS,
                n_draws=n_draws, random_state=seed,
            )
        )  # fmt: skip
    scores = seed_scores(per_seed)
    return {
        "dataset": dataset,
        "config": config.name,
        "precision": config.precision,
        "view_side": config.side,
        "budget": config.budget,
        "settings": {k: settings.get(k) for k in ("max_iter", "batch_size", "encoder")},
        "seeds": list(seeds),
        "fit_seconds": fit_seconds,
        "scores": scores,
    }


def time_config(config: Config, dataset: str, repeats: int, log: Any) -> dict[str, Any]:
    """Wall-clock seconds of ``repeats`` seeded fits (seeds 0, 1, ...) of one
    configuration, nothing else timed: run it on an otherwise idle machine."""
    X_pool = _split(dataset)[0]
    seconds = []
    for seed in range(repeats):
        with config.applied():
            encoder = ACTEncoder(precision=config.precision, random_state=seed)
            start = time.perf_counter()
            encoder.fit(X_pool)
            seconds.append(time.perf_counter() - start)
        log(f"  timing | {dataset} | {config.name} | seed {seed}: {seconds[-1]:.1f} s")
    return {"dataset": dataset, "config": config.name, "fit_seconds": seconds}


def config_seconds(report: dict[str, Any], result: dict[str, Any]) -> float:
    """A configuration's fit time: its timing run's mean where there is one (an idle
    machine, fits alone), else the mean of the accuracy run's fits."""
    for timing in report.get("timings", []):
        if timing["config"] == result["config"]:
            return float(np.mean(timing["fit_seconds"]))
    return float(np.mean(result["fit_seconds"]))


def _score(result: dict[str, Any], protocol: str, k: int) -> dict[str, Any]:
    return next(s for s in result["scores"] if s["protocol"] == protocol and s["k"] == k)


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown: the runs, then a table per data set."""
    lines = [
        "# Image defaults on a CPU: few-shot accuracy against fit time",
        "",
        "Configurations `precision/v<view side>/x<pixel budget factor>`: what "
        "`ACTEncoder()` does on a CPU with `skact._auto.CPU_VIEW_SIDE` and "
        "`CPU_PIXEL_BUDGET` set so (x1: today's budget, 20 epochs of 2,000 views of "
        f"32 px); `{OLD_DEFAULT}` is today's default. Test accuracy, mean ± std over "
        "seeds x label draws; fit s: mean wall-clock seconds of one fit of the 2,000 "
        "pool images, from the timing run (`--timing`: fits alone, on an otherwise "
        "idle machine) where there is one.",
        "",
        "## Runs",
        "",
    ]
    for i, run in enumerate(report["runs"]):
        machine = run["machine"]
        lines.append(f"{i}. `{run['command']}`  ")
        lines.append(
            f"   {run['date']}; {machine['platform']}, {machine['cpu_count']} CPUs, "
            f"{machine['torch_threads']} torch threads"
            + (f"  \n   note: {run['note']}" if run.get("note") else "")
        )
    columns = [("linear", k) for k in KS] + [("knn", k) for k in KS]
    names = {"linear": "linear", "knn": "k-NN"}
    header = " | ".join(f"{names[p]} k={k}" for p, k in columns)
    for dataset in dict.fromkeys(r["dataset"] for r in report["results"]):
        lines += [
            "",
            f"## {dataset}",
            "",
            f"| configuration | epochs | fit s | {header} | seeds | run |",
            "|" + "---|" * (len(columns) + 5),
        ]
        rows = [r for r in report["results"] if r["dataset"] == dataset]
        for r in sorted(rows, key=lambda r: config_seconds(report, r)):
            cells = [
                f"{_score(r, p, k)['mean']:.3f} ± {_score(r, p, k)['std']:.3f}"
                for p, k in columns
            ]
            lines.append(
                f"| {r['config']} | {r['settings']['max_iter']} | "
                f"{config_seconds(report, r):.1f} | "
                + " | ".join(cells)
                + f" | {','.join(map(str, r['seeds']))} | {r['run']} |"
            )
    return "\n".join(lines) + "\n"


def figure(report: dict[str, Any], path: Path) -> None:
    """Linear-probe accuracy (5 labels per class) against fit seconds, a panel per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One seed set (the first measured), so that every point is the same fits' kind.
    seeds = report["results"][0]["seeds"]
    results = [r for r in report["results"] if r["seeds"] == seeds]
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4))
    for ax, dataset in zip(np.atleast_1d(axes), datasets):
        rows = [r for r in results if r["dataset"] == dataset]
        families: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            family = f"{r['precision']}, views of {r['view_side']} px"
            families.setdefault(family, []).append(r)
        for label, members in sorted(families.items()):
            members.sort(key=lambda r: config_seconds(report, r))
            x = [config_seconds(report, r) for r in members]
            y = [_score(r, "linear", 5)["mean"] for r in members]
            ax.plot(x, y, marker="o", label=label)
            for r, xi, yi in zip(members, x, y):
                ax.annotate(f"x{r['budget']:g}", (xi, yi), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        plural = "s" if len(seeds) > 1 else ""
        ax.set_title(f"{dataset} (seed{plural} {', '.join(map(str, seeds))})")
        ax.set_xlabel("fit time of 2,000 64 px images (s, 2-core CPU)")
        ax.set_ylabel("linear probe accuracy, 5 labels per class")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=None, help="names or patterns")
    parser.add_argument("--datasets", nargs="+", default=list(BENCH_DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--merge", action="store_true", help="add to the saved results")
    parser.add_argument("--note", default=None, help="a note on this run")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument(
        "--timing",
        type=int,
        default=0,
        metavar="N",
        help="time N fits of each configuration on the first data set (no probing)",
    )
    args = parser.parse_args(argv)
    names = list(CONFIGS)
    if args.configs:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in args.configs)]
        if not names:
            parser.error(f"no configuration matches {args.configs}; known: {list(CONFIGS)}")
    path = args.output_dir / "image-budget.json"
    report: dict[str, Any] = {"runs": [], "results": []}
    if args.merge and path.exists():
        report = json.loads(path.read_text())
    run = run_record("bench_image_budget.py", argv, {"draws": args.draws})
    if args.note:
        run["note"] = args.note
    report["runs"].append(run)
    index = len(report["runs"]) - 1

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.timing:
        for name in names:
            timing = time_config(CONFIGS[name], args.datasets[0], args.timing, log)
            timing["run"] = index
            report["timings"] = [
                t for t in report.get("timings", []) if t["config"] != name
            ] + [timing]
            args.output_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=1) + "\n")
    for dataset in [] if args.timing else args.datasets:
        for name in names:
            result = run_config(CONFIGS[name], dataset, args.seeds, args.draws, log)
            result["run"] = index
            report["results"] = [
                r
                for r in report["results"]
                if not (r["dataset"] == dataset and r["config"] == name
                        and r["seeds"] == result["seeds"])
            ] + [result]  # fmt: skip
            args.output_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (args.output_dir / "image-budget.md").write_text(text)
    figure(report, args.figure)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
