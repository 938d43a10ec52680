"""TransferClassifier: encoder on every row, classifier on the labeled rows."""

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier
from sklearn.svm import LinearSVC

from skact import TransferClassifier
from skact._labels import AmbiguousMinusOneWarning

from _small import small_encoder


def _blobs(n_per_class=20, n_classes=3, n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(n_classes, n_features))
    X = np.concatenate([c + rng.normal(size=(n_per_class, n_features)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


def _few_labels(y, per_class=3):
    """``y`` with all but the first ``per_class`` rows of each class set to -1."""
    few = np.full_like(y, -1)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)[:per_class]
        few[rows] = label
    return few


class _Recorder(ClassifierMixin, BaseEstimator):
    """Records the labels it was fitted on; predicts the first class."""

    def fit(self, X, y):
        self.seen_y_ = np.asarray(y)
        self.classes_ = np.unique(y[y != -1])
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


# ------------------------------------------------------------------- the -1 convention


def test_text_minus_one_labels_are_unlabeled_and_never_predicted():
    """``np.array(["cat", -1])`` and ``read_csv`` hold the text "-1": no class."""
    X, y = _blobs()
    names = np.array(["cat", "dog", "owl"])[y]
    few = _few_labels(y)
    as_text = np.array([names[i] if v != -1 else -1 for i, v in enumerate(few)])
    assert as_text.dtype.kind == "U" and "-1" in as_text
    csv = "label\n" + "\n".join(as_text) + "\n"
    from_csv = pd.read_csv(io.StringIO(csv))["label"]
    for labels in (as_text, from_csv):
        model = TransferClassifier(StandardScaler(), LogisticRegression()).fit(X, labels)
        assert model.classes_.tolist() == ["cat", "dog", "owl"]
        assert len(model.classifier_.classes_) == 3
        assert "-1" not in set(model.predict(X))
        # Scored on the labeled rows only: the "-1" rows count for nothing.
        labeled = few != -1
        assert model.score(X, labels) == model.score(X[labeled], names[labeled])


def test_labels_whose_minus_one_looks_like_a_class_warn_once():
    X, y = _blobs(n_classes=4)
    y = y - 2  # classes -2, -1, 0, 1: -1 is read as unlabeled, and a warning says so
    model = TransferClassifier(small_encoder(), LogisticRegression())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    said = [w for w in caught if issubclass(w.category, AmbiguousMinusOneWarning)]
    assert len(said) == 1  # not again by the ACTEncoder inside
    assert "other labels are negative too (-2)" in str(said[0].message)
    assert said[0].filename == __file__  # points at the caller's line
    assert model.classes_.tolist() == [-2, 0, 1]
    # A -1/+1 target: the warning says why only one class is left, then fit refuses.
    pm = np.where(np.arange(len(X)) % 2, 1, -1)
    with pytest.warns(AmbiguousMinusOneWarning, match=r"-1/\+1 binary target"):
        with pytest.raises(ValueError, match="one class only"):
            TransferClassifier(StandardScaler(), LogisticRegression()).fit(X, pm)


# ------------------------------------------------------------------------------ fit


def test_encoder_sees_every_row_classifier_only_the_labeled_ones():
    X, y = _blobs()
    y_few = _few_labels(y)
    model = TransferClassifier(StandardScaler(), LogisticRegression()).fit(X, y_few)
    assert model.encoder_.n_samples_seen_ == len(X)
    labeled = y_few != -1
    by_hand = LogisticRegression().fit(
        StandardScaler().fit(X).transform(X)[labeled], y[labeled]
    )
    np.testing.assert_allclose(model.classifier_.coef_, by_hand.coef_)
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    assert model.n_features_in_ == 4
    # The estimators given are left untouched (clones were fitted).
    assert not hasattr(model.encoder, "n_samples_seen_")
    assert not hasattr(model.classifier, "coef_")


def test_act_encoder_features_feed_the_classifier():
    X, y = _blobs()
    model = TransferClassifier(small_encoder(), LogisticRegression()).fit(X, _few_labels(y))
    features = model.encoder_.transform(X)
    assert features.shape == (len(X), 3)
    np.testing.assert_array_equal(model.predict(X), model.classifier_.predict(features))
    np.testing.assert_allclose(
        model.predict_proba(X), model.classifier_.predict_proba(features), rtol=1e-6
    )
    assert model.encoder_.n_iter_ == 2


def test_the_encoder_gets_y_for_its_monitor():
    """The labeled rows feed the ACTEncoder's monitor; its training is that of fit(X)."""
    X, y = _blobs()
    model = TransferClassifier(small_encoder(), LogisticRegression()).fit(X, _few_labels(y))
    assert model.encoder_.monitor_name_ == "few_shot_1nn_accuracy"
    assert len(model.encoder_.monitor_curve_) == 2
    alone = small_encoder().fit(X)
    np.testing.assert_array_equal(model.encoder_.transform(X), alone.transform(X))


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["cat", "dog", "cat", None, "dog", np.nan], dtype=object),
        np.array([0.0, 1.0, 0.0, np.nan, 1.0, np.nan]),
    ],
    ids=["strings-None-NaN", "floats-NaN"],
)
def test_nan_and_none_mark_unlabeled_rows(labels):
    X = np.array([[0.0], [5.0], [0.2], [0.1], [5.2], [4.9]])
    model = TransferClassifier(StandardScaler(), _Recorder()).fit(X, labels)
    assert len(model.classifier_.seen_y_) == 4
    assert list(model.classes_) == list(labels[[0, 1]])
    assert model.predict(X[:2]).tolist() == [labels[0]] * 2


def test_dataframe_feature_names_come_from_the_encoder():
    X, y = _blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = TransferClassifier(StandardScaler(), LogisticRegression()).fit(
        frame, _few_labels(y)
    )
    assert model.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert not hasattr(
        TransferClassifier(StandardScaler(), LogisticRegression()), "n_features_in_"
    )


def test_images_go_to_the_encoder_and_score_indexes_them():
    digits = load_digits()
    images = (digits.images[:60] * 16).astype(np.uint8)
    y_few = _few_labels(digits.target[:60], per_class=2)
    model = TransferClassifier(small_encoder(max_iter=1), LogisticRegression())
    model.fit(images, y_few)
    prediction = model.classifier_.predict(model.encoder_.transform(images))
    np.testing.assert_array_equal(model.predict(images), prediction)
    y_test = np.where(np.arange(60) < 30, digits.target[:60], -1)
    assert model.score(images, y_test) == pytest.approx(
        np.mean(prediction[:30] == digits.target[:30])
    )


# ---------------------------------------------------------------- semi-supervised


def test_semi_supervised_classifiers_see_every_row_by_default():
    X, y = _blobs()
    y_few = _few_labels(y)
    spreading = TransferClassifier(StandardScaler(), LabelSpreading()).fit(X, y_few)
    assert spreading.classifier_.X_.shape == (len(X), 4)
    # Label spreading on well separated blobs labels the unlabeled rows right.
    assert np.mean(spreading.classifier_.transduction_ == y) > 0.95
    training = TransferClassifier(
        StandardScaler(), SelfTrainingClassifier(LogisticRegression())
    ).fit(X, y_few)
    assert training.classifier_.labeled_iter_.shape == (len(X),)
    assert (training.classifier_.labeled_iter_ > 0).any()  # it labeled some rows
    piped = TransferClassifier(
        PCA(2), make_pipeline(StandardScaler(), LabelSpreading())
    ).fit(X, y_few)
    assert piped.classifier_[-1].X_.shape == (len(X), 2)


def test_unlabeled_parameter_drops_or_passes_the_unlabeled_rows():
    X, y = _blobs()
    y_few = _few_labels(y)
    dropped = TransferClassifier(StandardScaler(), LabelSpreading(), unlabeled="drop")
    assert dropped.fit(X, y_few).classifier_.X_.shape == (9, 4)
    passed = TransferClassifier(StandardScaler(), _Recorder(), unlabeled="pass")
    np.testing.assert_array_equal(passed.fit(X, y_few).classifier_.seen_y_, y_few)
    auto = TransferClassifier(StandardScaler(), _Recorder()).fit(X, y_few)
    assert len(auto.classifier_.seen_y_) == 9


def test_passed_string_labels_are_coded_and_decoded():
    X, y = _blobs()
    names = np.array(["ant", "bee", "cow"], dtype=object)[y]
    names[_few_labels(y) == -1] = None
    model = TransferClassifier(StandardScaler(), LabelSpreading()).fit(X, names)
    assert set(model.classifier_.transduction_) == {0, 1, 2}  # indices into classes_
    assert model.classes_.tolist() == ["ant", "bee", "cow"]
    assert np.mean(model.predict(X) == np.array(["ant", "bee", "cow"])[y]) > 0.95
    assert model.predict_proba(X).shape == (len(X), 3)


def test_passed_unsigned_labels_are_coded_and_decoded():
    """uint8 labels (as image data sets ship them) cannot hold the -1 of an unlabeled
    row: they are passed as indices, and predictions come back as uint8 labels."""
    X, y = _blobs()
    labels = (y * 7 + 200).astype(np.uint8)  # 200, 207, 214
    model = TransferClassifier(StandardScaler(), LabelSpreading()).fit(X, labels)
    assert set(model.classifier_.transduction_) == {0, 1, 2}
    prediction = model.predict(X)
    assert prediction.dtype == np.uint8 and np.mean(prediction == labels) > 0.95


# ---------------------------------------------------------------- methods and score


def test_methods_exist_only_where_the_classifier_has_them():
    X, y = _blobs()
    svc = TransferClassifier(StandardScaler(), LinearSVC())
    assert not hasattr(svc, "predict_proba") and hasattr(svc, "decision_function")
    svc.fit(X, _few_labels(y))
    assert not hasattr(svc, "predict_proba") and not hasattr(svc, "predict_log_proba")
    assert svc.decision_function(X).shape == (len(X), 3)
    logistic = TransferClassifier(StandardScaler(), LogisticRegression())
    assert hasattr(logistic, "predict_proba") and hasattr(logistic, "predict_log_proba")
    logistic.fit(X, _few_labels(y))
    np.testing.assert_allclose(
        np.exp(logistic.predict_log_proba(X)), logistic.predict_proba(X)
    )


def test_score_counts_only_the_labeled_rows():
    X, y = _blobs()
    model = TransferClassifier(StandardScaler(), _Recorder()).fit(X, _few_labels(y))
    y_test = y.copy()
    y_test[::2] = -1  # class 0 predicted everywhere
    labeled = y_test != -1
    assert model.score(X, y_test) == pytest.approx(np.mean(y_test[labeled] == 0))
    assert model.score(X, y_test) != pytest.approx(np.mean(y_test == 0))
    weights = np.arange(len(y), dtype=float)
    expected = np.average(y_test[labeled] == 0, weights=weights[labeled])
    assert model.score(X, y_test, sample_weight=weights) == pytest.approx(expected)


# --------------------------------------------------------- frozen encoder, search


def test_frozen_encoder_is_used_as_is():
    X, y = _blobs()
    encoder = small_encoder().fit(X)
    weights = {k: v.clone() for k, v in encoder.encoder_.state_dict().items()}
    model = TransferClassifier(FrozenEstimator(encoder), LogisticRegression())
    clone(model).fit(X + 10, _few_labels(y))  # fitting a clone on other data
    model.fit(X, _few_labels(y))
    assert model.encoder_.estimator is encoder
    assert encoder.n_iter_ == 2
    for name, value in encoder.encoder_.state_dict().items():
        torch.testing.assert_close(value, weights[name])
    np.testing.assert_array_equal(
        model.predict(X), model.classifier_.predict(encoder.transform(X))
    )


def test_grid_search_tunes_encoder_and_classifier_together():
    X, y = _blobs(n_per_class=15)
    model = TransferClassifier(small_encoder(max_iter=1), LogisticRegression())
    grid = {"encoder__alpha": [0.01, 0.1], "classifier__C": [0.1, 1.0]}
    search = GridSearchCV(model, grid, cv=2).fit(X, _few_labels(y))
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    assert best.encoder_.alpha == search.best_params_["encoder__alpha"]
    assert best.classifier_.C == search.best_params_["classifier__C"]


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.full(60, -1), "no labeled rows: all 60 labels are -1"),
        (np.r_[np.zeros(5), np.full(55, np.nan)], "one class only"),
        (np.zeros((60, 2)), r"1d array of labels, got an array of shape \(60, 2\)"),
        (np.zeros(59), "inconsistent numbers of samples"),
        (None, "requires y to be passed"),
        (np.linspace(0, 1, 60), "Unknown label type"),
    ],
    ids=["unlabeled", "one-class", "2d", "length", "none", "continuous"],
)
def test_bad_targets_are_refused_with_a_clear_message(y, message):
    X, _ = _blobs()
    model = TransferClassifier(StandardScaler(), LogisticRegression())
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)


def test_bad_parameters_are_refused_at_fit():
    X, y = _blobs()
    with pytest.raises(ValueError, match="'unlabeled' parameter"):
        TransferClassifier(StandardScaler(), LogisticRegression(), unlabeled="keep").fit(
            X, y
        )
    with pytest.raises(ValueError, match="'classifier' parameter"):
        TransferClassifier(StandardScaler(), StandardScaler()).fit(X, y)


def test_score_refuses_data_without_labels():
    X, y = _blobs()
    model = TransferClassifier(StandardScaler(), LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="no labeled rows"):
        model.score(X, np.full(len(y), -1))
