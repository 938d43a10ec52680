"""Few-shot evaluation of frozen representations: k-shot draws, linear probe, k-NN.

These are the ACT paper's two protocols, scaled down to a handful of labels: a linear
classifier and a nearest-neighbour vote trained on ``k`` labelled samples per class of
frozen features, averaged over many random draws of those samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer, make_scorer
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import _safe_indexing, check_random_state

from ._tabular_mixed import is_missing
from ._labels import semi_supervised_target

__all__ = [
    "FewShotResult",
    "few_shot_score",
    "knn_probe",
    "labeled_scorer",
    "linear_probe",
    "pca_baseline",
    "raw_baseline",
    "results_table",
    "sample_k_shot",
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


def linear_probe(
    train_features: np.ndarray,
    train_labels: Any,
    test_features: np.ndarray,
    test_labels: Any,
) -> float:
    """Accuracy of a logistic regression on standardised frozen features.

    Parameters
    ----------
    train_features : ndarray of shape (n_train, n_features)
    train_labels : array-like of shape (n_train,)
    test_features : ndarray of shape (n_test, n_features)
    test_labels : array-like of shape (n_test,)

    Returns
    -------
    float
        Test accuracy.
    """
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train_features, train_labels)
    return float(probe.score(test_features, test_labels))


def knn_probe(
    train_features: np.ndarray,
    train_labels: Any,
    test_features: np.ndarray,
    test_labels: Any,
    n_neighbors: int = 5,
) -> float:
    """Accuracy of a k-NN majority vote on Euclidean distance of frozen features.

    With fewer labelled samples per class than ``n_neighbors`` the vote uses that many
    neighbours instead (1-NN for one label per class).

    Parameters
    ----------
    train_features : ndarray of shape (n_train, n_features)
    train_labels : array-like of shape (n_train,)
    test_features : ndarray of shape (n_test, n_features)
    test_labels : array-like of shape (n_test,)
    n_neighbors : int, default=5

    Returns
    -------
    float
        Test accuracy.
    """
    labels = np.asarray(train_labels)
    per_class = int(np.min(np.unique(labels, return_counts=True)[1]))
    knn = KNeighborsClassifier(n_neighbors=max(1, min(n_neighbors, per_class)))
    knn.fit(train_features, labels)
    return float(knn.score(test_features, test_labels))


@dataclass
class FewShotResult:
    """Accuracies of one representation over repeated k-shot draws.

    Attributes
    ----------
    k : int
        Labels per class.
    protocol : str
        ``"linear"`` or ``"knn"``.
    scores : ndarray of shape (n_draws,)
        Accuracy of each draw.
    """

    k: int
    protocol: str
    scores: np.ndarray

    @property
    def mean(self) -> float:
        """Mean accuracy over the draws."""
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        """Standard deviation of the accuracy over the draws."""
        return float(np.std(self.scores))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form, for JSON.

        Returns
        -------
        dict
            ``k``, ``protocol``, ``mean``, ``std`` and the list of ``scores``.
        """
        return {
            "k": self.k,
            "protocol": self.protocol,
            "mean": self.mean,
            "std": self.std,
            "scores": [float(v) for v in self.scores],
        }


_PROBES = {"linear": linear_probe, "knn": knn_probe}


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

    Returns
    -------
    list of FewShotResult
        One per (k, protocol), in that order.

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
    if isinstance(k, int | np.integer):
        ks = [int(k)]
    else:
        ks = [int(v) for v in k]
    if not ks:
        raise ValueError("k must name at least one number of labels per class")
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    unknown = set(protocols) - set(_PROBES)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; use 'linear' or 'knn'")
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
    # One stream per k, so the draws for a k do not depend on which other k are scored.
    root = int(check_random_state(random_state).randint(2**31 - 1))
    results = []
    for k_shot in ks:
        rng = np.random.RandomState([root, k_shot])
        draws = [sample_k_shot(y_train, k_shot, rng) for _ in range(n_draws)]
        for protocol in protocols:
            probe = _PROBES[protocol]
            scores = np.array(
                [
                    probe(train_features[idx], y_train[idx], test_features, y_test)
                    for idx in draws
                ]
            )
            results.append(FewShotResult(k_shot, protocol, scores))
    return results


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


class _LabeledScorer:
    """A scorer restricted to the labeled rows (``y`` not -1, NaN or None)."""

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
                f"{self!r} got a fold with no labeled rows: all {len(y_true)} labels "
                "are -1 (or NaN/None). Label more rows, use fewer folds, or split with "
                "StratifiedKFold, which treats -1 as a class of its own and so spreads "
                "the labeled rows of each class over the folds (GridSearchCV's default "
                "cv for a classifier)."
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

    ``y`` follows scikit-learn's semi-supervised convention: -1 (or NaN, None) marks an
    unlabeled row. The scorer drops those rows of the test fold, then scores the rest
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
        fold without labeled rows; in a search with the default ``error_score=np.nan``
        that fold's score is NaN, with a warning carrying the message.

    See Also
    --------
    skact.TransferClassifier : Encoder on every row, classifier on the labeled rows.

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
