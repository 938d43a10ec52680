"""Few-shot accuracy of ACT features on a real mixed-type table (Palmer penguins).

The penguins table (``palmerpenguins`` package) has numeric measurements, two string
columns (island, sex) and missing values. The task: predict the species from few labels.
For each seed the table is split 70/30 (stratified); every representation is fitted on
the training part without labels, and a probe is trained on ``k`` labelled training
rows per class (``skact.evaluation.few_shot_score``, many draws) and scored on the test
part. Compared:

- ``onehot_raw``: one-hot categories + standardised numbers (mean-imputed, with missing
  indicators), the usual preprocessing pipeline, no learning;
- ``act_mixed``: ``ACTEncoder(handle_missing="indicator")`` on the raw DataFrame
  (categorical embeddings, per-column corruption);
- ``act_onehot``: the same ACTEncoder on the one-hot + standardised matrix, with the
  corruption rate the mixed table gets (``corruption_rate="auto"`` would give the
  all-numeric matrix 0.2; the comparison is of the two input paths, not of two rates).

Run ``python benchmarks/bench_mixed.py`` (about a minute on 2 cores); results go to
``benchmarks/results/mixed.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skact import ACTEncoder
from skact._auto import MIXED_CORRUPTION_RATE
from skact._environment import versions
from skact.evaluation import few_shot_score

CATEGORICAL = ["island", "sex"]


def load_table() -> tuple[pd.DataFrame, np.ndarray]:
    """The penguins features (7 columns, with gaps) and species labels."""
    from palmerpenguins import load_penguins

    df = load_penguins()
    y = df.pop("species").to_numpy()
    return df, y


def onehot_standardised(columns: list[str]) -> object:
    """One-hot categories and standardised numbers, missing values imputed."""
    numeric = [c for c in columns if c not in CATEGORICAL]
    return make_column_transformer(
        (make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), numeric),
        (
            make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"),
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
            ),
            CATEGORICAL,
        ),
    )


def act(seed: int, args: argparse.Namespace, **params: Any) -> ACTEncoder:
    """The ACT encoder shared by both ACT variants (only the input differs)."""
    return ACTEncoder(
        max_iter=args.max_iter,
        batch_size=args.batch_size,
        random_state=seed,
        device="cpu",
        **params,
    )


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    X, y = load_table()
    rows = []
    for seed in range(args.seeds):
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=seed
        )
        models = {
            "onehot_raw": onehot_standardised(list(X.columns)),
            "act_mixed": act(seed, args, handle_missing="indicator"),
            "act_onehot": make_pipeline(
                onehot_standardised(list(X.columns)),
                act(seed, args, corruption_rate=MIXED_CORRUPTION_RATE),
            ),
        }
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(X_tr)  # unlabeled
            fit_s = time.perf_counter() - start
            results = few_shot_score(
                model,
                X_tr,
                y_tr,
                X_te,
                y_te,
                k=args.k,
                protocols=("linear", "knn"),
                n_draws=args.draws,
                random_state=seed,
            )
            for res in results:
                rows.append(
                    {
                        "seed": seed,
                        "representation": name,
                        "k": res.k,
                        "protocol": res.protocol,
                        "mean": res.mean,
                        "std": res.std,
                        "scores": res.scores.tolist(),
                        "fit_seconds": fit_s,
                    }
                )
            print(
                f"seed {seed} {name:<11} fit {fit_s:5.1f}s  "
                + "  ".join(f"{r.protocol}@{r.k}={r.mean:.3f}" for r in results)
            )
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "load_average": os.getloadavg(),
        },
        "versions": {**versions(), "pandas": pd.__version__},
        "data": {
            "name": "palmerpenguins (load_penguins)",
            "n_samples": len(X),
            "columns": {c: str(X[c].dtype) for c in X.columns},
            "missing_cells": int(X.isna().sum().sum()),
            "target": "species (3 classes)",
            "split": "stratified 70/30 per seed; encoders fitted on the training part",
        },
        "settings": {
            "seeds": args.seeds,
            "k": args.k,
            "draws": args.draws,
            "max_iter": args.max_iter,
            "batch_size": args.batch_size,
            "encoder": "ACTEncoder defaults otherwise (MLP 512-512, 64 components)",
        },
        "rows": rows,
    }


def summary(report: dict) -> pd.DataFrame:
    """Mean accuracy over seeds and draws, per (protocol, k) and representation."""
    records = [
        {**{k: r[k] for k in ("representation", "protocol", "k")}, "score": s}
        for r in report["rows"]
        for s in r["scores"]
    ]
    table = pd.DataFrame(records).pivot_table(
        index=["protocol", "k"],
        columns="representation",
        values="score",
        aggfunc=["mean", "std"],
    )
    return table


def to_markdown(report: dict) -> str:
    table = summary(report)
    names = ["onehot_raw", "act_mixed", "act_onehot"]
    lines = [
        "# Mixed-type table benchmark: Palmer penguins, few-shot species",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs, "
        f"{report['machine']['torch_threads']} torch thread(s), load average "
        f"{', '.join(f'{x:.1f}' for x in report['machine']['load_average'])} at the end  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        "",
        f"Data: {report['data']['n_samples']} penguins, columns "
        + ", ".join(f"{c} ({t})" for c, t in report["data"]["columns"].items())
        + f"; {report['data']['missing_cells']} missing cells. "
        + report["data"]["split"]
        + ".",
        "",
        f"Accuracy on the test part, mean ± std over {report['settings']['seeds']} seeds "
        f"x {report['settings']['draws']} draws of k labelled rows per class.",
        "",
        "| probe | k | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for (protocol, k), row in table.iterrows():
        cells = [f"{row[('mean', n)]:.3f} ± {row[('std', n)]:.3f}" for n in names]
        lines.append(f"| {protocol} | {k} | " + " | ".join(cells) + " |")
    fits = pd.DataFrame(report["rows"]).groupby("representation")["fit_seconds"].mean()
    lines += [
        "",
        "Mean fit time (s, wall clock; see the load average above): "
        + ", ".join(f"{n} {fits[n]:.1f}" for n in names),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mixed.json").write_text(json.dumps(report, indent=1) + "\n")
    markdown = to_markdown(report)
    (args.out / "mixed.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
