"""The "auto" rule: device x image size x number of samples -> settings."""

import numpy as np
import pytest
import torch

import skact
from skact import _auto, _device, resolved_settings

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


# ------------------------------------------------------------ precision, memory format

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
bugs\t\t: sysret_ss_attrs

processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""


def test_cpu_flags_are_read_from_the_first_flags_line():
    flags = _auto.cpu_flags(CPUINFO)
    assert {"avx512f", "avx512_bf16", "avx2"} <= flags
    assert "sysret_ss_attrs" not in flags and "AuthenticAMD" not in flags
    assert _auto.cpu_flags("processor : 0\nmodel name : x\n") == frozenset()
    assert _auto.cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu avx2 avx512f avx512_bf16", True),
        ("fpu avx2 amx_tile amx_bf16 amx_int8", True),
        ("fpu avx2 avx512f avx512_vnni", False),  # AVX-512 alone: bf16 is emulated
        ("fpu neon", False),
    ],
)
def test_native_bf16_needs_the_avx512_bf16_or_amx_bf16_flag(flags, native):
    text = f"processor : 0\nflags : {flags}\n"
    assert _auto.cpu_has_native_bf16(_auto.cpu_flags(text)) is native


def test_the_host_flags_are_read_once_from_proc_cpuinfo(monkeypatch):
    opened = []
    real_open = open

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        if path == "/proc/cpuinfo":
            import io

            return io.StringIO(CPUINFO)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    _auto._host_cpu_flags.cache_clear()
    try:
        assert _auto.cpu_has_native_bf16() and _auto.cpu_has_native_bf16()
        assert opened == ["/proc/cpuinfo"]
    finally:
        _auto._host_cpu_flags.cache_clear()


@pytest.mark.parametrize(
    ("gate", "device", "kind", "native", "precision"),
    [
        # The gate off (today's default): every CPU computes in float32.
        (False, "cpu", "image", True, "float32"),
        (False, "cpu", "table", True, "float32"),
        # The gate on: images in bf16 on CPUs that compute in it, never on emulation;
        # tables stay in float32 until measured.
        (True, "cpu", "image", True, "bfloat16"),
        (True, "cpu", "image", False, "float32"),
        (True, "cpu", "table", True, "float32"),
        (True, "cpu", "mixed", True, "float32"),
        # CUDA follows the device whatever the gate; MPS stays in float32.
        (False, "cuda", "table", True, "bfloat16"),
        (True, "cuda", "image", False, "float32"),
        (True, "mps", "image", True, "float32"),
    ],
)
def test_auto_precision_rule(monkeypatch, gate, device, kind, native, precision):
    monkeypatch.setattr(_auto, "CPU_FAST_PATHS", gate)
    got = _auto.compute_settings(device, kind, "auto", native_bf16=native)
    assert got.precision == precision


@pytest.mark.parametrize("gate", [False, True])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_an_explicit_precision_is_kept_on_every_device(monkeypatch, gate, precision):
    monkeypatch.setattr(_auto, "CPU_FAST_PATHS", gate)
    for device in ("cpu", "cuda", "mps"):
        for native in (False, True):
            got = _auto.compute_settings(device, "image", precision, native_bf16=native)
            assert got.precision == precision


def test_image_networks_are_channels_last_on_cpu_and_cuda_only():
    for device, kind, expected in [
        ("cpu", "image", True),
        ("cuda", "image", True),
        ("mps", "image", False),
        ("cpu", "table", False),
    ]:
        got = _auto.compute_settings(device, kind, native_bf16=False)
        assert got.channels_last is expected


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        _auto.compute_settings("cpu", "image", "float16", native_bf16=True)
    with pytest.raises(ValueError, match="precision"):
        small_encoder(precision="half").fit(np.zeros((20, 3)))


def _native_cpu(monkeypatch, gate):
    monkeypatch.setattr(_auto, "CPU_FAST_PATHS", gate)
    monkeypatch.setattr(_auto, "cpu_has_native_bf16", lambda flags=None: True)


def _images(n=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)


@pytest.mark.parametrize("gate", [False, True])
def test_resolved_settings_report_the_precision(monkeypatch, gate):
    _native_cpu(monkeypatch, gate)
    images = resolved_settings(small_encoder(), _images())
    assert images["precision"] == ("bfloat16" if gate else "float32")
    assert images["transform_precision"] == "float32"
    assert images["channels_last"] is True
    table = resolved_settings(small_encoder(), np.zeros((20, 3)))
    assert (table["precision"], table["channels_last"]) == ("float32", False)
    forced = resolved_settings(small_encoder(precision="bfloat16"), np.zeros((20, 3)))
    assert forced["precision"] == "bfloat16"


def _output_dtypes(encoder):
    """(grad enabled, dtype) of every output of ``encoder``'s network."""
    seen = []
    encoder.encoder_.register_forward_hook(
        lambda module, args, out: seen.append((torch.is_grad_enabled(), out.dtype))
    )
    return seen


@pytest.mark.parametrize(
    ("gate", "precision", "training", "encoding"),
    [
        (False, "auto", torch.float32, torch.float32),
        # "auto" on a CPU with bf16 instructions: bf16 training, float32 transform.
        (True, "auto", torch.bfloat16, torch.float32),
        (True, "float32", torch.float32, torch.float32),
        (False, "bfloat16", torch.bfloat16, torch.bfloat16),
    ],
)
def test_training_and_transform_precision(
    monkeypatch, caplog, gate, precision, training, encoding
):
    import logging

    _native_cpu(monkeypatch, gate)
    X, y = _images(), np.repeat([0, 1], 16)
    encoder = small_encoder(precision=precision, max_iter=1)
    with caplog.at_level(logging.INFO, logger="skact"):
        encoder.fit(X, y)
    names = {torch.bfloat16: "bfloat16", torch.float32: "float32"}
    assert (
        f"ACTEncoder: training's forward passes in {names[training]}, transform's in "
        f"{names[encoding]} (precision={precision} on cpu), channels_last memory format"
    ) in caplog.text
    seen = _output_dtypes(encoder)
    encoder.partial_fit(X, y)  # training steps, then the monitor's embedding pass
    assert {grad for grad, _ in seen} == {True, False}
    assert {dtype for grad, dtype in seen if grad} == {training}
    assert {dtype for grad, dtype in seen if not grad} == {encoding}  # the monitor
    seen.clear()
    assert encoder.transform(X).dtype == np.float32
    assert seen and {dtype for _, dtype in seen} == {encoding}


def test_auto_transform_on_a_cpu_gives_the_float32_features_of_the_weights(monkeypatch):
    """Trained in bf16 by "auto", a model encodes as precision="float32" would: the
    same features on a CPU without bf16 instructions (and as its exported file)."""
    _native_cpu(monkeypatch, True)
    X = _images()
    encoder = small_encoder().fit(X)
    assert resolved_settings(encoder.set_params(warm_start=False), X)["precision"] == (
        "bfloat16"
    )
    auto = encoder.transform(X)
    assert np.array_equal(auto, encoder.set_params(precision="float32").transform(X))
    bf16 = encoder.set_params(precision="bfloat16").transform(X)
    assert not np.array_equal(auto, bf16)
    np.testing.assert_allclose(auto, bf16, atol=0.1 * np.abs(auto).max())


def test_transform_precision_rule():
    rule = _auto.compute_settings
    assert rule("cpu", "image", "auto", native_bf16=True).transform_precision == ("float32")
    assert rule("cuda", "image", "auto", native_bf16=True).transform_precision == (
        "bfloat16"
    )
    assert rule("cuda", "table", "auto", native_bf16=False).transform_precision == (
        "float32"
    )
    for device in ("cpu", "cuda", "mps"):
        for precision in ("float32", "bfloat16"):
            got = rule(device, "image", precision, native_bf16=True)
            assert got.transform_precision == precision == got.precision


def test_float32_is_what_auto_computes_on_a_cpu_with_the_gate_off(monkeypatch):
    """precision="float32" and "auto" with the gate off train bit-identically (the
    seeded results of before the rule), images and tables alike; the gate on changes
    the images' features, as bf16 must."""
    _native_cpu(monkeypatch, False)
    X, table = _images(), np.random.default_rng(1).standard_normal((40, 4))
    auto = small_encoder().fit(X).transform(X)
    same = small_encoder(precision="float32").fit(X).transform(X)
    assert np.array_equal(auto, same)
    assert np.array_equal(
        small_encoder().fit(table).transform(table),
        small_encoder(precision="float32").fit(table).transform(table),
    )
    monkeypatch.setattr(_auto, "CPU_FAST_PATHS", True)
    assert np.array_equal(small_encoder(precision="float32").fit(X).transform(X), auto)
    assert not np.array_equal(small_encoder().fit(X).transform(X), auto)


def test_autocast_dtype_asks_the_device_only_for_auto(monkeypatch):
    asked = []

    def capability(device=None):
        asked.append(device)
        return (8, 0)

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    cuda = torch.device("cuda", 1)
    assert _device.autocast_dtype(cuda, "float32", "image") is None
    assert _device.autocast_dtype(cuda, "bfloat16", "table") == torch.bfloat16
    assert asked == []
    assert _device.autocast_dtype(cuda, "auto", "table") == torch.bfloat16
    assert asked == [cuda]
    _native_cpu(monkeypatch, True)
    cpu = torch.device("cpu")
    assert _device.autocast_dtype(cpu, "auto", "image") == torch.bfloat16
    assert _device.autocast_dtype(cpu, "auto", "image", transform=True) is None
    assert _device.autocast_dtype(cuda, "auto", "table", transform=True) == torch.bfloat16
    assert _device.autocast_dtype(cpu, "auto", "table") is None
