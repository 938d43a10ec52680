"""ResNet-18's weight initialisation: PyTorch's layer defaults against torchvision's.

ACTEncoder fits the CIFAR ResNet-18 (``skact.networks.ResNet18``) with each
initialisation in :data:`VARIANTS`, with the same seeds (so the views, batches and the
label draws are paired), on the pool of a bench_fewshot.py data set; then a linear probe
and k-NN on k labels per class are scored on its test part, as in bench_fewshot.py.
The network is given to ACTEncoder as a callable of the input shape, which fit calls
after seeding weight initialisation from ``random_state``: the ``torchvision`` row is
the same model as ``encoder="resnet18"`` (the default since this benchmark; ``pytorch``
was the default before).

Writes ``resnet_init.json`` and ``resnet_init.md`` (command, machine, versions, date)
under ``benchmarks/results/``.

    python benchmarks/bench_resnet_init.py --epochs 10 --seeds 0 1      # CPU, ~1 h
    python benchmarks/bench_resnet_init.py --device cuda --datasets photo_tiles
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench_fewshot import DATASETS, pool_test_split, run_record

from skact import ACTEncoder
from skact.evaluation import few_shot_score
from skact.networks import ResNet18

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Variant name -> ResNet18 keyword arguments.
VARIANTS: dict[str, dict[str, Any]] = {
    "pytorch": {"weight_init": "pytorch"},
    "torchvision": {"weight_init": "torchvision"},
    "torchvision, zero_init_residual": {
        "weight_init": "torchvision",
        "zero_init_residual": True,
    },
}
KS = (1, 5, 10)


def resnet(input_shape: tuple[int, ...], **kwargs: Any) -> ResNet18:
    """The network ``encoder="resnet18"`` builds for ``input_shape``, with ``kwargs``."""
    return ResNet18(input_shape[0], None, cifar_stem=max(input_shape[1:]) <= 64, **kwargs)


def run_dataset(
    name: str,
    encoder_params: dict[str, Any],
    seeds: Sequence[int],
    n_draws: int,
    max_samples: int | None,
) -> list[dict[str, Any]]:
    """One result per variant on one data set."""
    X_pool, X_test, y_pool, y_test = pool_test_split(DATASETS[name], max_samples)
    smallest = int(np.min(np.unique(y_pool, return_counts=True)[1]))
    ks = [k for k in KS if k <= smallest // 2] or [1]
    results = []
    for variant, kwargs in VARIANTS.items():
        per_seed, seconds, final_loss = [], [], []
        for seed in seeds:
            encoder = ACTEncoder(
                **encoder_params,
                encoder=functools.partial(resnet, **kwargs),
                random_state=seed,
            )
            start = time.perf_counter()
            encoder.fit(X_pool)
            seconds.append(time.perf_counter() - start)
            final_loss.append(float(encoder.loss_curve_[-1]))
            per_seed.append(
                few_shot_score(
                    encoder, X_pool, y_pool, X_test, y_test, k=ks, n_draws=n_draws,
                    random_state=seed,
                )
            )  # fmt: skip
            print(
                f"  {name} | {variant} | seed {seed}: fit {seconds[-1]:.0f} s, "
                + ", ".join(f"{r.protocol} k={r.k} {r.mean:.3f}" for r in per_seed[-1]),
                flush=True,
            )
        scores = []
        for i, first in enumerate(per_seed[0]):
            flat = np.concatenate([res[i].scores for res in per_seed])
            scores.append(
                {
                    "k": first.k,
                    "protocol": first.protocol,
                    "mean": float(flat.mean()),
                    "std": float(flat.std()),
                    "seed_means": [float(res[i].mean) for res in per_seed],
                    # Per (seed, draw), paired across variants: the draws depend only
                    # on the seed and the labels.
                    "scores": [float(v) for res in per_seed for v in res[i].scores],
                }
            )
        results.append(
            {
                "dataset": name,
                "variant": variant,
                "kwargs": kwargs,
                "seeds": list(seeds),
                "n_draws": n_draws,
                "fit_seconds": seconds,
                "final_loss": final_loss,
                "scores": scores,
            }
        )
    return results


def markdown(report: dict[str, Any]) -> str:
    """Runs, then one table per data set (mean ± std over seeds x draws)."""
    run = report["run"]
    machine = run["machine"]
    lines = [
        "# ResNet-18 weight initialisation",
        "",
        "Few-shot test accuracy (mean ± std over seeds x label draws) of ACT with the "
        "CIFAR ResNet-18 under each initialisation; see benchmarks/bench_resnet_init.py.",
        "",
        f"`{run['command']}`  ",
        f"{run['date']}; {machine['platform']}, {machine['cpu_count']} CPUs, GPU "
        f"{machine['cuda']}; "
        + ", ".join(f"{k} {v}" for k, v in run["versions"].items())
        + "  ",
        f"encoder: `{json.dumps(run['config']['encoder_params'])}`, seeds "
        f"{run['config']['seeds']}, {run['config']['draws']} draws"
        + (f"  \nnote: {run['note']}" if run.get("note") else ""),
    ]
    for name in dict.fromkeys(r["dataset"] for r in report["results"]):
        rows = [r for r in report["results"] if r["dataset"] == name]
        columns = [f"{s['protocol']} k={s['k']}" for s in rows[0]["scores"]]
        lines += [
            "",
            f"## {name}",
            "",
            "| init | " + " | ".join(columns) + " | final loss | fit s |",
            "|---|" + "---|" * (len(columns) + 2),
        ]
        for r in rows:
            cells = [f"{s['mean']:.3f} ± {s['std']:.3f}" for s in r["scores"]]
            lines.append(
                f"| {r['variant']} | " + " | ".join(cells) + f" | "
                f"{np.mean(r['final_loss']):.3f} | {np.mean(r['fit_seconds']):.0f} |"
            )
        lines += paired_differences(rows, columns)
    return "\n".join(lines) + "\n"


def paired_differences(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """Each variant minus the first, paired per (seed, draw): mean ± standard error,
    and the share of pairs where the variant is ahead / behind."""
    base = rows[0]
    lines = [
        "",
        f"Paired difference from `{base['variant']}` (same seeds and label draws): mean "
        "± standard error of the mean; ahead / behind: pairs where the variant scores "
        "higher / lower.",
        "",
        "| init | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for r in rows[1:]:
        cells = []
        for mine, theirs in zip(r["scores"], base["scores"]):
            diff = np.asarray(mine["scores"]) - np.asarray(theirs["scores"])
            sem = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else float("nan")
            cells.append(
                f"{diff.mean():+.3f} ± {sem:.3f} "
                f"({int((diff > 0).sum())} / {int((diff < 0).sum())} of {diff.size})"
            )
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["digits_images"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--epochs", type=int, help="max_iter (default: ACTEncoder's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-samples", type=int, help="pool and test rows at most")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--note", help="a note stored with the run")
    args = parser.parse_args(argv)
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown data sets {unknown}; known: {', '.join(DATASETS)}")
    encoder_params: dict[str, Any] = {"device": args.device}
    if args.epochs is not None:
        encoder_params["max_iter"] = args.epochs
    run = run_record(
        "bench_resnet_init.py",
        argv,
        {
            "encoder_params": encoder_params,
            "seeds": args.seeds,
            "draws": args.draws,
            "max_samples": args.max_samples,
        },
    )
    run["note"] = args.note
    report: dict[str, Any] = {"run": run, "results": []}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        print(f"{name}:", flush=True)
        report["results"] += run_dataset(
            name, encoder_params, args.seeds, args.draws, args.max_samples
        )
        (args.output_dir / "resnet_init.json").write_text(json.dumps(report, indent=1))
        (args.output_dir / "resnet_init.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
