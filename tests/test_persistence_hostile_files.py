"""skact.load on hostile model files: size bombs, devices and pipes, duplicate members,
tampered tensors, zip features skact never writes, and deep JSON.

Each case must raise :class:`skact.ModelFileError` naming the file and the member at
fault, quickly and within bounded memory, and never blame the user's data.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import threading
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch

import skact
from skact import _persistence, _training
from skact.objectives import OBJECTIVES

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(64, 5))
#: Python allocations allowed while refusing a bomb (the file itself is ~1 MB).
MEMORY_BOUND = 32 * 2**20
#: What the bombs inflate to.
BOMB = 128 * 2**20


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, Any]]:
    """The members of a genuine small model: skact.json's bytes and the tensors."""
    path = tmp_path_factory.mktemp("model") / "model.skact"
    small_encoder(adversary="ema").fit(X).save(path)
    with zipfile.ZipFile(path) as z:
        config = z.read("skact.json")
        tensors = torch.load(io.BytesIO(z.read("tensors.pt")), weights_only=True)
    return config, tensors


@pytest.fixture(scope="module")
def zeros_deflated() -> bytes:
    """A raw deflate stream of BOMB zero bytes (about 600 KB)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    chunk = bytes(16 * 2**20)
    stream = b"".join(compressor.compress(chunk) for _ in range(BOMB // len(chunk)))
    return stream + compressor.flush()


def tensor_bytes(tensors: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return buffer.getvalue()


class Member:
    """One zip member, written as given: sizes, flags and method may lie."""

    def __init__(
        self,
        name: str,
        data: bytes,
        *,
        method: int = zipfile.ZIP_STORED,
        size: int | None = None,
        crc: int | None = None,
        flags: int = 0,
    ) -> None:
        self.name, self.data, self.method, self.flags = name, data, method, flags
        self.size = len(data) if size is None else size
        self.crc = zlib.crc32(data) if crc is None else crc


def write_zip(path: Path, members: list[Member]) -> None:
    """A zip archive exactly as described (zipfile refuses to write most of these)."""
    body, directory = io.BytesIO(), io.BytesIO()
    for m in members:
        name, offset = m.name.encode(), body.tell()
        common = (m.flags, m.method, 0, 0x21, m.crc, len(m.data), m.size, len(name))
        body.write(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, *common, 0))
        body.write(name + m.data)
        directory.write(
            struct.pack(
                "<4s4B4HL2L5H2L",
                b"PK\x01\x02",
                20,
                3,
                20,
                0,
                *common,
                0,
                0,
                0,
                0,
                0,
                offset,
            )
        )
        directory.write(name)
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
        directory.tell(), body.tell(), 0,
    )  # fmt: skip
    path.write_bytes(body.getvalue() + directory.getvalue() + end)


def refused(path: Path, member: str | None, *, timeout: float = 20.0) -> str:
    """Load ``path`` in a thread; it must raise ModelFileError naming the file and
    ``member`` within ``timeout`` seconds and allocate at most MEMORY_BOUND."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            skact.load(path)
        except BaseException as exc:  # handed to the test thread, whatever it is
            outcome["error"] = exc

    tracemalloc.start()
    try:
        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        worker.join(timeout)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not worker.is_alive(), f"skact.load did not return within {timeout} s"
    error = outcome.get("error")
    assert isinstance(error, skact.ModelFileError), repr(error)
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB allocated"
    message = str(error)
    assert error.path == str(path) and repr(str(path)) in message
    assert error.member == member
    if member is not None:
        assert member in message
    assert "Traceback" not in message and "got a table" not in message
    return message


# ------------------------------------------------------------------------- size bombs


def test_tensor_member_inflating_to_128_mib_is_refused_before_reading(
    tmp_path: Path, saved, zeros_deflated: bytes
) -> None:
    config, _ = saved
    path = tmp_path / "bomb.skact"
    write_zip(
        path,
        [
            Member("skact.json", config),
            Member(
                "tensors.pt",
                zeros_deflated,
                method=zipfile.ZIP_DEFLATED,
                size=BOMB,
                crc=zlib.crc32(bytes(BOMB)),
            ),
        ],
    )
    assert path.stat().st_size < 2 * 2**20
    message = refused(path, "tensors.pt")
    assert f"declares {BOMB:,} bytes" in message
    assert "that the architecture in skact.json can need" in message


def test_member_larger_than_its_header_says_is_read_in_bounded_chunks(
    tmp_path: Path, saved, zeros_deflated: bytes
) -> None:
    """The header claims 64 KiB (within the bound); the data inflates to 128 MiB."""
    config, _ = saved
    path = tmp_path / "liar.skact"
    write_zip(
        path,
        [
            Member("skact.json", config),
            Member("tensors.pt", zeros_deflated, method=zipfile.ZIP_DEFLATED, size=2**16),
        ],
    )
    assert "a damaged zip archive" in refused(path, "tensors.pt")


def _claiming(config: bytes, hidden: list[int]) -> bytes:
    """``config`` with another architecture: hidden layers of ``hidden`` units."""
    edited = json.loads(config)
    edited["params"]["hidden_layer_sizes"] = hidden
    return json.dumps(edited).encode()


def test_a_claimed_huge_network_with_a_bomb_is_refused_in_bounded_memory(
    tmp_path: Path, saved, zeros_deflated: bytes
) -> None:
    """Today's main bounded tensors.pt by the architecture skact.json claims: hidden
    sizes (60000, 60000) allowed a 2 GiB member, inflated before it was refused."""
    config, _ = saved
    path = tmp_path / "claim-bomb.skact"
    write_zip(
        path,
        [
            Member("skact.json", _claiming(config, [60000, 60000])),
            Member("tensors.pt", zeros_deflated, method=zipfile.ZIP_DEFLATED, size=2**31),
        ],
    )
    assert path.stat().st_size < 2 * 2**20
    message = refused(path, "skact.json")
    assert "3,600," in message and "parameters" in message  # 60000 * 60000 and more
    assert f"more than the {_persistence.DEFAULT_MAX_BYTES:,} bytes" in message
    assert "skact.load(path, max_bytes=" in message
    assert "Save the model again" not in message  # a big model is not a damaged one


def test_a_bomb_within_the_claimed_architecture_is_refused_by_its_ratio(
    tmp_path: Path, saved, zeros_deflated: bytes
) -> None:
    """Hidden sizes (4000, 4000) need 200 MB of weights and moments, within the
    default max_bytes: the 128 MiB of zeros compressed 200-fold are still refused,
    from the zip header, before anything is inflated."""
    config, _ = saved
    path = tmp_path / "ratio-bomb.skact"
    write_zip(
        path,
        [
            Member("skact.json", _claiming(config, [4000, 4000])),
            Member(
                "tensors.pt",
                zeros_deflated,
                method=zipfile.ZIP_DEFLATED,
                size=BOMB,
                crc=zlib.crc32(bytes(BOMB)),
            ),
        ],
    )
    message = refused(path, "tensors.pt")
    ratio = BOMB / len(zeros_deflated)
    assert f"compressed {ratio:.0f} to 1" in message
    assert "zip -0" in message


def test_a_member_claiming_more_compressed_bytes_than_the_file_is_refused(
    tmp_path: Path, saved
) -> None:
    """The ratio is computed from the compressed size the header declares: a lie
    there is refused before it can excuse a bomb."""
    config, tensors = saved
    path = tmp_path / "long.skact"
    write_zip(
        path, [Member("skact.json", config), Member("tensors.pt", tensor_bytes(tensors))]
    )
    data = bytearray(path.read_bytes())
    directory = data.rindex(b"PK\x01\x02")  # tensors.pt's central directory entry
    struct.pack_into("<L", data, directory + 20, 2**30)  # its compressed size
    path.write_bytes(bytes(data))
    assert "compressed bytes, more than the whole file's" in refused(path, "tensors.pt")


def test_max_bytes_bounds_what_load_reads_and_can_be_raised(tmp_path: Path) -> None:
    """A model larger than max_bytes is refused, with the value that loads it; that
    value loads it."""
    enc = small_encoder().fit(X)
    path = tmp_path / "model.skact"
    enc.save(path)
    with pytest.raises(skact.ModelFileError, match=r"max_bytes=(\d+)\)") as info:
        skact.load(path, max_bytes=1000)
    assert info.value.member == "skact.json"
    assert "Save the model again" not in str(info.value)
    suggested = int(re.search(r"max_bytes=(\d+)\)", str(info.value)).group(1))
    loaded = skact.load(path, max_bytes=suggested)
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    with zipfile.ZipFile(path) as z:
        size = z.getinfo("tensors.pt").file_size
    # Enough for the tensors the architecture needs, not for tensors.pt's records.
    with pytest.raises(skact.ModelFileError, match=f"declares {size:,} bytes") as info:
        skact.load(path, max_bytes=size - 1)
    assert info.value.member == "tensors.pt"
    assert f"skact.load(path, max_bytes={size})" in str(info.value)


@pytest.mark.parametrize(
    ("value", "error"),
    [("1GB", TypeError), (True, TypeError), (1.5, TypeError), (0, ValueError)],
)
def test_max_bytes_must_be_a_positive_integer(tmp_path: Path, value, error) -> None:
    path = tmp_path / "model.skact"
    small_encoder().fit(X).save(path)
    with pytest.raises(error, match="max_bytes must be a positive integer"):
        skact.load(path, max_bytes=value)


def test_config_member_of_128_mib_whitespace_is_refused(tmp_path: Path, saved) -> None:
    """Today's main parsed a 1 GiB JSON of whitespace (2.4 GB of memory)."""
    _, tensors = saved
    path = tmp_path / "json-bomb.skact"
    spaces = zlib.compressobj(1, zlib.DEFLATED, -15)
    padded = spaces.compress(b" " * BOMB) + spaces.flush()
    write_zip(
        path,
        [
            Member(
                "skact.json",
                padded,
                method=zipfile.ZIP_DEFLATED,
                size=BOMB,
                crc=zlib.crc32(b" " * BOMB),
            ),
            Member("tensors.pt", tensor_bytes(tensors)),
        ],
    )
    assert f"declares {BOMB:,} bytes" in refused(path, "skact.json")


# ----------------------------------------------------------------- devices and pipes


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero (POSIX)")
def test_link_to_a_character_device_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "zero.skact"
    path.symlink_to("/dev/zero")
    assert "it is a character device" in refused(path, None, timeout=5)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "pipe.skact"
    os.mkfifo(path)
    assert "it is a named pipe (FIFO)" in refused(path, None, timeout=5)


def test_directory_is_refused(tmp_path: Path) -> None:
    assert "it is a directory" in refused(tmp_path, None)


def test_link_to_a_regular_model_file_loads(tmp_path: Path) -> None:
    enc = small_encoder().fit(X)
    enc.save(tmp_path / "model.skact")
    (tmp_path / "link.skact").symlink_to(tmp_path / "model.skact")
    loaded = skact.load(tmp_path / "link.skact")
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))


# ------------------------------------------------------------------- zip features


def test_duplicate_members_are_refused(tmp_path: Path, saved) -> None:
    """zipfile reads the last of two skact.json; another reader would read the first."""
    config, tensors = saved
    other = json.loads(config)
    other["params"]["alpha"] = 1.0
    path = tmp_path / "twice.skact"
    write_zip(
        path,
        [
            Member("skact.json", config),
            Member("skact.json", json.dumps(other).encode()),
            Member("tensors.pt", tensor_bytes(tensors)),
        ],
    )
    assert "the archive holds 2 members named skact.json" in refused(path, "skact.json")


def test_encrypted_member_is_refused(tmp_path: Path, saved) -> None:
    config, tensors = saved
    path = tmp_path / "encrypted.skact"
    write_zip(
        path,
        [
            Member("skact.json", config),
            Member("tensors.pt", tensor_bytes(tensors), flags=1),
        ],
    )
    assert "it is encrypted" in refused(path, "tensors.pt")


def test_unknown_compression_method_is_refused(tmp_path: Path, saved) -> None:
    config, tensors = saved
    path = tmp_path / "method.skact"
    write_zip(
        path,
        [
            Member("skact.json", config, method=99),
            Member("tensors.pt", tensor_bytes(tensors)),
        ],
    )
    assert "zip compression method 99" in refused(path, "skact.json")


def test_deflated_members_load(tmp_path: Path) -> None:
    """A model re-zipped with compression is still a model."""
    enc = small_encoder().fit(X)
    enc.save(tmp_path / "model.skact")
    with zipfile.ZipFile(tmp_path / "model.skact") as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "deflated.skact", "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    loaded = skact.load(tmp_path / "deflated.skact")
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))


# ----------------------------------------------------------------------- skact.json


def _edit(key_path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        *parents, last = key_path.split(".")
        for key in parents:
            config = config[key]
        config[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "member", "message"),
    [
        (_edit("fitted.n_iter_", "x"), "skact.json", "fitted n_iter_='x'"),
        (_edit("fitted.n_components_out", True), "skact.json", "n_components_out=True"),
        (_edit("output", "evil"), "skact.json", "output='evil' is not one of set_output's"),
        (
            _edit("params.encoder", "convnet"),
            "skact.json",
            "do not describe the network for its tabular input",
        ),
        (_edit("fitted.n_components_out", 7), "skact.json", "outputs 3 features, not 7"),
        (
            _edit("params.hidden_layer_sizes", [10**12]),
            "skact.json",
            "tensors with the optimizer state, more than the 1,073,741,824 bytes",
        ),
        (_edit("params.n_components", "3"), "skact.json", "its parameters are invalid"),
        (
            _edit("fitted.shuffle_rng.state.state", "x"),
            "skact.json",
            "incomplete or corrupt",
        ),
        (
            _edit("fitted.feature_names_in_", ["a"]),
            "skact.json",
            "not one name per feature",
        ),
        (
            _edit("adapter.kind", "image"),
            "skact.json",
            "incomplete or corrupt (skact.json): KeyError",
        ),
        (
            _edit("fitted.n_features_in_", 6),
            "tensors.pt",
            "adapter.mean is torch.float64 of shape (5,), not torch.float64 of shape (6,)",
        ),
    ],
    ids=[
        "int as string",
        "bool as int",
        "output container",
        "image encoder on a table",
        "lying width",
        "huge layer",
        "invalid parameter",
        "random state",
        "feature names",
        "adapter kind",
        "feature count",
    ],
)
def test_tampered_config_is_a_corrupt_file(
    tmp_path: Path, saved, edit, member: str, message: str
) -> None:
    """Today's main raised ValueError("invalid literal for int()"), sklearn's "output
    config must be in [...]" at transform, or "got a table" for a lying encoder."""
    config, tensors = saved
    config = json.loads(config)
    edit(config)
    path = tmp_path / "tampered.skact"
    write_zip(
        path,
        [
            Member("skact.json", json.dumps(config).encode()),
            Member("tensors.pt", tensor_bytes(tensors)),
        ],
    )
    assert message in refused(path, member)


def test_deeply_nested_json_is_refused(tmp_path: Path, saved) -> None:
    _, tensors = saved
    path = tmp_path / "deep.skact"
    deep = b"[" * 100_000 + b"]" * 100_000
    write_zip(
        path, [Member("skact.json", deep), Member("tensors.pt", tensor_bytes(tensors))]
    )
    assert "nested too deeply" in refused(path, "skact.json")


def test_config_that_is_not_utf8_is_refused(tmp_path: Path, saved) -> None:
    config, tensors = saved
    path = tmp_path / "latin1.skact"
    write_zip(
        path,
        [
            Member("skact.json", config + b"\xff"),
            Member("tensors.pt", tensor_bytes(tensors)),
        ],
    )
    assert "it is not UTF-8 text" in refused(path, "skact.json")


# ---------------------------------------------------------------------- tensors.pt


def _set(key_path: str, make: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    """An edit of the tensors: ``make(old value)`` at ``key_path`` ("a/0/b"; a missing
    key gives None)."""

    def edit(tensors: dict[str, Any]) -> None:
        parent: Any = tensors
        *keys, last = [k for k in key_path.split("/")]
        for key in keys:
            parent = parent[_key(parent, key)]
        key = _key(parent, last)
        old = parent.get(key) if isinstance(parent, dict) else parent[key]
        parent[key] = make(old)

    return edit


def _key(parent: Any, key: str) -> Any:
    """List indices and the optimizer's parameter ids are ints; other keys, strings."""
    if key.isdigit() and (isinstance(parent, list) or key not in parent):
        return int(key)
    return key


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _set("arrays/adapter.scale", lambda t: t[:1]),
            "adapter.scale is torch.float64 of shape (1,), not torch.float64 of shape (5,)",
        ),
        (_set("arrays/adapter.scale", lambda t: -t), "adapter.scale holds values <= 0"),
        (
            _set("encoder/layers.0.weight", lambda t: (t * 1e7).long()),
            "encoder.layers.0.weight is torch.int64 of shape (8, 5)",
        ),
        (
            _set("encoder/layers.0.weight", lambda t: t.to(torch.complex64)),
            "is torch.complex64",
        ),
        (
            _set("encoder/layers.0.bias", lambda t: t[:1]),
            "encoder.layers.0.bias is torch.float32 of shape (1,), not torch.float32 of "
            "shape (8,)",
        ),
        (
            _set(
                "encoder/layers.0.weight",
                lambda t: t.index_fill(0, torch.tensor([2]), np.nan),
            ),
            "encoder.layers.0.weight holds NaN or infinite values",
        ),
        (
            _set("projector/layers.0.weight", lambda t: t.fill_(np.inf)),
            "projector.layers.0.weight holds NaN or infinite values",
        ),
        (_set("encoder/extra", lambda t: torch.zeros(1)), "do not fit the network"),
        (
            _set("optimizer/state/0/exp_avg", lambda t: t[:1]),
            "the optimizer's exp_avg of parameter 0 is torch.float32 of shape (1, 5)",
        ),
        (
            _set("optimizer/state/0/exp_avg_sq", lambda t: t.fill_(np.nan)),
            "optimizer.state.0.exp_avg_sq holds NaN",
        ),
        (
            _set("optimizer/param_groups/0/params", lambda p: p[:-1]),
            "the optimizer state covers",
        ),
        (
            _set("adversary/state", lambda t: t[:2, :2]),
            "adversary.state is torch.float32 of shape (2, 2)",
        ),
        (
            _set("generator", lambda t: t[:100]),
            "the random generator state is invalid",
        ),
        (_set("generator", lambda t: t.long()), "not a uint8 vector"),
        (_set("projector", lambda t: None), "do not fit the network"),
        (
            _set("optimizer/state/0/exp_avg", lambda t: t.fill_(1e30)),
            "the optimizer's exp_avg of parameter 0 reaches 1e+30",
        ),
        (
            _set("optimizer/state/0/exp_avg_sq", lambda t: t.fill_(1e30)),
            "the optimizer's sqrt(exp_avg_sq) of parameter 0 reaches 1e+15",
        ),
        (
            _set("optimizer/state/0/exp_avg_sq", lambda t: -t - 1),
            "the optimizer's exp_avg_sq of parameter 0 holds negative values",
        ),
        (
            _set("optimizer/state/0/exp_avg_sq", lambda t: t * 1e-6),
            "times sqrt(exp_avg_sq)",
        ),
        (
            _set("optimizer/state/0/step", lambda t: torch.tensor(-5.0)),
            "the optimizer's step of parameter 0 is -5.0",
        ),
        (
            _set("optimizer/state/0/step", lambda t: t + 0.5),
            "the optimizer's step of parameter 0 is 8.5",
        ),
        (
            _set("optimizer/state/0/step", lambda t: t + 1),
            "the optimizer's step of parameter 0 is 9.0; Adam counts whole steps, "
            "from 0 to the model's 8 (fitted step in skact.json)",
        ),
        (
            _set(
                "optimizer/state/0", lambda e: {"step": e["step"], "exp_avg": e["exp_avg"]}
            ),
            "the optimizer state of parameter 0 holds ['exp_avg', 'step']",
        ),
    ],
    ids=[
        "scale (1,)",
        "negative scale",
        "int64 weights",
        "complex weights",
        "broadcastable bias",
        "NaN weight",
        "infinite weight",
        "extra weight",
        "optimizer moment shape",
        "optimizer moment NaN",
        "optimizer parameters",
        "adversary shape",
        "generator size",
        "generator dtype",
        "missing projector",
        "optimizer moment 1e30",
        "optimizer second moment 1e30",
        "optimizer negative second moment",
        "optimizer moments out of proportion",
        "optimizer step -5",
        "optimizer step 8.5",
        "optimizer step beyond the model's",
        "optimizer moment missing",
    ],
)
def test_tampered_tensors_are_a_corrupt_file(tmp_path: Path, saved, edit, message) -> None:
    """Today's main broadcast a (1,) scale, cast int64 weights silently, accepted
    complex ones, blamed the user's data for NaN weights, and failed inside torch in a
    later partial_fit for a wrong generator state."""
    config, tensors = saved
    tensors = _copy(tensors)
    edit(tensors)
    path = tmp_path / "tampered.skact"
    write_zip(
        path, [Member("skact.json", config), Member("tensors.pt", tensor_bytes(tensors))]
    )
    text = refused(path, "tensors.pt")
    assert message in text
    assert "far outside the range" not in text


@pytest.mark.parametrize(
    "params",
    [
        {"learning_rate": 1.0},
        {"learning_rate": 0.3, "alpha": 10.0, "weight_decay": 0.1},
        {"learning_rate": 0.5, "hidden_layer_sizes": (32, 32), "projection_dim": None},
        *(
            {"learning_rate": 0.5, "objective": name}
            for name in OBJECTIVES
            if name != "act"
        ),
    ],
    ids=["lr 1", "lr 0.3 alpha 10", "lr 0.5 no head"]
    + [f"lr 0.5 {name}" for name in OBJECTIVES if name != "act"],
)
@pytest.mark.filterwarnings("ignore:ACTEncoder. the representation collapsed")
def test_models_trained_at_high_learning_rates_load(tmp_path: Path, params) -> None:
    """The optimizer checks refuse what Adam cannot produce, not what it rarely does."""
    data = np.random.default_rng(1).lognormal(0, 2, size=(96, 5))
    enc = small_encoder(max_iter=3, **params).fit(data)
    enc.save(tmp_path / "model.skact")
    loaded = skact.load(tmp_path / "model.skact")
    np.testing.assert_array_equal(loaded.transform(data), enc.transform(data))
    assert loaded._optimizer_state is not None


def test_the_moment_bound_holds_for_the_betas_skact_trains_with() -> None:
    """The ratio bound of Adam's moments is derived for betas (0.9, 0.999): a change of
    make_adam's betas must change the bound too."""
    beta1, beta2 = _training.make_adam(
        [torch.nn.Parameter(torch.zeros(1))], 0.1, 0.0, torch.device("cpu")
    ).param_groups[0]["betas"]
    bound = ((1 - beta1) ** 2 / ((1 - beta2) * (1 - beta1**2 / beta2))) ** 0.5
    assert bound < _persistence._ADAM_MOMENT_RATIO < 1.2 * bound


def test_a_claimed_feature_count_beyond_max_bytes_allocates_nothing(
    tmp_path: Path, saved
) -> None:
    """The adapter's statistics are allocated to build the networks: a file claiming
    ten million features is refused before (today's main had no bound but the
    memory: a claim of 10**9 features allocated 16 GB)."""
    config, tensors = saved
    edited = json.loads(config)
    edited["fitted"]["n_features_in_"] = 10**7
    path = tmp_path / "wide.skact"
    write_zip(
        path,
        [
            Member("skact.json", json.dumps(edited).encode()),
            Member("tensors.pt", tensor_bytes(tensors)),
        ],
    )
    with mock.patch.object(torch, "ones", side_effect=AssertionError("allocated")):
        with pytest.raises(skact.ModelFileError) as info:
            skact.load(path, max_bytes=10**6)
    assert info.value.member == "skact.json"
    # mean, scale, minimum and maximum: four float64 arrays of 10**7 values.
    assert "its input statistics alone take 320,000,000 bytes" in str(info.value)


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def test_untampered_rewrite_loads(tmp_path: Path, saved) -> None:
    """The writer above makes valid archives: the checks, not the writer, refuse."""
    config, tensors = saved
    path = tmp_path / "plain.skact"
    write_zip(
        path, [Member("skact.json", config), Member("tensors.pt", tensor_bytes(tensors))]
    )
    assert skact.load(path).transform(X).shape == (64, 3)


# ------------------------------------------------------------- the optimizer's record


@pytest.mark.parametrize(
    ("record", "optimizer", "member", "message"),
    [
        (
            True,
            None,
            "tensors.pt",
            "skact.json says it holds the optimizer's state, but tensors.pt has none",
        ),
        (
            False,
            "saved",
            "tensors.pt",
            "it holds an optimizer state, but skact.json says it was saved without one",
        ),
        ("yes", "saved", "skact.json", "optimizer_state='yes'"),
        (1, "saved", "skact.json", "optimizer_state=1"),
    ],
    ids=["record without moments", "moments without record", "string", "int"],
)
def test_optimizer_state_must_match_its_record(
    tmp_path: Path, saved, record: Any, optimizer: str | None, member: str, message: str
) -> None:
    """A file without Adam's moments is accepted only where skact.json says it was
    saved so (ACTEncoder.save(optimizer_state=False)), never in place of moments lost."""
    config, tensors = saved
    config = json.loads(config)
    assert config["optimizer_state"] is True
    config["optimizer_state"] = record
    tensors = {**tensors, "optimizer": tensors["optimizer"] if optimizer else None}
    path = tmp_path / "tampered.skact"
    write_zip(
        path,
        [
            Member("skact.json", json.dumps(config).encode()),
            Member("tensors.pt", tensor_bytes(tensors)),
        ],
    )
    assert message in refused(path, member)


def test_a_file_saved_without_moments_is_bounded_without_them(
    tmp_path: Path, saved
) -> None:
    """skact.json's record also shrinks what tensors.pt may hold: without moments, a
    member the size that room would allow is refused before it is read."""
    config, tensors = saved
    config = json.loads(config)

    def bound(record: bool | None) -> int:
        edited = {**config, "optimizer_state": record}
        plan = _persistence._plan(skact.ACTEncoder, edited, "x", None, None)
        return plan.tensor_bytes

    lean_bound, older_bound = bound(False), bound(None)
    assert lean_bound < older_bound
    tensors = {**tensors, "optimizer": None}
    size = len(tensor_bytes(tensors))
    padding = torch.zeros((lean_bound + older_bound) // 2 - size, dtype=torch.uint8)
    tensors["arrays"] = {**tensors["arrays"], "padding": padding}
    data = tensor_bytes(tensors)
    assert lean_bound < len(data) < older_bound
    messages = {}
    for record in (False, None):
        path = tmp_path / f"{record}.skact"
        write_zip(
            path,
            [
                Member(
                    "skact.json", json.dumps({**config, "optimizer_state": record}).encode()
                ),
                Member("tensors.pt", data),
            ],
        )
        messages[record] = refused(path, "tensors.pt")
    assert "more than the" in messages[False]
    assert "more than the" not in messages[None]  # refused later, for the padding
