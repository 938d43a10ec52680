"""Choosing ACT's settings with few labels, and classifiers that use the unlabeled rows.

On each data set (70/30 stratified split, random_state=0, as in bench_fewshot.py) the
pool gets ``k`` = 5 labels per class, drawn ``--draws`` times; every other pool row is
unlabeled (y = -1). The script measures four things:

1. **Ranking.** ACTEncoder is fitted on the pool for every setting of a grid (``alpha``
   x epochs at 0.5 and 1 times the default). For each label draw, every candidate score
   is compared with the test accuracy a linear probe on the labeled rows reaches: the
   Spearman rank correlation across the grid's settings, and the *regret* (best test
   accuracy of the grid minus that of the setting the score picks). Scores: the monitor
   (``ACTEncoder.score(X, y)``: 1-NN accuracy of each labeled row against at most 5
   other labeled rows per class), the previous monitor (leave-one-out 1-NN accuracy of
   the labeled rows, the same with 5 labels per class), a 3-fold cross-validated linear
   probe on the labeled rows' features, and the label-free score
   (``ACTEncoder.score(X)``: effective rank / width).
2. **GridSearchCV.** ``GridSearchCV(TransferClassifier(ACTEncoder(), probe),
   {"encoder__alpha": ALPHAS}, scoring=labeled_scorer("accuracy"))`` on the pool with
   y = -1 for unlabeled rows (the encoder is refitted on each fold's rows): the test
   accuracy of the alpha it chooses, against the default alpha and the best alpha in
   hindsight. ``refit=False``: the chosen alpha's model is the one fitted in 1 (same
   seed, same rows; ``fit`` ignores labels except for its monitor), so its test
   accuracy is read from there.
3. **Classifiers on ACT features.** Logistic regression on the labeled rows alone,
   against self-training and label spreading, which also see the unlabeled rows'
   features (``TransferClassifier`` with a frozen encoder), on ACT's features and on
   the raw (standardised) features.
4. **keep_best.** The default fit keeping the last epoch against ``keep_best="monitor"``
   (the epoch with the best monitor score), on the first ``--search-draws`` draws.

``--ranking-only`` runs part 1 alone and merges it into the saved results (the other
parts stay those of their run); ``--overlap`` fits the photo tiles with every pool row
labeled, where tiles of a class overlap, and sets the monitor and the previous monitor
against linear probes on the test tiles.

Writes ``selection.json`` and ``selection.md`` (command, machine, versions, date) under
``benchmarks/results/``.

    python benchmarks/bench_selection.py                         # all (about an hour)
    python benchmarks/bench_selection.py --datasets wine --merge
    python benchmarks/bench_selection.py --quick                 # smoke configuration
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_fewshot import (
    DATASETS,
    EPOCH_FACTOR,
    pool_test_split,
    resolve_epochs,
    run_record,
)
from scipy.stats import spearmanr
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from skact import ACTEncoder, TransferClassifier
from skact._callbacks import MONITOR_ROWS, loo_nn_accuracy
from skact.evaluation import labeled_scorer, raw_baseline, sample_k_shot

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATASET_NAMES = ("digits_images", "digits_table", "wine")
K = 5
ALPHAS = (0.01, 0.03, 0.1, 0.3)
EPOCH_FACTORS = (0.5, 1.0)
CV_FOLDS = 3
#: --quick: a small network, few epochs and rows, for the tests of the script.
QUICK_ENCODER = {"hidden_layer_sizes": (32,), "n_components": 8, "projection_dim": 8}
QUICK_SAMPLES = 240


def probe() -> Pipeline:
    """The linear probe of bench_fewshot.py: logistic regression, standardised input."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def semi_supervised_classifiers() -> dict[str, Any]:
    """Classifier name -> classifier, labeled-only first."""
    return {
        "logistic, labeled rows": probe(),
        "self-training": make_pipeline(
            StandardScaler(), SelfTrainingClassifier(LogisticRegression(max_iter=2000))
        ),
        "label spreading": make_pipeline(
            StandardScaler(), LabelSpreading(kernel="knn", n_neighbors=10)
        ),
    }


def partially_labeled(y: np.ndarray, k: int, draw: int) -> np.ndarray:
    """``y`` with -1 except for ``k`` rows per class, drawn with seed ``draw``."""
    kept = sample_k_shot(y, k, random_state=draw)
    target = np.full(len(y), -1, dtype=np.int64)
    target[kept] = y[kept]
    return target


def rank_correlation(score: Sequence[float], accuracy: Sequence[float]) -> float:
    """Spearman's rho of a score and test accuracy across settings (NaN if either is
    constant)."""
    if np.ptp(score) == 0 or np.ptp(accuracy) == 0:
        return float("nan")
    return float(spearmanr(score, accuracy).statistic)


def regret(score: Sequence[float], accuracy: Sequence[float]) -> float:
    """Best accuracy of the settings minus that of the one ``score`` ranks first."""
    return float(np.max(accuracy) - accuracy[int(np.argmax(score))])


def _summary(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    kept = array[~np.isnan(array)]
    return {
        "mean": float(kept.mean()) if kept.size else float("nan"),
        "std": float(kept.std()) if kept.size else float("nan"),
        "n": int(kept.size),
    }


def rank_settings(
    name: str,
    encoder_params: dict[str, Any],
    seed: int,
    split: tuple[Any, Any, np.ndarray, np.ndarray],
    targets: Sequence[np.ndarray],
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[tuple[float, float], ACTEncoder]]:
    """Part 1 of the module docstring: fit the grid, score it, rank the scores."""
    X_pool, X_test, _, y_test = split
    grid = [(alpha, factor) for factor in EPOCH_FACTORS for alpha in ALPHAS]
    settings: list[dict[str, Any]] = []
    encoders: dict[tuple[float, float], ACTEncoder] = {}
    for alpha, factor in grid:
        params = resolve_epochs(
            {**encoder_params, "alpha": alpha, EPOCH_FACTOR: factor}, encoder_params, X_pool
        )
        start = time.perf_counter()
        encoder = ACTEncoder(**params, random_state=seed).fit(X_pool)
        seconds = time.perf_counter() - start
        encoders[alpha, factor] = encoder
        pool, test = encoder.transform(X_pool), encoder.transform(X_test)
        row: dict[str, Any] = {
            "alpha": alpha,
            "epoch_factor": factor,
            "max_iter": params["max_iter"],
            "fit_seconds": seconds,
            "label_free": encoder.score(X_pool),
            "test_accuracy": [],
            "monitor": [],
            "monitor_loo": [],
            "cv_probe": [],
        }
        for d, target in enumerate(targets):
            rows = np.flatnonzero(target >= 0)
            row["test_accuracy"].append(
                float(probe().fit(pool[rows], target[rows]).score(test, y_test))
            )
            row["monitor"].append(encoder.score(X_pool, target))
            # The monitor before the few-shot estimate, on the same features.
            codes = torch.from_numpy(np.unique(target[rows], return_inverse=True)[1])
            row["monitor_loo"].append(
                loo_nn_accuracy(torch.from_numpy(pool[rows]), codes.ravel())
            )
            folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=d)
            row["cv_probe"].append(
                float(cross_val_score(probe(), pool[rows], target[rows], cv=folds).mean())
            )
        settings.append(row)
        log(
            f"  {name} | alpha={alpha:g} epochs x{factor:g} ({params['max_iter']}): "
            f"fit {seconds:.1f} s, test {np.mean(row['test_accuracy']):.3f}, "
            f"monitor {np.mean(row['monitor']):.3f}, label-free {row['label_free']:.3f}"
        )

    ranking = {}
    for criterion in ("monitor", "monitor_loo", "cv_probe", "label_free"):
        rhos, regrets = [], []
        for i in range(len(targets)):
            accuracy = [s["test_accuracy"][i] for s in settings]
            score = [
                s[criterion] if criterion == "label_free" else s[criterion][i]
                for s in settings
            ]
            rhos.append(rank_correlation(score, accuracy))
            regrets.append(regret(score, accuracy))
        ranking[criterion] = {"rho": _summary(rhos), "regret": _summary(regrets)}

    return settings, ranking, encoders


def run_dataset(
    name: str,
    encoder_params: dict[str, Any],
    seed: int,
    n_draws: int,
    n_search_draws: int,
    max_samples: int | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Every measurement of the module docstring on one data set."""
    dataset = DATASETS[name]
    X_pool, X_test, y_pool, y_test = pool_test_split(dataset, max_samples)
    draws = list(range(n_draws))
    targets = [partially_labeled(y_pool, K, d) for d in draws]
    default_alpha = ACTEncoder().get_params()["alpha"]
    settings, ranking, encoders = rank_settings(
        name, encoder_params, seed, (X_pool, X_test, y_pool, y_test), targets, log
    )

    full = [s for s in settings if s["epoch_factor"] == 1.0]
    by_alpha = {s["alpha"]: s for s in full}
    search_rows = []
    for d in draws[:n_search_draws]:
        start = time.perf_counter()
        search = GridSearchCV(
            TransferClassifier(ACTEncoder(**encoder_params, random_state=seed), probe()),
            {"encoder__alpha": list(ALPHAS)},
            scoring=labeled_scorer("accuracy"),
            cv=StratifiedKFold(CV_FOLDS, shuffle=True, random_state=d),
            refit=False,
        ).fit(X_pool, targets[d])
        chosen = search.best_params_["encoder__alpha"]
        accuracy = [by_alpha[a]["test_accuracy"][d] for a in ALPHAS]
        cv_scores = [float(v) for v in search.cv_results_["mean_test_score"]]
        search_rows.append(
            {
                "draw": d,
                "chosen_alpha": chosen,
                "cv_scores": cv_scores,
                "rho": rank_correlation(cv_scores, accuracy),
                "chosen": by_alpha[chosen]["test_accuracy"][d],
                "default": by_alpha[default_alpha]["test_accuracy"][d],
                "hindsight": max(accuracy),
                "seconds": time.perf_counter() - start,
            }
        )
        log(
            f"  {name} | GridSearchCV draw {d}: alpha {chosen:g} "
            f"({search_rows[-1]['seconds']:.0f} s), test {search_rows[-1]['chosen']:.3f}"
            f" (default {search_rows[-1]['default']:.3f}, "
            f"best {search_rows[-1]['hindsight']:.3f})"
        )

    default_encoder = encoders[default_alpha, 1.0]
    raw = raw_baseline(standardize=dataset.standardize).fit(X_pool)
    classifiers: dict[str, dict[str, list[float]]] = {}
    for features_name, features in (("ACT", default_encoder), ("raw", raw)):
        for clf_name, classifier in semi_supervised_classifiers().items():
            model = TransferClassifier(FrozenEstimator(features), classifier)
            scores = [
                float(model.fit(X_pool, target).score(X_test, y_test)) for target in targets
            ]
            classifiers.setdefault(features_name, {})[clf_name] = scores
        log(
            f"  {name} | {features_name} features: "
            + ", ".join(
                f"{c} {np.mean(v):.3f}" for c, v in classifiers[features_name].items()
            )
        )

    keep_best = []
    for d in draws[:n_search_draws]:
        encoder = ACTEncoder(**encoder_params, random_state=seed, keep_best="monitor")
        encoder.fit(X_pool, targets[d])
        rows = np.flatnonzero(targets[d] >= 0)
        pool, test = encoder.transform(X_pool), encoder.transform(X_test)
        keep_best.append(
            {
                "draw": d,
                "monitor": float(
                    probe().fit(pool[rows], targets[d][rows]).score(test, y_test)
                ),
                "last": by_alpha[default_alpha]["test_accuracy"][d],
                "best_epoch": int(np.argmax(encoder.monitor_curve_)) + 1,
                "epochs": len(encoder.monitor_curve_),
            }
        )
        log(
            f"  {name} | keep_best='monitor' draw {d}: test {keep_best[-1]['monitor']:.3f}"
            f" (last {keep_best[-1]['last']:.3f}), epoch {keep_best[-1]['best_epoch']}"
            f" of {keep_best[-1]['epochs']}"
        )

    return {
        "dataset": name,
        "description": dataset.description,
        "n_pool": len(y_pool),
        "n_test": len(y_test),
        "n_labeled": int(np.sum(targets[0] >= 0)),
        "seed": seed,
        "draws": n_draws,
        "search_draws": n_search_draws,
        "default_alpha": default_alpha,
        "settings": settings,
        "ranking": ranking,
        "search": search_rows,
        "classifiers": classifiers,
        "keep_best": keep_best,
    }


#: The data set of the overlap check: photo tiles cut at random places from one region
#: of each photograph, so that labeled tiles of a class overlap one another.
OVERLAP_DATASET = "photo_tiles"
OVERLAP_SHOTS = (1, 5)


def overlap_check(
    encoder_params: dict[str, Any],
    seed: int,
    n_draws: int,
    max_samples: int | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The monitor when every pool row is labeled and the rows overlap (``--overlap``).

    The default encoder is fitted on the photo tiles' pool with all its labels (they
    feed the monitor only); the monitor (``score(X, y)``) and the previous monitor
    (leave-one-out 1-NN of the labeled rows) are set against a linear probe on the
    test tiles (another part of each photograph) trained on 1 and 5 labels per class
    (mean over ``n_draws`` draws) and on every pool label.
    """
    dataset = DATASETS[OVERLAP_DATASET]
    X_pool, X_test, y_pool, y_test = pool_test_split(dataset, max_samples)
    start = time.perf_counter()
    encoder = ACTEncoder(**encoder_params, random_state=seed).fit(X_pool, y_pool)
    seconds = time.perf_counter() - start
    pool, test = encoder.transform(X_pool), encoder.transform(X_test)
    rows = np.arange(len(y_pool))
    if len(rows) > MONITOR_ROWS:  # the monitor follows a sample of this size
        rows = np.random.default_rng(seed).choice(rows, MONITOR_ROWS, replace=False)
    codes = torch.from_numpy(np.unique(y_pool[rows], return_inverse=True)[1].ravel())
    probes = {
        f"linear probe, {k} label{'s' if k > 1 else ''} per class": [
            float(probe().fit(pool[i], y_pool[i]).score(test, y_test))
            for i in (sample_k_shot(y_pool, k, random_state=d) for d in range(n_draws))
        ]
        for k in OVERLAP_SHOTS
    }
    probes["linear probe, every pool label"] = [
        float(probe().fit(pool, y_pool).score(test, y_test))
    ]
    result = {
        "dataset": OVERLAP_DATASET,
        "description": DATASETS[OVERLAP_DATASET].description,
        "n_pool": len(y_pool),
        "n_test": len(y_test),
        "fit_seconds": seconds,
        "max_iter": encoder.n_iter_,
        "monitor": encoder.score(X_pool, y_pool),
        "monitor_last_epoch": encoder.monitor_curve_[-1],
        "monitor_loo": loo_nn_accuracy(torch.from_numpy(pool[rows]), codes),
        "probes": probes,
    }
    log(
        f"  overlap | monitor {result['monitor']:.3f}, previous monitor "
        f"{result['monitor_loo']:.3f}, "
        + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in probes.items())
    )
    return result


def overlap_markdown(r: dict[str, Any]) -> list[str]:
    """The overlap check as a table."""
    lines = [
        "",
        f"## Overlapping rows: the monitor with every row labeled (run {r['run']})",
        "",
        f"{r['description']}: the default ACTEncoder ({r['max_iter']} epochs) fitted on "
        f"the {r['n_pool']} pool tiles with every label (labels feed the monitor only); "
        "the tiles of a class overlap one another. Linear probes are scored on the "
        f"{r['n_test']} test tiles (mean ± std over draws).",
        "",
        "| quantity | value |",
        "|---|---|",
        "| monitor, `score(X, y)` (1-NN of each labeled row against at most 5 other "
        "labeled rows per class, mean of 10 draws) | "
        f"{r['monitor']:.3f} |",
        f"| previous monitor (leave-one-out 1-NN of the labeled rows) | "
        f"{r['monitor_loo']:.3f} |",
    ]
    for name, values in r["probes"].items():
        shown = _mean_std(values) if len(values) > 1 else f"{values[0]:.3f}"
        lines.append(f"| {name} | {shown} |")
    return lines


def _ms(summary: dict[str, float]) -> str:
    if summary["n"] == 0:
        return "n/a"
    return f"{summary['mean']:+.2f} ± {summary['std']:.2f}"


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown: runs, then four tables per data set."""
    lines = [
        "# Choosing ACT's settings with few labels",
        "",
        f"{K} labels per class in the pool (70/30 stratified split, random_state=0), "
        "every other pool row unlabeled (y = -1); test accuracy of a linear probe "
        "(logistic regression on standardised features) trained on the labeled rows. "
        "Means over label draws; one training seed. See the docstring of "
        "benchmarks/bench_selection.py for the protocol.",
        "",
        "## Runs",
        "",
    ]
    for i, run in enumerate(report["runs"]):
        machine = run["machine"]
        lines += [
            f"{i}. `{run['command']}`  ",
            f"   {run['date']}; {machine['platform']}, {machine['cpu_count']} CPUs, "
            f"{machine['torch_threads']} torch threads; "
            + ", ".join(f"{k} {v}" for k, v in run["versions"].items())
            + "  ",
            f"   encoder: `{json.dumps(run['config']['encoder_params'])}`, "
            f"seed {run['config']['seed']}, {run['config']['draws']} draws, "
            f"{run['config']['search_draws']} for GridSearchCV and keep_best"
            + (f"  \n   note: {run['note']}" if run.get("note") else ""),
        ]
    lines += summary_markdown(report["results"])
    for result in report["results"]:
        lines += _dataset_markdown(result)
    if report.get("overlap"):
        lines += overlap_markdown(report["overlap"])
    return "\n".join(lines) + "\n"


def summary_markdown(results: Sequence[dict[str, Any]]) -> list[str]:
    """Two tables across data sets: choosing settings, and the classifiers."""
    lines = [
        "",
        "## Summary",
        "",
        "Choosing settings: Spearman's rho of each score with test accuracy across the "
        "grid (mean over draws), and the test accuracy of the default alpha, of the "
        "alpha GridSearchCV chooses and of the best alpha in hindsight, and of the "
        "default fit with each `keep_best` (mean over the GridSearchCV draws).",
        "",
        "| data set | rho monitor | rho previous monitor (LOO 1-NN) | rho CV probe | "
        "rho label-free | default alpha | GridSearchCV | best in hindsight | "
        "keep_best last | keep_best monitor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rho = {c: r["ranking"][c]["rho"]["mean"] for c in r["ranking"]}
        search, keep = r["search"], r["keep_best"]
        lines.append(
            f"| {r['dataset']} | "
            + " | ".join(
                "n/a" if np.isnan(rho.get(c, np.nan)) else f"{rho[c]:+.2f}"
                for c in ("monitor", "monitor_loo", "cv_probe", "label_free")
            )
            + " | "
            + " | ".join(
                f"{np.mean([s[key] for s in search]):.3f}" if search else "n/a"
                for key in ("default", "chosen", "hindsight")
            )
            + " | "
            + " | ".join(
                f"{np.mean([k[key] for k in keep]):.3f}" if keep else "n/a"
                for key in ("last", "monitor")
            )
            + " |"
        )
    names = list(next(iter(results[0]["classifiers"].values()))) if results else []
    lines += [
        "",
        "Classifiers on the default fit's features (mean over draws): logistic "
        "regression on the labeled rows alone, against self-training and label "
        "spreading, which also see the unlabeled rows.",
        "",
        "| data set | features | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for r in results:
        for features, scores in r["classifiers"].items():
            lines.append(
                f"| {r['dataset']} | {features} | "
                + " | ".join(f"{np.mean(scores[n]):.3f}" for n in names)
                + " |"
            )
    return lines


def _dataset_markdown(r: dict[str, Any]) -> list[str]:
    ranked = ""
    if r.get("ranking_run", r["run"]) != r["run"]:
        ranked = f"; settings and ranking: run {r['ranking_run']}"
    lines = [
        "",
        f"## {r['dataset']}: {r['description']} (run {r['run']}{ranked})",
        "",
        f"{r['n_pool']} pool rows, {r['n_labeled']} labeled; {r['n_test']} test rows.",
        "",
        "**Settings** (test accuracy and scores: mean over draws)",
        "",
        "| alpha | epochs | test accuracy | monitor | previous monitor (LOO 1-NN) | "
        "CV probe | label-free |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in r["settings"]:
        loo = f"{np.mean(s['monitor_loo']):.3f}" if "monitor_loo" in s else "n/a"
        lines.append(
            f"| {s['alpha']:g} | {s['max_iter']} (x{s['epoch_factor']:g}) | "
            f"{np.mean(s['test_accuracy']):.3f} | {np.mean(s['monitor']):.3f} | {loo} | "
            f"{np.mean(s['cv_probe']):.3f} | {s['label_free']:.3f} |"
        )
    names = {
        "monitor": "monitor: `score(X, y)` (run "
        f"{r.get('ranking_run', r['run'])}: "
        + (
            "each labeled row against at most 5 other labeled rows per class, "
            "mean of 10 draws; with 5 labels per class that is every other one, so "
            "the previous monitor exactly"
            if "monitor_loo" in r["settings"][0]
            else "LOO 1-NN on the labeled rows"
        )
        + ")",
        "monitor_loo": "previous monitor: LOO 1-NN on the labeled rows",
        "cv_probe": f"{CV_FOLDS}-fold CV linear probe on the labeled rows",
        "label_free": "label-free: `score(X)`, effective rank / width",
    }
    lines += [
        "",
        f"**Ranking** the {len(r['settings'])} settings, per draw (mean ± std over "
        f"{r['draws']} draws): Spearman's rho with test accuracy; regret = best test "
        "accuracy minus that of the setting the score ranks first",
        "",
        "| score | rho | regret |",
        "|---|---|---|",
    ]
    for criterion, values in r["ranking"].items():
        lines.append(
            f"| {names[criterion]} | {_ms(values['rho'])} | "
            f"{values['regret']['mean']:.3f} ± {values['regret']['std']:.3f} |"
        )
    if r["search"]:
        search = r["search"]
        chosen = ", ".join(f"{s['chosen_alpha']:g}" for s in search)
        lines += [
            "",
            f"**GridSearchCV** over alpha {list(ALPHAS)} with "
            f"`labeled_scorer('accuracy')`, {CV_FOLDS} folds (encoder refitted per fold), "
            f"{len(search)} draws; chosen alpha per draw: {chosen}",
            "",
            "| alpha | test accuracy |",
            "|---|---|",
            f"| default ({r['default_alpha']:g}) | "
            f"{_mean_std([s['default'] for s in search])} |",
            f"| chosen by GridSearchCV | {_mean_std([s['chosen'] for s in search])} |",
            f"| best in hindsight (per draw) | "
            f"{_mean_std([s['hindsight'] for s in search])} |",
            "",
            f"Rank correlation of GridSearchCV's CV score with test accuracy over the "
            f"alphas: {_ms(_summary([s['rho'] for s in search]))}.",
        ]
    lines += [
        "",
        f"**Classifiers** ({r['draws']} draws; self-training and label spreading also "
        "see the unlabeled pool rows' features)",
        "",
        "| features | " + " | ".join(next(iter(r["classifiers"].values()))) + " |",
        "|---|" + "---|" * len(next(iter(r["classifiers"].values()))),
    ]
    for features, scores in r["classifiers"].items():
        lines.append(
            f"| {features} | " + " | ".join(_mean_std(v) for v in scores.values()) + " |"
        )
    if r["keep_best"]:
        kb = r["keep_best"]
        epochs = ", ".join(f"{k['best_epoch']}/{k['epochs']}" for k in kb)
        lines += [
            "",
            f"**keep_best** (default setting, {len(kb)} draws; epoch kept by the monitor:"
            f" {epochs})",
            "",
            "| keep_best | test accuracy |",
            "|---|---|",
            f'| "last" (default) | {_mean_std([k["last"] for k in kb])} |',
            f'| "monitor" | {_mean_std([k["monitor"] for k in kb])} |',
        ]
    return lines


def _mean_std(values: Sequence[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _print(message: str) -> None:
    """The benchmark's progress lines, flushed as they come."""
    print(message, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", metavar="NAME", help="names or shell patterns"
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--draws", type=int, default=10, help="label draws")
    parser.add_argument(
        "--search-draws",
        type=int,
        default=3,
        help="draws for GridSearchCV and keep_best (each refits the encoder)",
    )
    parser.add_argument("--device", default="auto", help="ACTEncoder device")
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--merge", action="store_true", help="keep other data sets' results"
    )
    parser.add_argument("--note", help="a note stored with the run")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite selection.md from its JSON"
    )
    parser.add_argument(
        "--ranking-only",
        action="store_true",
        help="only part 1 (ranking the settings), merged into the saved results of the "
        "data sets, whose other parts are kept",
    )
    parser.add_argument(
        "--overlap",
        action="store_true",
        help=f"only the overlap check on {OVERLAP_DATASET} (needs scikit-image), merged "
        "into the saved results",
    )
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads((args.output_dir / "selection.json").read_text())
        (args.output_dir / "selection.md").write_text(markdown(saved))
        return 0

    names = [
        n for n in DATASET_NAMES
        if not args.datasets or any(fnmatch.fnmatchcase(n, p) for p in args.datasets)
    ]  # fmt: skip
    if not names:
        raise SystemExit(f"no data set matches; known: {', '.join(DATASET_NAMES)}")
    encoder_params: dict[str, Any] = {"device": args.device}
    max_samples = None
    draws, search_draws = args.draws, min(args.search_draws, args.draws)
    if args.quick:
        encoder_params.update(QUICK_ENCODER, max_iter=2)
        max_samples, draws, search_draws = QUICK_SAMPLES, 2, 1
    run = run_record(
        "bench_selection.py",
        argv,
        {
            "encoder_params": encoder_params,
            "seed": args.seed,
            "draws": draws,
            "search_draws": search_draws,
            "max_samples": max_samples,
        },
    )
    run["note"] = args.note
    args.output_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.output_dir / "selection.json"
    md_path = args.output_dir / "selection.md"
    report: dict[str, Any] = {"runs": [], "results": []}
    if (args.merge or args.ranking_only or args.overlap) and json_path.exists():
        report = json.loads(json_path.read_text())
    index = len(report["runs"])
    report["runs"].append(run)
    if args.overlap:
        checked = overlap_check(encoder_params, args.seed, draws, max_samples, _print)
        report["overlap"] = {**checked}
        report["overlap"]["run"] = index
        json_path.write_text(json.dumps(report, indent=1))
        md_path.write_text(markdown(report))
        print(markdown(report))
        return 0
    for name in names:
        if args.ranking_only:
            saved = {r["dataset"]: r for r in report["results"]}
            if name not in saved:
                raise SystemExit(f"--ranking-only: no saved results for {name}")
            dataset = DATASETS[name]
            split = pool_test_split(dataset, max_samples)
            targets = [partially_labeled(split[2], K, d) for d in range(draws)]
            settings, ranking, _ = rank_settings(
                name, encoder_params, args.seed, split, targets, _print
            )
            saved[name].update(settings=settings, ranking=ranking, ranking_run=index)
            json_path.write_text(json.dumps(report, indent=1))
            md_path.write_text(markdown(report))
            continue
        print(f"{name}:", flush=True)
        result = run_dataset(
            name, encoder_params, args.seed, draws, search_draws, max_samples, _print,
        )  # fmt: skip
        result["run"] = index
        report["results"] = [r for r in report["results"] if r["dataset"] != name]
        report["results"].append(result)
        json_path.write_text(json.dumps(report, indent=1))
        md_path.write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
