"""FineTunedClassifier: fine-tuning an ACTEncoder's network with a linear head."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV

from skact import ACTEncoder, FineTunedClassifier, load
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


def test_divergence_raises_and_leaves_the_model_unfitted():
    from sklearn.exceptions import NotFittedError

    from skact._training import NonFiniteLossError

    X, y = _blobs()
    model = _model(learning_rate=1e12, head_learning_rate=1e12)
    with pytest.raises(NonFiniteLossError, match="diverged in epoch 1") as info:
        model.fit(X, _semi(y, 20))
    assert "learning_rate (now 1e+12)" in str(info.value)
    assert info.value.advice.reason == "diverged"
    assert "left unfitted" in str(info.value)
    with pytest.raises(NotFittedError):
        model.predict(X)


def test_divergence_after_sound_epochs_keeps_the_last_sound_one(monkeypatch):
    from skact import _training

    X, y = _blobs()
    calls = []
    divergence = _training.divergence

    def diverge_in_epoch_3(*args, **kwargs):
        calls.append(args)
        return "the training loss became nan" if len(calls) == 3 else divergence(*args)

    pretrained = FrozenEstimator(_encoder().fit(X))
    monkeypatch.setattr(_training, "divergence", diverge_in_epoch_3)
    model = FineTunedClassifier(
        pretrained, max_iter=5, batch_size=16, early_stopping=False, random_state=0
    )
    with pytest.raises(_training.NonFiniteLossError, match=r"\(2 epochs trained\)"):
        model.fit(X, _semi(y, 20))
    assert model.n_iter_ == 2
    assert len(model.loss_curve_) == 2
    assert np.isfinite(model.predict_proba(X)).all()


def test_fine_tuned_encoder_drops_the_stale_adam_state(tmp_path):
    X, y = _blobs()
    pretrained = _encoder().fit(X)
    assert pretrained._optimizer_state is not None
    model = FineTunedClassifier(FrozenEstimator(pretrained), max_iter=2, random_state=0)
    model.fit(X, _semi(y, 20))
    assert model.encoder_._optimizer_state is None
    assert pretrained._optimizer_state is not None  # the pretrained one is untouched
    # The fine-tuned encoder saves, loads and continues (with a fresh Adam).
    path = tmp_path / "tuned.skact"
    model.encoder_.save(path)
    loaded = load(path)
    np.testing.assert_allclose(loaded.transform(X), model.encoder_.transform(X), rtol=1e-6)
    model.encoder_.set_params(warm_start=True, max_iter=1).fit(X)
    assert model.encoder_._optimizer_state is not None


def test_forward_passes_follow_the_encoders_precision(monkeypatch):
    from skact import _device

    X, y = _blobs()
    seen = []
    autocast = _device.autocast

    def recording(device, dtype):
        seen.append(dtype)
        return autocast(device, dtype)

    monkeypatch.setattr(_device, "autocast", recording)
    # On the CPU "bfloat16" asks for bf16 whatever the CPU: fine-tuning follows it.
    pretrained = _encoder(precision="bfloat16").fit(X)
    seen.clear()
    model = FineTunedClassifier(
        FrozenEstimator(pretrained), max_iter=2, act_weight=0.5, random_state=0
    ).fit(X, _semi(y, 20))
    assert seen and set(seen) == {torch.bfloat16}
    assert model.head_.weight.dtype == torch.float32
    assert np.isfinite(model.predict_proba(X)).all()
    seen.clear()
    FineTunedClassifier(
        FrozenEstimator(_encoder(precision="float32").fit(X)), max_iter=1, random_state=0
    ).fit(X, _semi(y, 20))
    assert set(seen) == {None}
