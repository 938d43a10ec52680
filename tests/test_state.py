"""The fitted state (skact._state): declared fields that save, load, pickling and the
rollback of a failed fit all follow, so that a field declared once round-trips and an
attribute a fit sets without declaring it fails here."""

import dataclasses
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import skact
from skact import ACTEncoder, _persistence, _state

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(40, 4))

#: Instance attributes that are configuration, not fitted state.
CONFIGURATION = {"_sklearn_output_config", "_metadata_request"}


def set_by_fit(estimator: ACTEncoder) -> set[str]:
    """Every instance attribute that is neither a parameter nor configuration."""
    params = estimator.get_params(deep=False)
    return {k for k in vars(estimator) if k not in params and k not in CONFIGURATION}


def assert_declared(estimator: ACTEncoder) -> None:
    """What a fit set is the declared state: nothing more, no required field less."""
    declared = {f.name for f in _state.FITTED_STATE}
    required = {f.name for f in _state.FITTED_STATE if not f.optional}
    held = set_by_fit(estimator)
    assert held - declared == set(), "set by fit but not declared in skact._state"
    assert required - held == set(), "declared in skact._state but not set by fit"


def assert_same(a: Any, b: Any, where: str) -> None:
    """``a`` and ``b`` hold the same values: tensors and arrays elementwise."""
    if isinstance(a, torch.nn.Module):
        assert type(a) is type(b), where
        assert_same(a.state_dict(), b.state_dict(), where)
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
        assert a.shape == b.shape, where
        if a.dtype == object:  # NaN among the categories: element by element
            assert_same(a.tolist(), b.tolist(), where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    elif hasattr(a, "state_dict") and not isinstance(a, torch.nn.Module):
        assert type(a) is type(b), where  # the input adapter
        assert_same(a.state_dict(), b.state_dict(), where)
    else:
        assert a == b and type(a) is type(b), f"{where}: {a!r} != {b!r}"


def assert_same_state(a: ACTEncoder, b: ACTEncoder) -> None:
    """Every declared field has the same value in ``a`` and ``b`` (or neither has it)."""
    for field in _state.FITTED_STATE:
        missing = object()
        x, y = getattr(a, field.name, missing), getattr(b, field.name, missing)
        assert (x is missing) == (y is missing), field.name
        if x is not missing:
            assert_same(x, y, field.name)


def round_trips(estimator: ACTEncoder, tmp_path: Any) -> list[ACTEncoder]:
    """``estimator`` saved and loaded, and pickled and unpickled."""
    path = tmp_path / "model.skact"
    estimator.save(path)
    return [skact.load(path), pickle.loads(pickle.dumps(estimator))]


def _images(n: int = 20, size: int = 8) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _mixed_frame() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=30),
            "b": rng.normal(size=30),
            "colour": pd.Series(rng.choice(["red", "green", "blue"], 30), dtype=object),
        }
    )
    frame.loc[[1, 4, 9], "a"] = np.nan
    frame.loc[[2, 5], "colour"] = None
    return frame


IMAGES = dict(n_components=4, projection_dim=4, hidden_layer_sizes=(8,), max_iter=1)


def _fits(tmp_path: Any) -> dict[str, ACTEncoder]:
    """One small fit of each input kind and way of fitting."""
    files = []
    for i, image in enumerate(_images()):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(files[-1])
    y = np.tile([0, 1, -1, -1], 10)
    warm = small_encoder(warm_start=True, adversary="ema").fit(X)
    return {
        "numeric table": small_encoder().fit(X),
        "named columns": small_encoder().fit(pd.DataFrame(X, columns=list("abcd"))),
        "mixed table with gaps": small_encoder(handle_missing="indicator").fit(
            _mixed_frame()
        ),
        "image arrays": small_encoder(**IMAGES).fit(_images()),
        "image files": small_encoder(**IMAGES).fit(files),
        "warm-started": warm.fit(X),
        "semi-supervised": small_encoder().fit(X, y),
        "partial_fit": small_encoder().partial_fit(X).partial_fit(X),
        "early stopping": small_encoder(early_stopping=True, max_iter=3).fit(X),
    }


def test_every_input_kind_round_trips_every_declared_field(tmp_path):
    fits = _fits(tmp_path)
    assert fits["semi-supervised"].monitor_name_ == "few_shot_1nn_accuracy"
    assert fits["mixed table with gaps"].is_categorical_ is not None
    assert fits["image files"]._adapter.kind == "image"
    for kind, estimator in fits.items():
        assert_declared(estimator)
        for restored in round_trips(estimator, tmp_path):
            assert_declared(restored)
            try:
                assert_same_state(estimator, restored)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}") from None


def test_fit_sets_exactly_the_declared_state():
    enc = small_encoder().fit(X)
    names = {f.name for f in _state.FITTED_STATE}
    # feature_names_in_ is sklearn's: set only for DataFrames with string names.
    assert set_by_fit(enc) == names - {"feature_names_in_"}
    frame = pd.DataFrame(X, columns=list("abcd"))
    assert set_by_fit(small_encoder().fit(frame)) == names


def test_pickling_sends_tensors_through_torch_and_the_generator_as_numpy():
    enc = small_encoder().fit(X)
    state = enc.__getstate__()
    for name in _state.names_stored_as(_state.Stored.TENSORS):
        assert name not in state
    assert isinstance(state["_generator_state"], np.ndarray)
    assert isinstance(state["_torch_payload"], bytes)
    restored = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(restored.transform(X), enc.transform(X))


def test_a_pickle_of_older_skact_gets_the_fields_defaults():
    enc = small_encoder().fit(X)
    state = enc.__getstate__()
    for name in ("monitor_curve_", "monitor_name_", "_partial_fit_start", "callbacks_"):
        del state[name]
    old = ACTEncoder.__new__(ACTEncoder)
    old.__setstate__(state)
    assert old.monitor_name_ is None and old._partial_fit_start is None
    assert old.callbacks_ == [] and len(old.monitor_curve_) == enc.n_iter_
    assert np.isnan(old.monitor_curve_).all()


# ------------------------------------------------- a fitted attribute added in one place

#: A test-only fitted attribute: the number of fits that started a model here.
TOY = _state.Field(
    "_toy_fits",
    _state.Stored.JSON,
    check=lambda value, fitted: type(value) is int and value >= 0,
    encode=int,
    decode=lambda value, loading: int(value),
)


@pytest.fixture
def sets_toy(monkeypatch):
    """A fit that sets ``_toy_fits`` (declared nowhere yet), failing when told."""
    initialize, train = ACTEncoder._initialize, ACTEncoder._train
    failing = {"train": False}

    def _initialize(self, *args, **kwargs):
        initialize(self, *args, **kwargs)
        self._toy_fits = 1

    def _train(self, *args, **kwargs):
        if failing["train"]:
            self._toy_fits = 99  # changed by the fit that then fails
            raise RuntimeError("device lost")
        return train(self, *args, **kwargs)

    monkeypatch.setattr(ACTEncoder, "_initialize", _initialize)
    monkeypatch.setattr(ACTEncoder, "_train", _train)
    return failing


def test_a_declared_field_round_trips_with_no_other_edit(monkeypatch, sets_toy, tmp_path):
    monkeypatch.setattr(_state, "FITTED_STATE", (*_state.FITTED_STATE, TOY))
    enc = small_encoder(warm_start=True).fit(X)
    enc._toy_fits = 7
    assert_declared(enc)
    for restored in round_trips(enc, tmp_path):
        assert restored._toy_fits == 7
        assert_same_state(enc, restored)
    # Checked on load like every field the file holds.
    enc._toy_fits = -1
    enc.save(tmp_path / "bad.skact")
    with pytest.raises(_persistence.ModelFileError, match="fitted _toy_fits=-1"):
        skact.load(tmp_path / "bad.skact")
    # A warm fit that fails puts it back; a first fit that fails leaves it unset.
    enc._toy_fits = 7
    sets_toy["train"] = True
    with pytest.raises(RuntimeError, match="device lost"):
        enc.fit(X)
    assert enc._toy_fits == 7
    fresh = small_encoder()
    with pytest.raises(RuntimeError, match="device lost"):
        fresh.fit(X)
    assert not hasattr(fresh, "_toy_fits")


def test_an_undeclared_fitted_attribute_fails_the_coverage_check(sets_toy, tmp_path):
    enc = small_encoder().fit(X)
    with pytest.raises(AssertionError, match="not declared"):
        assert_declared(enc)
    # Nor would anything keep it: the model file drops it.
    assert not hasattr(round_trips(enc, tmp_path)[0], "_toy_fits")


def test_a_field_declared_without_its_check_cannot_be_saved(monkeypatch, tmp_path):
    unchecked = dataclasses.replace(TOY, check=None)
    enc = small_encoder().fit(X)
    enc._toy_fits = 1
    monkeypatch.setattr(_state, "FITTED_STATE", (*_state.FITTED_STATE, unchecked))
    with pytest.raises(TypeError, match=r"_toy_fits is declared .* without a check"):
        enc.save(tmp_path / "model.skact")
    tensor = dataclasses.replace(unchecked, stored=_state.Stored.TENSORS, key="toy")
    monkeypatch.setattr(_state, "FITTED_STATE", (*_state.FITTED_STATE[:-1], tensor))
    with pytest.raises(TypeError, match="without a check"):
        enc.save(tmp_path / "model.skact")


def test_a_declared_field_that_fit_never_sets_fails_the_coverage_check(monkeypatch):
    monkeypatch.setattr(_state, "FITTED_STATE", (*_state.FITTED_STATE, TOY))
    with pytest.raises(AssertionError, match="not set by fit"):
        assert_declared(small_encoder().fit(X))


# ------------------------------------------------------------------- device fall-back


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
