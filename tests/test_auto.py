"""The "auto" rule: device x image size x number of samples -> settings."""

import numpy as np
import pytest

import skact
from skact import _auto, resolved_settings

from _small import small_encoder


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_cpu_like_devices_view_large_images_at_32_pixels(device):
    assert _auto.image_view_size(device, (64, 64)) == (32, 32)
    assert _auto.image_view_size(device, (64, 96)) == (21, 32)  # aspect kept
    assert _auto.image_view_size(device, (500, 40)) == (32, 3)
    # At or below the cap the default augmentation decides.
    assert _auto.image_view_size(device, (32, 32)) is None
    assert _auto.image_view_size(device, (8, 8)) is None


def test_cuda_keeps_the_stored_size():
    assert _auto.image_view_size("cuda", (64, 64)) is None
    assert _auto.image_view_size("cuda", (224, 224)) is None


@pytest.mark.parametrize(
    ("n", "view", "epochs"),
    [
        (2000, (32, 32), 20),  # the budget: 2,000 x 32 x 32 x 20 pixels
        (1000, (32, 32), 40),
        (500, (32, 32), 50),  # capped at 50
        (20000, (32, 32), 5),  # floor: 5 epochs
        (8000, (32, 32), 5),
        (4000, (32, 32), 10),
        (1257, (12, 12), 50),  # digits (8 px, viewed at 12 px): the full 50 epochs
    ],
)
def test_cpu_epochs_follow_the_pixel_budget(n, view, epochs):
    settings = _auto.image_settings("cpu", view, n)
    assert settings.max_iter == epochs
    assert settings.encoder == "convnet"
    assert n * view[0] * view[1] * settings.max_iter <= max(
        _auto.CPU_PIXEL_BUDGET, n * view[0] * view[1] * _auto.MIN_EPOCHS
    )


@pytest.mark.parametrize(
    ("view", "encoder"),
    [((32, 32), "resnet18"), ((96, 96), "resnet18"), ((12, 12), "convnet")],
)
def test_cuda_keeps_the_papers_resnet_and_epochs(view, encoder):
    settings = _auto.image_settings("cuda", view, 50000)
    assert (settings.encoder, settings.max_iter) == (encoder, 50)


@pytest.mark.parametrize(("n", "batch"), [(100, 32), (1257, 62), (2000, 100), (10**6, 256)])
def test_image_batch_size_gives_about_20_steps_on_small_sets(n, batch):
    for device in ("cpu", "cuda"):
        assert _auto.image_settings(device, (32, 32), n).batch_size == batch


def test_tables_are_the_same_on_every_device():
    settings = _auto.table_settings(5000)
    assert (settings.encoder, settings.batch_size, settings.max_iter) == ("mlp", 256, 100)
    assert settings.learning_rate == 1e-3


@pytest.mark.parametrize(
    ("device", "view", "encoder"),
    [
        ("cpu", (64, 64), "convnet"),
        ("mps", (32, 32), "convnet"),
        ("cuda", (32, 32), "resnet18"),
        ("cuda", (31, 40), "resnet18"),  # the longer side decides
        ("cuda", (12, 12), "convnet"),
        ("xpu", (64, 64), "resnet18"),  # other accelerators follow CUDA
    ],
)
def test_image_encoder_follows_the_device_and_view_size(device, view, encoder):
    assert _auto.image_encoder(device, view) == encoder
    assert _auto.image_settings(device, view, 1000).encoder == encoder


def test_module_docstring_table_is_valid_rst():
    docutils = pytest.importorskip("docutils.core")  # installed with the docs extra
    text = _auto.__doc__.replace(":data:", "")  # a Sphinx role plain docutils lacks
    tree = docutils.publish_doctree(
        text, settings_overrides={"report_level": 2, "halt_level": 2}
    )
    tables = [node for node in tree.traverse() if node.tagname == "table"]
    assert len(tables) == 1
    assert "resnet18" in tables[0].astext() and "pixel budget" in tables[0].astext()


# ------------------------------------------------------- corruption_rate="auto"


def _table(n: int = 40):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
            "colour": rng.choice(["red", "blue"], size=n),
        }
    )


def test_auto_corruption_rate_is_the_mixed_rate_only_with_a_categorical_column():
    assert _auto.table_corruption_rate("auto", True) == _auto.MIXED_CORRUPTION_RATE
    assert _auto.table_corruption_rate("auto", False) == _auto.NUMERIC_CORRUPTION_RATE
    assert (_auto.MIXED_CORRUPTION_RATE, _auto.NUMERIC_CORRUPTION_RATE) == (0.1, 0.2)
    assert _auto.table_corruption_rate(0, False) == 0.0
    table = _table()
    numbers = table[["x", "y"]].to_numpy()
    gaps = table[["x", "y"]].copy()
    gaps.iloc[0, 0] = np.nan
    cases = [
        (small_encoder(), numbers, 0.2),  # an array of numbers
        (small_encoder(), table[["x", "y"]], 0.2),  # a DataFrame of numbers
        (small_encoder(), table, 0.1),  # a text column
        # Numbers with gaps take the column-wise reader, still without categories.
        (small_encoder(handle_missing="indicator"), gaps, 0.2),
        # A numeric column named categorical counts as one.
        (small_encoder(categorical_features=[1]), numbers, 0.1),
        (small_encoder(corruption_rate=0.3), table, 0.3),  # a number is kept
        (small_encoder(corruption_rate=0.0), numbers, 0.0),
    ]
    for encoder, X, rate in cases:
        given = encoder.corruption_rate
        assert resolved_settings(encoder, X)["corruption_rate"] == rate
        encoder.fit(X)
        assert encoder._adapter.augment.corruption_rate == rate
        # The parameter itself is left as given (scikit-learn's convention).
        assert encoder.get_params()["corruption_rate"] == given


def test_the_rate_is_resolved_per_fit_and_kept_by_continued_training():
    table = _table()
    numbers = table[["x", "y"]].to_numpy()
    encoder = small_encoder().fit(table)
    assert encoder._adapter.augment.corruption_rate == 0.1
    encoder.fit(numbers)  # a new fit reads the new data's columns
    assert encoder._adapter.augment.corruption_rate == 0.2
    encoder.partial_fit(numbers)
    # Continued training keeps the views of the first fit (documented in warm_start).
    encoder.set_params(warm_start=True, corruption_rate=0.5).fit(numbers)
    assert encoder._adapter.augment.corruption_rate == 0.2
    first = small_encoder().partial_fit(table)
    assert first._adapter.augment.corruption_rate == 0.1


def test_auto_corruption_rate_trains_exactly_like_the_rate_it_resolves_to():
    table = _table()
    gaps = table[["x", "y"]].copy()
    gaps.iloc[:3, 1] = np.nan
    for X, params, rate, other in [
        (table[["x", "y"]].to_numpy(), {}, 0.2, 0.1),  # numbers: the plain reader
        (gaps, {"handle_missing": "indicator"}, 0.2, 0.1),  # numbers, column-wise
        (table, {}, 0.1, 0.2),  # a categorical column
    ]:
        auto = small_encoder(**params).fit(X).transform(X)
        same = small_encoder(corruption_rate=rate, **params).fit(X).transform(X)
        assert np.array_equal(auto, same)
        changed = small_encoder(corruption_rate=other, **params).fit(X).transform(X)
        assert not np.allclose(auto, changed)


def test_images_have_no_corruption_rate():
    images = np.random.default_rng(0).random((20, 8, 8))
    assert resolved_settings(small_encoder(), images)["corruption_rate"] is None


def test_a_saved_encoder_keeps_the_resolved_rate(tmp_path):
    table = _table()
    encoder = small_encoder().fit(table)
    path = tmp_path / "m.skact"
    encoder.save(path)
    loaded = skact.load(path)
    assert loaded.corruption_rate == "auto"
    assert loaded._adapter.augment.corruption_rate == 0.1
    np.testing.assert_allclose(loaded.transform(table), encoder.transform(table))
