"""Few-shot evaluation of frozen representations: k-shot draws, linear probe, k-NN.

These are the ACT paper's two protocols, scaled down to a handful of labels: a linear
classifier and a nearest-neighbour vote trained on ``k`` labelled samples per class of
frozen features, averaged over many random draws of those samples. They score with any
scikit-learn scorer (accuracy by default; balanced accuracy for imbalanced classes),
beside the score of always predicting the majority class. The baselines to beat, raw
inputs and their PCA, are :func:`image_baselines` and :func:`table_baselines` (the rows
of ``skact evaluate --baselines``). For model selection with few labels,
:func:`labeled_scorer` scores the labeled rows of a fold and
:class:`LabeledStratifiedKFold` gives every fold labeled rows of each class.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer, make_scorer
from sklearn.model_selection import StratifiedKFold
from sklearn.model_selection._split import _BaseKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils import _safe_indexing, check_random_state

from ._labels import semi_supervised_target
from .io.tables import is_missing

__all__ = [
    "FewShotResult",
    "LabeledStratifiedKFold",
    "few_shot_score",
    "image_baselines",
    "knn_probe",
    "labeled_scorer",
    "linear_probe",
    "majority_score",
    "pca_baseline",
    "raw_baseline",
    "results_table",
    "sample_k_shot",
    "table_baselines",
]


def sample_k_shot(y: Any, k: int, random_state: Any = None) -> np.ndarray:
    """Indices of ``k`` samples of each class, drawn without replacement.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels.
    k : int
        Samples per class; a class with fewer samples raises a ValueError.
    random_state : int, RandomState instance or None
        Seed of the draw.

    Returns
    -------
    ndarray of int of shape (k * n_classes,)
        Sorted indices into ``y``.

    Examples
    --------
    >>> sample_k_shot([0, 0, 1, 1, 1], k=2, random_state=0).shape
    (4,)
    """
    if k < 1:
        raise ValueError(f"k must be a positive number of samples per class, got {k}")
    y = np.asarray(y)
    missing = is_missing(y.ravel())
    if missing.any():
        raise ValueError(
            f"y has {int(missing.sum())} missing labels (NaN or None); drop those "
            "samples first."
        )
    rng = check_random_state(random_state)
    picked = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if members.size < k:
            shown = label.item() if isinstance(label, np.generic) else label
            raise ValueError(
                f"class {shown!r} has {members.size} samples, fewer than k={k}"
            )
        picked.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(picked))


#: A scorer: a scikit-learn scorer name, or ``scorer(estimator, X, y) -> float``.
Scoring = str | Callable[..., float]


def linear_probe(
    train_features: np.ndarray,
    train_labels: Any,
    test_features: np.ndarray,
    test_labels: Any,
    scoring: Scoring = "accuracy",
) -> float:
    """Test score of a logistic regression on standardised frozen features.

    Parameters
    ----------
    train_features : ndarray of shape (n_train, n_features)
    train_labels : array-like of shape (n_train,)
    test_features : ndarray of shape (n_test, n_features)
    test_labels : array-like of shape (n_test,)
    scoring : str or callable, default="accuracy"
        A scikit-learn scorer name (see :func:`sklearn.metrics.get_scorer_names`) or
        a scorer ``scorer(estimator, X, y) -> float``.

    Returns
    -------
    float
        The test score.
    """
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train_features, train_labels)
    return float(get_scorer(scoring)(probe, test_features, test_labels))


def knn_probe(
    train_features: np.ndarray,
    train_labels: Any,
    test_features: np.ndarray,
    test_labels: Any,
    n_neighbors: int = 5,
    scoring: Scoring = "accuracy",
) -> float:
    """Test score of a k-NN majority vote on Euclidean distance of frozen features.

    With fewer labelled samples per class than ``n_neighbors`` the vote uses that many
    neighbours instead (1-NN for one label per class).

    Parameters
    ----------
    train_features : ndarray of shape (n_train, n_features)
    train_labels : array-like of shape (n_train,)
    test_features : ndarray of shape (n_test, n_features)
    test_labels : array-like of shape (n_test,)
    n_neighbors : int, default=5
    scoring : str or callable, default="accuracy"
        As for :func:`linear_probe`.

    Returns
    -------
    float
        The test score.
    """
    labels = np.asarray(train_labels)
    per_class = int(np.min(np.unique(labels, return_counts=True)[1]))
    knn = KNeighborsClassifier(n_neighbors=max(1, min(n_neighbors, per_class)))
    knn.fit(train_features, labels)
    return float(get_scorer(scoring)(knn, test_features, test_labels))


@dataclass
class FewShotResult:
    """Scores of one representation over repeated k-shot draws.

    Attributes
    ----------
    k : int
        Labels per class.
    protocol : str
        ``"linear"`` or ``"knn"``.
    scores : ndarray of shape (n_draws,)
        Score of each draw.
    scoring : str, default="accuracy"
        What the scores measure: the scorer's name.
    """

    k: int
    protocol: str
    scores: np.ndarray
    scoring: str = "accuracy"

    @property
    def mean(self) -> float:
        """Mean score over the draws."""
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        """Standard deviation of the score over the draws."""
        return float(np.std(self.scores))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form, for JSON.

        Returns
        -------
        dict
            ``k``, ``protocol``, ``scoring``, ``mean``, ``std`` and the list of
            ``scores``.
        """
        return {
            "k": self.k,
            "protocol": self.protocol,
            "scoring": self.scoring,
            "mean": self.mean,
            "std": self.std,
            "scores": [float(v) for v in self.scores],
        }


#: Protocol name -> probe(train_features, train_labels, test_features, test_labels,
#: scoring=...) -> score.
_PROBES: dict[str, Callable[..., float]] = {"linear": linear_probe, "knn": knn_probe}


def few_shot_score(
    representation: Any,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    k: int | Sequence[int] = 5,
    protocols: Sequence[str] = ("linear", "knn"),
    n_draws: int = 10,
    random_state: Any = 0,
    scoring: Scoring = "accuracy",
) -> list[FewShotResult]:
    """Score a frozen representation with few labels per class.

    Parameters
    ----------
    representation : fitted transformer, or None
        Anything with ``transform`` (an :class:`~skact.ACTEncoder`, PCA, a pipeline). It
        is not refitted. None means ``X_train`` and ``X_test`` are precomputed features.
    X_train, y_train : array-like
        Pool from which the labelled samples are drawn, with their labels.
    X_test, y_test : array-like
        Held-out data to score on.
    k : int or sequence of int, default=5
        Labels per class.
    protocols : sequence of {"linear", "knn"}, default=("linear", "knn")
        Probes to run.
    n_draws : int, default=10
        Random draws of the labelled samples per ``k``.
    random_state : int, RandomState instance or None, default=0
        Seeds the draws. The same integer seed gives the same labelled samples for a
        given ``k``, whatever the other ``k`` and the representation, so results of
        several representations scored with one seed are paired draw by draw.
    scoring : str or callable, default="accuracy"
        A scikit-learn scorer name (see :func:`sklearn.metrics.get_scorer_names`;
        ``"balanced_accuracy"`` where the classes are imbalanced, since accuracy then
        rewards predicting the largest class: see :func:`majority_score`) or a scorer
        ``scorer(estimator, X, y) -> float``.

    Returns
    -------
    list of FewShotResult
        One per (k, protocol), in that order.

    See Also
    --------
    majority_score : The same cells for always predicting the majority class.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (40, 2)), rng.normal(5, 1, (40, 2))]
    >>> y = np.r_[np.zeros(40), np.ones(40)]
    >>> res = few_shot_score(None, X, y, X, y, k=1, protocols=["knn"], n_draws=3)
    >>> round(res[0].mean, 2)
    1.0
    """
    ks = _checked_protocol(k, protocols, n_draws)
    scorer, name = _scorer(scoring)
    if representation is None:
        train_features, test_features = np.asarray(X_train), np.asarray(X_test)
        if train_features.ndim != 2 or test_features.ndim != 2:
            raise ValueError(
                "precomputed features must be 2-d arrays (n_samples, n_features); got "
                f"shapes {train_features.shape} and {test_features.shape}"
            )
    else:
        if not hasattr(representation, "transform"):
            raise TypeError(
                "representation must be a fitted transformer (with a transform method) "
                f"or None for precomputed features, got {type(representation).__name__}"
            )
        train_features = np.asarray(representation.transform(X_train))
        test_features = np.asarray(representation.transform(X_test))
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(train_features) != len(y_train) or len(test_features) != len(y_test):
        raise ValueError(
            f"features and labels differ in length: {len(train_features)} training rows "
            f"for {len(y_train)} labels, {len(test_features)} test rows for "
            f"{len(y_test)} labels"
        )
    results = []
    for k_shot, draws in _k_shot_draws(y_train, ks, n_draws, random_state).items():
        for protocol in protocols:
            probe = _PROBES[protocol]
            scores = np.array(
                [
                    probe(
                        train_features[idx],
                        y_train[idx],
                        test_features,
                        y_test,
                        scoring=scorer,
                    )
                    for idx in draws
                ]
            )
            results.append(FewShotResult(k_shot, protocol, scores, name))
    return results


def _k_shot_draws(
    y: np.ndarray, ks: Sequence[int], n_draws: int, random_state: Any
) -> dict[int, list[np.ndarray]]:
    """k -> the labelled rows of each of ``n_draws`` draws, as :func:`few_shot_score`
    draws them: one stream per k (seeded by ``random_state`` and k), so the draws for
    a k do not depend on which other k are scored, and a shorter run's draws are the
    first of a longer one's."""
    root = int(check_random_state(random_state).randint(2**31 - 1))
    draws = {}
    for k_shot in ks:
        rng = np.random.RandomState([root, k_shot])
        draws[k_shot] = [sample_k_shot(y, k_shot, rng) for _ in range(n_draws)]
    return draws


def _checked_protocol(
    k: int | Sequence[int], protocols: Sequence[str], n_draws: int
) -> list[int]:
    """``k`` as a list, once ``k``, ``protocols`` and ``n_draws`` are checked."""
    ks = [int(k)] if isinstance(k, int | np.integer) else [int(v) for v in k]
    if not ks:
        raise ValueError("k must name at least one number of labels per class")
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    unknown = set(protocols) - set(_PROBES)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; use 'linear' or 'knn'")
    return ks


def _scorer(scoring: Scoring) -> tuple[Callable[..., float], str]:
    """The scorer ``scoring`` names (checked before any probe runs), and its name."""
    if isinstance(scoring, str):
        return get_scorer(scoring), scoring  # a ValueError names get_scorer_names
    return scoring, getattr(scoring, "__name__", repr(scoring))


def majority_score(
    y_train: Any,
    y_test: Any,
    k: int | Sequence[int] = 5,
    protocols: Sequence[str] = ("linear", "knn"),
    n_draws: int = 10,
    scoring: Scoring = "accuracy",
) -> list[FewShotResult]:
    """The score of always predicting the pool's most frequent class: the floor.

    A representation that scores below it has learned less than the class counts.
    The class is the most frequent of ``y_train`` (the pool the labels are drawn
    from), by :class:`~sklearn.dummy.DummyClassifier` with
    ``strategy="most_frequent"``: a k-shot draw holds ``k`` labels of every class,
    so the draws themselves have no majority. The result has the cells of
    :func:`few_shot_score` with the same arguments (one per ``k`` and protocol, each
    with ``n_draws`` equal scores), for :func:`results_table`.

    Parameters
    ----------
    y_train : array-like of shape (n_train,)
        Labels of the pool.
    y_test : array-like of shape (n_test,)
        Labels of the held-out data.
    k : int or sequence of int, default=5
    protocols : sequence of {"linear", "knn"}, default=("linear", "knn")
    n_draws : int, default=10
        As for :func:`few_shot_score`.
    scoring : str or callable, default="accuracy"
        As for :func:`few_shot_score`: accuracy gives the majority class's share of
        ``y_test``, balanced accuracy one over the number of classes.

    Returns
    -------
    list of FewShotResult

    Examples
    --------
    >>> y_pool, y_test = ["a"] * 6 + ["b"] * 2, ["a", "a", "a", "b"]
    >>> majority_score(y_pool, y_test, k=1, protocols=["knn"])[0].mean
    0.75
    >>> balanced = majority_score(y_pool, y_test, 1, ["knn"], scoring="balanced_accuracy")
    >>> balanced[0].mean
    0.5
    """
    ks = _checked_protocol(k, protocols, n_draws)
    scorer, name = _scorer(scoring)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    # The features are ignored: one column of zeros stands for them.
    dummy = DummyClassifier(strategy="most_frequent")
    dummy.fit(np.zeros((len(y_train), 1)), y_train)
    score = float(scorer(dummy, np.zeros((len(y_test), 1)), y_test))
    return [
        FewShotResult(k_shot, protocol, np.full(n_draws, score), name)
        for k_shot in ks
        for protocol in protocols
    ]


def results_table(results: Mapping[str, Sequence[FewShotResult]], digits: int = 3) -> str:
    """Format few-shot results of several representations as a Markdown table.

    One row per representation, one column per (protocol, k), each cell ``mean ± std``.

    Parameters
    ----------
    results : mapping of str to sequence of FewShotResult
        Representation name -> its results (as returned by :func:`few_shot_score`).
    digits : int, default=3
        Decimals shown.

    Returns
    -------
    str
        The table; a cell is empty where a representation lacks that (protocol, k).

    Examples
    --------
    >>> import numpy as np
    >>> res = {"raw": [FewShotResult(1, "linear", np.array([0.5, 0.7]))]}
    >>> print(results_table(res, digits=2))
    | representation | linear k=1 |
    |---|---|
    | raw | 0.60 ± 0.10 |
    """
    columns: list[tuple[str, int]] = []
    for rows in results.values():
        for r in rows:
            if (r.protocol, r.k) not in columns:
                columns.append((r.protocol, r.k))
    order = {"linear": 0, "knn": 1}
    columns.sort(key=lambda c: (order.get(c[0], 2), c[0], c[1]))
    lines = [
        "| representation | " + " | ".join(f"{p} k={k}" for p, k in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, rows in results.items():
        cells = {
            (r.protocol, r.k): f"{r.mean:.{digits}f} ± {r.std:.{digits}f}" for r in rows
        }
        lines.append(f"| {name} | " + " | ".join(cells.get(c, "") for c in columns) + " |")
    return "\n".join(lines)


def _flatten(X: Any) -> np.ndarray:
    X = np.asarray(X)
    return X.reshape(len(X), -1)


def raw_baseline(standardize: bool = True) -> Pipeline:
    """The "raw features" baseline: flattened (and by default standardised) inputs.

    Parameters
    ----------
    standardize : bool, default=True
        Scale each feature to unit variance. Right for tables, whose columns have
        different units; for pixels, which share one, k-NN is stronger without it (the
        linear probe standardises its input either way).

    Returns
    -------
    Pipeline
        Unfitted; fit it on the unlabeled pool (images are flattened to pixel rows).

    Examples
    --------
    >>> import numpy as np
    >>> raw_baseline().fit_transform(np.zeros((3, 2, 2))).shape
    (3, 4)
    """
    steps: list[Any] = [FunctionTransformer(_flatten)]
    if standardize:
        steps.append(StandardScaler())
    return make_pipeline(*steps)


def pca_baseline(
    n_components: float | int = 0.9, standardize: bool = True, random_state: Any = 0
) -> Pipeline:
    """The PCA baseline: flattened inputs projected on their principal components.

    Parameters
    ----------
    n_components : float or int, default=0.9
        Components kept: a number, or (below 1) the share of variance to explain.
    standardize : bool, default=True
        Standardise the features before PCA (right for tables; for pixels, which share
        one unit, PCA of the raw intensities is the classic and stronger choice).
    random_state : int, RandomState instance or None, default=0
        Passed to :class:`~sklearn.decomposition.PCA`.

    Returns
    -------
    Pipeline
        Unfitted.
    """
    steps: list[Any] = [FunctionTransformer(_flatten)]
    if standardize:
        steps.append(StandardScaler())
    steps.append(
        PCA(n_components=n_components, svd_solver="full", random_state=random_state)
    )
    return make_pipeline(*steps)


def image_baselines(n_components: float | int = 0.9) -> dict[str, Pipeline]:
    """The baselines of images, by name: their raw pixels and the pixels' PCA.

    The pixels are flattened and not standardised: they share one unit, and the
    classic baselines (stronger for k-NN) take the raw intensities. These are the
    rows ``skact demo`` and ``skact evaluate --baselines`` (on an image folder) print.

    Parameters
    ----------
    n_components : float or int, default=0.9
        Principal components kept, as for :func:`pca_baseline`.

    Returns
    -------
    dict of str to Pipeline
        ``"raw pixels"`` and ``"PCA (90% variance)"`` (the name says ``n_components``),
        unfitted: fit them on the unlabeled pool of images, arrays of shape
        ``(n_images, ...)``.

    See Also
    --------
    table_baselines : The baselines of a table.
    few_shot_score : Score each of them as a representation.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).integers(0, 256, (20, 8, 8))
    >>> baselines = image_baselines()
    >>> list(baselines)
    ['raw pixels', 'PCA (90% variance)']
    >>> baselines["raw pixels"].fit_transform(images).shape
    (20, 64)
    """
    return {
        "raw pixels": raw_baseline(standardize=False),
        f"PCA ({_share(n_components)})": pca_baseline(n_components, standardize=False),
    }


def _share(n_components: float | int) -> str:
    """How many components a PCA keeps, in words: ``90% variance`` or ``5 components``."""
    if isinstance(n_components, float) and n_components < 1:
        return f"{n_components:.0%} variance"
    return f"{n_components} components"


def table_baselines(
    X: Any, categorical: Any = None, n_components: float | int = 0.9
) -> dict[str, Pipeline]:
    """The baselines of a table, by name: its columns encoded as usual, and their PCA.

    Numeric columns are standardised; a missing number becomes its column's mean plus
    a missing-indicator column (as ``ACTEncoder(handle_missing="indicator")`` encodes
    it), a column with no number at all is kept as zeros. Categorical columns are
    one-hot encoded, a missing value (None, NaN) being a category of its own, and a
    category unseen in fit encoded as zeros. Each name says which of these the table
    needed. These are the rows ``skact evaluate --baselines`` prints for a table.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
        The table: float, or object with text in the categorical columns. It only
        names the baselines (whether its numeric columns have gaps); they are
        returned unfitted, for the rows they are fitted on.
    categorical : array-like of bool of shape (n_features,) or None, default=None
        Which columns are categorical. None: for a DataFrame, its columns of a
        non-numeric dtype (text, pandas categories); for an array, none.
    n_components : float or int, default=0.9
        Principal components the PCA baseline keeps, as for :func:`pca_baseline`.

    Returns
    -------
    dict of str to Pipeline
        ``"raw (how)"`` and ``"PCA (how, 90% variance)"``, where ``how`` is
        ``standardised``, then ``, text one-hot`` with categorical columns and
        ``, gaps as mean + indicator`` where a number is missing. Columns are taken
        by position, so fit and transform tables with the same column order.

    See Also
    --------
    image_baselines : The baselines of images.
    few_shot_score : Score each of them as a representation.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, "a"], [np.nan, "b"], [3.0, None]], dtype=object)
    >>> baselines = table_baselines(X, categorical=[False, True])
    >>> list(baselines)[0]
    'raw (standardised, text one-hot, gaps as mean + indicator)'
    >>> baselines[list(baselines)[0]].fit_transform(X).shape  # number, gap, a/b/None
    (3, 5)
    """
    n_features = np.shape(X)[1]
    if categorical is None:
        dtypes = getattr(X, "dtypes", None)
        categorical = (
            np.zeros(n_features, dtype=bool)
            if dtypes is None
            else np.array([getattr(d, "kind", "O") not in "biuf" for d in dtypes])
        )
    text = np.asarray(categorical, dtype=bool)
    if text.shape != (n_features,):
        raise ValueError(
            f"categorical must hold one boolean per column of X ({n_features}), got "
            f"shape {text.shape}"
        )
    numeric = np.flatnonzero(~text).tolist()
    numbers = np.asarray(_safe_indexing(X, numeric, axis=1), dtype=np.float64)
    gaps = bool(np.isnan(numbers).any())
    how = "standardised" + (", text one-hot" if text.any() else "")
    how += ", gaps as mean + indicator" if gaps else ""

    def encoded() -> ColumnTransformer:
        scaled = make_pipeline(
            SimpleImputer(add_indicator=True, keep_empty_features=True),
            StandardScaler(),
        )
        parts: list[tuple[str, Any, list[int]]] = [("numbers", scaled, numeric)]
        if text.any():
            onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            parts.append(("text", onehot, np.flatnonzero(text).tolist()))
        return ColumnTransformer(parts)

    share = _share(n_components)
    return {
        f"raw ({how})": make_pipeline(encoded()),
        f"PCA ({how}, {share})": make_pipeline(
            encoded(), pca_baseline(n_components, standardize=False)
        ),
    }


class _LabeledScorer:
    """A scorer restricted to the labeled rows (see :func:`skact._labels.labeled_mask`)."""

    def __init__(self, scorer: Callable[..., float], metric: Any) -> None:
        self._scorer = scorer
        self._metric = metric

    def __call__(
        self, estimator: Any, X: Any, y_true: Any, sample_weight: Any = None, **kwargs: Any
    ) -> float:
        if y_true is None:
            raise ValueError(
                f"{self!r} needs the labels y to score, got y=None; pass y to "
                "GridSearchCV.fit or cross_validate, with -1 for unlabeled rows"
            )
        y_true, labeled = semi_supervised_target(y_true)
        rows = np.flatnonzero(labeled)
        if rows.size == 0:
            raise ValueError(
                f"{self!r} got a test fold with no labeled rows: all {len(y_true)} "
                "labels are -1 (or NaN, None, blank), so the fold cannot be scored, and "
                "a search would score this fold NaN for every candidate. Split with "
                "cv=skact.evaluation.LabeledStratifiedKFold(n_splits), which puts "
                "labeled rows of each class in every fold; or label more rows, or use "
                "fewer folds."
            )
        if sample_weight is not None:
            kwargs["sample_weight"] = np.asarray(sample_weight)[rows]
        return float(
            self._scorer(estimator, _safe_indexing(X, rows), y_true[rows], **kwargs)
        )

    def __repr__(self) -> str:
        metric = getattr(self._metric, "__name__", self._metric)
        return f"labeled_scorer({metric!r})"


def labeled_scorer(metric: str | Callable[..., float]) -> Callable[..., float]:
    """A scorer that scores the labeled rows only, for data with few labels.

    ``y`` follows scikit-learn's semi-supervised convention: -1 (or NaN, None, blank
    text; the rule of the user guide's :ref:`unlabeled-rows`) marks an unlabeled row.
    The scorer drops those rows of the test fold, then scores the rest
    with ``metric``. Pass it as ``scoring`` to
    :class:`~sklearn.model_selection.GridSearchCV` or
    :func:`~sklearn.model_selection.cross_validate`, for example with a
    :class:`~skact.TransferClassifier`, whose encoder learns from the unlabeled rows.

    Parameters
    ----------
    metric : str or callable
        The name of a scikit-learn scorer (``"accuracy"``, ``"balanced_accuracy"``,
        ``"f1_macro"``, ``"neg_log_loss"``; see
        :func:`sklearn.metrics.get_scorer_names`), or a metric function
        ``metric(y_true, y_pred) -> float``, greater is better, applied to
        ``predict``'s output.

    Returns
    -------
    callable
        ``scorer(estimator, X, y, sample_weight=None)``. It raises a ValueError for a
        test fold without labeled rows; in a search with the default
        ``error_score=np.nan`` that fold's score is NaN for every candidate, with a
        warning carrying the message, and the search may pick a worse candidate:
        split with :class:`LabeledStratifiedKFold`, which gives every fold labeled
        rows.

    See Also
    --------
    skact.TransferClassifier : Encoder on every row, classifier on the labeled rows.
    LabeledStratifiedKFold : Folds with labeled rows of each class.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> X, y = [[0], [1], [2], [3]], [0, 1, -1, -1]
    >>> model = DummyClassifier(strategy="constant", constant=0).fit(X[:2], y[:2])
    >>> labeled_scorer("accuracy")(model, X, y)  # the rows labeled -1 are left out
    0.5
    """
    scorer = get_scorer(metric) if isinstance(metric, str) else make_scorer(metric)
    return _LabeledScorer(scorer, metric)


class LabeledStratifiedKFold(_BaseKFold):
    """K-fold for data with few labels: labeled rows of each class in every test fold.

    The labeled rows are split as :class:`~sklearn.model_selection.StratifiedKFold`
    splits a target (each fold gets the same share of each class); the unlabeled rows
    (``y`` of -1, NaN, None or blank: the rule of the user guide's
    :ref:`unlabeled-rows`) are dealt out in ``n_splits`` parts whose sizes differ by
    one row at most, the larger parts to the folds with fewer labeled rows. So every
    test fold has labeled rows to score (:func:`labeled_scorer`) and every training
    fold its share of the unlabeled rows (:class:`~skact.TransferClassifier`'s encoder
    learns from them). With no unlabeled row the folds are StratifiedKFold's.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2. A class with fewer labeled rows than
        ``n_splits`` is missing from some test folds (a warning says so); when every
        class has fewer, ``split`` raises a ValueError.
    shuffle : bool, default=False
        Shuffle each class's labeled rows, and the unlabeled rows, before splitting;
        without it, each class's rows and the unlabeled rows go to the folds in
        blocks, in their order.
    random_state : int, RandomState instance or None, default=None
        With ``shuffle=True``, seeds the shuffling: an int gives the same folds on
        every call of ``split``. Must be None without shuffling.

    See Also
    --------
    labeled_scorer : Score the labeled rows of a fold.
    sklearn.model_selection.StratifiedKFold : The split of the labeled rows.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, -1, -1, -1, -1])  # -1: unlabeled
    >>> cv = LabeledStratifiedKFold(n_splits=2)
    >>> for train, test in cv.split(np.zeros((8, 1)), y):
    ...     print(y[test])
    [ 0  1 -1 -1]
    [ 0  1 -1 -1]
    """

    def __init__(
        self, n_splits: int = 5, *, shuffle: bool = False, random_state: Any = None
    ) -> None:
        super().__init__(n_splits=n_splits, shuffle=shuffle, random_state=random_state)

    def split(
        self, X: Any, y: Any, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Generate indices to split data into training and test set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; only its length is used.
        y : array-like of shape (n_samples,)
            Labels, with the unlabeled rows marked (-1, NaN, None, blank).
        groups : None
            Always ignored, exists for API compatibility.

        Yields
        ------
        train : ndarray
            The training set indices for that split.
        test : ndarray
            The testing set indices for that split.
        """
        if groups is not None:
            warnings.warn(
                f"The groups parameter is ignored by {type(self).__name__}",
                UserWarning,
                stacklevel=2,
            )
        if y is None:
            raise ValueError(
                f"{type(self).__name__} needs the labels y to split on, got y=None; pass "
                "y to GridSearchCV.fit or cross_validate, with -1 for unlabeled rows"
            )
        return super().split(X, y, groups)

    def _iter_test_masks(
        self, X: Any = None, y: Any = None, groups: Any = None
    ) -> Iterator[np.ndarray]:
        folds = self._make_test_folds(y)
        for i in range(self.n_splits):
            yield folds == i

    def _make_test_folds(self, y: Any) -> np.ndarray:
        """The test fold of each row."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        # Numbers as numbers (pandas' nullable integers come as objects), for
        # StratifiedKFold's check of the target's type.
        y, labeled = semi_supervised_target(y)
        rows = np.flatnonzero(labeled)
        if rows.size == 0:
            raise ValueError(
                f"{type(self).__name__}: y has no labeled rows (all {len(y)} labels are "
                "-1, NaN, None or blank); label at least one row of each class"
            )
        classes, counts = np.unique(y[rows], return_counts=True)
        shown = ", ".join(
            f"{c!r}: {n}" for c, n in zip(classes.tolist(), counts, strict=True)
        )
        if np.all(counts < self.n_splits):
            raise ValueError(
                f"n_splits={self.n_splits} cannot be greater than the number of labeled "
                f"rows in each class (labeled rows per class: {shown}); some test "
                "folds would have no labeled row to score. Pass a smaller n_splits "
                f"({counts.min()} or fewer gives every test fold a labeled row of each "
                "class), or label more rows."
            )
        if counts.min() < self.n_splits:
            warnings.warn(
                f"The least populated class in y has only {counts.min()} labeled rows, "
                f"which is less than n_splits={self.n_splits}: some test folds have no "
                f"labeled row of it (labeled rows per class: {shown}).",
                UserWarning,
                stacklevel=5,  # past _iter_test_masks and sklearn's two split generators
            )
        rng = check_random_state(self.random_state)
        folds = np.empty(len(y), dtype=int)
        stratified = StratifiedKFold(
            self.n_splits, shuffle=self.shuffle, random_state=rng if self.shuffle else None
        )
        with warnings.catch_warnings():
            # Said above, in terms of labeled rows.
            warnings.simplefilter("ignore", UserWarning)
            for i, (_, test) in enumerate(stratified.split(rows, y[rows])):
                folds[rows[test]] = i
        unlabeled = np.flatnonzero(~labeled)
        if self.shuffle:
            unlabeled = rng.permutation(unlabeled)
        # np.array_split makes the first parts the larger: they go to the folds with
        # the fewest labeled rows, so that the folds' sizes come out even.
        emptiest = np.argsort(
            np.bincount(folds[rows], minlength=self.n_splits), kind="stable"
        )
        for fold, part in zip(
            emptiest, np.array_split(unlabeled, self.n_splits), strict=True
        ):
            folds[part] = fold
        return folds
