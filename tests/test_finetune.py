"""FineTunedClassifier: fine-tuning an ACTEncoder's network with a linear head."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV

from skact import ACTEncoder, FineTunedClassifier
from skact.evaluation import labeled_scorer


def _blobs(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes, apart along the first feature; 8 features."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 8))
    X[:, 0] += 4.0 * y - 2.0
    return X, y


def _encoder(**params) -> ACTEncoder:
    return ACTEncoder(
        n_components=8,
        hidden_layer_sizes=(16,),
        max_iter=2,
        batch_size=32,
        random_state=0,
        **params,
    )


def _model(**params) -> FineTunedClassifier:
    params = {"max_iter": 5, "batch_size": 16, "random_state": 0, **params}
    return FineTunedClassifier(_encoder(), **params)


def _semi(y: np.ndarray, n_labeled: int) -> np.ndarray:
    y = y.copy()
    y[n_labeled:] = -1
    return y


def test_clone_and_get_params():
    model = _model(head_learning_rate=0.05)
    params = model.get_params()
    assert params["head_learning_rate"] == 0.05
    assert params["encoder__n_components"] == 8
    copy = clone(model)
    assert copy.get_params()["head_learning_rate"] == 0.05
    assert copy.encoder is not model.encoder


def test_fine_tuning_changes_the_encoder_and_beats_chance():
    X, y = _blobs()
    train = _semi(y, 20)
    pretrained = _encoder().fit(X)
    model = FineTunedClassifier(
        FrozenEstimator(pretrained),
        max_iter=20,
        batch_size=8,
        head_learning_rate=0.1,
        early_stopping=False,
        random_state=0,
    ).fit(X, train)
    before = pretrained.encoder_.state_dict()
    after = model.encoder_.encoder_.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "layers.0.weight" in changed
    # The pretrained encoder itself is left as it was (a copy is fine-tuned).
    assert model.encoder_ is not pretrained
    assert (model.predict(X[20:]) == y[20:]).mean() > 0.8
    proba = model.predict_proba(X[:10])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(model.predict(X)) <= {0, 1}
    assert model.n_iter_ == 20
    assert model.act_loss_curve_ == []


def test_string_labels_and_unlabeled_rows():
    X, y = _blobs()
    labels = np.array(["cat", "dog"], dtype=object)[y]
    labels[30:] = None
    model = _model().fit(X, labels)
    assert list(model.classes_) == ["cat", "dog"]
    assert set(model.predict(X)) <= {"cat", "dog"}


def test_seeded_fits_predict_identically():
    X, y = _blobs()
    first = _model().fit(X, _semi(y, 20)).predict_proba(X)
    second = _model().fit(X, _semi(y, 20)).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = _model(random_state=1).fit(X, _semi(y, 20)).predict_proba(X)
    assert not np.array_equal(first, other)


def test_pickled_model_predicts_identically():
    X, y = _blobs()
    model = _model().fit(X, _semi(y, 20))
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.encoder_.transform(X), model.encoder_.transform(X))


def test_grid_search_over_the_head_learning_rate():
    X, y = _blobs(n=80)
    search = GridSearchCV(
        _model(max_iter=2),
        {"head_learning_rate": [1e-3, 1e-1]},
        cv=2,
        scoring=labeled_scorer("accuracy"),
    ).fit(X, _semi(y, 40))
    assert search.best_params_["head_learning_rate"] in (1e-3, 1e-1)
    assert search.predict(X).shape == (80,)


def test_act_regulariser_runs_on_the_unlabeled_rows():
    X, y = _blobs()
    model = _model(act_weight=0.5).fit(X, _semi(y, 20))
    assert len(model.act_loss_curve_) == model.n_iter_ == 5
    assert all(np.isfinite(model.act_loss_curve_))
    expected = np.add(
        model.classification_loss_curve_, 0.5 * np.array(model.act_loss_curve_)
    )
    np.testing.assert_allclose(model.loss_curve_, expected)
    plain = _model().fit(X, _semi(y, 20))
    assert not np.array_equal(plain.predict_proba(X), model.predict_proba(X))


def test_early_stopping_on_held_out_labels():
    X, y = _blobs()
    # 60 labels per class: on by default; a large head rate overfits quickly.
    model = _model(max_iter=200, n_iter_no_change=2, head_learning_rate=0.5).fit(X, y)
    assert 0 < len(model.validation_loss_curve_) == model.n_iter_ < 200
    # 10 labels in all (5 per class): off.
    few = _model(max_iter=3).fit(X, _semi(y, 10))
    assert few.validation_loss_curve_ == []
    assert few.n_iter_ == 3
    with pytest.raises(ValueError, match="has 1 labeled row"):
        _model(early_stopping=True).fit(X, _semi(y, 3))


def test_freeze_of_the_encoder_applies():
    X, y = _blobs()
    pretrained = _encoder(freeze=1).fit(X)
    model = FineTunedClassifier(FrozenEstimator(pretrained), max_iter=2, random_state=0)
    model.fit(X, _semi(y, 20))
    before = pretrained.encoder_.state_dict()
    after = model.encoder_.encoder_.state_dict()
    assert torch.equal(after["layers.0.weight"], before["layers.0.weight"])
    assert torch.equal(after["layers.1.running_mean"], before["layers.1.running_mean"])
    assert not torch.equal(after["layers.3.weight"], before["layers.3.weight"])


def test_refuses_other_encoders():
    from sklearn.decomposition import PCA

    X, y = _blobs()
    with pytest.raises(TypeError, match="Use TransferClassifier"):
        FineTunedClassifier(PCA(2)).fit(X, y)
