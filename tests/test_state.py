"""The fitted-state schema: one list that fit, pickling and the model file follow."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from skact import _guards, _persistence, _state

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(40, 4))


def test_fit_sets_exactly_the_declared_state():
    enc = small_encoder().fit(X)
    declared = set(_state.FITTED_STATE)
    # feature_names_in_ is sklearn's: set only for DataFrames with string names.
    assert set(_guards.fitted_state(enc)) == declared - {"feature_names_in_"}
    frame = pd.DataFrame(X, columns=list("abcd"))
    assert set(_guards.fitted_state(small_encoder().fit(frame))) == declared


def test_the_model_file_saves_all_of_it():
    assert _persistence.SAVED_ATTRIBUTES == frozenset(_state.FITTED_STATE)


def test_pickling_sends_tensors_through_torch_and_the_generator_as_numpy():
    enc = small_encoder().fit(X)
    state = enc.__getstate__()
    for name in _state.names_stored_as(_state.Stored.TENSORS):
        assert name not in state
    assert isinstance(state["_generator_state"], np.ndarray)
    assert isinstance(state["_torch_payload"], bytes)
    restored = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(restored.transform(X), enc.transform(X))


def test_one_fallback_to_the_cpu_for_pickles_and_files(monkeypatch):
    calls = []

    def fallback(device):
        calls.append(device)
        return torch.device("cpu")

    monkeypatch.setattr(_state, "available_or_cpu", fallback)
    enc = small_encoder().fit(X)
    pickle.loads(pickle.dumps(enc))
    assert calls == [torch.device("cpu")]
    assert _persistence._target_device(torch.device("cuda", 1), None).type == "cpu"
    assert calls[-1] == torch.device("cuda", 1)


@pytest.mark.parametrize(
    ("saved", "cuda", "count", "expected"),
    [
        ("cuda:3", False, 0, "cpu"),
        ("cuda:3", True, 1, "cuda"),  # an index this machine lacks: the current GPU
        ("cuda:0", True, 1, "cuda:0"),
        ("cuda:1", True, 2, "cuda:1"),
        ("cpu", True, 1, "cpu"),
    ],
)
def test_available_or_cpu(monkeypatch, saved, cuda, count, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    assert _state.available_or_cpu(torch.device(saved)) == torch.device(expected)
