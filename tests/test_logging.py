"""skact logs through the standard library (the "skact" logger): the fit's summary, the
resolved 'auto' settings, each epoch's record; the library prints nothing but the
progress display, and configures no handler."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

import skact

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)


def test_the_library_adds_only_a_null_handler():
    handlers = logging.getLogger("skact").handlers
    assert handlers and all(type(h) is logging.NullHandler for h in handlers)
    assert logging.getLogger("skact").level == logging.NOTSET  # the application decides


def test_a_fit_logs_its_summary_the_auto_settings_and_each_epoch(caplog):
    enc = small_encoder(max_iter=2, batch_size="auto", learning_rate="auto")
    with caplog.at_level(logging.INFO, logger="skact"):
        enc.fit(X)
    messages = [r.getMessage() for r in caplog.records]
    assert all(r.name.startswith("skact.") for r in caplog.records)
    assert (
        "ACTEncoder: training 2 epochs on 64 samples (tabular of shape (5,)): mlp "
        "network of width 3, batch size 64, peak learning rate 0.001, device cpu, "
        "0 callbacks"
    ) in messages
    assert (
        "ACTEncoder: 'auto' resolved to encoder='mlp', batch_size=64, "
        "learning_rate=0.001, "
        "corruption_rate=0.2"
    ) in messages
    epochs = [r for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [r.levelno for r in epochs] == [logging.INFO] * 2
    assert [r.skact_record["loss"] for r in epochs] == enc.loss_curve_
    assert re.match(r"epoch 2: loss [\d.]+, rank [\d.]+, learning rate ", messages[-1])


def test_partial_fit_resolves_no_max_iter(caplog):
    with caplog.at_level(logging.INFO, logger="skact"):
        small_encoder(max_iter="auto").partial_fit(X)
    (auto,) = [r.getMessage() for r in caplog.records if "'auto'" in r.getMessage()]
    assert "max_iter" not in auto
    assert "training 1 epoch on 64 samples" in caplog.text


def test_nothing_is_logged_below_warning_by_default(caplog):
    with caplog.at_level(logging.WARNING, logger="skact"):
        small_encoder(max_iter=1).fit(X)
    assert caplog.records == []


@pytest.mark.parametrize("verbose", [0, 2])
def test_the_library_writes_nothing_to_stdout(verbose, capsys):
    small_encoder(max_iter=2, verbose=verbose).fit(X)
    captured = capsys.readouterr()
    assert captured.out == ""
    if verbose == 0:
        assert captured.err == ""
    else:  # the progress display: the bar and a line per epoch above it
        assert re.search(r"(?:^|\r)epoch 2: loss [\d.]+", captured.err, re.M)


def test_no_library_module_prints():
    """Outside the command line (skact/cli), code logs or warns; it never prints."""
    writes = re.compile(r"^\s*(print\(|sys\.stdout\.write|sys\.stderr\.write)")
    offenders = [
        f"{path}:{n}"
        for path in Path(skact.__file__).parent.rglob("*.py")
        if "cli" not in path.parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if writes.match(line)
    ]
    assert offenders == []


def test_a_new_model_logs_how_it_reads_its_input(caplog):
    import pandas as pd

    frame = pd.DataFrame(
        {"x": np.arange(32.0), "colour": pd.Categorical(["red", "blue"] * 16)}
    )
    with caplog.at_level(logging.INFO, logger="skact"):
        small_encoder(max_iter=1).fit(frame)
        small_encoder(max_iter=1).fit(
            np.zeros((8, 6, 6), dtype=np.uint8) + np.arange(8)[:, None, None]
        )
    read = [r.getMessage() for r in caplog.records if "input is read" in r.getMessage()]
    assert read == [
        "ACTEncoder: the input is read as a table of 2 columns, standardised; "
        "1 categorical, embedded: colour",
        "ACTEncoder: the input is read as images stored as uint8 at 6x6 pixels with 1 "
        "channel, seen by the network at 9x9",  # tiny images' views: 1.5x upsampled
    ]
