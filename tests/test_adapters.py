"""Tests of the input factory, the adapters' choices and the 'auto' settings a fit uses."""

import json
import zipfile
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import skact
from skact import _auto, _device
from skact._encoder import resolved_settings
from skact.adapters.base import SavedArray, TableAdapterMixin
from skact.adapters.factory import (
    ADAPTERS,
    read_input,
    register_adapter,
    unregister_adapter,
)
from skact.adapters.image import ImageAdapter
from skact.adapters.mixed import MixedTableAdapter, encode
from skact.adapters.table import TablePreprocessing, TabularAdapter
from skact.augment.tabular import TabularAugment
from skact.io.images import as_images
from skact.networks import ConvNet, ResNet18

from _small import small_encoder


def _images(n, size, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size[0], size[1], channels), dtype=np.uint8)


@pytest.fixture
def device_type(monkeypatch):
    """Make ``device="auto"`` resolve to the device type the test names (on the CPU)."""

    def inject(kind):
        monkeypatch.setattr(_device, "resolve_device", lambda spec: torch.device(kind))

    return inject


# ------------------------------------------------------------------ the factory


@pytest.mark.parametrize(
    ("X", "params", "cls"),
    [
        (np.zeros((4, 3)), {}, TabularAdapter),
        (np.zeros((4, 8, 8)), {}, ImageAdapter),
        (np.zeros((4, 3, 8, 8)), {}, ImageAdapter),
        (pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), {}, MixedTableAdapter),
        (np.zeros((4, 3)), {"handle_missing": "indicator"}, MixedTableAdapter),
        (np.zeros((4, 3)), {"categorical_features": [0]}, MixedTableAdapter),
    ],
)
def test_one_factory_decides_the_kind_of_input(X, params, cls):
    chosen, _ = read_input(X, skact.ACTEncoder(**params))
    assert chosen is cls
    assert ADAPTERS[cls.kind] is cls


def test_after_fit_the_fitted_kind_decides():
    tables = small_encoder(max_iter=1).fit(np.random.default_rng(0).normal(size=(20, 4)))
    with pytest.raises(ValueError, match="fitted on tabular data; got images"):
        read_input(np.zeros((4, 8, 8)), tables, tables._adapter)
    images = small_encoder(max_iter=1, encoder="convnet").fit(_images(20, (8, 8)))
    with pytest.raises(ValueError, match="fitted on images; transform needs images too"):
        read_input(np.zeros((4, 3)), images, images._adapter)
    # A table the mixed reader took in fit is read by it again, whatever it holds now.
    mixed = small_encoder(max_iter=1, handle_missing="indicator").fit(np.eye(20, 3))
    assert read_input(np.eye(5, 3), mixed, mixed._adapter)[0] is MixedTableAdapter


@pytest.mark.parametrize(
    ("X", "encoder", "message"),
    [
        (np.zeros((8, 3)), "convnet", "encoder='convnet' needs image input; got a table"),
        (np.zeros((8, 8, 8)), "mlp", "encoder='mlp' needs tabular input; got images"),
    ],
)
def test_named_networks_are_checked_by_the_adapter(X, encoder, message):
    with pytest.raises(ValueError, match=message):
        small_encoder(encoder=encoder).fit(X)


def test_images_stream_only_from_files(tmp_path):
    adapter = ImageAdapter.fit(np.zeros((2, 1, 8, 8), dtype=np.uint8))
    path = tmp_path / "a.png"
    Image.new("L", (8, 8)).save(path)
    _, files = read_input([str(path)], skact.ACTEncoder())
    assert adapter.streams(files)
    assert not adapter.streams(np.zeros((2, 1, 8, 8), dtype=np.uint8))
    assert not TabularAdapter.fit(np.zeros((2, 3)), None).streams(np.zeros((2, 3)))


# ------------------------------------------------------------------ the 'auto' rule, wired


@pytest.mark.parametrize(
    ("device", "size", "n", "encoder", "view", "epochs", "batch"),
    [
        # 2,000 photos of 64 x 64 on a CPU: the ConvNet sees 32 px, 20 epochs.
        ("cpu", (64, 64), 2000, "convnet", (32, 32), 20, 100),
        ("mps", (64, 64), 2000, "convnet", (32, 32), 20, 100),
        ("cuda", (64, 64), 2000, "resnet18", (64, 64), 50, 100),
        ("cpu", (64, 96), 500, "convnet", (21, 32), 50, 32),
        ("cpu", (32, 32), 8000, "convnet", (32, 32), 5, 256),
        ("cuda", (32, 32), 8000, "resnet18", (32, 32), 50, 256),
        # Digits (8 x 8) keep their choices on every device: 12 px views, 50 epochs.
        ("cpu", (8, 8), 1257, "convnet", (12, 12), 50, 62),
        ("cuda", (8, 8), 1257, "convnet", (12, 12), 50, 62),
    ],
)
def test_auto_settings_follow_the_device(
    device_type, device, size, n, encoder, view, epochs, batch
):
    device_type(device)
    channels = 1 if size == (8, 8) else 3
    got = resolved_settings(skact.ACTEncoder(), _images(n, size, channels))
    assert got["encoder"] == encoder
    assert got["input_shape"] == (channels, *view)
    assert (got["max_iter"], got["batch_size"]) == (epochs, batch)
    assert got["learning_rate"] == 2e-3
    assert got["device"] == device
    assert got["kind"] == "images" and got["n_samples"] == n


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_tables_are_the_same_on_every_device(device_type, device):
    device_type(device)
    got = resolved_settings(skact.ACTEncoder(), np.zeros((300, 5)))
    assert (got["encoder"], got["max_iter"], got["batch_size"]) == ("mlp", 100, 256)
    assert got["kind"] == "table" and got["learning_rate"] == 1e-3


def test_explicit_values_are_kept(device_type):
    device_type("cpu")
    enc = skact.ACTEncoder(
        encoder="resnet18", max_iter=3, batch_size=40, learning_rate=0.01
    )
    got = resolved_settings(enc, _images(100, (64, 64)))
    assert (got["encoder"], got["max_iter"], got["batch_size"]) == ("resnet18", 3, 40)
    assert got["learning_rate"] == 0.01
    assert got["input_shape"] == (3, 32, 32)  # the default views are still capped


def test_resolved_settings_read_only_file_headers(tmp_path, monkeypatch):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (48, 48)).save(paths[-1])

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr("skact.io.images.ImageFiles.load", no_decoding)
    enc = skact.ACTEncoder(device="cpu")
    got = resolved_settings(enc, paths)
    assert got["input_shape"] == (3, 32, 32) and got["encoder"] == "convnet"
    assert not hasattr(enc, "n_features_in_")  # the estimator is left as it was


def test_fit_uses_the_resolved_settings(monkeypatch):
    """max_iter, batch_size, encoder and view size "auto" resolve as reported."""
    monkeypatch.setattr(_auto, "CPU_PIXEL_BUDGET", 1)  # the fewest epochs...
    monkeypatch.setattr(_auto, "MIN_EPOCHS", 2)  # ...two of them
    X = _images(64, (40, 40))
    enc = skact.ACTEncoder(n_components=8, projection_dim=8, device="cpu", random_state=0)
    expected = resolved_settings(enc, X)
    assert (expected["max_iter"], expected["batch_size"]) == (2, 32)
    enc.fit(X)
    assert enc.n_iter_ == 2
    assert enc._step == 2 * 2  # 64 images in batches of 32
    assert isinstance(enc.encoder_, ConvNet)
    assert enc._adapter.input_shape == expected["input_shape"] == (3, 32, 32)
    assert enc.transform(X).shape == (64, 8)


def test_a_loaded_model_keeps_the_network_it_was_trained_with(tmp_path, device_type):
    """On a CPU "auto" picks the ConvNet for 32 px images; the file says so, and a
    loader must not pick again (CUDA's rule would build a ResNet-18)."""
    X = _images(16, (32, 32))
    enc = small_encoder(n_components=8, max_iter=1).fit(X)
    assert isinstance(enc.encoder_, ConvNet)
    path = tmp_path / "enc.skact"
    enc.save(path)
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("skact.json"))["fitted"]["network"] == "convnet"
    loaded = skact.load(path)
    assert isinstance(loaded.encoder_, ConvNet)
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    assert not isinstance(loaded.encoder_, ResNet18)


def test_files_without_the_network_load_with_the_old_rule(tmp_path):
    X = _images(16, (8, 8), channels=1)
    enc = small_encoder(n_components=8, max_iter=1).fit(X)
    path, old = tmp_path / "enc.skact", tmp_path / "old.skact"
    enc.save(path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        config = json.loads(src.read("skact.json"))
        del config["fitted"]["network"]
        dst.writestr("skact.json", json.dumps(config))
        dst.writestr("tensors.pt", src.read("tensors.pt"))
    loaded = skact.load(old)
    assert isinstance(loaded.encoder_, ConvNet)
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))


def test_a_network_the_file_cannot_have_is_refused(tmp_path):
    enc = small_encoder(max_iter=1).fit(np.random.default_rng(0).normal(size=(20, 4)))
    path, bad = tmp_path / "enc.skact", tmp_path / "bad.skact"
    enc.save(path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        config = json.loads(src.read("skact.json"))
        config["fitted"]["network"] = "resnet18"
        dst.writestr("skact.json", json.dumps(config))
        dst.writestr("tensors.pt", src.read("tensors.pt"))
    with pytest.raises(skact.ModelFileError, match="network='resnet18'"):
        skact.load(bad)


# ------------------------------------------------------------------ a new kind of input


class ColumnsAdapter(TableAdapterMixin):
    """A toy kind, defined here only: a dict of equal-length 1-D arrays, one per column
    (sorted by name), standardised and corrupted as a numeric table is. What a new kind
    needs is this class and one ``register_adapter`` call; nothing else in skact."""

    kind: ClassVar[str] = "test_columns"
    label: ClassVar[str] = "columns"
    expected_input: ClassVar[str] = "a dict of 1-D arrays"
    saved_arrays: ClassVar[dict[str, SavedArray]] = {
        "mean": SavedArray(torch.float64, lambda state, fitted: len(state["names"])),
        "scale": SavedArray(
            torch.float64, lambda state, fitted: len(state["names"]), positive=True
        ),
    }

    def __init__(self, names, mean, scale, augment):
        self.names = list(names)
        self.mean, self.scale, self.augment = mean, scale, augment
        self.input_shape = (len(self.names),)

    @staticmethod
    def detect(X):
        return isinstance(X, dict) and all(np.ndim(v) == 1 for v in X.values())

    @classmethod
    def read(cls, X, estimator, reset):
        rows = np.column_stack([np.asarray(X[k], dtype=np.float64) for k in sorted(X)])
        if reset:
            estimator.n_features_in_ = rows.shape[1]
        elif rows.shape[1] != estimator.n_features_in_:
            raise ValueError(f"got {rows.shape[1]} columns, fitted on {len(X)}")
        return rows

    @classmethod
    def from_input(cls, X, estimator, device, measure=True):
        augment = TabularAugment(0.3, estimator.noise_scale)
        return cls([f"c{j}" for j in range(X.shape[1])], X.mean(0), X.std(0) + 1.0, augment)

    def to_storage(self, X):
        return self.preprocessing_module()(torch.from_numpy(np.asarray(X)))

    def preprocessing_module(self):
        return TablePreprocessing(self.mean, self.scale)

    def input_spec(self, columns):
        return {"inputs": [{"name": "X", "dtype": "float64", "shape": ["n", 2]}]}

    def to_model(self, batch):
        return batch

    def view(self, batch, pool, generator):
        return self.augment(batch, pool, generator)

    def state_dict(self):
        return {
            "names": self.names,
            "mean": self.mean,
            "scale": self.scale,
            "noise_scale": self.augment.noise_scale,
        }

    @classmethod
    def from_state_dict(cls, state):
        augment = TabularAugment(0.3, state["noise_scale"])
        return cls(
            state["names"], np.asarray(state["mean"]), np.asarray(state["scale"]), augment
        )


@pytest.fixture
def columns_kind():
    register_adapter(ColumnsAdapter, ColumnsAdapter.detect)
    yield ColumnsAdapter
    unregister_adapter(ColumnsAdapter)


def test_a_kind_registered_from_outside_fits_saves_and_loads(columns_kind, tmp_path):
    rng = np.random.default_rng(0)
    X = {"b": rng.normal(size=40), "a": rng.normal(size=40) * 5 + 3}
    enc = small_encoder(max_iter=2).fit(X)
    assert type(enc._adapter) is columns_kind
    assert enc.n_features_in_ == 2 and len(enc.loss_curve_) == 2
    features = enc.transform(X)
    assert features.shape == (40, 3) and np.isfinite(features).all()
    assert resolved_settings(enc, X)["kind"] == "columns"
    # Another kind of input is refused with the kind's own words.
    with pytest.raises(ValueError, match="fitted on columns; transform needs columns too"):
        enc.transform(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="fitted on test_columns data; got images"):
        enc.transform(np.zeros((4, 8, 8)))
    path = tmp_path / "columns.skact"
    enc.save(path)
    loaded = skact.load(path)
    assert type(loaded._adapter) is columns_kind
    np.testing.assert_array_equal(loaded.transform(X), features)
    # The declaration is what load checks: a damaged statistic is refused.
    state = dict(enc._adapter.state_dict(), scale=np.zeros(2))
    enc._adapter = columns_kind.from_state_dict(state)
    enc.save(tmp_path / "zero.skact")
    with pytest.raises(skact.ModelFileError, match=r"adapter\.scale holds values <= 0"):
        skact.load(tmp_path / "zero.skact")


def test_an_unregistered_kind_is_a_table_again(columns_kind):
    unregister_adapter(columns_kind)
    try:
        with pytest.raises(TypeError, match="For a dict of columns, pass a DataFrame"):
            small_encoder().fit({"a": np.zeros(4)})
        with pytest.raises(ValueError, match="ColumnsAdapter is not a registered"):
            unregister_adapter(columns_kind)
    finally:
        register_adapter(columns_kind, columns_kind.detect)
    with pytest.raises(ValueError, match="kind 'test_columns' is already registered"):
        register_adapter(columns_kind, columns_kind.detect)
    assert ADAPTERS["test_columns"] is columns_kind


# ------------------------------------------------------------------ preprocessing modules


def test_mixed_storage_is_the_numpy_preparation_bit_for_bit():
    # to_storage runs MixedPreprocessing; the NumPy formula it replaced, written out.
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=50),
            "b": rng.normal(size=50) * 1e120,
            "c": list("xyz" * 16 + "xy"),
        }
    )
    df.loc[::7, "a"] = np.nan
    df.loc[::5, "c"] = None
    enc = small_encoder(max_iter=1, handle_missing="indicator").fit(df)
    adapter = enc._adapter
    expected = np.zeros((50, adapter.input_shape[0]), dtype=np.float32)
    for i, column in enumerate(("a", "b")):
        mean, scale = adapter.mean[i], adapter.scale[i]
        unit = float(max(abs(mean), scale)) if max(abs(mean), scale) > 1e100 else 1.0
        values = df[column].to_numpy(dtype=np.float64)
        expected[:, i] = np.nan_to_num(
            (values / unit - mean / unit) / (scale / unit), nan=0.0
        )
    expected[:, 2] = df["a"].isna()
    expected[:, 3] = encode(
        df["c"].to_numpy(dtype=object),
        adapter.categories_[0],
        adapter.has_missing_category[0],
    )
    assert torch.equal(adapter.to_storage(df), torch.from_numpy(expected))


def test_image_network_input_is_the_preprocessing_module_bit_for_bit():
    X = _images(6, (10, 10))
    enc = small_encoder(max_iter=1, encoder="convnet", image_size=12).fit(X)
    adapter = enc._adapter
    stored = adapter.to_storage(as_images(X))
    module = adapter.preprocessing_module()
    expected = module(stored.permute(0, 2, 3, 1))
    assert adapter.input_shape == (3, 18, 18)  # resized to the view size, then normalised
    assert torch.equal(adapter.to_model(stored), expected)
    views = adapter.view(stored, stored, torch.Generator().manual_seed(0))
    raw = adapter.augment(stored.float() / 255.0, torch.Generator().manual_seed(0))
    assert torch.equal(views, module.normalise(raw))
