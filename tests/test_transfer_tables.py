"""Tables upstream to downstream: unseen categories and out-of-range numbers warn."""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import skact
from skact import OutOfRangeWarning, UnseenCategoryWarning

from _small import small_encoder

#: The warnings these tests are about (a short fit may warn of other things).
OURS = (UnseenCategoryWarning, OutOfRangeWarning)


def _frame(seed: int = 0, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(10, 2, size=n),
            "c": rng.choice(list("xyz"), n),
            "d": rng.choice(["p", "q"], n),
        }
    )


@pytest.fixture(scope="module")
def mixed():
    return small_encoder(max_iter=1).fit(_frame())


def _caught(fn, *args):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = fn(*args)
    return out, [w for w in record if issubclass(w.category, OURS)]


def test_in_range_data_does_not_warn(mixed):
    _, record = _caught(mixed.transform, _frame(1))
    assert record == []


def test_unseen_category_in_one_column_warns_once(mixed):
    new = _frame(1, n=10)
    new.loc[[0, 3, 4], "c"] = "w"
    _, record = _caught(mixed.transform, new)
    assert [w.category for w in record] == [UnseenCategoryWarning]
    assert "3 rows" in str(record[0].message) and "'c' (3 rows)" in str(record[0].message)


def test_unseen_categories_in_several_columns_name_each(mixed):
    new = _frame(1, n=10)
    new.loc[[0, 1], "c"] = "w"
    new.loc[[1, 2, 5], "d"] = "r"
    _, record = _caught(mixed.transform, new)
    assert [w.category for w in record] == [UnseenCategoryWarning]
    message = str(record[0].message)
    assert "4 rows hold" in message  # rows 0, 1, 2, 5
    assert "'c' (2 rows)" in message and "'d' (3 rows)" in message


def test_out_of_range_numbers_warn_with_their_columns(mixed):
    fitted = _frame()
    new = _frame(1, n=10)
    new.loc[2, "a"] = 100 * fitted["a"].std()
    new.loc[[4, 6], "b"] = -100 * fitted["b"].std()
    _, record = _caught(mixed.transform, new)
    assert [w.category for w in record] == [OutOfRangeWarning]
    message = str(record[0].message)
    assert (
        "3 rows hold" in message and "'a' (1 row)" in message and "'b' (2 rows)" in message
    )


def test_the_margin_is_one_fitted_standard_deviation(mixed):
    fitted = _frame()
    new = _frame(1, n=4)
    new.loc[0, "a"] = fitted["a"].max() + 0.9 * fitted["a"].std(ddof=0)
    _, record = _caught(mixed.transform, new)
    assert record == []
    new.loc[0, "a"] = fitted["a"].max() + 1.1 * fitted["a"].std(ddof=0)
    _, record = _caught(mixed.transform, new)
    assert [w.category for w in record] == [OutOfRangeWarning]


def test_features_are_unchanged_by_the_checks(mixed):
    new = _frame(1, n=10)
    new.loc[0, "c"] = "w"
    new.loc[1, "a"] = 1e3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenCategoryWarning)
        warnings.simplefilter("ignore", OutOfRangeWarning)
        Z = mixed.transform(new)
    stored = mixed._adapter.to_storage(new)
    # The row with the unseen category gets the unknown code, as before the check.
    assert stored[0, -2].item() == len(mixed.categories_[0])
    batch = mixed._adapter.to_model(stored)
    mixed.encoder_.eval()
    with torch.inference_mode():
        expected = mixed.encoder_(batch).numpy()
    np.testing.assert_array_equal(Z, expected)


def test_the_warnings_are_filterable(mixed):
    new = _frame(1, n=10)
    new.loc[0, "c"] = "w"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=skact.UnseenCategoryWarning)
        mixed.transform(new)


def test_partial_fit_and_warm_start_fit_warn_on_new_data():
    enc = small_encoder(max_iter=1, warm_start=True).fit(_frame())
    new = _frame(1)
    new.loc[0, "c"] = "w"
    new.loc[1, "b"] = 1e4
    _, record = _caught(enc.fit, new)
    assert {w.category for w in record} == {UnseenCategoryWarning, OutOfRangeWarning}
    _, record = _caught(enc.partial_fit, new)
    assert {w.category for w in record} == {UnseenCategoryWarning, OutOfRangeWarning}
    _, record = _caught(enc.set_params(warm_start=False).fit, new)
    assert record == []  # a fresh fit learns the new data


def test_numeric_tables_warn_out_of_range():
    X = np.random.default_rng(0).normal(size=(60, 3))
    enc = small_encoder(max_iter=1).fit(X)
    new = X[:5].copy()
    new[1, 2] = 50.0
    Z, record = _caught(enc.transform, new)
    assert [w.category for w in record] == [OutOfRangeWarning]
    assert "'x2' (1 row)" in str(record[0].message)
    _, record = _caught(enc.transform, X[:5])
    assert record == []
    np.testing.assert_array_equal(Z[0], enc.transform(X[:1])[0])


def test_the_range_is_saved_and_old_files_load_without_the_check(mixed):
    new = _frame(1, n=10)
    new.loc[0, "a"] = 1e3
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.skact")
        mixed.save(path)
        loaded = skact.load(path)
        np.testing.assert_array_equal(loaded._adapter.minimum, mixed._adapter.minimum)
        _, record = _caught(loaded.transform, new)
        assert [w.category for w in record] == [OutOfRangeWarning]
        # A file from before the range was kept: the same model without it.
        old = skact.load(path)
        old._adapter.minimum = old._adapter.maximum = None
        old_path = os.path.join(tmp, "old.skact")
        old.save(old_path)
        reloaded = skact.load(old_path)
        assert reloaded._adapter.minimum is None
        Z, record = _caught(reloaded.transform, new)
        assert record == []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_array_equal(Z, mixed.transform(new))


# ------------------------------------------------- parameters of another kind of input


def test_a_parameter_only_images_read_warns_when_set_for_a_table():
    from skact import ACTEncoder, IgnoredParameterWarning

    X = np.random.default_rng(0).normal(size=(40, 4))
    params = dict(max_iter=1, hidden_layer_sizes=(8,), n_components=4, random_state=0)
    with pytest.warns(
        IgnoredParameterWarning, match=r"image_size=16 has no effect on table"
    ):
        ACTEncoder(image_size=16, **params).fit(X)
    with warnings.catch_warnings():  # defaults: nothing to say
        warnings.simplefilter("error", IgnoredParameterWarning)
        ACTEncoder(**params).fit(X)


def test_a_parameter_only_tables_read_warns_when_set_for_images():
    from skact import ACTEncoder, IgnoredParameterWarning

    images = np.random.default_rng(0).random((20, 8, 8))
    with pytest.warns(IgnoredParameterWarning, match=r"handle_missing='indicator'.*images"):
        ACTEncoder(
            handle_missing="indicator", max_iter=1, n_components=4, random_state=0
        ).fit(images)
