"""Few-shot accuracy of ACT against baselines on scikit-learn's bundled data sets.

For each data set (70/30 stratified split, random_state=0) every representation is fitted
on the unlabeled training part; a linear probe and k-NN are then trained on k labelled
samples per class and scored on the test part, over many label draws and several training
seeds. Rows: raw features, PCA, ACT with its defaults, ACT with each other adversary, a
small sweep of alpha, other SCARF corruption rates (tables), half and twice the default
epochs, and the baseline objectives with the same encoder and epochs, each with its main
hyper-parameter swept over as many values as ACT's alpha (:data:`BASELINE_SWEEPS`).

Prints a table per data set and writes ``fewshot.json`` and ``fewshot.md`` (with the
command, machine, library versions and date) under ``benchmarks/results/``.

    python benchmarks/bench_fewshot.py                      # everything (slow)
    python benchmarks/bench_fewshot.py --datasets wine --merge
    python benchmarks/bench_fewshot.py --rows raw pca 'act*' --merge
    python benchmarks/bench_fewshot.py --list               # data sets and rows
    python benchmarks/bench_fewshot.py --quick              # tiny smoke configuration

``--merge`` keeps the results already in ``fewshot.json`` and replaces only the
(data set, row) pairs it recomputes, so the full benchmark can be run in pieces. It drops
rows whose name no longer exists; after a change of ACTEncoder's defaults, rerun every
row that uses the changed default (``'act*'``) so that no row mixes two defaults.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn import datasets
from sklearn.model_selection import train_test_split

from skact import ACTEncoder
from skact._auto import table_corruption_rate
from skact._environment import versions
from skact.evaluation import few_shot_score, pca_baseline, raw_baseline
from skact.io.images import is_image_input
from skact.objectives import OBJECTIVES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KS = (1, 5, 10)
ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0)
ADVERSARIES = ("ema", "previous", "batch")
#: SCARF corruption rates (tables only: images have their own augmentation).
CORRUPTION_RATES = (0.1, 0.15, 0.2, 0.4)
#: Rows with max_iter at these multiples of the default number of epochs.
EPOCH_FACTORS = (0.5, 2)
EPOCH_FACTOR = "epoch_factor"
BASELINE_OBJECTIVES = ("barlow_twins", "vicreg", "spectral", "nt_xent")
#: Each baseline's main hyper-parameter and its values, as many as ALPHAS (the default
#: among them is the plain row). Barlow Twins: the paper's 5e-3 (for 8192 features) to
#: about 1 / d and beyond for skact's 64. VICReg: sim = var = 25 against cov, the ratio
#: the paper's ablation varies (25:cov = 100 to 5). Spectral: the official code's mu = 1
#: (the norm bound) up to no bound (skact's default, None). NT-Xent: SimCLR's 0.05 to 1.
BASELINE_SWEEPS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "barlow_twins": ("lambd", (1e-3, 5e-3, 0.02, 0.05, 0.2)),
    "vicreg": ("cov_weight", (0.25, 0.5, 1.0, 2.5, 5.0)),
    "spectral": ("mu", (1.0, 4.0, 16.0, 64.0, None)),
    "nt_xent": ("temperature", (0.05, 0.1, 0.2, 0.5, 1.0)),
}
#: --quick: a small network, a few epochs, one seed, two draws, at most this many samples.
QUICK_ENCODER = {"hidden_layer_sizes": (32,), "n_components": 16, "projection_dim": 16}
QUICK_SAMPLES = 300


@dataclass
class Dataset:
    """A labelled data set and how its baselines treat it."""

    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    #: Pixels share one unit, so their baselines skip standardisation (stronger k-NN).
    standardize: bool
    description: str
    #: A split of its own (pool and test parts) instead of the stratified 70/30 split.
    split: Callable[[], tuple[Any, Any, np.ndarray, np.ndarray]] | None = None


#: scikit-image's bundled photographs (no download): each is a class of photo tiles.
PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
    "hubble_deep_field", "camera", "brick", "grass", "gravel",
)  # fmt: skip
PHOTO_TILE = 64
PHOTO_POOL_TILES, PHOTO_TEST_TILES = 200, 60


def photo_tiles() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tiles of scikit-image's bundled photographs (:data:`PHOTOS`): :func:`cut_tiles`."""
    from skimage import data  # optional: the bench extra

    return cut_tiles([np.asarray(getattr(data, name)()) for name in PHOTOS])


def cut_tiles(
    photos: Sequence[np.ndarray],
    tile: int = PHOTO_TILE,
    n_pool: int = PHOTO_POOL_TILES,
    n_test: int = PHOTO_TEST_TILES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """RGB tiles cut at random places from each photograph, labelled by photograph.

    The pool tiles come from the left 70% of each photograph and the test tiles from
    the right 30%, so no test tile shares a pixel with a pool tile (tiles drawn from one
    region overlap, as crops of one scene do). Grey photographs are repeated on three
    channels; an alpha channel is dropped.

    Returns
    -------
    X_pool, X_test : ndarray of shape (n, tile, tile, 3), uint8
    y_pool, y_test : ndarray of int
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[Any]] = {"X_pool": [], "X_test": [], "y_pool": [], "y_test": []}
    for label, photo in enumerate(photos):
        if photo.ndim == 2:
            photo = np.repeat(photo[:, :, None], 3, axis=2)
        photo = photo[:, :, :3]
        cut = int(0.7 * photo.shape[1])
        regions = (("pool", photo[:, :cut], n_pool), ("test", photo[:, cut:], n_test))
        for part, region, n in regions:
            rows = rng.integers(0, region.shape[0] - tile + 1, n)
            cols = rng.integers(0, region.shape[1] - tile + 1, n)
            parts[f"X_{part}"] += [
                region[r : r + tile, c : c + tile] for r, c in zip(rows, cols)
            ]
            parts[f"y_{part}"] += [label] * n
    X_pool, X_test = (np.stack(parts[k]).astype(np.uint8) for k in ("X_pool", "X_test"))
    y_pool, y_test = (np.asarray(parts[k]) for k in ("y_pool", "y_test"))
    order = rng.permutation(len(y_pool))  # classes interleaved, as a real folder is not
    return X_pool[order], X_test, y_pool[order], y_test


def _photo_tiles_whole() -> tuple[np.ndarray, np.ndarray]:
    X_pool, X_test, y_pool, y_test = photo_tiles()
    return np.concatenate([X_pool, X_test]), np.concatenate([y_pool, y_test])


#: Other bundled photographs (none of :data:`PHOTOS`; grey, RGB and RGBA ones), for
#: the harder set of regions within photographs.
REGION_PHOTOS = (
    "moon", "page", "text", "clock", "coins", "retina", "cell", "logo",
    "colorwheel", "stereo_motorcycle",
)  # fmt: skip
REGION_POOL_TILES, REGION_TEST_TILES = 100, 30


def _bundled_photo(name: str) -> np.ndarray:
    from skimage import data  # optional: the bench extra

    image = getattr(data, name)()
    return np.asarray(image[0] if isinstance(image, tuple) else image)


def photo_regions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tiles labelled by *region within a photograph*: the top and the bottom half of
    each of :data:`REGION_PHOTOS` are two classes (20 in all).

    Harder than :func:`photo_tiles`' "which photograph": the two halves of one
    photograph share its colours, grain and subject (the moon's craters, a page of
    text, rows of coins), so a representation has to tell regions of one scene apart,
    not only scenes. Pool and test tiles come from disjoint parts of each half
    (:func:`cut_tiles`): 2,000 pool and 600 test tiles of 64 px.
    """
    halves = []
    for name in REGION_PHOTOS:
        photo = _bundled_photo(name)
        middle = photo.shape[0] // 2
        halves += [photo[:middle], photo[middle:]]
    return cut_tiles(halves, n_pool=REGION_POOL_TILES, n_test=REGION_TEST_TILES, seed=3)


def _photo_regions_whole() -> tuple[np.ndarray, np.ndarray]:
    X_pool, X_test, y_pool, y_test = photo_regions()
    return np.concatenate([X_pool, X_test]), np.concatenate([y_pool, y_test])


def _digits_images() -> tuple[np.ndarray, np.ndarray]:
    digits = datasets.load_digits()
    return digits.images, digits.target


DATASETS = {
    d.name: d
    for d in [
        Dataset(
            "digits_images",
            _digits_images,
            False,
            "8x8 digit images (1797, 10 classes)",
        ),
        Dataset(
            "digits_table",
            lambda: datasets.load_digits(return_X_y=True),
            False,
            "digits as rows of 64 pixels",
        ),
        Dataset(
            "breast_cancer",
            lambda: datasets.load_breast_cancer(return_X_y=True),
            True,
            "30 features (569, 2 classes)",
        ),
        Dataset(
            "wine",
            lambda: datasets.load_wine(return_X_y=True),
            True,
            "13 features (178, 3 classes)",
        ),
        Dataset(
            "photo_tiles",
            _photo_tiles_whole,
            False,
            f"{PHOTO_TILE}x{PHOTO_TILE} RGB tiles of {len(PHOTOS)} scikit-image "
            f"photographs, labelled by photograph ({PHOTO_POOL_TILES} pool and "
            f"{PHOTO_TEST_TILES} test tiles each, from disjoint parts of the photo)",
            split=photo_tiles,
        ),
        Dataset(
            "photo_regions",
            _photo_regions_whole,
            False,
            f"{PHOTO_TILE}x{PHOTO_TILE} RGB tiles of the top and bottom halves of "
            f"{len(REGION_PHOTOS)} other scikit-image photographs, labelled by half "
            f"(20 classes; {REGION_POOL_TILES} pool and {REGION_TEST_TILES} test tiles "
            "each, from disjoint parts of the half)",
            split=photo_regions,
        ),
    ]
}


def representation_rows() -> dict[str, dict[str, Any] | None]:
    """Row name -> ACTEncoder parameters (over the defaults), or None for a baseline.

    The default ACT configuration is the row ``act``; the adversary and alpha rows vary
    one parameter from it, so the defaults themselves are not repeated.
    """
    defaults = ACTEncoder().get_params()
    rows: dict[str, dict[str, Any] | None] = {"raw": None, "pca": None, "act": {}}
    for adversary in ADVERSARIES:
        if adversary != defaults["adversary"]:
            rows[f"act:adversary={adversary}"] = {"adversary": adversary}
    for alpha in ALPHAS:
        if alpha != defaults["alpha"]:
            rows[f"act:alpha={alpha:g}"] = {"alpha": alpha}
    # The tables here are all numbers: "auto" gives them the numeric rate, which is `act`.
    default_rate = table_corruption_rate(defaults["corruption_rate"], has_categorical=False)
    for rate in CORRUPTION_RATES:
        if rate != default_rate:
            rows[f"act:corruption_rate={rate:g}"] = {"corruption_rate": rate}
    for factor in EPOCH_FACTORS:
        rows[f"act:epochs=x{factor:g}"] = {EPOCH_FACTOR: factor}
    for objective in BASELINE_OBJECTIVES:
        rows[objective] = {"objective": objective}
        name, values = BASELINE_SWEEPS[objective]
        default = OBJECTIVES[objective]().get_params()[name]
        for value in values:
            if value != default:
                # scikit-learn's nested-parameter name, as a grid search sets it.
                key = f"objective__{name}"
                rows[f"{objective}:{name}={_fmt(value)}"] = {
                    "objective": objective,
                    key: value,
                }
    return rows


def _fmt(value: Any) -> str:
    return "None" if value is None else f"{value:g}"


def resolve_objective(params: dict[str, Any]) -> dict[str, Any]:
    """Replace ``objective`` and its ``objective__<name>`` entries by an instance.

    Rows store the objective's name and nested parameters (JSON in ``fewshot.json``);
    ACTEncoder takes an objective instance with them.
    """
    nested = {k: v for k, v in params.items() if k.startswith("objective__")}
    if not nested:
        return params
    rest = {k: v for k, v in params.items() if k not in nested}
    own = {k.removeprefix("objective__"): v for k, v in nested.items()}
    return {**rest, "objective": OBJECTIVES[params["objective"]](**own)}


def resolve_epochs(params: dict[str, Any], encoder_params: dict[str, Any], X: Any) -> dict:
    """Replace an epoch factor by ``max_iter``: the factor times the default epochs.

    The default is ``encoder_params["max_iter"]`` when given, else what ACTEncoder's
    ``max_iter="auto"`` resolves to for this input on this machine's device.
    """
    if EPOCH_FACTOR not in params:
        return params
    from skact import resolved_settings

    base = resolved_settings(ACTEncoder(**encoder_params), X)["max_iter"]
    rest = {k: v for k, v in params.items() if k != EPOCH_FACTOR}
    return {**rest, "max_iter": max(1, round(params[EPOCH_FACTOR] * base))}


def _select(names: Sequence[str], patterns: Sequence[str] | None, what: str) -> list[str]:
    if not patterns:
        return list(names)
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise SystemExit(
            f"unknown {what}: {', '.join(unmatched)}; known: {', '.join(names)}"
        )
    return chosen


def _image_support(X: np.ndarray, encoder_params: dict[str, Any]) -> str | None:
    """None when ACTEncoder fits ``X``'s kind of input, else why not."""
    if X.ndim == 2:
        return None
    probe = ACTEncoder(
        **{**encoder_params, "max_iter": 1, "batch_size": 8, "random_state": 0}
    )
    try:
        probe.fit(X[:16])
    except ValueError as exc:
        return str(exc).splitlines()[0]
    return None


def _machine() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    return info


def pool_test_split(
    dataset: Dataset, max_samples: int | None = None
) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """``X_pool, X_test, y_pool, y_test``: the data set's own split, else a stratified
    70/30 split (random_state=0); at most ``max_samples`` rows of each part."""
    if dataset.split is not None:
        X_pool, X_test, y_pool, y_test = dataset.split()
    else:
        X, y = dataset.load()
        X_pool, X_test, y_pool, y_test = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=0
        )
    if max_samples is not None:
        X_pool, y_pool = X_pool[:max_samples], y_pool[:max_samples]
        X_test, y_test = X_test[:max_samples], y_test[:max_samples]
    return X_pool, X_test, y_pool, y_test


def run_record(
    script: str, argv: Sequence[str] | None, config: dict[str, Any]
) -> dict[str, Any]:
    """What a results file says of a run: the command (``argv``, or the process's
    arguments when None), date, machine, library versions and ``config``."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    return {
        "command": shlex.join(["python", f"benchmarks/{script}", *arguments]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": versions(),
        "config": config,
    }


def run_dataset(
    dataset: Dataset,
    rows: dict[str, dict[str, Any] | None],
    encoder_params: dict[str, Any],
    seeds: Sequence[int],
    n_draws: int,
    max_samples: int | None,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Score every row on one data set; one result dict per row."""
    X_pool, X_test, y_pool, y_test = pool_test_split(dataset, max_samples)
    # k at most half the smallest class, so that the draws still differ.
    smallest = int(np.min(np.unique(y_pool, return_counts=True)[1]))
    ks = [k for k in KS if k <= smallest // 2] or [1]
    results = []
    images = is_image_input(X_pool)
    for row, params in rows.items():
        if images and params is not None and "corruption_rate" in params:
            continue  # a tabular augmentation setting: the same model as `act` here
        per_seed: list[list[Any]] = []
        fit_seconds = []
        representation: Any = None
        for seed in seeds:
            # Baselines have no training randomness: fitted once, scored with every
            # seed's label draws.
            if params is not None or representation is None:
                start = time.perf_counter()
                if params is None:
                    make = raw_baseline if row == "raw" else pca_baseline
                    representation = make(standardize=dataset.standardize).fit(X_pool)
                else:
                    row_params = resolve_objective(
                        resolve_epochs(params, encoder_params, X_pool)
                    )
                    representation = ACTEncoder(
                        **{**encoder_params, **row_params, "random_state": seed}
                    ).fit(X_pool)
                fit_seconds.append(time.perf_counter() - start)
                log(f"  {dataset.name} | {row} | seed {seed}: fit {fit_seconds[-1]:.1f} s")
            # random_state=seed: every row sees the same label draws for a given seed.
            per_seed.append(
                few_shot_score(
                    representation, X_pool, y_pool, X_test, y_test, k=ks,
                    n_draws=n_draws, random_state=seed,
                )
            )  # fmt: skip
        scores = seed_scores(per_seed)
        results.append(
            {
                "dataset": dataset.name,
                "row": row,
                "params": params,
                "seeds": list(seeds),
                "n_draws": n_draws,
                "n_pool": len(y_pool),
                "n_test": len(y_test),
                "fit_seconds": fit_seconds,
                "scores": scores,
            }
        )
    return results


def seed_scores(per_seed: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """One score dict per (protocol, k) from each seed's ``few_shot_score`` results:
    the mean and std over seeds x draws, each seed's mean, and every draw's score."""
    scores = []
    for i, first in enumerate(per_seed[0]):
        by_seed = [res[i].scores for res in per_seed]
        flat = np.concatenate(by_seed)
        scores.append(
            {
                "k": first.k,
                "protocol": first.protocol,
                "mean": float(flat.mean()),
                "std": float(flat.std()),
                "seed_means": [float(s.mean()) for s in by_seed],
                "scores": [[float(v) for v in s] for s in by_seed],
            }
        )
    return scores


def _cell(score: dict[str, Any], best: float) -> str:
    text = f"{score['mean']:.3f} ± {score['std']:.3f}"
    return f"**{text}**" if score["mean"] >= best - 1e-12 else text


def markdown(report: dict[str, Any]) -> str:
    """The Markdown report of a results dict (as saved in ``fewshot.json``)."""
    lines = ["# Few-shot accuracy: ACT against baselines", ""]
    lines += [
        "Test accuracy (mean ± std over training seeds x label draws) of a linear probe",
        "(logistic regression on standardised features) and k-NN (5 neighbours, fewer",
        "when k < 5) trained on k labelled samples per class of the unlabeled training",
        "part (70/30 stratified split, random_state=0). Best mean per column in bold.",
        "`act` is ACTEncoder's default configuration; `act:x=v` changes one parameter.",
        "Fit times are wall-clock seconds per fit on a shared machine: indicative only.",
        "",
        "## Runs",
        "",
    ]
    for i, run in enumerate(report["runs"]):
        machine = run["machine"]
        versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
        entry = [
            f"{i}. `{run['command']}`",
            f"   {run['date']}; {machine['platform']}, {machine['cpu_count']} CPUs"
            + (f", {machine['cuda']}" if machine.get("cuda") else "")
            + f"; {versions}",
            f"   encoder: `{json.dumps(run['config']['encoder_params'])}`, seeds "
            f"{run['config']['seeds']}, {run['config']['draws']} draws"
            + (" (quick)" if run["config"]["quick"] else ""),
        ]
        entry += [
            f"   skipped {name}: {why}" for name, why in run.get("skipped", {}).items()
        ]
        if run.get("note"):  # how the run was made, where the command does not say
            entry.append(f"   note: {run['note']}")
        lines += [line + "  " for line in entry[:-1]] + entry[-1:]  # "  ": line breaks
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for result in report["results"]:
        by_dataset.setdefault(result["dataset"], []).append(result)
    for name in [d for d in DATASETS if d in by_dataset]:
        results = by_dataset[name]
        columns = []
        for r in results:
            for s in r["scores"]:
                if (s["protocol"], s["k"]) not in columns:
                    columns.append((s["protocol"], s["k"]))
        columns.sort(key=lambda c: (c[0] != "linear", c[1]))
        best = {
            c: max(
                s["mean"]
                for r in results
                for s in r["scores"]
                if (s["protocol"], s["k"]) == c
            )
            for c in columns
        }
        lines += [
            "",
            f"## {name}: {DATASETS[name].description}",
            "",
            "| row | " + " | ".join(f"{p} k={k}" for p, k in columns) + " | fit s | run |",
            "|---" * (len(columns) + 3) + "|",
        ]
        for r in results:
            cells = {(s["protocol"], s["k"]): s for s in r["scores"]}
            row = [_cell(cells[c], best[c]) if c in cells else "" for c in columns]
            fit = f"{np.mean(r['fit_seconds']):.1f}"
            lines.append(f"| {r['row']} | " + " | ".join(row) + f" | {fit} | {r['run']} |")
        lines += _default_check(results)
    return "\n".join(lines) + "\n"


def _default_check(results: list[dict[str, Any]]) -> list[str]:
    """Default ACT against every other SSL row at k=5 (or the largest k below it)."""
    act = next((r for r in results if r["row"] == "act"), None)
    others = [r for r in results if r["params"] is not None and r["row"] != "act"]
    if act is None or not others:
        return []
    lines = ["", "Default `act` against the other self-supervised rows:", ""]
    for protocol in ("linear", "knn"):
        mine = [s for s in act["scores"] if s["protocol"] == protocol and s["k"] <= 5]
        if not mine:
            continue
        ref = max(mine, key=lambda s: s["k"])
        behind = []
        for r in others:
            s = next(
                (s for s in r["scores"] if (s["protocol"], s["k"]) == (protocol, ref["k"])),
                None,
            )
            if s is not None and s["mean"] > ref["mean"]:
                within = s["mean"] - ref["mean"] <= max(s["std"], ref["std"])
                behind.append(
                    f"{r['row']} {s['mean']:.3f} (+{s['mean'] - ref['mean']:.3f}, "
                    + ("within" if within else "beyond")
                    + " one std)"
                )
        verdict = "best of all SSL rows" if not behind else "behind " + "; ".join(behind)
        lines.append(f"- {protocol} k={ref['k']}: act {ref['mean']:.3f}, {verdict}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        metavar="NAME",
        help="data sets to run (names or shell patterns); default: all",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="NAME",
        help="rows to run (names or shell patterns, e.g. 'act*'); default: all",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2],
        help="training seeds (also seed the label draws)",
    )
    parser.add_argument("--draws", type=int, default=10, help="label draws per seed and k")
    parser.add_argument(
        "--epochs", type=int, help="max_iter of every encoder (default: ACTEncoder's)"
    )
    parser.add_argument("--device", default="auto", help="ACTEncoder device")
    parser.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default=None,
        help="ACTEncoder precision of every encoder (default: ACTEncoder's)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny configuration for "
        f"smoke tests: {QUICK_ENCODER}, 2 epochs, seed 0, 2 draws, at most "
        f"{QUICK_SAMPLES} samples",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where fewshot.json and fewshot.md go",
    )
    parser.add_argument(
        "--merge", action="store_true", help="keep other results already in fewshot.json"
    )
    parser.add_argument("--list", action="store_true", help="list data sets and rows")
    args = parser.parse_args(argv)

    rows = representation_rows()
    if args.list:
        for d in DATASETS.values():
            print(f"dataset {d.name}: {d.description}")
        for name, params in rows.items():
            print(f"row {name}: {params if params is not None else 'baseline'}")
        return 0
    dataset_names = _select(list(DATASETS), args.datasets, "data sets")
    rows = {name: rows[name] for name in _select(list(rows), args.rows, "rows")}
    encoder_params: dict[str, Any] = {"device": args.device}
    if args.precision is not None:
        encoder_params["precision"] = args.precision
    seeds, draws, max_samples = args.seeds, args.draws, None
    if args.quick:
        encoder_params.update(QUICK_ENCODER, max_iter=2)
        seeds, draws, max_samples = [0], 2, QUICK_SAMPLES
    if args.epochs is not None:
        encoder_params["max_iter"] = args.epochs

    def log(message: str) -> None:
        print(message, flush=True)

    skipped: dict[str, str] = {}
    run = run_record(
        "bench_fewshot.py",
        argv,
        {
            "encoder_params": encoder_params,
            "seeds": seeds,
            "draws": draws,
            "quick": args.quick,
            "max_samples": max_samples,
        },
    )
    run["skipped"] = skipped
    args.output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.output_dir / "fewshot.json", args.output_dir / "fewshot.md"
    report: dict[str, Any] = {"runs": [], "results": []}
    if args.merge and json_path.exists():
        report = json.loads(json_path.read_text())
        # A row named after a default that has since changed (act:alpha=0.03 once 0.03
        # is the default) no longer exists: drop it rather than show it as current.
        current = set(representation_rows())
        stale = sorted({r["row"] for r in report["results"] if r["row"] not in current})
        if stale:
            log(f"note: dropping rows that no longer exist: {', '.join(stale)}")
            report["results"] = [r for r in report["results"] if r["row"] in current]
    run_index = len(report["runs"])
    report["runs"].append(run)

    for name in dataset_names:
        dataset = DATASETS[name]
        X, _ = dataset.load()
        why = _image_support(X, encoder_params)
        if why is not None:
            skipped[name] = f"ACTEncoder rejects its {X.ndim}-d input here: {why}"
            log(f"note: skipping {name}: {skipped[name]}")
            continue
        log(f"{name}: {dataset.description}")
        new = run_dataset(dataset, rows, encoder_params, seeds, draws, max_samples, log)
        for result in new:
            result["run"] = run_index
        replaced = {(r["dataset"], r["row"]) for r in new}
        report["results"] = [
            r for r in report["results"] if (r["dataset"], r["row"]) not in replaced
        ] + new
        # Written after every data set, so an interrupted run keeps what it finished.
        json_path.write_text(json.dumps(report, indent=1))
        md_path.write_text(markdown(report))
    json_path.write_text(json.dumps(report, indent=1))
    md_path.write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
