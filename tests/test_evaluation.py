"""Few-shot protocol: k-shot draws, probes, scoring of representations, tables."""

import json
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    check_cv,
    cross_validate,
    train_test_split,
)
from sklearn.neighbors import KNeighborsClassifier

from skact import TransferClassifier
from skact.cli import main
from skact.evaluation import (
    FewShotResult,
    LabeledStratifiedKFold,
    few_shot_score,
    image_baselines,
    knn_probe,
    labeled_scorer,
    linear_probe,
    majority_score,
    pca_baseline,
    raw_baseline,
    results_table,
    sample_k_shot,
    table_baselines,
)

from _small import small_encoder


def _blobs(n_per_class=30, n_classes=3, n_features=4, spread=1.5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(n_classes, n_features))
    X = np.concatenate(
        [c + spread * rng.normal(size=(n_per_class, n_features)) for c in centres]
    )
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


# ---------------------------------------------------------------------------- draws


def test_sample_k_shot_takes_k_distinct_samples_of_each_class():
    y = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 4)
    idx = sample_k_shot(y, k=3, random_state=0)
    assert len(set(idx.tolist())) == 9
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    labels, counts = np.unique(y[idx], return_counts=True)
    assert labels.tolist() == ["a", "b", "c"] and counts.tolist() == [3, 3, 3]


def test_sample_k_shot_is_reproducible_and_seed_dependent():
    y = np.repeat(np.arange(4), 50)
    first = sample_k_shot(y, 5, random_state=7)
    np.testing.assert_array_equal(first, sample_k_shot(y, 5, random_state=7))
    assert not np.array_equal(first, sample_k_shot(y, 5, random_state=8))


def test_sample_k_shot_errors():
    with pytest.raises(ValueError, match="class 1 has 2 samples, fewer than k=3"):
        sample_k_shot([0, 0, 0, 1, 1], k=3)
    with pytest.raises(ValueError, match="k must be a positive"):
        sample_k_shot([0, 1], k=0)


def test_sample_k_shot_object_string_labels_and_missing_labels():
    """A pandas label column arrives as an object array of str; missing labels are
    named as such (NaN matches no class, so it looked like an empty class)."""
    pd = pytest.importorskip("pandas")
    y = pd.Series(["cat"] * 4 + ["dog"] * 3 + ["eel"] * 2)
    assert sample_k_shot(y, k=2, random_state=0).shape == (6,)
    with pytest.raises(ValueError, match="class 'eel' has 2 samples, fewer than k=3"):
        sample_k_shot(y, k=3)
    for missing in (
        np.array([0.0, 1.0, np.nan, 1.0]),
        np.array(["a", None, "b", "a"], dtype=object),
        pd.Series(["a", np.nan, "b"]),
    ):
        with pytest.raises(ValueError, match="y has 1 missing labels"):
            sample_k_shot(missing, k=1)


# ---------------------------------------------------------------------------- probes


def test_knn_probe_falls_back_to_fewer_neighbours():
    # Test point 2.07 (class 0): its nearest neighbour 2.1 is class 1, but two of its three
    # nearest neighbours (2.1, 2.0, 1.0) are class 0.
    train = np.array([[0.0], [1.0], [2.0], [2.1], [10.0], [11.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    test, test_labels = np.array([[2.07]]), np.array([0])
    assert knn_probe(train, labels, test, test_labels, n_neighbors=1) == 0.0
    # 5 neighbours requested, 3 labels per class: a 3-NN vote.
    assert knn_probe(train, labels, test, test_labels) == 1.0


def test_knn_probe_one_label_per_class_is_nearest_neighbour():
    train, labels = np.array([[0.0], [10.0]]), np.array([0, 1])
    test = np.array([[1.0], [4.0], [6.0], [12.0]])
    assert knn_probe(train, labels, test, np.array([0, 0, 1, 0])) == 0.75


def test_linear_probe_standardises_features():
    X, y = _blobs(n_per_class=20, n_classes=2, spread=0.3)
    base = linear_probe(X[::2], y[::2], X[1::2], y[1::2])
    assert base == 1.0
    X_scaled = X * np.array([1e4, 1e-4, 1.0, 3.0])
    assert linear_probe(X_scaled[::2], y[::2], X_scaled[1::2], y[1::2]) == base


# ---------------------------------------------------------------------------- scoring


def test_few_shot_score_is_reproducible_and_ordered():
    X, y = _blobs(spread=3.0)
    kwargs = {"k": [1, 3], "n_draws": 4, "random_state": 0}
    first = few_shot_score(None, X, y, X, y, **kwargs)
    assert [(r.k, r.protocol) for r in first] == [
        (1, "linear"),
        (1, "knn"),
        (3, "linear"),
        (3, "knn"),
    ]
    again = few_shot_score(None, X, y, X, y, **kwargs)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.scores, b.scores)
    other = few_shot_score(None, X, y, X, y, **{**kwargs, "random_state": 1})
    assert any(not np.array_equal(a.scores, b.scores) for a, b in zip(first, other))
    assert all(
        r.scores.shape == (4,) and np.all((r.scores >= 0) & (r.scores <= 1)) for r in first
    )


def test_draws_for_a_k_do_not_depend_on_the_other_ks():
    X, y = _blobs(spread=3.0)
    alone = few_shot_score(None, X, y, X, y, k=3, protocols=["knn"], n_draws=5)
    together = few_shot_score(None, X, y, X, y, k=[1, 3], protocols=["knn"], n_draws=5)
    np.testing.assert_array_equal(alone[0].scores, together[1].scores)


def test_transformer_and_precomputed_features_give_identical_scores():
    X, y = _blobs(n_features=6, spread=3.0)
    pca = PCA(n_components=2).fit(X)
    with_model = few_shot_score(pca, X[:60], y[:60], X[60:], y[60:], k=2, n_draws=3)
    precomputed = few_shot_score(
        None, pca.transform(X[:60]), y[:60], pca.transform(X[60:]), y[60:], k=2, n_draws=3
    )
    for a, b in zip(with_model, precomputed, strict=True):
        np.testing.assert_array_equal(a.scores, b.scores)


def test_few_shot_score_uses_a_fitted_act_encoder_without_refitting():
    X, y = _blobs(n_per_class=20, n_features=5)
    enc = small_encoder(max_iter=1).fit(X)
    before = (enc.n_iter_, [p.detach().clone() for p in enc.encoder_.parameters()])
    result = few_shot_score(enc, X, y, X, y, k=2, protocols=["knn"], n_draws=3)
    expected = few_shot_score(
        None, enc.transform(X), y, enc.transform(X), y, k=2, protocols=["knn"], n_draws=3
    )
    np.testing.assert_array_equal(result[0].scores, expected[0].scores)
    assert enc.n_iter_ == before[0]
    for p, q in zip(enc.encoder_.parameters(), before[1], strict=True):
        assert p.detach().equal(q)


def test_few_shot_score_errors():
    X, y = _blobs()
    with pytest.raises(ValueError, match=r"unknown protocol\(s\) \['svm'\]"):
        few_shot_score(None, X, y, X, y, protocols=["svm"])
    with pytest.raises(ValueError, match="n_draws must be at least 1"):
        few_shot_score(None, X, y, X, y, n_draws=0)
    with pytest.raises(ValueError, match="fewer than k=50"):
        few_shot_score(None, X, y, X, y, k=50)
    with pytest.raises(ValueError, match="k must name at least one"):
        few_shot_score(None, X, y, X, y, k=[])
    with pytest.raises(TypeError, match="representation must be a fitted transformer"):
        few_shot_score(object(), X, y, X, y)
    with pytest.raises(ValueError, match="precomputed features must be 2-d"):
        few_shot_score(None, X.reshape(len(X), 2, 2), y, X, y)
    with pytest.raises(ValueError, match="90 training rows for 89 labels"):
        few_shot_score(None, X, y[:-1], X, y)


# ---------------------------------------------------------------------------- reporting


def _imbalanced(seed=0):
    """Two overlapping classes, 3 to 1."""
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(0, 1, (60, 3)), rng.normal(1, 1, (20, 3))]
    return X, np.r_[np.zeros(60, int), np.ones(20, int)]


def test_few_shot_score_scores_with_a_scikit_learn_scorer_name():
    X, y = _imbalanced()
    calls = []

    def balanced(estimator, X_test, y_test):
        calls.append(len(y_test))
        return balanced_accuracy_score(y_test, estimator.predict(X_test))

    kwargs = {"k": [1, 3], "n_draws": 3, "random_state": 0}
    named = few_shot_score(None, X, y, X, y, scoring="balanced_accuracy", **kwargs)
    by_hand = few_shot_score(None, X, y, X, y, scoring=balanced, **kwargs)
    assert len(calls) == 2 * 2 * 3  # each k, protocol and draw
    for a, b in zip(named, by_hand, strict=True):
        np.testing.assert_allclose(a.scores, b.scores)
    assert {r.scoring for r in named} == {"balanced_accuracy"}
    assert by_hand[0].scoring == "balanced" and named[0].to_dict()["scoring"] == (
        "balanced_accuracy"
    )
    plain = few_shot_score(None, X, y, X, y, **kwargs)
    assert plain[0].scoring == "accuracy"
    assert any(not np.allclose(a.scores, b.scores) for a, b in zip(named, plain))
    # The probes take it too; accuracy is their default.
    assert linear_probe(X, y, X, y) == linear_probe(X, y, X, y, scoring="accuracy")
    assert knn_probe(X, y, X, y, scoring="balanced_accuracy") == pytest.approx(
        balanced_accuracy_score(y, KNeighborsClassifier(5).fit(X, y).predict(X))
    )


def test_an_unknown_scorer_is_refused_before_any_probe_runs():
    X, y = _imbalanced()
    for score in (few_shot_score, majority_score):
        args = (None, X, y, X, y) if score is few_shot_score else (y, y)
        with pytest.raises(ValueError, match="get_scorer_names"):
            score(*args, scoring="balanced_acuracy")


def test_majority_score_is_the_pool_s_largest_class_on_every_cell():
    X, y = _imbalanced()
    y_test = np.r_[np.zeros(30, int), np.ones(10, int)]
    kwargs = {"k": [1, 3], "protocols": ["linear", "knn"], "n_draws": 4}
    floor = majority_score(y, y_test, **kwargs)
    cells = few_shot_score(None, X, y, X[:40], y_test, **kwargs)
    assert [(r.k, r.protocol) for r in floor] == [(r.k, r.protocol) for r in cells]
    for r in floor:
        np.testing.assert_array_equal(r.scores, np.full(4, 0.75))  # 30 of 40
    balanced = majority_score(y, y_test, **kwargs, scoring="balanced_accuracy")
    assert {r.mean for r in balanced} == {0.5} and balanced[0].scoring == (
        "balanced_accuracy"
    )
    # The pool's majority, even where the test set's differs.
    assert majority_score(y, 1 - y_test, k=1)[0].mean == 0.25
    table = results_table({"majority class": floor, "features": cells})
    assert "| majority class | 0.750 ± 0.000 | 0.750 ± 0.000 |" in table


def test_few_shot_result_summary_and_dict():
    r = FewShotResult(5, "knn", np.array([0.5, 0.75, 1.0]))
    assert r.mean == pytest.approx(0.75)
    assert r.std == pytest.approx(np.sqrt(((0.25**2) * 2) / 3))
    d = json.loads(json.dumps(r.to_dict()))
    assert d == {
        "k": 5,
        "protocol": "knn",
        "scoring": "accuracy",
        "mean": 0.75,
        "std": r.std,
        "scores": [0.5, 0.75, 1.0],
    }


def test_results_table_layout():
    results = {
        "raw": [
            FewShotResult(5, "knn", np.array([0.5, 0.7])),
            FewShotResult(1, "linear", np.array([0.25, 0.25])),
            FewShotResult(5, "linear", np.array([0.9, 0.9])),
        ],
        "act": [FewShotResult(1, "linear", np.array([0.4, 0.6]))],
    }
    assert results_table(results, digits=2).splitlines() == [
        "| representation | linear k=1 | linear k=5 | knn k=5 |",
        "|---|---|---|---|",
        "| raw | 0.25 ± 0.00 | 0.90 ± 0.00 | 0.60 ± 0.10 |",
        "| act | 0.50 ± 0.10 |  |  |",
    ]


# ---------------------------------------------------------------------------- baselines


def test_raw_baseline_flattens_and_standardises():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 16, size=(50, 3, 3))
    out = raw_baseline().fit_transform(images)
    assert out.shape == (50, 9)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-12)
    np.testing.assert_array_equal(
        raw_baseline(standardize=False).fit_transform(images), images.reshape(50, 9)
    )


def test_pca_baseline_keeps_the_requested_share_of_variance():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(200, 2))
    X = latent @ rng.normal(size=(2, 10)) + 0.05 * rng.normal(size=(200, 10))
    pipe = pca_baseline(0.9).fit(X)
    pca = pipe[-1]
    assert pca.n_components_ == 2
    assert pca.explained_variance_ratio_.sum() >= 0.9
    assert pipe.transform(X).shape == (200, 2)
    # Without standardisation a feature with a large scale dominates the components.
    X[:, 0] *= 1000
    assert pca_baseline(0.9, standardize=False).fit(X)[-1].n_components_ == 1


# ---------------------------------------------------------------- labeled-rows scorer


class _Echo(DummyClassifier):
    """Predicts the first feature of each row as its class."""

    def predict(self, X):
        return np.asarray(X)[:, 0].astype(int)


def test_labeled_scorer_leaves_the_unlabeled_rows_out():
    model = _Echo().fit([[0], [1]], [0, 1])
    X = np.array([[0], [1], [1], [1], [0], [1]])
    y = np.array([0, 1, 0, -1, -1, 0])
    assert labeled_scorer("accuracy")(model, X, y) == pytest.approx(2 / 4)
    balanced = balanced_accuracy_score([0, 1, 0, 0], [0, 1, 1, 1])
    assert labeled_scorer("balanced_accuracy")(model, X, y) == pytest.approx(balanced)
    assert labeled_scorer(balanced_accuracy_score)(model, X, y) == pytest.approx(balanced)
    weights = np.array([1.0, 1.0, 2.0, 5.0, 5.0, 0.0])
    assert labeled_scorer("accuracy")(model, X, y, sample_weight=weights) == (
        pytest.approx(2 / 4)
    )
    y_none = np.array([0, 1, 0, None, np.nan, 0], dtype=object)
    assert labeled_scorer("accuracy")(model, X, y_none) == pytest.approx(2 / 4)


def test_labeled_scorer_is_named_and_picklable():
    scorer = labeled_scorer(balanced_accuracy_score)
    assert repr(scorer) == "labeled_scorer('balanced_accuracy_score')"
    assert repr(labeled_scorer("accuracy")) == "labeled_scorer('accuracy')"
    model = _Echo().fit([[0], [1]], [0, 1])
    X, y = np.array([[0], [1], [0]]), np.array([0, 1, -1])
    assert pickle.loads(pickle.dumps(scorer))(model, X, y) == scorer(model, X, y)


def test_labeled_scorer_refuses_a_fold_without_labels():
    model = _Echo().fit([[0], [1]], [0, 1])
    with pytest.raises(ValueError, match="no labeled rows: all 3 labels are -1"):
        labeled_scorer("accuracy")(model, np.zeros((3, 1)), [-1, -1, -1])
    with pytest.raises(ValueError, match="needs the labels y"):
        labeled_scorer("accuracy")(model, np.zeros((3, 1)), None)
    # In a search: the first split's test rows are all unlabeled.
    X = np.arange(24.0).reshape(12, 2)
    y = np.r_[[0, 1, 0, 1, 0, 1], np.full(6, -1)]
    cv = [(np.arange(9), np.arange(9, 12)), (np.arange(3, 12), np.arange(3))]
    model = TransferClassifier(PCA(1), LogisticRegression())
    scorer = labeled_scorer("accuracy")
    with pytest.raises(ValueError, match="StratifiedKFold"):
        cross_validate(model, X, y, cv=cv, scoring=scorer, error_score="raise")
    with pytest.warns(UserWarning, match="no labeled rows"):
        scores = cross_validate(model, X, y, cv=cv, scoring=scorer)
    assert np.isnan(scores["test_score"][0]) and np.isfinite(scores["test_score"][1])


def test_grid_search_on_digits_scores_the_labeled_rows_of_each_fold():
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    y_few = np.full_like(y, -1)
    for label in range(10):
        y_few[np.flatnonzero(y == label)[:5]] = label  # 5 labels per class
    model = TransferClassifier(
        small_encoder(n_components=8, hidden_layer_sizes=(32,), batch_size=64),
        LogisticRegression(max_iter=1000),
    )
    # -1 is a stratum of its own: each fold gets labeled rows of every class.
    cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    scorer = labeled_scorer("balanced_accuracy")
    search = GridSearchCV(
        model, {"encoder__alpha": [0.01, 1.0]}, cv=cv, scoring=scorer, refit=False
    ).fit(X, y_few)
    # The same fits scored by hand, on the labeled rows of each test fold only.
    by_hand = np.empty((2, 2))
    for i, params in enumerate(search.cv_results_["params"]):
        for j, (train, test) in enumerate(cv.split(X, y_few)):
            fitted = clone(model).set_params(**params).fit(X[train], y_few[train])
            labeled = test[y_few[test] != -1]
            assert set(y[labeled]) == set(range(10))  # 2 or 3 labels per class
            by_hand[i, j] = balanced_accuracy_score(y[labeled], fitted.predict(X[labeled]))
            split_score = search.cv_results_[f"split{j}_test_score"][i]
            assert split_score == pytest.approx(by_hand[i, j])
    assert search.best_index_ == np.argmax(by_hand.mean(axis=1))
    assert by_hand.min() > 0.2  # well above chance (0.1) with 5 labels per class


def test_labeled_scorer_names_the_splitter_for_a_fold_without_labels():
    model = _Echo().fit([[0], [1]], [0, 1])
    y = np.array(["-1", "", None, np.nan], dtype=object)  # every mark of the rule
    with pytest.raises(ValueError) as raised:
        labeled_scorer("accuracy")(model, np.zeros((4, 1)), y)
    message = str(raised.value)
    assert message.startswith(
        "labeled_scorer('accuracy') got a test fold with no labeled rows: all 4 labels "
        "are -1 (or NaN, None, blank), so the fold cannot be scored"
    )
    assert "cv=skact.evaluation.LabeledStratifiedKFold(n_splits)" in message


# ------------------------------------------------------------ LabeledStratifiedKFold


def _few_labeled(per_class=(6, 6, 6), n_unlabeled=40):
    """Labels of the classes "a", "b", ... (``per_class`` rows each), then unlabeled
    rows marked every way the rule allows, shuffled together."""
    labels = [name for name, n in zip("abcdef", per_class) for _ in range(n)]
    marks = ["-1", "", None, np.nan, -1]
    labels += [marks[i % len(marks)] for i in range(n_unlabeled)]
    order = np.random.default_rng(0).permutation(len(labels))
    return np.array(labels, dtype=object)[order]


def test_every_fold_gets_labeled_rows_of_each_class_and_its_share_of_the_rest():
    y = _few_labeled()
    X = np.zeros((len(y), 2))
    unlabeled = np.flatnonzero(~np.isin(y, ["a", "b", "c"]))
    cv = LabeledStratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    assert cv.get_n_splits(X, y) == 3 and check_cv(cv) is cv
    tests = [test for _, test in cv.split(X, y)]
    for (train, test), expected in zip(cv.split(X, y), tests, strict=True):
        np.testing.assert_array_equal(test, expected)  # an int seed: the same folds
        assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == 58
        for name in "abc":
            assert (y[test] == name).sum() == 2  # 6 labels per class over 3 folds
        assert len(np.intersect1d(test, unlabeled)) in (13, 14)  # 40 over 3 folds
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(58))
    other = LabeledStratifiedKFold(n_splits=3, shuffle=True, random_state=1)
    assert any(
        not np.array_equal(a, b) for a, (_, b) in zip(tests, other.split(X, y), strict=True)
    )
    # Without shuffling, the unlabeled rows go to the folds in blocks, in order.
    blocks = [
        np.intersect1d(t, unlabeled) for _, t in LabeledStratifiedKFold(3).split(X, y)
    ]
    assert sorted(np.concatenate(sorted(blocks, key=min)).tolist()) == unlabeled.tolist()
    assert all(np.all(np.diff(np.searchsorted(unlabeled, b)) == 1) for b in blocks)


def test_without_unlabeled_rows_the_folds_are_stratified_k_folds():
    X, y = _blobs(n_per_class=7)
    for kwargs in ({}, {"shuffle": True, "random_state": 3}):
        ours = LabeledStratifiedKFold(n_splits=3, **kwargs).split(X, y)
        theirs = StratifiedKFold(n_splits=3, **kwargs).split(X, y)
        for (a, b), (c, d) in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def test_uneven_folds_are_evened_out_by_the_unlabeled_rows():
    # 5 labeled rows over 3 folds (2, 2, 1): the unlabeled row goes to the third.
    y = np.array([0, 0, 0, 1, 1, -1])
    with pytest.warns(UserWarning, match="only 2 labeled rows"):
        folds = list(LabeledStratifiedKFold(3).split(np.zeros((6, 1)), y))
    assert [len(test) for _, test in folds] == [2, 2, 2]
    assert folds[2][1].tolist() == [2, 5]


def test_too_few_labels_per_class_for_the_folds():
    y = _few_labeled(per_class=(2, 2))
    X = np.zeros((len(y), 1))
    with pytest.raises(ValueError) as raised:
        list(LabeledStratifiedKFold(n_splits=3).split(X, y))
    assert str(raised.value).startswith(
        "n_splits=3 cannot be greater than the number of labeled rows in each class "
        "(labeled rows per class: 'a': 2, 'b': 2)"
    )
    assert "(2 or fewer gives every test fold a labeled row of each class)" in str(
        raised.value
    )
    y = _few_labeled(per_class=(5, 2))
    X = np.zeros((len(y), 1))
    with pytest.warns(UserWarning, match="only 2 labeled rows, which is less than n_s"):
        folds = list(LabeledStratifiedKFold(n_splits=3).split(X, y))
    assert all(np.isin(y[test], ["a"]).any() for _, test in folds)
    with pytest.raises(ValueError, match="y has no labeled rows"):
        list(LabeledStratifiedKFold().split(X, np.full(len(X), -1)))
    with pytest.raises(ValueError, match="needs the labels y"):
        list(LabeledStratifiedKFold().split(X, None))
    with pytest.raises(ValueError, match="Setting a random_state has no effect"):
        LabeledStratifiedKFold(random_state=0)


def test_grid_search_with_the_splitter_picks_the_candidate_that_scores_best():
    """Labeled rows first, unlabeled ones last: with KFold the last fold has no label,
    every candidate's mean is NaN and the search returns the first one, the worst."""
    X, y = _blobs(n_per_class=20)
    order = np.argsort(np.arange(60) % 20 >= 4, kind="stable")  # 4 labels per class
    X, y = X[order], np.where(np.arange(60) < 12, y[order], -1)
    model = TransferClassifier(PCA(2), DummyClassifier())
    grid = {"classifier": [DummyClassifier(), LogisticRegression()]}
    scorer = labeled_scorer("accuracy")
    with pytest.warns(UserWarning, match="LabeledStratifiedKFold"):
        naive = GridSearchCV(model, grid, scoring=scorer, cv=KFold(3)).fit(X, y)
    assert np.isnan(naive.cv_results_["mean_test_score"]).all()
    assert naive.best_index_ == 0
    cv = LabeledStratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    search = GridSearchCV(model, grid, scoring=scorer, cv=cv).fit(X, y)
    means = search.cv_results_["mean_test_score"]
    assert np.isfinite(means).all() and means[1] > means[0]
    assert isinstance(search.best_params_["classifier"], LogisticRegression)
    # cross_validate takes it as well: each fold scored on its labeled rows.
    scores = cross_validate(model, X, y, cv=cv, scoring=scorer)["test_score"]
    assert np.isfinite(scores).all()


# ---------------------------------------------------------------------------- baselines


def test_table_baselines_of_an_object_array_with_an_empty_numeric_column():
    X = np.array(
        [
            [1.0, "a", np.nan],
            [np.nan, "b", np.nan],
            [3.0, None, np.nan],
            [5.0, "a", np.nan],
        ],
        dtype=object,
    )
    baselines = table_baselines(X, np.array([False, True, False]))
    how = "standardised, text one-hot, gaps as mean + indicator"
    assert list(baselines) == [f"raw ({how})", f"PCA ({how}, 90% variance)"]
    Z = baselines[f"raw ({how})"].fit_transform(X)
    # Both numeric columns mean-imputed (the empty one kept, as 0), their two missing
    # indicators, all standardised; then one-hot a / b / missing.
    mean, std = 3.0, np.std([1.0, 3.0, 3.0, 5.0])
    np.testing.assert_allclose(Z[:, 0], (np.array([1.0, 3.0, 3.0, 5.0]) - mean) / std)
    assert Z.shape == (4, 2 + 2 + 3) and not np.isnan(Z).any()
    gap = np.array([0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(Z[:, 2], (gap - gap.mean()) / gap.std())
    np.testing.assert_array_equal(Z[:, [1, 3]], 0.0)  # the empty column: constant
    np.testing.assert_array_equal(Z[:, 4:], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    no_gaps = table_baselines(np.array([[1.0, 2.0], [3.0, 5.0]]))
    assert list(no_gaps) == ["raw (standardised)", "PCA (standardised, 90% variance)"]


def test_table_baselines_find_a_dataframe_s_text_columns_by_dtype():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame({"h": [1.0, 2.0, 4.0], "c": ["a", "b", "a"]})
    baselines = table_baselines(X)
    assert list(baselines) == [
        "raw (standardised, text one-hot)",
        "PCA (standardised, text one-hot, 90% variance)",
    ]
    Z = baselines["raw (standardised, text one-hot)"].fit_transform(X)
    np.testing.assert_array_equal(Z[:, 1:], [[1, 0], [0, 1], [1, 0]])
    with pytest.raises(ValueError, match="one boolean per column of X \\(2\\)"):
        table_baselines(X, categorical=[True])


def test_image_baselines_are_the_raw_and_pca_pixel_pipelines():
    images = np.random.default_rng(0).integers(0, 256, (30, 6, 6)).astype(float)
    baselines = image_baselines(n_components=5)
    assert list(baselines) == ["raw pixels", "PCA (5 components)"]
    np.testing.assert_array_equal(
        baselines["raw pixels"].fit_transform(images), images.reshape(30, 36)
    )
    expected = pca_baseline(5, standardize=False).fit_transform(images)
    np.testing.assert_array_equal(
        baselines["PCA (5 components)"].fit_transform(images), expected
    )


def _cli_scores(argv, report, capsys):
    """``skact evaluate`` with ``argv``: the scores of each row of its JSON report."""
    code = main([str(a) for a in [*argv, "-o", report]])
    assert code == 0, capsys.readouterr().err
    results = json.loads(report.read_text())
    return {
        name: {(r["protocol"], r["k"]): r["scores"] for r in rows}
        for name, rows in results.items()
    }


def _python_scores(baselines, X, y, k, n_draws):
    """What ``skact evaluate --baselines`` does, in Python: a stratified 70/30 split
    seeded 0, each baseline fitted on the pool and scored with the draws seeded 0."""
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    return {
        name: {
            (r.protocol, r.k): r.scores.tolist()
            for r in few_shot_score(
                baseline.fit(X_pool), X_pool, y_pool, X_test, y_test, k=k, n_draws=n_draws
            )
        }
        for name, baseline in baselines.items()
    }


def test_table_baselines_in_python_score_what_skact_evaluate_prints(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], 20)
    X = rng.normal(size=(60, 4)) + (y == "b")[:, None] * 1.5 - (y == "c")[:, None]
    data = tmp_path / "t.csv"
    np.savetxt(data, np.c_[X, np.unique(y, return_inverse=True)[1]], delimiter=",",
               fmt="%.17g", header="u,v,w,x,kind", comments="")  # fmt: skip
    argv = ["evaluate", data, "--label", "kind", "--baselines", "--k", 1, 3]
    got = _cli_scores([*argv, "--draws", 3], tmp_path / "r.json", capsys)
    labels = np.unique(y, return_inverse=True)[1].astype(float).astype(str)
    expected = _python_scores(table_baselines(X), X, labels, k=[1, 3], n_draws=3)
    assert list(expected) == ["raw (standardised)", "PCA (standardised, 90% variance)"]
    for name, scores in expected.items():
        assert got[name] == scores  # the same draws and the same floats


def test_mixed_table_baselines_in_python_score_what_skact_evaluate_prints(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    kind = np.repeat(["p", "q"], 30)
    table = pd.DataFrame(
        {
            "height": rng.normal(size=60) + (kind == "q"),
            "colour": np.where(rng.random(60) < 0.7, kind, "r"),
            "ward": rng.normal(size=60),
            "kind": kind,
        }
    )
    table.loc[::7, "height"] = np.nan  # gaps in a number and in a text column
    table.loc[3::11, "colour"] = None
    data, model = tmp_path / "t.csv", tmp_path / "m.skact"
    table.to_csv(data, index=False)
    tiny = ["--epochs", 1, "--hidden-layer-sizes", 8, "--n-components", 3, "--seed", 0]
    tiny += ["--batch-size", 16, "--device", "cpu", "-q", "--handle-missing", "indicator"]
    assert main([str(a) for a in ["fit", data, "--label", "kind", "-o", model, *tiny]]) == 0
    argv = ["evaluate", data, "--label", "kind", "--model", model, "--baselines"]
    got = _cli_scores([*argv, "--k", 2, "--draws", 3], tmp_path / "r.json", capsys)
    X, y = pd.read_csv(data).drop(columns="kind"), table["kind"].to_numpy()
    expected = _python_scores(table_baselines(X), X, y, k=2, n_draws=3)
    how = "standardised, text one-hot, gaps as mean + indicator"
    assert list(expected) == [f"raw ({how})", f"PCA ({how}, 90% variance)"]
    for name, scores in expected.items():
        assert got[name] == scores
