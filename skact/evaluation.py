"""Few-shot evaluation of frozen representations: k-shot draws, linear probe, k-NN.

These are the ACT paper's two protocols, scaled down to a handful of labels: a linear
classifier and a nearest-neighbour vote trained on ``k`` labelled samples per class of
frozen features, averaged over many random draws of those samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

__all__ = ["FewShotResult", "few_shot_score", "knn_probe", "linear_probe", "sample_k_shot"]


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
    y = np.asarray(y)
    rng = check_random_state(random_state)
    picked = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if members.size < k:
            raise ValueError(f"class {label!r} has {members.size} samples, fewer than k={k}")
        picked.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(picked))


def linear_probe(
    train_features: np.ndarray, train_labels: Any, test_features: np.ndarray, test_labels: Any
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
        Seeds the draws; the same seed gives the same labelled samples.

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
    if representation is None:
        train_features, test_features = np.asarray(X_train), np.asarray(X_test)
    else:
        if not isinstance(representation, TransformerMixin) and not hasattr(
            representation, "transform"
        ):
            raise TypeError("representation must have a transform method, or be None")
        train_features = representation.transform(X_train)
        test_features = representation.transform(X_test)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    unknown = set(protocols) - set(_PROBES)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; use 'linear' or 'knn'")
    rng = check_random_state(random_state)
    ks = [k] if isinstance(k, int) else list(k)
    results = []
    for k_shot in ks:
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
