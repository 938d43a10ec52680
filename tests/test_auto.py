"""The "auto" rule: device x image size x number of samples -> settings."""

import pytest

from skact import _auto


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
