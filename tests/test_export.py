"""ACTEncoder.export: the whole feature extractor, as ONNX and as a torch.export program,
gives transform's features from the inputs a user has."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skact import ACTEncoder
from skact._export import ExportError
from skact.adapters.mixed import MixedTableAdapter
from skact.adapters.table import TabularAdapter
from skact.augment import TabularAugment
from skact.io.tables import read_table

from _small import small_encoder

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
FORMATS = [
    "pt2",
    pytest.param(
        "onnx",
        marks=pytest.mark.skipif(
            not HAS_ORT, reason="onnxruntime is not installed (pip install skact[export])"
        ),
    ),
]
#: The parity the issue asks for: float32 features within 1e-4 of transform's.
TOL = 1e-4


def run_exported(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The features the exported file computes, with its own runtime."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["features"], feeds)[0]
    program = torch.export.load(str(path))
    out = program.module()(*(torch.from_numpy(np.array(v)) for v in feeds.values()))
    return out.numpy()


def mixed_feeds(frame: pd.DataFrame, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """A DataFrame as the exported program's inputs: the user guide's recipe."""
    feeds = {}
    for spec in inputs["inputs"]:
        if spec["name"] == "numeric":
            feeds["numeric"] = frame[spec["columns"]].to_numpy(
                dtype="float64", na_value=np.nan
            )
    codes = []
    for column in inputs["categorical"]:
        values = frame[column["name"]]
        code = pd.Index(column["categories"]).get_indexer(values).astype("int64")
        code[values.isna().to_numpy()] = column["missing_code"]
        codes.append(code)
    if codes:
        feeds["codes"] = np.stack(codes, axis=1)
    return feeds


# ------------------------------------------------------------------ numeric tables


@pytest.fixture(scope="module")
def table_model() -> tuple[ACTEncoder, np.ndarray]:
    rng = np.random.default_rng(0)
    # Columns of very different offsets and scales (a timestamp among them).
    X = rng.normal(size=(48, 5)) * [1, 10, 100, 1e6, 0.1] + [0, 5, 1.7e9, 0, 3]
    return small_encoder().fit(X), X


@pytest.mark.parametrize("format", FORMATS)
def test_numeric_table_export_matches_transform(table_model, tmp_path, format) -> None:
    encoder, X = table_model
    path = tmp_path / f"model.{format}"
    inputs = encoder.export(path)
    assert [s["name"] for s in inputs["inputs"]] == ["X"]
    assert inputs["inputs"][0]["dtype"] == "float64"
    for n in (1, 7):  # the batch axis is dynamic
        got = run_exported(path, {"X": X[:n]})
        assert got.dtype == np.float32 and got.shape == (n, 3)
        np.testing.assert_allclose(got, encoder.transform(X[:n]), rtol=0, atol=TOL)


def test_export_writes_its_inputs_beside_the_file(table_model, tmp_path) -> None:
    encoder, _ = table_model
    inputs = encoder.export(tmp_path / "model.pt2")
    written = json.loads((tmp_path / "model.pt2.inputs.json").read_text())
    assert written == inputs
    assert inputs["inputs"][0]["columns"] == ["x0", "x1", "x2", "x3", "x4"]
    assert inputs["output"] == {"name": "features", "dtype": "float32", "shape": ["n", 3]}


def test_table_preprocessing_module_is_to_storage() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4)) * [1, 1e3, 1e-3, 1] + [0, 1.7e9, 0, -4]
    adapter = TabularAdapter.fit(X, augment=TabularAugment())  # views: unused here
    module = adapter.preprocessing_module()
    assert torch.equal(module(torch.from_numpy(X)), adapter.to_storage(X))


def test_export_format_from_suffix_or_refused(table_model, tmp_path) -> None:
    encoder, X = table_model
    with pytest.raises(ValueError, match=r"\.onnx or \.pt2"):
        encoder.export(tmp_path / "model.bin")
    with pytest.raises(ValueError, match="format must be 'onnx' or 'pt2'"):
        encoder.export(tmp_path / "model.pt2", format="tflite")
    encoder.export(tmp_path / "model.bin", format="pt2")
    got = run_exported_pt2(tmp_path / "model.bin", X[:3])
    np.testing.assert_allclose(got, encoder.transform(X[:3]), rtol=0, atol=TOL)


def run_exported_pt2(path: Path, X: np.ndarray) -> np.ndarray:
    return torch.export.load(str(path)).module()(torch.from_numpy(X)).numpy()


def test_export_of_an_unfitted_model_is_refused(tmp_path) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ACTEncoder().export(tmp_path / "model.pt2")
    assert not (tmp_path / "model.pt2").exists()


def test_pt2_loads_and_runs_where_skact_cannot_be_imported(table_model, tmp_path) -> None:
    encoder, X = table_model
    encoder.export(tmp_path / "model.pt2")
    np.save(tmp_path / "X.npy", X[:4])
    script = textwrap.dedent(
        """
        import sys
        sys.modules["skact"] = None  # any import of skact now fails
        import numpy as np, torch
        program = torch.export.load("model.pt2")
        features = program.module()(torch.from_numpy(np.load("X.npy")))
        loaded = [n for n, m in sys.modules.items() if n.startswith("skact") and m]
        assert not loaded, loaded
        np.save("features.npy", features.numpy())
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=300)
    got = np.load(tmp_path / "features.npy")
    np.testing.assert_allclose(got, encoder.transform(X[:4]), rtol=0, atol=TOL)


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed")
def test_onnx_runs_where_neither_skact_nor_torch_can_be_imported(table_model, tmp_path):
    encoder, X = table_model
    encoder.export(tmp_path / "model.onnx")
    np.save(tmp_path / "X.npy", X[:4])
    script = textwrap.dedent(
        """
        import sys
        sys.modules["skact"] = sys.modules["torch"] = None  # imports of them now fail
        import numpy as np, onnxruntime
        session = onnxruntime.InferenceSession("model.onnx")
        features = session.run(["features"], {"X": np.load("X.npy")})[0]
        np.save("features.npy", features)
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=300)
    got = np.load(tmp_path / "features.npy")
    np.testing.assert_allclose(got, encoder.transform(X[:4]), rtol=0, atol=TOL)


class Branchy(nn.Module):
    """A network whose forward branches on its input's values: not traceable."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() > 0):
            return self.linear(x)
        return -self.linear(x)


def test_untraceable_encoder_fails_naming_the_part(table_model, tmp_path) -> None:
    _, X = table_model
    encoder = small_encoder(encoder=Branchy(), n_components=None, max_iter=1).fit(X)
    with pytest.raises(ExportError, match=r"the encoder network from encoder=Branchy"):
        encoder.export(tmp_path / "model.pt2")
    assert not (tmp_path / "model.pt2").exists()


def test_onnx_without_its_packages_names_the_extra(table_model, tmp_path, monkeypatch):
    encoder, _ = table_model
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else real(name, *a),
    )
    needs = r"needs onnxscript: pip install 'skact\[export\]'"
    with pytest.raises(ImportError, match=needs):
        encoder.export(tmp_path / "model.onnx")


# ------------------------------------------------------------------ mixed tables


def _mixed_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "b": rng.normal(size=n) * 5 + 2,
            "grade": pd.Categorical(rng.choice([1, 2, 3], n)),
        }
    )
    frame.loc[[1, 4, 9], "a"] = np.nan  # a gap in fit: "a" gets a missing indicator
    frame.loc[[2, 5], "colour"] = None  # and "colour" a missing category
    return frame


@pytest.fixture(scope="module")
def mixed_model() -> tuple[ACTEncoder, pd.DataFrame]:
    frame = _mixed_frame()
    encoder = small_encoder(handle_missing="indicator").fit(frame)
    test = frame.iloc[:12].copy()
    test.loc[3, "colour"] = "purple"  # unseen in fit: the unknown slot
    test.loc[6, "b"] = np.nan  # a gap where fit saw none: the mean, no indicator
    test["grade"] = test["grade"].cat.add_categories([9])
    test.loc[7, "grade"] = 9  # an unseen code of a numeric categorical column
    test.loc[8, "grade"] = np.nan  # a gap where fit saw none: the unknown slot
    return encoder, test


@pytest.mark.parametrize("format", FORMATS)
def test_mixed_table_export_matches_transform(mixed_model, tmp_path, format) -> None:
    encoder, test = mixed_model
    path = tmp_path / f"model.{format}"
    inputs = encoder.export(path)
    assert [(s["name"], s["dtype"]) for s in inputs["inputs"]] == [
        ("numeric", "float64"),
        ("codes", "int64"),
    ]
    assert inputs["inputs"][0]["columns"] == ["a", "b"]
    assert inputs["categorical"] == [
        {"name": "colour", "categories": ["blue", "green", "red"], "missing_code": 3},
        {"name": "grade", "categories": [1, 2, 3], "missing_code": -1},
    ]
    feeds = mixed_feeds(test, inputs)
    # The codes the recipe gives: unknown and missing as the model encodes them.
    assert feeds["codes"][3, 0] == -1 and feeds["codes"][2, 0] == 3
    assert feeds["codes"][7, 1] == -1 and feeds["codes"][8, 1] == -1
    got = run_exported(path, feeds)
    np.testing.assert_allclose(got, encoder.transform(test), rtol=0, atol=TOL)


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("columns", [["a", "b"], ["colour", "grade"]])
def test_mixed_table_of_one_column_type_has_one_input(tmp_path, format, columns) -> None:
    frame = _mixed_frame()[columns]
    encoder = small_encoder(handle_missing="indicator", max_iter=1).fit(frame)
    path = tmp_path / f"model.{format}"
    inputs = encoder.export(path)
    names = [s["name"] for s in inputs["inputs"]]
    assert names == (["numeric"] if columns == ["a", "b"] else ["codes"])
    got = run_exported(path, mixed_feeds(frame.iloc[:9], inputs))
    np.testing.assert_allclose(got, encoder.transform(frame.iloc[:9]), rtol=0, atol=TOL)


def test_mixed_preprocessing_module_is_to_storage() -> None:
    frame = _mixed_frame()
    frame["huge"] = np.linspace(-1e150, 3e150, len(frame))  # standardised in its units
    table = read_table(frame, "indicator")
    mask = np.array([False, True, False, True, False])
    adapter = MixedTableAdapter.fit(table, mask, "indicator", TabularAugment())
    numeric = torch.tensor(frame[["a", "b", "huge"]].to_numpy(dtype="float64"))
    codes = np.stack(
        [
            pd.Index(c["categories"]).get_indexer(frame[name]).astype(np.int64)
            for c, name in zip(adapter.input_codes(), ["colour", "grade"])
        ],
        axis=1,
    )
    codes[frame["colour"].isna().to_numpy(), 0] = adapter.input_codes()[0]["missing_code"]
    got = adapter.preprocessing_module()(numeric, torch.from_numpy(codes))
    assert torch.equal(got, adapter.to_storage(table))


# ------------------------------------------------------------------ images


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize(
    "shape",
    [(24, 8, 8), (24, 10, 12, 3), (12, 36, 36, 3)],
    ids=["grey-8x8", "rgb-10x12", "rgb-36x36"],
)
def test_image_export_matches_transform(tmp_path, format, shape) -> None:
    X = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    encoder = small_encoder(max_iter=1, batch_size=8).fit(X)
    path = tmp_path / f"model.{format}"
    inputs = encoder.export(path)
    assert inputs["inputs"] == [
        {"name": "images", "dtype": "uint8", "shape": ["n", *shape[1:]]}
    ]
    for n in (1, 5):
        got = run_exported(path, {"images": X[:n]})
        np.testing.assert_allclose(got, encoder.transform(X[:n]), rtol=0, atol=TOL)


def test_a_callable_augment_does_not_stop_the_export(tmp_path) -> None:
    X = np.random.default_rng(0).integers(0, 256, size=(16, 8, 8), dtype=np.uint8)
    encoder = small_encoder(max_iter=1, batch_size=8, augment=lambda x, g: x.flip(-1))
    encoder.fit(X)  # views are training only: the features do not use them
    encoder.export(tmp_path / "model.pt2")
    got = run_exported(tmp_path / "model.pt2", {"images": X[:3]})
    np.testing.assert_allclose(got, encoder.transform(X[:3]), rtol=0, atol=TOL)


@pytest.mark.parametrize(
    "shape, view_size",
    [((6, 8, 8), (12, 12)), ((6, 10, 12, 3), (10, 12)), ((6, 40, 40, 3), (32, 32))],
)
def test_image_preprocessing_module_is_to_model(shape, view_size) -> None:
    from skact.adapters.image import ImageAdapter
    from skact.augment import ImageAugment
    from skact.io.images import as_images

    X = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    augment = ImageAugment(output_size=view_size)
    adapter = ImageAdapter.fit(as_images(X), augment)
    assert adapter.input_shape[1:] == view_size
    expected = adapter.to_model(adapter.to_storage(as_images(X)))
    got = adapter.preprocessing_module()(torch.from_numpy(X))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("format", FORMATS)
def test_images_of_another_size_are_refused_by_the_runtime(tmp_path, format) -> None:
    X = np.random.default_rng(0).integers(0, 256, size=(16, 8, 8), dtype=np.uint8)
    encoder = small_encoder(max_iter=1, batch_size=8).fit(X)
    path = tmp_path / f"model.{format}"
    encoder.export(path)
    other = np.zeros((2, 9, 8), dtype=np.uint8)
    with pytest.raises(Exception, match=r"(?i)dim|shape|size"):
        run_exported(path, {"images": other})
