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


@pytest.mark.parametrize("separator", sorted({os.sep, os.altsep} - {None}))
def test_a_path_ending_with_a_separator_replaces_no_file(
    tmp_path: Path, separator: str
) -> None:
    """Resolving "notes.csv/" drops the separator: today's main replaced notes.csv.
    As open() does, a path naming a folder is refused, before the block runs."""
    notes = tmp_path / "notes.csv"
    notes.write_bytes(b"keep")
    for path in (str(notes) + separator, str(tmp_path / "new") + separator):
        with pytest.raises(IsADirectoryError) as info:
            with atomic_write(path) as f:
                f.write(b"model")
        assert info.value.filename == path
    assert notes.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv"]


def test_a_folder_is_refused_before_the_block_runs(tmp_path: Path) -> None:
    """Today's main ran the block (a whole model's serialisation) before os.replace
    found the folder."""
    entered = []
    with pytest.raises(IsADirectoryError) as info:
        with atomic_write(tmp_path):
            entered.append(True)
    assert not entered and info.value.filename == str(tmp_path)


def test_an_empty_path_is_file_not_found_as_for_open(tmp_path: Path, monkeypatch) -> None:
    """Today's main resolved "" to the working directory and tried to replace it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError):
        with atomic_write(""):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_bytes_path_names_the_same_file_as_its_str(tmp_path: Path) -> None:
    with atomic_write(os.fsencode(tmp_path / "out.bin")) as f:
        f.write(b"data")
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
