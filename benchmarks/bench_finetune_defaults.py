"""FineTunedClassifier's defaults: a small accuracy grid against the frozen linear probe.

An :class:`~skact.ACTEncoder` is pretrained (a short fit, no labels) on the pool half
of each data set; :class:`~skact.FineTunedClassifier` then fine-tunes a copy of it
(``FrozenEstimator``: not refitted) on ``k`` labeled rows per class of the pool, for
every setting of the grid, and is scored on the test half. The reference is a
logistic regression on the frozen encoder's features, fitted on the same labeled rows
(:func:`skact.evaluation.few_shot_score`, ``protocols=("linear",)``: the draws are its
draws, so each fine-tuning is paired with a probe on the same labels).

Data: scikit-learn's 8x8 digits, given as a table of their 64 pixels (an image encoder
on 8x8 images upsampled to 64 px is too slow for a grid on a 2-core CPU), and the wine
table. Accuracy only; no timing is measured.

Usage::

    python benchmarks/bench_finetune_defaults.py            # the grid (~10 CPU minutes)
    python benchmarks/bench_finetune_defaults.py --quick    # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits, load_wine
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from skact import ACTEncoder, FineTunedClassifier
from skact.evaluation import few_shot_score, sample_k_shot

GRID: dict[str, list[Any]] = {
    "head_learning_rate": [1e-2, 3e-2, 1e-1],
    "learning_rate": [1e-4, 3e-4, 1e-3],
    "max_iter": [10, 30],
}
DATASETS = {"digits": load_digits, "wine": load_wine}
KS = (5, 10)
RESULTS = Path(__file__).parent / "results"


def _draws(y: np.ndarray, k: int, n_draws: int, seed: int) -> list[np.ndarray]:
    """The labeled rows of each draw, as :func:`few_shot_score` draws them."""
    root = int(check_random_state(seed).randint(2**31 - 1))
    rng = np.random.RandomState([root, k])
    return [sample_k_shot(y, k, rng) for _ in range(n_draws)]


def run(n_draws: int, grid: dict[str, list], pretrain_iter: int) -> dict:
    """Score every grid setting and the probe; return the cells."""
    cells = []
    for name, load in DATASETS.items():
        X, y = load(return_X_y=True)
        X_pool, X_test, y_pool, y_test = train_test_split(
            X.astype(np.float32), y, test_size=0.5, stratify=y, random_state=0
        )
        encoder = ACTEncoder(max_iter=pretrain_iter, random_state=0).fit(X_pool)
        for k in KS:
            probe = few_shot_score(
                encoder,
                X_pool,
                y_pool,
                X_test,
                y_test,
                k=k,
                protocols=("linear",),
                n_draws=n_draws,
                random_state=0,
            )[0]
            draws = _draws(y_pool, k, n_draws, 0)
            for values in itertools.product(*grid.values()):
                params = dict(zip(grid, values, strict=True))
                scores, n_predicted = [], []
                for draw, rows in enumerate(draws):
                    target = np.full(len(y_pool), -1)
                    target[rows] = y_pool[rows]
                    model = FineTunedClassifier(
                        FrozenEstimator(encoder), random_state=draw, **params
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.fit(X_pool, target)
                    predicted = model.predict(X_test)
                    scores.append(float((predicted == y_test).mean()))
                    n_predicted.append(len(np.unique(predicted)))
                cells.append(
                    {
                        "dataset": name,
                        "k": k,
                        **params,
                        "accuracy": scores,
                        "mean": float(np.mean(scores)),
                        "probe": [float(s) for s in probe.scores],
                        "probe_mean": float(probe.mean),
                        "classes_predicted_min": int(min(n_predicted)),
                        "n_classes": len(np.unique(y)),
                    }
                )
                print(
                    f"{name:6} k={k:2} {params}: {np.mean(scores):.3f} "
                    f"(probe {probe.mean:.3f})",
                    flush=True,
                )
    return {"cells": cells}


def summarise(cells: list[dict], grid: dict[str, list]) -> list[dict]:
    """Per setting: mean accuracy minus the probe's, over data sets and k."""
    rows = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        mine = [c for c in cells if all(c[p] == v for p, v in params.items())]
        gaps = [c["mean"] - c["probe_mean"] for c in mine]
        rows.append(
            {
                **params,
                "mean_gap": float(np.mean(gaps)),
                "worst_gap": float(np.min(gaps)),
                "mean_accuracy": float(np.mean([c["mean"] for c in mine])),
                "collapsed_cells": sum(
                    c["classes_predicted_min"] < c["n_classes"] for c in mine
                ),
            }
        )
    return sorted(rows, key=lambda r: -r["mean_gap"])


def markdown(result: dict) -> str:
    """The result as a Markdown page."""
    meta = result["meta"]
    grid = result["grid"]
    lines = [
        "# FineTunedClassifier defaults: accuracy grid",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; {meta['note']}  ",
        f"Date: {meta['date']}; torch {meta['torch']}",
        "",
        f"Pretrained encoder: `ACTEncoder(max_iter={meta['pretrain_iter']}, "
        "random_state=0)` on the pool half (no labels); "
        f"{meta['n_draws']} draws of k labels per class (few_shot_score's draws), "
        "scored on the test half. Probe: logistic regression on the frozen features.",
        "",
        f"Rule: {meta['rule']}",
        "",
        "## Settings ranked by mean gap to the probe (over data sets and k)",
        "",
        "| " + " | ".join(grid) + " | mean acc | mean gap | worst gap | collapsed |",
        "|" + "---|" * (len(grid) + 4),
    ]
    for row in result["summary"]:
        lines.append(
            "| "
            + " | ".join(f"{row[p]:g}" for p in grid)
            + f" | {row['mean_accuracy']:.3f} | {row['mean_gap']:+.3f}"
            f" | {row['worst_gap']:+.3f} | {row['collapsed_cells']} |"
        )
    lines += [
        "",
        "## Every cell (mean accuracy over draws; probe on the same draws)",
        "",
        "| data | k | " + " | ".join(grid) + " | fine-tuned | probe |",
        "|" + "---|" * (len(grid) + 4),
    ]
    for c in result["cells"]:
        lines.append(
            f"| {c['dataset']} | {c['k']} | "
            + " | ".join(f"{c[p]:g}" for p in grid)
            + f" | {c['mean']:.3f} +- {np.std(c['accuracy']):.3f}"
            f" | {c['probe_mean']:.3f} +- {np.std(c['probe']):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the grid, print it and save it under ``benchmarks/results``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--pretrain-iter", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a smoke run; not saved")
    parser.add_argument("--out", default=str(RESULTS / "finetune-defaults"))
    args = parser.parse_args(argv)
    grid: dict[str, list[Any]] = GRID
    if args.quick:
        grid = {"head_learning_rate": [1e-1], "learning_rate": [1e-3], "max_iter": [2]}
        args.draws, args.pretrain_iter = 1, 2
    torch.set_num_threads(1)
    result = run(args.draws, grid, args.pretrain_iter)
    result["grid"] = grid
    result["summary"] = summarise(result["cells"], grid)
    result["meta"] = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch threads 1",
        "note": "other jobs shared the CPU (accuracy only; no timing is reported)",
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "pretrain_iter": args.pretrain_iter,
        "n_draws": args.draws,
        "rule": "the setting with the largest mean gap (fine-tuned minus probe "
        "accuracy, averaged over the 2 data sets x 2 k), among those that never "
        "predict fewer classes than there are in any draw",
    }
    best = next(r for r in result["summary"] if r["collapsed_cells"] == 0)
    result["chosen"] = {p: best[p] for p in grid}
    print("chosen:", result["chosen"])
    if args.quick:
        return
    Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    Path(args.out + ".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
