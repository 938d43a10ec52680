"""Property tests: over shapes, dtypes, values and parameters, ACTEncoder either works
(finite float32 output of the right shape) or raises one of its documented errors."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skact import ACTEncoder, NonFiniteLossError

#: The errors that fit and transform document (troubleshooting.rst); anything else fails.
DOCUMENTED = (ValueError, TypeError, NonFiniteLossError)

FAST = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run: no flaky CI
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]


@st.composite
def tables(draw: st.DrawFn) -> np.ndarray:
    """Arrays of any small shape and dtype, values from the whole range of the dtype."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = (draw(st.integers(0, 40)), draw(st.integers(0, 6)))
    if dtype.kind == "f":
        elements = st.floats(
            allow_nan=True,
            allow_infinity=True,
            width=dtype.itemsize * 8,
            allow_subnormal=True,
        )
        # Mostly ordinary values, with the extremes mixed in.
        elements = st.one_of(st.floats(-1e3, 1e3, width=dtype.itemsize * 8), elements)
    else:
        elements = None
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def estimators(draw: st.DrawFn) -> ACTEncoder:
    """Tiny, one-epoch estimators over the parameter space."""
    return ACTEncoder(
        n_components=draw(st.integers(1, 4)),
        objective=draw(
            st.sampled_from(["act", "barlow_twins", "vicreg", "spectral", "nt_xent"])
        ),
        alpha=draw(st.floats(0, 100)),
        n_views=draw(st.integers(2, 3)),
        adversary=draw(st.sampled_from(["ema", "previous", "batch"])),
        hidden_layer_sizes=(draw(st.integers(1, 8)),),
        projection_dim=draw(st.one_of(st.none(), st.integers(1, 4))),
        corruption_rate=draw(st.floats(0, 1)),
        noise_scale=draw(st.floats(0, 10)),
        batch_size=draw(st.integers(2, 64)),
        learning_rate=draw(st.floats(1e-6, 1.0)),
        early_stopping=draw(st.booleans()),
        n_iter_no_change=1,
        max_iter=1,
        device="cpu",
        random_state=draw(st.integers(0, 2**31 - 1)),
    )


def fit_transform_or_documented_error(enc: ACTEncoder, X: Any) -> np.ndarray | None:
    """Fit and transform; return the output, or None after a documented error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            enc.fit(X)
        except DOCUMENTED:
            return None
        try:
            return enc.transform(X)
        except ValueError as exc:
            # The one documented transform failure on data fit accepted.
            assert "non-finite features" in str(exc)
            return None


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@FAST
@given(X=tables(), enc=estimators())
def test_fit_transform_succeeds_or_raises_documented_error(X: np.ndarray, enc: ACTEncoder):
    out = fit_transform_or_documented_error(enc, X)
    if out is not None:
        assert out.dtype == np.float32
        assert out.shape == (X.shape[0], enc.n_components)
        assert np.isfinite(out).all()


@FAST
@given(X=tables())
def test_ordinary_numbers_always_fit(X: np.ndarray):
    """Any finite table with 2+ rows and 1+ columns in float32 range fits."""
    ordinary = (
        X.shape[0] >= 2
        and X.shape[1] >= 1
        and np.isfinite(X.astype(np.float64)).all()
        and np.abs(X.astype(np.float64)).max() <= np.finfo(np.float32).max
    )
    enc = ACTEncoder(
        2,
        hidden_layer_sizes=(4,),
        projection_dim=2,
        max_iter=1,
        device="cpu",
        random_state=0,
    )
    out = fit_transform_or_documented_error(enc, X)
    if ordinary:
        assert out is not None, "a table of ordinary numbers was refused"
    else:
        assert out is None, "a table that cannot be fitted was accepted"


@FAST
@given(X=tables(), Y=tables())
def test_transform_of_other_data_succeeds_or_raises_documented_error(X, Y):
    enc = ACTEncoder(
        2,
        hidden_layer_sizes=(4,),
        projection_dim=None,
        max_iter=1,
        device="cpu",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            enc.fit(X)
        except DOCUMENTED:
            return
        try:
            out = enc.transform(Y)
        except ValueError:
            return
    assert Y.shape[1] == X.shape[1]
    assert out.dtype == np.float32 and out.shape == (Y.shape[0], 2)
    assert np.isfinite(out).all()


@FAST
@given(
    X=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 30), st.integers(1, 4)),
        elements=st.floats(-1e6, 1e6),
    ),
    names=st.booleans(),
)
def test_dataframes_match_arrays(X: np.ndarray, names: bool):
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])] if names else None)
    params = dict(
        n_components=2, hidden_layer_sizes=(4,), max_iter=1, device="cpu", random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = ACTEncoder(**params).fit(X).transform(X)
        b = ACTEncoder(**params).fit(df).transform(df)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
