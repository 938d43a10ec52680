"""skact._atomic: whole-or-nothing file writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from skact import _atomic
from skact._atomic import atomic_write


@pytest.mark.parametrize("text", [False, True])
def test_the_temporary_file_is_opened_in_binary_mode(tmp_path, monkeypatch, text):
    """On Windows os.open makes a text-mode descriptor unless given O_BINARY, and the
    C runtime then writes every b"\\n" as b"\\r\\n": a .npy or a model file would be
    corrupt (and a CSV written with newline="" would get b"\\r\\r\\n")."""
    binary = 0x40000000  # a bit no POSIX open flag uses, standing in for O_BINARY
    monkeypatch.setattr(os, "O_BINARY", binary, raising=False)
    seen: list[int] = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777):
        seen.append(flags)
        return real_open(path, flags & ~binary, mode)

    monkeypatch.setattr(_atomic.os, "open", recording_open)
    with atomic_write(tmp_path / "out.bin", text=text) as f:
        f.write("a\n" if text else b"a\n")
    assert seen and all(flags & binary for flags in seen)
    assert (tmp_path / "out.bin").read_bytes() == b"a\n"


def test_a_new_file_round_trips_a_numpy_array(tmp_path: Path) -> None:
    array = np.arange(12.0).reshape(3, 4)
    with atomic_write(tmp_path / "a.npy") as f:
        np.save(f, array)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
