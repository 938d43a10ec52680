"""Mixed-type tables: column detection, categories, unknown slot, missing values."""

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from skact.adapters.mixed import (
    MixedTableAdapter,
    encode,
    fit_categories,
    resolve_categorical,
)
from skact.augment.tabular import TabularAugment
from skact.io.tables import read_table

from _small import small_encoder


def _small(**params):
    return small_encoder(**{"n_components": 4, "hidden_layer_sizes": (16,), **params})


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "size": rng.normal(10, 2, n),
            "count": rng.integers(0, 5, n),
            "flag": rng.random(n) < 0.5,
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "city": rng.choice(["Oslo", "Rome"], n).astype(object),
        }
    )


# ---------------------------------------------------------------- column detection


def test_pandas_column_types_detected():
    enc = _small().fit(_frame())
    np.testing.assert_array_equal(enc.is_categorical_, [False, False, False, True, True])
    assert [c.tolist() for c in enc.categories_] == [
        ["blue", "green", "red"],
        ["Oslo", "Rome"],
    ]
    np.testing.assert_array_equal(enc.feature_names_in_, _frame().columns)
    # 3 numeric inputs, then the two code columns
    assert enc._adapter.input_shape == (5,)


def test_polars_column_types_detected():
    frame = _frame()  # built column by column: pl.from_pandas would need pyarrow here
    df = pl.DataFrame(
        {
            "size": frame["size"].to_numpy(),
            "count": frame["count"].to_numpy(),
            "flag": frame["flag"].to_numpy(),
            "colour": frame["colour"].astype(str).tolist(),
            "city": frame["city"].tolist(),
        }
    ).with_columns(pl.col("city").cast(pl.Categorical))
    enc = _small().fit(df)
    np.testing.assert_array_equal(enc.is_categorical_, [False, False, False, True, True])
    assert enc.categories_[1].tolist() == ["Oslo", "Rome"]
    assert list(enc.feature_names_in_) == df.columns
    assert enc.transform(df).shape == (40, 4)


def test_object_array_and_list_of_rows():
    X = np.array([[1.5, "a", True], [2.0, "b", False], [0.5, "a", True]], dtype=object)
    table = read_table(X, "error")
    np.testing.assert_array_equal(table.string_like, [False, True, False])
    assert table.columns[0].dtype == np.float64
    rows = [[1.5, "a"], [2.0, "b"]]
    table = read_table(rows, "error")
    np.testing.assert_array_equal(table.string_like, [False, True])
    np.testing.assert_array_equal(table.columns[0], [1.5, 2.0])


def test_numeric_input_keeps_the_numeric_path():
    X = np.random.default_rng(0).normal(size=(30, 3))
    enc = _small().fit(X)
    assert enc._adapter.kind == "tabular"
    assert enc.categories_ == [] and enc.is_categorical_ is None


@pytest.mark.parametrize(
    "spec", [[3, 4], ["colour", "city"], [False, False, False, True, True]]
)
def test_categorical_features_by_index_name_and_mask(spec):
    df = _frame()
    table = read_table(df, "error")
    mask = resolve_categorical(spec, table, np.asarray(df.columns, dtype=object))
    np.testing.assert_array_equal(mask, [False, False, False, True, True])


def test_numeric_column_declared_categorical_keeps_integer_categories():
    df = _frame()
    enc = _small(categorical_features=["count", "colour", "city"]).fit(df)
    np.testing.assert_array_equal(enc.is_categorical_, [False, True, False, True, True])
    assert enc.categories_[0].tolist() == sorted(set(df["count"]))
    assert enc.categories_[0].dtype.kind == "i"


def test_categorical_features_on_numeric_array():
    X = np.column_stack([np.random.default_rng(0).normal(size=30), np.arange(30) % 3])
    enc = _small(categorical_features=[1]).fit(X)
    assert enc.categories_[0].tolist() == [0.0, 1.0, 2.0]


def test_categorical_features_errors():
    df = _frame()
    table = read_table(df, "error")
    names = np.asarray(df.columns, dtype=object)
    with pytest.raises(ValueError, match="outside"):
        resolve_categorical([3, 7], table, names)
    with pytest.raises(ValueError, match="shape"):
        resolve_categorical([True, False], table, names)
    with pytest.raises(ValueError, match="not in X"):
        resolve_categorical(["colour", "nope"], table, names)
    with pytest.raises(ValueError, match="no column names"):
        resolve_categorical(["colour"], table, None)
    with pytest.raises(ValueError, match=r"\['city'\].*not in categorical_features"):
        resolve_categorical([3], table, names)


def test_mixed_strings_and_numbers_in_one_column_raise():
    X = np.array([["a", 1.0], [2, 2.0]], dtype=object)
    with pytest.raises(TypeError, match="mixes strings and numbers"):
        _small().fit(X)


# ---------------------------------------------------------------- categories and codes


def test_encode_known_unknown_and_missing_codes():
    column = np.array(["b", "a", None, "zzz", "b"], dtype=object)
    cats, has_missing = fit_categories(column[:3], "indicator", "c")
    assert cats[:2].tolist() == ["a", "b"] and np.isnan(cats[2]) and has_missing
    # a=0, b=1, missing=2 (its own category), unseen "zzz" = 3 (the unknown slot)
    np.testing.assert_array_equal(encode(column, cats, has_missing), [1, 0, 2, 3, 1])
    cats, has_missing = fit_categories(column[:2], "indicator", "c")
    # no gap in fit: a missing value at transform time goes to the unknown slot
    np.testing.assert_array_equal(encode(column, cats, has_missing), [1, 0, 2, 2, 1])


def test_unseen_category_at_transform_goes_to_unknown_slot():
    df = _frame()
    enc = _small().fit(df)
    new = df.iloc[:3].copy()
    new["colour"] = pd.Categorical(["purple", "red", "purple"])
    stored = enc._adapter.to_storage(read_table(new, "error"))
    np.testing.assert_array_equal(stored[:, 3].numpy(), [3, 2, 3])  # 3 = unknown
    Z = enc.transform(new)
    assert np.isfinite(Z).all()
    # the unknown slot embeds as the mean of the known categories: same as feeding it
    front = enc.encoder_[0]
    emb = front(stored)[:, 3:6]
    torch.testing.assert_close(emb[0], front.embeddings[0].weight.mean(0))


# ---------------------------------------------------------------- missing values


def _with_gaps():
    df = _frame()
    df.loc[[1, 5], "size"] = np.nan
    df["city"] = df["city"].astype(object)
    df.loc[[2], "city"] = None
    return df


def test_missing_values_rejected_by_default_with_pointer_to_parameter():
    with pytest.raises(ValueError, match=r"NaN.*'size'.*handle_missing='indicator'"):
        _small().fit(_with_gaps())
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN(.|\n)*handle_missing='indicator'"):
        _small().fit(X)


def test_missing_values_encoded_with_indicator():
    df = _with_gaps()
    enc = _small(handle_missing="indicator").fit(df)
    adapter = enc._adapter
    assert adapter.indicators.tolist() == [0]  # only "size" had gaps
    assert enc.categories_[1][:2].tolist() == ["Oslo", "Rome"]
    assert np.isnan(enc.categories_[1][2])
    stored = adapter.to_storage(read_table(df, "indicator")).numpy()
    # layout: size, count, flag | size missing | colour, city
    np.testing.assert_array_equal(np.flatnonzero(stored[:, 3]), [1, 5])
    assert stored[1, 0] == 0.0 and stored[5, 0] == 0.0  # the mean, standardised
    present = df["size"].drop([1, 5])
    expected = (df["size"][0] - present.mean()) / present.std(ddof=0)
    np.testing.assert_allclose(stored[0, 0], expected, rtol=1e-6)
    assert stored[2, 5] == 2  # the learned "missing" category of city
    Z = enc.transform(df)
    assert np.isfinite(Z).all()


def test_gap_at_transform_in_a_column_complete_in_fit():
    enc = _small(handle_missing="indicator").fit(_frame())
    new = _frame().iloc[:2].copy()
    new.loc[0, "count"] = np.nan
    new["city"] = new["city"].astype(object)
    new.loc[1, "city"] = None
    stored = enc._adapter.to_storage(read_table(new, "indicator")).numpy()
    assert stored[0, 1] == 0.0  # mean imputed, no indicator column exists
    assert stored[1, 4] == 2  # no missing category: unknown slot
    assert np.isfinite(enc.transform(new)).all()


def test_indicator_on_numeric_array_with_nan():
    X = np.random.default_rng(0).normal(size=(30, 2))
    X[[0, 4], 1] = np.nan
    enc = _small(handle_missing="indicator").fit(X)
    assert enc._adapter.input_shape == (3,)
    assert np.isfinite(enc.transform(X)).all()


def test_infinity_is_always_rejected():
    df = _frame()
    df.loc[0, "size"] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        _small(handle_missing="indicator").fit(df)


# ---------------------------------------------------------------- corruption


def test_view_matches_tabular_augment_on_numeric_tables():
    pool = torch.randn(50, 4)
    adapter = MixedTableAdapter.fit(
        read_table(pool.numpy().astype(np.float64), "error"),
        np.zeros(4, dtype=bool),
        "error",
        TabularAugment(0.4, 0.3),
    )
    a = adapter.view(pool[:10], pool, torch.Generator().manual_seed(3))
    b = TabularAugment(0.4, 0.3)(pool[:10], pool, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_corruption_draws_categories_from_the_column_and_keeps_indicator_pairs():
    n = 4000
    rng = np.random.default_rng(0)
    value = rng.normal(size=n)
    value[rng.random(n) < 0.3] = np.nan
    colour = np.where(rng.random(n) < 0.9, "a", "b").astype(object)
    df = pd.DataFrame({"value": value, "colour": colour})
    adapter = MixedTableAdapter.fit(
        read_table(df, "indicator"),
        np.array([False, True]),
        "indicator",
        TabularAugment(1.0, 0.0),
    )
    pool = adapter.to_storage(read_table(df, "indicator"))
    batch = torch.zeros(n, 3)
    batch[:, 2] = 1.0  # every cell replaced: "b" everywhere before corruption
    view = adapter.view(batch, pool, torch.Generator().manual_seed(0))
    # the categorical column follows the column's empirical distribution (90% "a")
    share_a = float((view[:, 2] == 0).float().mean())
    assert abs(share_a - 0.9) < 0.02
    # a numeric value and its missing indicator come from the same row
    missing_rows = view[:, 1] == 1
    assert torch.all(view[missing_rows, 0] == 0)
    assert abs(float(missing_rows.float().mean()) - 0.3) < 0.03


def _gappy_adapter(augment):
    """The adapter of :func:`_with_gaps` (its last two columns categorical) and its
    stored data."""
    table = read_table(_with_gaps(), "indicator")
    categorical = np.array([False, False, False, True, True])
    adapter = MixedTableAdapter.fit(table, categorical, "indicator", augment)
    return adapter, adapter.to_storage(table)


def test_noise_touches_only_numeric_values():
    adapter, stored = _gappy_adapter(TabularAugment(0.0, 1.0))
    view = adapter.view(stored, stored, torch.Generator().manual_seed(0))
    assert torch.all(view[:, :3] != stored[:, :3])
    torch.testing.assert_close(view[:, 3:], stored[:, 3:])


# ---------------------------------------------------------------- estimator contract


def test_determinism_under_random_state():
    df = _with_gaps()
    a = _small(handle_missing="indicator").fit(df).transform(df)
    b = _small(handle_missing="indicator").fit(df).transform(df)
    c = _small(handle_missing="indicator", random_state=1).fit(df).transform(df)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("container", ["pandas", "polars"])
def test_set_output_and_feature_names(container):
    df = _frame()
    enc = _small().set_output(transform=container).fit(df)
    out = enc.transform(df)
    assert isinstance(out, pd.DataFrame if container == "pandas" else pl.DataFrame)
    assert list(out.columns) == [f"actencoder{i}" for i in range(4)]
    np.testing.assert_array_equal(np.asarray(out), _small().fit(df).transform(df))
    assert list(enc.get_feature_names_out()) == list(out.columns)
    with pytest.raises(ValueError, match="feature names"):
        enc.transform(df[df.columns[::-1]])


def test_adapter_state_dict_round_trip_is_json_able():
    df = _with_gaps()
    enc = _small(handle_missing="indicator", categorical_features=[1, 3, 4]).fit(df)
    state = enc._adapter.state_dict()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    assert set(arrays) == {"mean", "scale", "minimum", "maximum"}
    json.dumps({k: v for k, v in state.items() if k not in arrays})
    rebuilt = MixedTableAdapter.from_state_dict(
        json.loads(
            json.dumps({k: (v.tolist() if k in arrays else v) for k, v in state.items()})
        )
    )
    table = read_table(df, "indicator")
    torch.testing.assert_close(rebuilt.to_storage(table), enc._adapter.to_storage(table))
    for a, b in zip(rebuilt.categories_, enc.categories_):
        assert a.dtype == b.dtype
        assert a[:2].tolist() == b[:2].tolist()


def test_pickle_round_trip():
    df = _with_gaps()
    enc = _small(handle_missing="indicator").fit(df)
    again = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(again.transform(df), enc.transform(df))


@parametrize_with_checks(
    [_small(handle_missing="indicator", max_iter=1, hidden_layer_sizes=(8,))]
)
def test_sklearn_checks_on_the_mixed_path(estimator, check):
    # handle_missing="indicator" sends even numeric arrays through the mixed adapter
    check(estimator)


def test_grouped_corruption_needs_the_group_count_and_its_cache_is_not_pickled():
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="n_groups is needed"):
        TabularAugment(0.5)(x, x, torch.Generator(), groups=torch.tensor([0, 0, 1]))
    adapter, stored = _gappy_adapter(TabularAugment(0.5, 0.0))
    first = adapter.view(stored, stored, torch.Generator().manual_seed(0))
    assert list(adapter._group_index) == [stored.device]
    restored = pickle.loads(pickle.dumps(adapter))
    assert restored._group_index == {}
    again = restored.view(stored, stored, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, first)


def test_integer_ids_beyond_float_precision_keep_distinct_codes():
    """Categories of 64-bit ids (hashes, snowflake ids) are matched exactly: beyond
    2**53 float64 merges neighbours, which gave distinct ids one code."""
    ids = np.array([2**53 + k for k in range(6)], dtype=np.int64)
    categories = np.sort(ids)
    for column in (ids, ids.astype(object), np.array([int(i) for i in ids], dtype=object)):
        np.testing.assert_array_equal(encode(column, categories, False), np.arange(6))
    assert encode(np.array([2**53 + 7]), categories, False)[0] == 6  # unknown slot
    frame = pd.DataFrame({"num": np.arange(60.0), "user": np.tile(ids, 10)})
    for user in (frame["user"], pd.Categorical(frame["user"])):
        enc = _small(categorical_features=["user"]).fit(frame.assign(user=user))
        codes = enc._adapter.to_storage(frame.head(6).assign(user=user[:6]))[:, -1]
        np.testing.assert_array_equal(codes.numpy(), np.arange(6))


@pytest.mark.parametrize("dtype", ["string", "category"])
def test_all_missing_text_column_is_categorical_and_refused_clearly(dtype):
    """A string-dtype column is categorical even when fit sees no string in it (it was
    read as numeric, and transform then failed on the first string)."""
    n = 40
    frame = pd.DataFrame(
        {"x": np.arange(n, dtype=float), "city": pd.Series([None] * n, dtype=dtype)}
    )
    with pytest.raises(ValueError, match="categorical column 'city' has no non-missing"):
        _small(handle_missing="indicator").fit(frame)
    frame["city"] = pd.Series(["Oslo", None] * (n // 2), dtype=dtype)
    enc = _small(handle_missing="indicator").fit(frame)
    assert list(enc.is_categorical_) == [False, True]
    assert np.isfinite(enc.transform(frame.assign(city="Paris"))).all()


def test_polars_null_column_reads_like_pandas_column_of_none():
    n = 40
    x = np.arange(n, dtype=float)
    via_polars = pl.DataFrame({"x": x, "gone": [None] * n})
    via_pandas = pd.DataFrame({"x": x, "gone": pd.Series([None] * n, dtype=object)})
    assert via_polars.schema["gone"] == pl.Null
    a = _small(handle_missing="indicator").fit(via_polars)
    b = _small(handle_missing="indicator").fit(via_pandas)
    np.testing.assert_array_equal(a.transform(via_polars), b.transform(via_pandas))
    with pytest.raises(ValueError, match="gone"):
        _small().fit(via_polars)


def _stored_numeric(X: np.ndarray) -> np.ndarray:
    """``X`` (numeric columns) as the mixed path stores it, failing on any warning
    (an overflow on the way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = read_table(X, "indicator")
        categorical = np.zeros(X.shape[1], dtype=bool)
        adapter = MixedTableAdapter.fit(table, categorical, "indicator", TabularAugment())
        return adapter.to_storage(table).numpy()


def test_values_near_the_float64_limit_are_standardised_not_zeroed():
    """The mixed path accepts values beyond float32's range (it standardises in
    float64); their squares overflowed the std, which made the column all zeros."""
    X = np.array([[i * 1e300, float(i)] for i in range(1, 13)])
    stored = _stored_numeric(X)
    # both columns are the same ramp, so they standardise to the same values
    np.testing.assert_allclose(stored[:, 0], stored[:, 1], rtol=1e-6)
    np.testing.assert_allclose(stored[:, 0].std(), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "values",
    [
        [1e300 * (1 + 1e-15 * k) for k in range(12)],  # constant up to rounding
        [1.5e308, *[-1.5e308] * 11],  # x - mean overflows float64
    ],
    ids=["near-equal", "skewed"],
)
def test_columns_of_huge_values_standardise_to_small_finite_numbers(values):
    X = np.column_stack([values, np.arange(12.0)])
    stored = _stored_numeric(X)
    assert np.isfinite(stored).all() and np.abs(stored[:, 0]).max() < 4
    if len(set(values)) > 2:  # constant up to rounding: the noise stays noise
        assert np.abs(stored[:, 0]).max() < 1e-6
