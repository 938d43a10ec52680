"""ACTEncoder.save and skact.load: round trips, refusal of code, versions, devices."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import time
import zipfile
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

import skact
from skact import _persistence

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(64, 5))


small = small_encoder


def rewrite(path: Path, config: dict[str, Any] | None = None, tensors: bytes | None = None):
    """Replace members of a saved file (what a tampered or future file looks like)."""
    with zipfile.ZipFile(path) as z:
        old_config, old_tensors = json.loads(z.read("skact.json")), z.read("tensors.pt")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("skact.json", json.dumps(config if config is not None else old_config))
        z.writestr("tensors.pt", tensors if tensors is not None else old_tensors)
    return old_config


class Payload:
    """Unpickles into a call that writes a file: a stand-in for malicious code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.path, "this ran"))


# ------------------------------------------------------------------------- round trips


def test_round_trip_gives_identical_transform(tmp_path: Path) -> None:
    enc = small().fit(X)
    enc.save(tmp_path / "enc.skact")
    loaded = skact.load(tmp_path / "enc.skact")
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    assert loaded.get_params() == enc.get_params()
    assert loaded.n_iter_ == 2 and loaded.loss_curve_ == enc.loss_curve_
    assert loaded.n_features_in_ == 5 and loaded.device_ == torch.device("cpu")
    assert list(loaded.get_feature_names_out()) == list(enc.get_feature_names_out())
    assert not loaded.encoder_.training


def test_image_round_trip_keeps_channels_last(tmp_path: Path) -> None:
    """fit puts a ConvNet in channels_last on the CPU; load must too (else the loaded
    model computes in another memory format: other rounding, slower)."""
    images = np.random.default_rng(0).random((32, 8, 8))
    enc = skact.ACTEncoder(
        4, encoder="convnet", max_iter=1, batch_size=16, random_state=0, device="cpu"
    ).fit(images)
    enc.save(tmp_path / "enc.skact")
    loaded = skact.load(tmp_path / "enc.skact")

    def formats(model: skact.ACTEncoder) -> list[bool]:
        convs = [m for m in model.encoder_.modules() if isinstance(m, torch.nn.Conv2d)]
        return [c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs]

    assert formats(loaded) == formats(enc) and all(formats(enc))
    np.testing.assert_array_equal(loaded.transform(images), enc.transform(images))


def test_channel_mismatch_round_trips_and_older_files_load_with_convert(
    tmp_path: Path,
) -> None:
    """A saved channel_mismatch comes back and still refuses; a file written before the
    parameter existed (no key) loads with the default, "convert"."""
    images = np.random.default_rng(0).random((32, 8, 8))
    rgb = np.repeat(images[..., None], 3, axis=-1)
    enc = skact.ACTEncoder(
        4, encoder="convnet", channel_mismatch="error", max_iter=1, batch_size=16,
        random_state=0, device="cpu",
    ).fit(images)  # fmt: skip
    path = tmp_path / "enc.skact"
    enc.save(path)
    loaded = skact.load(path)
    assert loaded.channel_mismatch == "error"
    with pytest.raises(ValueError, match="channel_mismatch='error' refuses"):
        loaded.transform(rgb)

    config = rewrite(path)
    del config["params"]["channel_mismatch"]
    rewrite(path, config=config)
    old = skact.load(path)
    assert old.channel_mismatch == "convert"
    with pytest.warns(UserWarning, match="RGB -> grey by ITU-R 601-2 luma"):
        features = old.transform(rgb)
    np.testing.assert_allclose(features, enc.transform(images), atol=1e-6)


def test_array_and_augment_parameters_round_trip(tmp_path: Path) -> None:
    """Parameters that are not JSON values themselves: an ImageAugment comes back equal,
    an array (a categorical mask, layer widths) as the tuple of its values."""
    from skact.augment import ImageAugment

    images = np.random.default_rng(0).random((32, 8, 8))
    aug = ImageAugment(output_size=(10, 12), crop_scale=(0.5, 1.0), flip_p=0.0)
    enc = skact.ACTEncoder(
        4, encoder="convnet", augment=aug, max_iter=1, batch_size=16, random_state=0
    ).fit(images)
    enc.save(tmp_path / "img.skact")
    loaded = skact.load(tmp_path / "img.skact")
    assert loaded.augment == aug and loaded.augment is not aug
    assert isinstance(loaded.augment.crop_scale, tuple)
    np.testing.assert_array_equal(loaded.transform(images), enc.transform(images))

    table = pd.DataFrame({"x": X[:, 0], "colour": np.where(X[:, 1] > 0, "red", "blue")})
    mask = np.array([False, True])
    enc = small(categorical_features=mask, hidden_layer_sizes=np.array([8])).fit(table)
    enc.save(tmp_path / "tab.skact")
    loaded = skact.load(tmp_path / "tab.skact")
    assert loaded.categorical_features == (False, True)
    assert loaded.hidden_layer_sizes == (8,)
    np.testing.assert_array_equal(loaded.transform(table), enc.transform(table))


def test_round_trip_keeps_feature_names_and_output_container(tmp_path: Path) -> None:
    df = pd.DataFrame(X, columns=list("abcde"))
    enc = small(projection_dim=None).set_output(transform="pandas").fit(df)
    enc.save(tmp_path / "enc.skact")
    loaded = skact.load(tmp_path / "enc.skact")
    assert list(loaded.feature_names_in_) == list("abcde")
    out = loaded.transform(df)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_frame_equal(out, enc.transform(df))
    assert loaded.projector_ is None
    with pytest.warns(UserWarning, match="feature names"):
        loaded.transform(X)  # names are checked as for the original


def test_warm_start_after_load_continues_exactly(tmp_path: Path) -> None:
    """Optimiser moments, adversary, random streams and schedule step are all saved."""
    enc = small(warm_start=True, adversary="ema").fit(X)
    enc.save(tmp_path / "enc.skact")
    loaded = skact.load(tmp_path / "enc.skact")
    np.testing.assert_array_equal(loaded.fit(X).transform(X), enc.fit(X).transform(X))
    assert loaded.loss_curve_ == enc.loss_curve_ and loaded._step == enc._step
    np.testing.assert_array_equal(
        loaded.partial_fit(X).transform(X), enc.partial_fit(X).transform(X)
    )


def test_file_holds_readable_json_and_only_tensors(tmp_path: Path) -> None:
    small().fit(X).save(tmp_path / "enc.skact")
    with zipfile.ZipFile(tmp_path / "enc.skact") as z:
        assert sorted(z.namelist()) == ["skact.json", "tensors.pt"]
        config = json.loads(z.read("skact.json"))
        tensors = torch.load(io.BytesIO(z.read("tensors.pt")), weights_only=True)
    assert config["format"] == "skact.ACTEncoder"
    assert config["format_version"] == _persistence.FORMAT_VERSION
    assert config["params"]["hidden_layer_sizes"] == [8]
    assert config["adapter"]["kind"] == "tabular"
    np.testing.assert_array_equal(tensors["arrays"]["adapter.mean"].numpy(), X.mean(axis=0))


def test_save_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        small().save("never.skact")


def test_a_failed_write_names_the_path_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "enc.skact"
    full = OSError(28, "No space left on device")  # as a write reports it: no file
    with mock.patch.object(zipfile.ZipFile, "writestr", side_effect=full):
        with pytest.raises(OSError, match="No space left") as info:
            small().fit(X).save(path)
    assert info.value.errno == 28 and info.value.filename == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_failed_save_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.skact"
    small().fit(X).save(path)
    before = path.read_bytes()
    with mock.patch.object(zipfile.ZipFile, "writestr", side_effect=OSError("disk full")):
        with pytest.raises(OSError, match="disk full"):
            small(random_state=1).fit(X).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.skact"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
def test_saved_file_has_the_umask_mode_or_the_replaced_files(tmp_path: Path) -> None:
    """Today's main made every model 0600 (mkstemp's mode), unreadable to colleagues."""
    enc = small().fit(X)
    old = os.umask(0o022)
    try:
        enc.save(tmp_path / "shared.skact")
        os.umask(0o077)
        enc.save(tmp_path / "private.skact")
        (tmp_path / "group.skact").write_bytes(b"")
        os.chmod(tmp_path / "group.skact", 0o640)
        enc.save(tmp_path / "group.skact")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "shared.skact") == 0o644
    assert _mode(tmp_path / "private.skact") == 0o600
    assert _mode(tmp_path / "group.skact") == 0o640


def test_saving_to_a_symbolic_link_replaces_its_target(tmp_path: Path) -> None:
    target, link = tmp_path / "models" / "v1.skact", tmp_path / "current.skact"
    target.parent.mkdir()
    small().fit(X).save(target)
    link.symlink_to(target)
    newer = small(random_state=1).fit(X)
    newer.save(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    np.testing.assert_array_equal(skact.load(target).transform(X), newer.transform(X))
    assert sorted(p.name for p in target.parent.iterdir()) == ["v1.skact"]


@pytest.mark.parametrize(
    ("where", "error"),
    [
        (lambda tmp: tmp / "a-file" / "enc.skact", NotADirectoryError),  # creating it
        (lambda tmp: tmp / "a-folder", IsADirectoryError),  # renaming it
    ],
    ids=["folder is a file", "destination is a folder"],
)
def test_save_error_names_the_path_asked_for(tmp_path: Path, where, error) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-folder" / "keep").write_bytes(b"")
    path = where(tmp_path)
    with pytest.raises(error) as info:
        small().fit(X).save(path)
    assert info.value.filename == str(path) and ".partial" not in str(info.value)
    assert not [p for p in tmp_path.rglob(".*.partial")]


_SEPARATORS = sorted({os.sep, os.altsep} - {None})


@pytest.mark.parametrize("separator", _SEPARATORS)
def test_a_path_ending_with_a_separator_is_refused_and_replaces_nothing(
    tmp_path: Path, separator: str
) -> None:
    """Today's main wrote a file named newdir for "newdir/", and replaced the user's
    notes.csv with a model for "notes.csv/"."""
    enc = small().fit(X)
    notes = tmp_path / "notes.csv"
    notes.write_text("a,b\n1,2\n")
    for folder in (notes, tmp_path / "newdir"):
        path = str(folder) + separator
        with pytest.raises(
            ValueError, match="so it names a folder, but a model is one"
        ) as e:
            enc.save(path)
        assert repr(path) in str(e.value)
        assert repr(os.path.join(folder, "model.skact")) in str(e.value)
        with pytest.raises(ValueError, match="so it names a folder"):
            skact.load(path)
    assert notes.read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv"]


def test_bytes_paths_are_decoded_as_os_fsdecode_does(tmp_path: Path) -> None:
    """Today's main loaded bytes paths but failed to save to them (a TypeError from a
    regular expression)."""
    enc = small().fit(X)
    name = b"model.skact" if os.name != "posix" else b"mod\xe8le.skact"  # not UTF-8
    path = os.fsencode(tmp_path) + os.fsencode(os.sep) + name
    enc.save(path)
    assert os.listdir(os.fsencode(tmp_path)) == [name]
    np.testing.assert_array_equal(skact.load(path).transform(X), enc.transform(X))


@pytest.mark.parametrize("path", [3, None, 1.5, ["model.skact"]])
def test_a_path_of_another_type_is_a_type_error_naming_the_accepted_ones(path) -> None:
    enc = small().fit(X)
    accepted = r"path must be a str, bytes or os.PathLike \(such as pathlib.Path\), not "
    for call in (enc.save, skact.load):
        with pytest.raises(TypeError, match=accepted + type(path).__name__):
            call(path)


def test_an_empty_path_is_a_value_error(tmp_path: Path, monkeypatch) -> None:
    """Today's main raised IsADirectoryError for save("") (it tried to replace the
    working directory) and FileNotFoundError for load("")."""
    monkeypatch.chdir(tmp_path)
    enc = small().fit(X)
    for call in (enc.save, skact.load):
        with pytest.raises(ValueError, match=r"path is empty\. Pass the model file's path"):
            call("")
    assert list(tmp_path.iterdir()) == []


def test_save_removes_temporary_files_of_killed_saves(tmp_path: Path) -> None:
    """Only files over a minute old whose process is gone: a concurrent save in
    another process keeps its temporary file. Those of earlier skact versions
    (``.skact-*.tmp``) go too."""
    dead = 2**22 + 1  # above Linux's largest pid_max: no process has it
    names = {
        f".enc.skact.{dead}-0a1b2c3d.partial": (True, True),  # old, process gone
        f".enc.skact.{os.getpid()}-12345678.partial": (True, False),  # process alive
        f".skact-{dead}-0a1b2c3d.tmp": (True, True),  # old, process gone: removed
        ".skact-k3x9_q2m.tmp": (True, True),  # skact 0.1.0's name (no pid), old
        f".skact-{dead}-ffffffff.tmp": (False, False),  # process gone, but just written
        f".skact-{os.getpid()}-12345678.tmp": (True, False),  # process alive
        ".skact-notes.txt": (True, False),  # not a temporary file of save
    }
    two_minutes_ago = time.time() - 120
    for name, (old, _) in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if old:
            os.utime(tmp_path / name, (two_minutes_ago, two_minutes_ago))
    small().fit(X).save(tmp_path / "enc.skact")
    left = {p.name for p in tmp_path.iterdir()}
    removed = {n for n, (_, gone) in names.items() if gone}
    if os.name != "posix":  # process ids are not checked there: only 0.1.0's names go
        removed = {".skact-k3x9_q2m.tmp"}
    assert left == {"enc.skact", *names} - removed


def test_random_state_instance_is_not_saved(tmp_path: Path) -> None:
    enc = small(random_state=np.random.RandomState(0)).fit(X)
    with pytest.warns(UserWarning, match="RandomState"):
        enc.save(tmp_path / "enc.skact")
    loaded = skact.load(tmp_path / "enc.skact")
    assert loaded.random_state is None
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))


# ------------------------------------------------------------------ user encoders


class TwoLayer(torch.nn.Module):
    def __init__(self, d: int = 5) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(d, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_user_encoder_weights_are_saved_but_not_its_code(tmp_path: Path) -> None:
    enc = small(n_components=None, encoder=TwoLayer()).fit(X)
    enc.save(tmp_path / "enc.skact")
    config = json.loads(zipfile.ZipFile(tmp_path / "enc.skact").read("skact.json"))
    assert config["custom_encoder"].endswith("TwoLayer")
    with pytest.raises(ValueError, match="encoder=<module or callable>"):
        skact.load(tmp_path / "enc.skact")
    loaded = skact.load(tmp_path / "enc.skact", encoder=TwoLayer())
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    # A callable building the architecture works as well.
    loaded = skact.load(tmp_path / "enc.skact", encoder=lambda shape: TwoLayer(shape[0]))
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))


def test_user_encoder_of_another_architecture_is_refused(tmp_path: Path) -> None:
    small(n_components=None, encoder=TwoLayer()).fit(X).save(tmp_path / "enc.skact")
    with pytest.raises(ValueError, match="do not fit the network"):
        skact.load(tmp_path / "enc.skact", encoder=torch.nn.Linear(5, 3))


def test_encoder_argument_for_a_builtin_encoder_is_refused(tmp_path: Path) -> None:
    small().fit(X).save(tmp_path / "enc.skact")
    with pytest.raises(ValueError, match="only for models fitted with a user-supplied"):
        skact.load(tmp_path / "enc.skact", encoder=TwoLayer())


# ----------------------------------------------------------------- refusing bad files


def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    path, marker = tmp_path / "enc.skact", tmp_path / "pwned.txt"
    small().fit(X).save(path)
    buffer = io.BytesIO()
    torch.save({"encoder": Payload(marker)}, buffer)
    rewrite(path, tensors=buffer.getvalue())
    with pytest.raises(ValueError, match="pickle payload") as info:
        skact.load(path)
    assert "Re-running" not in str(info.value)  # torch's advice to load it unsafely
    assert not marker.exists()
    # The payload is real: an unsafe load would have run it.
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert marker.read_text() == "this ran"


def test_plain_pickle_payload_in_the_archive_is_refused(tmp_path: Path) -> None:
    path, marker = tmp_path / "enc.skact", tmp_path / "pwned.txt"
    small().fit(X).save(path)
    rewrite(path, tensors=pickle.dumps({"encoder": Payload(marker)}))
    with pytest.raises(ValueError, match="refusing to load"):
        skact.load(path)
    assert not marker.exists()


def test_pickle_file_is_not_loaded(tmp_path: Path) -> None:
    path, marker = tmp_path / "enc.pkl", tmp_path / "pwned.txt"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match=r"not a model saved by ACTEncoder\.save"):
        skact.load(path)
    assert not marker.exists()


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _one_byte_flipped(path: Path) -> None:
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("tensors.pt")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF  # inside its data
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncated, "is corrupt or truncated (a damaged zip archive"),
        (_one_byte_flipped, "is corrupt or truncated (a damaged zip archive: Bad CRC-32"),
        (
            lambda p: rewrite(p, tensors=b"garbage bytes " * 10),
            "tensors.pt is not readable (not a torch archive)",
        ),
        (
            lambda p: rewrite(p, tensors=_saved_tensors(p)[:-1000]),
            "tensors.pt is not readable (ValueError",
        ),
        (lambda p: rewrite(p, tensors=b""), "tensors.pt is not readable (EOFError"),
    ],
    ids=["truncated file", "flipped byte", "garbage tensors", "truncated tensors", "empty"],
)
@pytest.mark.parametrize("optimizer_state", [True, False], ids=["", "no optimizer"])
def test_damaged_files_are_called_corrupt(
    tmp_path: Path, damage, message, optimizer_state: bool
) -> None:
    """A damaged genuine file is neither 'not a model' (advice for pickle files) nor a
    'pickle payload' (a security alarm), and never a bare torch or zip error."""
    path = tmp_path / "enc.skact"
    small().fit(X).save(path, optimizer_state=optimizer_state)
    damage(path)
    with pytest.raises(ValueError) as info:
        skact.load(path)
    assert message in str(info.value)
    assert "Save the model again" in str(info.value)


def _saved_tensors(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read("tensors.pt")


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "enc.skact"
    small().fit(X).save(path)
    config = rewrite(path)
    config["format_version"] = _persistence.FORMAT_VERSION + 1
    config["skact_version"] = "9.0"
    rewrite(path, config=config)
    with pytest.raises(ValueError, match=r"skact 9\.0 in format version 2.*Upgrade skact"):
        skact.load(path)


def test_other_json_and_missing_members_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "enc.skact"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("skact.json", json.dumps({"format": "something else"}))
        z.writestr("tensors.pt", b"")
    with pytest.raises(ValueError, match="names another format"):
        skact.load(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("skact.json", "{}")
    with pytest.raises(ValueError, match="lacks"):
        skact.load(path)


def test_incomplete_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "enc.skact"
    small().fit(X).save(path)
    config = rewrite(path)
    del config["fitted"]
    rewrite(path, config=config)
    with pytest.raises(ValueError, match="incomplete or corrupt"):
        skact.load(path)


def test_invalid_saved_device_is_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.skact"
    small().fit(X).save(path)
    config = rewrite(path)
    config["fitted"]["device"] = "not-a-device"
    rewrite(path, config=config)
    with pytest.raises(
        ValueError, match=r"incomplete or corrupt \(skact\.json\): RuntimeError"
    ):
        skact.load(path)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        skact.load(tmp_path / "nothing.skact")


# ----------------------------------------------------------------------------- devices


def test_model_saved_on_cuda_loads_on_cpu(tmp_path: Path) -> None:
    """A file written on a GPU machine: device "cuda:0" and a CUDA generator state."""
    path = tmp_path / "enc.skact"
    enc = small(warm_start=True, device="auto").fit(X)
    enc.save(path)
    config = rewrite(path)
    config["fitted"]["device"] = "cuda:0"
    config["params"]["device"] = "cuda"
    with zipfile.ZipFile(path) as z:
        tensors = torch.load(io.BytesIO(z.read("tensors.pt")), weights_only=True)
    tensors["generator"] = torch.zeros(16, dtype=torch.uint8)  # Philox state, CUDA's form
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    rewrite(path, config=config, tensors=buffer.getvalue())

    with mock.patch.object(torch.cuda, "is_available", return_value=False):
        loaded = skact.load(path)
        assert loaded.device_ == torch.device("cpu")
        assert loaded.device == "cuda"  # the parameter is kept; device= overrides it
        np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
        moved = skact.load(path, device="cpu")
        assert moved.device == "cpu"
        # The generator was reseeded for the CPU, so training goes on.
        moved.fit(X)
        assert moved.n_iter_ == 4 and np.isfinite(moved.transform(X)).all()


def test_loaded_tensors_are_mapped_to_the_cpu(tmp_path: Path) -> None:
    path = tmp_path / "enc.skact"
    small().fit(X).save(path)
    with mock.patch.object(torch, "load", wraps=torch.load) as load:
        skact.load(path)
    assert load.call_args.kwargs == {"map_location": "cpu", "weights_only": True}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_round_trip(tmp_path: Path) -> None:
    enc = small(device="cuda").fit(X)
    enc.save(tmp_path / "enc.skact")
    on_cpu = skact.load(tmp_path / "enc.skact", device="cpu")
    np.testing.assert_allclose(
        on_cpu.transform(X), enc.transform(X), atol=5e-2
    )  # bf16 autocast on CUDA
    on_gpu = skact.load(tmp_path / "enc.skact")
    assert on_gpu.device_.type == "cuda"
    np.testing.assert_array_equal(on_gpu.transform(X), enc.transform(X))


def test_a_file_saved_with_a_nan_adversary_loads_and_trains_again(tmp_path: Path) -> None:
    """An older skact saved G = NaN after a divergence (issue 15 item 9): the estimate
    is dropped on loading, as Adversary.load_state_dict does, and the file is usable,
    not refused as corrupt (saving it again could not help)."""
    enc = small().fit(X)
    nan = torch.full_like(enc._adversary_state["state"], np.nan)
    enc._adversary_state = {**enc._adversary_state, "state": nan}
    enc.save(tmp_path / "nan.skact")
    loaded = skact.load(tmp_path / "nan.skact")
    assert loaded._adversary_state["state"] is None
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    loaded.set_params(learning_rate=1e-6).partial_fit(X)
    assert np.isfinite(loaded.loss_curve_).all()


# ------------------------------------------------------- saving without the optimizer


def _parameters(enc: skact.ACTEncoder) -> list[torch.Tensor]:
    heads = [] if enc.projector_ is None else [*enc.projector_.parameters()]
    return [*enc.encoder_.parameters(), *heads]


def test_saving_without_optimizer_state_leaves_out_adams_two_moments(
    tmp_path: Path,
) -> None:
    """Issue 16: a ResNet-18 file was 141 MB, two thirds of it Adam's moments."""
    enc = small(hidden_layer_sizes=(256, 256), max_iter=1).fit(X)
    full, lean = tmp_path / "full.skact", tmp_path / "lean.skact"
    enc.save(full)
    enc.save(lean, optimizer_state=False)
    parameters = _parameters(enc)
    moments = 2 * sum(p.numel() * p.element_size() for p in parameters)
    saved = full.stat().st_size - lean.stat().st_size
    # Adam's two moments, plus torch.save's record of each of its three tensors
    # (two moments and a step count) per parameter.
    assert moments <= saved <= moments + 3 * len(parameters) * 4096
    assert lean.stat().st_size < full.stat().st_size / 2
    for path, holds in ((full, True), (lean, False)):
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("skact.json"))
            tensors = torch.load(io.BytesIO(z.read("tensors.pt")), weights_only=True)
        assert config["optimizer_state"] is holds
        assert (tensors["optimizer"] is not None) is holds
    loaded = skact.load(lean)
    assert loaded._optimizer_state is None
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    # Saving changed nothing in the estimator: it still pickles with its moments.
    assert enc._optimizer_state is not None
    pickled = pickle.loads(pickle.dumps(enc))
    assert pickled._optimizer_state["state"].keys() == enc._optimizer_state["state"].keys()
    np.testing.assert_array_equal(pickled.transform(X), enc.transform(X))
    # Saved again, a model loaded without moments says so again.
    loaded.save(tmp_path / "again.skact")
    with zipfile.ZipFile(tmp_path / "again.skact") as z:
        assert json.loads(z.read("skact.json"))["optimizer_state"] is False


@pytest.mark.parametrize("value", [None, "no", 0, 1])
def test_optimizer_state_must_be_a_bool(tmp_path: Path, value: object) -> None:
    """None used to drop the moments and "no" to keep them, by their truthiness."""
    enc = small(max_iter=1).fit(X)
    path = tmp_path / "m.skact"
    with pytest.raises(TypeError, match=r"^optimizer_state must be True or False, got "):
        # A wrong type on purpose: what the runtime check refuses.
        enc.save(path, optimizer_state=value)  # type: ignore[arg-type]
    assert not path.exists()
    enc.save(path, optimizer_state=np.False_)  # a NumPy bool is a bool
    with zipfile.ZipFile(path) as z:
        assert json.loads(z.read("skact.json"))["optimizer_state"] is False


@pytest.mark.parametrize("method", ["partial_fit", "warm_start"])
def test_training_a_model_saved_without_optimizer_state_starts_a_fresh_adam(
    tmp_path: Path, method: str
) -> None:
    """Its first steps match those of a fresh Adam from the same weights, adversary and
    random streams; the full file's continue the saved moments instead."""
    enc = small(adversary="ema").fit(X)
    enc.save(tmp_path / "full.skact")
    enc.save(tmp_path / "lean.skact", optimizer_state=False)
    lean = skact.load(tmp_path / "lean.skact")
    fresh = skact.load(tmp_path / "full.skact")
    fresh._optimizer_state = None  # what a new Adam starts from
    continued = skact.load(tmp_path / "full.skact")
    for model in (lean, fresh, continued):
        if method == "partial_fit":
            model.partial_fit(X)
        else:
            model.set_params(warm_start=True, max_iter=1).fit(X)
    steps = len(X) // 16  # one epoch of batches of 16
    state = lean._optimizer_state["state"]
    assert float(state[0]["step"]) == steps
    assert float(continued._optimizer_state["state"][0]["step"]) == enc._step + steps
    reference = fresh._optimizer_state["state"]
    assert state.keys() == reference.keys()
    for i, moments in state.items():
        for key, value in moments.items():
            torch.testing.assert_close(value, reference[i][key], rtol=0, atol=0)
    assert not torch.equal(
        state[0]["exp_avg"], continued._optimizer_state["state"][0]["exp_avg"]
    )
    np.testing.assert_array_equal(lean.transform(X), fresh.transform(X))
    assert lean._step == enc._step + steps  # the schedule goes on, as after any load


def test_older_files_without_the_optimizer_record_still_load(tmp_path: Path) -> None:
    """Files of skact before the record: with moments, or with None (no step yet)."""
    path = tmp_path / "enc.skact"
    enc = small().fit(X)
    enc.save(path)
    config = rewrite(path)
    del config["optimizer_state"]
    rewrite(path, config=config)
    assert skact.load(path)._optimizer_state is not None
    enc.save(path, optimizer_state=False)
    config = rewrite(path)
    del config["optimizer_state"]
    rewrite(path, config=config)
    np.testing.assert_array_equal(skact.load(path).transform(X), enc.transform(X))
