"""Save and load a fitted ACTEncoder without pickle: JSON plus tensors.

Pickle and joblib run code from the file they load. A ``.skact`` file cannot: it is a
zip archive of two members,

``skact.json``
    The format name and version, the skact and torch versions that wrote it, the
    estimator's parameters, its fitted attributes, and the input adapter's kind and
    state (arrays replaced by references into ``tensors.pt``), the ``set_output``
    container, and whether ``tensors.pt`` holds the optimiser's state
    (``"optimizer_state"``, which files of older skact lack).
``tensors.pt``
    ``torch.save`` of tensors and plain values only (the networks' state dicts, the
    optimiser's state or None, the adversary's state, the adapter's arrays), read back
    with ``torch.load(weights_only=True)``, which refuses every other Python object.

The networks are rebuilt from the parameters and then given the saved weights. A
user-supplied ``encoder`` module or callable is code, so it is not saved: its weights
are, and :func:`load` needs the same architecture passed as ``encoder=``.

:func:`load` trusts nothing in the file: it reads regular files only, bounds what it
reads by what the saved architecture can need and by an absolute limit (``max_bytes``)
that no claim in the file can raise, refuses compressed members that would inflate far
more than real weights do, and checks every tensor's shape, dtype and values against
the networks it rebuilds (Adam's state against what Adam can produce). Whatever it
refuses raises :class:`ModelFileError`, which names the file and the member at fault.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import math
import os
import pickle
import re
import stat
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral, Real
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from . import _atomic, _device, _random, _state
from .adapters.base import UNSAVED_AUGMENT
from .adapters.factory import ADAPTERS
from .augment.image import ImageAugment
from .augment.tabular import TabularAugment
from .callbacks import EarlyStopping
from .objectives import OBJECTIVES, Objective

if TYPE_CHECKING:
    from ._encoder import ACTEncoder

__all__ = ["DEFAULT_MAX_BYTES", "FORMAT_VERSION", "ModelFileError", "load", "save"]

#: Name written into every file, checked on load.
FORMAT = "skact.ACTEncoder"
#: Version of the layout below; bump it when a reader of the old layout would misread.
FORMAT_VERSION = 1

_CONFIG = "skact.json"
_TENSORS = "tensors.pt"

#: The field ``save(optimizer_state=False)`` leaves out of the file.
_OPTIMIZER = next(f for f in _state.FITTED_STATE if f.name == "_optimizer_state")

#: The estimator class of each saved ``format``, registered by the module that defines
#: it (``skact._encoder``, which imports this one to save: no import back).
ESTIMATORS: dict[str, type[ACTEncoder]] = {}


class ModelFileError(ValueError):
    """A model file that :func:`skact.load` refuses: not a skact model, damaged, too
    large for what it claims to hold, or tampered with.

    Attributes
    ----------
    path : str
        The file that was read.
    member : str or None
        The archive member at fault (``"skact.json"`` or ``"tensors.pt"``), when one is.
    """

    def __init__(self, message: str, *, path: str, member: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.member = member


def save(
    estimator: ACTEncoder, path: str | os.PathLike[str], *, optimizer_state: bool = True
) -> None:
    """Write a fitted estimator to ``path`` (see the module docstring for the layout).

    The file is written whole or not at all (:func:`skact._atomic.atomic_write`): to a
    temporary file in the same folder, ``.<name>.<process id>-<random>.partial``, then
    renamed, so an interrupted save never leaves a truncated file in place of a good
    one. A save also removes the temporary files that killed saves left in that folder
    (those over a minute old whose process is gone; also the ``.skact-*.tmp`` files of
    earlier skact versions). The file gets the mode of the file it replaces, or for a
    new file the mode the umask gives (as :func:`open` does); saving to a symbolic link
    replaces the link's target.

    Parameters
    ----------
    estimator : ACTEncoder
        A fitted estimator.
    path : str, bytes or path-like
        Destination file (bytes are decoded as :func:`os.fsdecode` does). A path that
        ends with a separator (``"models/"``) names a folder and is refused with a
        ``ValueError``, as is an empty path: a model is one file, and a folder path
        never replaces a file (``"notes.csv/"`` leaves ``notes.csv`` alone).
    optimizer_state : bool, default=True
        Also write Adam's moments, two values per network parameter: about two thirds
        of the file. Without them ``transform`` is unchanged, and ``warm_start`` or
        ``partial_fit`` after :func:`load` start a fresh optimiser.
    """
    if not isinstance(optimizer_state, bool | np.bool_):
        # Not by truthiness, where None would drop Adam's moments and "no" keep them.
        raise TypeError(f"optimizer_state must be True or False, got {optimizer_state!r}")
    asked = _file_path(path)
    check_is_fitted(estimator)
    _check_schema()
    params, custom_encoder = _params_to_json(estimator.get_params(deep=False))
    arrays: dict[str, Tensor] = {}
    adapter: Any = estimator._adapter  # InputAdapter with state_dict()
    fitted: dict[str, Any] = {}
    tensors: dict[str, Any] = {}
    for field in _state.FITTED_STATE:
        if field.stored in (_state.Stored.ADAPTER, _state.Stored.DERIVED):
            continue
        value = getattr(estimator, field.name, _state.UNSET)
        if value is _state.UNSET and not field.optional:
            raise AttributeError(f"the fitted estimator lacks {field.name}")
        if field.name == _OPTIMIZER.name and not optimizer_state:
            value = None
        encoded = None if value is None or value is _state.UNSET else field.encode(value)
        where = fitted if field.stored is _state.Stored.JSON else tensors
        where[field.file_key] = encoded
    tensors[_ARRAYS] = arrays
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skact_version": _skact_version(),
        "torch_version": torch.__version__,
        "params": params,
        "custom_encoder": custom_encoder,
        "adapter": {
            "kind": adapter.kind,
            "state": _split_arrays(adapter.state_dict(), "adapter", arrays),
        },
        "fitted": fitted,
        "output": getattr(estimator, "_sklearn_output_config", {}).get("transform"),
        "optimizer_state": tensors[_OPTIMIZER.file_key] is not None,
    }
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    _atomic.remove_stale_partials(
        os.path.dirname(os.path.realpath(asked)), names=_LEGACY_TEMPORARY
    )
    try:
        with _atomic.atomic_write(asked) as file, zipfile.ZipFile(file, "w") as archive:
            archive.writestr(_CONFIG, json.dumps(config, indent=1))
            archive.writestr(_TENSORS, buffer.getvalue())
    except OSError as exc:
        if exc.errno is None or exc.filename == asked:
            raise
        # A failed write (a full disk) names no file: the user asked for ``path``.
        raise type(exc)(exc.errno, exc.strerror, asked) from None


#: Temporary files that killed saves of skact before :func:`skact._atomic.atomic_write`
#: left: ``.skact-<pid>-<hex>.tmp``, and ``.skact-<random>.tmp`` (skact 0.1.0, no pid).
_LEGACY_TEMPORARY = re.compile(r"\.skact-(?:(\d+)-)?\w+\.tmp")


def load(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    encoder: Any = None,
    max_bytes: int | None = None,
) -> ACTEncoder:
    """Load an estimator written by :meth:`ACTEncoder.save`, without running code from it.

    The file is checked before it is used: a regular file (not a device or a pipe),
    networks of at most ``max_bytes`` of tensors, each member no larger than the saved
    architecture can need nor than ``max_bytes``, compressed members (skact writes
    none) inflating at most 10-fold, every tensor of the shape and dtype that
    architecture expects, with finite values (a non-finite adversary estimate ``G``,
    which older skact saved after a divergence, is dropped: training starts it again
    from its next batch), and Adam's state within what Adam can produce. A file is
    refused before anything large is inflated or allocated, so a small hostile file
    costs little memory whatever it claims.

    Parameters
    ----------
    path : str, bytes or path-like
        A file written by :meth:`ACTEncoder.save` (bytes are decoded as
        :func:`os.fsdecode` does; an empty path, or one ending with a separator, is a
        ``ValueError``).
    device : str, torch.device or None, default=None
        Where the loaded networks live; also becomes the ``device`` parameter. None:
        the device they were saved from when it is available here, else the CPU (the
        ``device`` parameter is kept as saved).
    encoder : torch.nn.Module or callable, default=None
        Only for models fitted with a user-supplied ``encoder``, whose code is not in
        the file: the same architecture (a module or a callable, as passed to
        ``ACTEncoder``); it receives the saved weights.
    max_bytes : int or None, default=None
        The most bytes of tensors to read: a file whose architecture needs more, or
        whose ``tensors.pt`` is larger, is refused before it is read, with the value
        that would load it. None: :data:`DEFAULT_MAX_BYTES` (1 GiB, a ResNet-18 model
        with its optimiser state takes 141 MB). Raise it for bigger models from a
        source you trust; reading needs about three times that much memory.

    Returns
    -------
    ACTEncoder
        The fitted estimator: ``transform`` gives the saved model's output, and
        ``warm_start`` or ``partial_fit`` continue its training (with a fresh Adam
        if it was saved with ``optimizer_state=False``).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ModelFileError
        Not a skact model file, or a damaged, oversized or tampered one, a newer format
        version, a pickle payload among the tensors, or a model needing more than
        ``max_bytes``. A ``ValueError``; its ``path`` and ``member`` say where the fault
        is.
    ValueError
        ``encoder`` missing, given for a built-in encoder, or not matching the weights;
        an empty ``path`` or one ending with a separator; ``max_bytes`` below 1.
    TypeError
        ``path`` not a str, bytes or path-like object; ``max_bytes`` not an integer.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import skact
    >>> X = np.random.default_rng(0).normal(size=(64, 5))
    >>> enc = skact.ACTEncoder(4, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.skact")
    >>> enc.fit(X).save(path)
    >>> np.array_equal(skact.load(path).transform(X), enc.transform(X))
    True
    """
    name = _file_path(path)
    limit = _max_bytes(max_bytes)
    _check_schema()
    with _open_regular_file(name) as file:
        archive = _open_archive(file, name)
        with archive:
            members = _members(archive, name, os.fstat(file.fileno()).st_size)
            config = _read_config(archive, members[_CONFIG], name)
            plan = _plan(ESTIMATORS[FORMAT], config, name, encoder, device, limit)
            tensors_info = members[_TENSORS]
            if plan.tensor_bytes >= tensors_info.file_size > limit:
                # Within what the architecture allows, beyond what the caller allows:
                # a big model, not a damaged file.
                raise _too_large(
                    name,
                    _TENSORS,
                    f"{_TENSORS} declares {tensors_info.file_size:,} bytes",
                    limit,
                    tensors_info.file_size,
                )
            raw = _read_member(
                archive,
                tensors_info,
                name,
                plan.tensor_bytes,
                f"that the architecture in {_CONFIG} can need",
                check_ratio=True,
            )
    tensors = _load_tensors(raw, name)
    if raw.getbuffer().nbytes < plan.weight_bytes:
        # Says what is wrong more plainly than the first weight of the wrong shape.
        raise _corrupt(
            name,
            _CONFIG,
            f"its architecture needs {plan.weight_bytes:,} bytes of weights, but "
            f"{_TENSORS} holds {raw.getbuffer().nbytes:,} bytes",
        )
    del raw
    _check_tensors(tensors, plan, name)
    with _corrupt_unless_ok(name, None):
        return _rebuild(plan, tensors)


# ------------------------------------------------------------------------ reading

_MiB = 2**20
#: Largest ``skact.json`` read. Its size grows with the columns (names, masks), the
#: categories and the epochs: 16 MiB hold, in save's indented JSON, 500,000 category
#: strings of 20 characters or 700,000 epochs of loss curve; parsing a hostile file of
#: that size takes a few hundred MB at most.
_MAX_CONFIG_BYTES = 16 * _MiB
#: ``tensors.pt`` may exceed the tensors its architecture implies by twice their size
#: plus this per tensor: torch.save's record of each (a zip entry aligned to 64 bytes,
#: its name, its pickled description) takes a few hundred bytes.
_BYTES_PER_TENSOR_RECORD = 4096
#: Read members this much at a time, so that a member larger than its zip header
#: declares is caught before it fills memory.
_CHUNK_BYTES = 4 * _MiB
#: What :func:`load` reads of ``tensors.pt`` at most unless told otherwise (its
#: ``max_bytes``), whatever the architecture in ``skact.json`` claims: a claim is the
#: file's word, so it may only lower this bound. 1 GiB holds the largest built-in
#: model, ResNet-18 with Adam's moments (141 MB), seven times over, or a (512, 512)
#: table model of 80,000 columns; loading it takes about three times that memory.
DEFAULT_MAX_BYTES = 2**30
#: How many times its compressed size a member may inflate to. skact writes members
#: stored (uncompressed); re-zipped with deflate, real ``tensors.pt`` members shrink
#: little, float weights and moments being nearly incompressible: measured ratios
#: 1.08 to 1.13 (ResNet-18 image models, (512, 512) table models trained at learning
#: rates from 1e-3 to 1.0). Even weights with all-zero moments would give about 3
#: (the moments are two thirds of the file). Zeros deflate 200 to 1000-fold: a bomb.
_MAX_COMPRESSION_RATIO = 10
#: Members inflating to at most this much pass whatever their ratio: a tiny model's
#: ``tensors.pt`` is mostly torch's records, which deflate better (2.4 to 1 for the
#: tests' 23 kB model), and reading this much is harmless (one chunk).
_SMALL_MEMBER_BYTES = _CHUNK_BYTES


def _corrupt(name: str, member: str | None, why: str) -> ModelFileError:
    return ModelFileError(
        f"{name!r} is corrupt{'' if member is None else f' ({member})'}: {why}. Save "
        "the model again, or copy the file again.",
        path=name,
        member=member,
    )


@contextlib.contextmanager
def _corrupt_unless_ok(name: str, member: str | None) -> Iterator[None]:
    """Report any error of the block, which only reads the file, as a corrupt file."""
    try:
        yield
    except (ModelFileError, MemoryError):
        raise
    except Exception as exc:  # whatever a tampered value makes fail: the file is at fault
        where = "" if member is None else f" ({member})"
        raise ModelFileError(
            f"{name!r} is incomplete or corrupt{where}: {type(exc).__name__}: {exc}. Save "
            "the model again, or copy the file again.",
            path=name,
            member=member,
        ) from None


def _open_regular_file(name: str) -> IO[bytes]:
    """``name`` opened for reading, if it is a regular file (or a link to one)."""
    _refuse_unless_regular(os.stat(name).st_mode, name)
    # O_NONBLOCK: a FIFO swapped in after the stat above opens at once instead of
    # waiting for a writer; fstat then refuses it.
    fd = os.open(
        name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    )
    try:
        _refuse_unless_regular(os.fstat(fd).st_mode, name)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refuse_unless_regular(mode: int, name: str) -> None:
    if stat.S_ISREG(mode):
        return
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISFIFO: "a named pipe (FIFO)",
        stat.S_ISSOCK: "a socket",
    }
    kind = next((k for test, k in kinds.items() if test(mode)), "not a regular file")
    raise ModelFileError(
        f"{name!r} is not a model file: it is {kind}. skact.load reads regular files "
        "only; pass the path of a file written by ACTEncoder.save.",
        path=name,
    )


def _open_archive(file: IO[bytes], name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        file.seek(0)
        if file.read(4) != b"PK\x03\x04":
            raise ModelFileError(_not_skact(name, "not a zip archive"), path=name) from None
        raise _damaged_zip(name, None, exc) from None


def _damaged_zip(name: str, member: str | None, exc: BaseException) -> ModelFileError:
    return ModelFileError(
        f"{name!r} is corrupt or truncated (a damaged zip archive: {exc}). Save the "
        "model again, or copy the file again.",
        path=name,
        member=member,
    )


def _members(
    archive: zipfile.ZipFile, name: str, archive_bytes: int
) -> dict[str, zipfile.ZipInfo]:
    """The two members, after checking that each can be read as skact writes it and
    declares no more compressed bytes than the archive's ``archive_bytes``."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if _CONFIG not in names or _TENSORS not in names:
        raise ModelFileError(
            _not_skact(name, f"it lacks {_CONFIG} or {_TENSORS}"), path=name
        )
    for member in (_CONFIG, _TENSORS):
        if names.count(member) > 1:
            # zipfile would silently read the last one; another reader, the first.
            raise _corrupt(
                name,
                member,
                f"the archive holds {names.count(member)} members named {member}",
            )
    members = {
        info.filename: info for info in infos if info.filename in (_CONFIG, _TENSORS)
    }
    for member, info in members.items():
        if info.flag_bits & 0x1:
            raise _corrupt(name, member, "it is encrypted, which skact never does")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _corrupt(
                name,
                member,
                f"it uses zip compression method {info.compress_type}; skact reads "
                "stored and deflated members only",
            )
        if info.compress_size > archive_bytes:
            # The compression ratio below trusts this size: it must be real.
            raise _corrupt(
                name,
                member,
                f"it declares {info.compress_size:,} compressed bytes, more than the "
                f"whole file's {archive_bytes:,}",
            )
    return members


def _check_compression(info: zipfile.ZipInfo, name: str) -> None:
    """Refuse, from its header, a member that would inflate far more than real
    weights do (a zip bomb), before anything is inflated."""
    if info.file_size <= _SMALL_MEMBER_BYTES:
        return
    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > _MAX_COMPRESSION_RATIO:
        raise _corrupt(
            name,
            info.filename,
            f"{info.filename} declares {info.file_size:,} bytes compressed {ratio:.0f} "
            f"to 1; model weights compress {_MAX_COMPRESSION_RATIO} to 1 at most, and "
            "skact writes them uncompressed (a model you compressed yourself loads "
            "once stored again: unzip it and zip it with zip -0)",
        )


def _file_path(path: Any) -> str:
    """``path`` as a str, refused unless it can name a model file."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(
            "path must be a str, bytes or os.PathLike (such as pathlib.Path), not "
            f"{type(path).__name__}"
        )
    name = os.fsdecode(path)
    if not name:
        raise ValueError(
            "path is empty. Pass the model file's path, such as 'model.skact'."
        )
    if _atomic.names_a_folder(name):
        raise ValueError(
            f"{name!r} ends with {name[-1]!r}, so it names a folder, but a model is one "
            "file. Pass the file's path, such as "
            f"{os.path.join(name.rstrip(''.join(_atomic.SEPARATORS)), 'model.skact')!r}."
        )
    return name


def _max_bytes(value: Any) -> int:
    if value is None:
        return DEFAULT_MAX_BYTES
    if not isinstance(value, Integral) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"max_bytes must be a positive integer or None, got {value!r}")
    if value < 1:
        raise ValueError(f"max_bytes must be a positive integer or None, got {value!r}")
    return int(value)


def _too_large(
    name: str, member: str, what: str, limit: int, needed: int
) -> ModelFileError:
    """A model larger than ``max_bytes``: refused, but not damaged."""
    allowed = (
        f"the {limit:,} bytes skact.load reads by default (max_bytes)"
        if limit == DEFAULT_MAX_BYTES
        else f"max_bytes={limit:,}"
    )
    return ModelFileError(
        f"{name!r} is too large to load ({member}): {what}, more than {allowed}. Pass "
        f"skact.load(path, max_bytes={needed}) if you trust this file and have about "
        "three times that much memory.",
        path=name,
        member=member,
    )


def _read_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    name: str,
    limit: int,
    bound: str,
    *,
    check_ratio: bool = False,
) -> io.BytesIO:
    """A member's bytes, refused unless its declared and actual sizes are within
    ``limit``, and with ``check_ratio`` its compression ratio within what weights
    allow: a small file can declare, or inflate to, gigabytes."""
    member = info.filename
    if info.file_size > limit:
        raise _corrupt(
            name,
            member,
            f"{member} declares {info.file_size:,} bytes, more than the {limit:,} {bound}",
        )
    if check_ratio:
        # skact.json is exempt: bounded to 16 MiB, and JSON compresses well.
        _check_compression(info, name)
    chunks, size = [], 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                chunks.append(chunk)
                size += len(chunk)
                if size > info.file_size:
                    raise _corrupt(name, member, "it is larger than its zip header says")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise _damaged_zip(name, member, exc) from None
    # One copy: BytesIO shares a bytes object (growing a BytesIO chunk by chunk
    # copied a 134 MB ResNet-18 file several times, a quarter of the load time).
    return io.BytesIO(b"".join(chunks))


def _read_config(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str
) -> dict[str, Any]:
    """The checked configuration of a ``.skact`` file."""
    limit = _MAX_CONFIG_BYTES
    data = _read_member(archive, info, name, limit, "a configuration may take").getvalue()
    try:
        config = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _corrupt(name, _CONFIG, f"it is not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            f"{name!r} is corrupt: {_CONFIG}: {exc}", path=name, member=_CONFIG
        ) from None
    except RecursionError:
        raise _corrupt(
            name, _CONFIG, "its JSON is nested too deeply to be skact's"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(
            _not_skact(name, f"{_CONFIG} names another format"), path=name, member=_CONFIG
        )
    version = config.get("format_version")
    if type(version) is not int or version < 1:
        raise ModelFileError(
            f"{name!r} is corrupt: format_version={version!r}.", path=name, member=_CONFIG
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name!r} was saved by skact {config.get('skact_version', '?')} in format "
            f"version {version}; this skact ({_skact_version()}) reads format versions "
            f"up to {FORMAT_VERSION}. Upgrade skact to load it.",
            path=name,
            member=_CONFIG,
        )
    return config


def _not_skact(name: str, why: str) -> str:
    return (
        f"{name!r} is not a model saved by ACTEncoder.save ({why}). A file written by "
        "pickle or joblib must be loaded with those, which run code from the file: "
        "only do that for files you trust."
    )


def _load_tensors(raw: io.BytesIO, name: str) -> dict[str, Any]:
    try:
        tensors = torch.load(raw, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # A torch archive or a pickle stream (protocol 2 and later begin with 0x80)
        # that holds more than tensors is refused as such; other bytes are damage.
        head = raw.getbuffer()[:1].tobytes()
        if not (head == b"\x80" or zipfile.is_zipfile(raw)):
            raise _unreadable_tensors(name, "not a torch archive") from None
        raise ModelFileError(
            f"refusing to load {name!r}: its {_TENSORS} holds Python objects "
            "other than tensors and plain values (a pickle payload, which could run "
            "code when loaded). skact.load never unpickles code; do not open this file "
            "with pickle, joblib or torch.load(weights_only=False) unless you trust "
            "who made it.",
            path=name,
            member=_TENSORS,
        ) from None
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # torch's reader fails in many ways on damaged bytes
        raise _unreadable_tensors(name, f"{type(exc).__name__}: {exc}") from None
    expected = {f.file_key for f in _tensor_fields()} | {_ARRAYS}
    if not isinstance(tensors, dict) or set(tensors) != expected:
        keys = sorted(map(str, tensors)) if isinstance(tensors, dict) else type(tensors)
        raise _corrupt(name, _TENSORS, f"it holds {keys}, not {sorted(expected)}")
    return tensors


#: The key of ``tensors.pt`` that holds the adapter's arrays.
_ARRAYS = "arrays"


def _tensor_fields() -> tuple[_state.Field, ...]:
    """The fields written to ``tensors.pt``, in order."""
    stored = (_state.Stored.TENSORS, _state.Stored.GENERATOR)
    return tuple(f for f in _state.FITTED_STATE if f.stored in stored)


def _unreadable_tensors(name: str, why: str) -> ModelFileError:
    return ModelFileError(
        f"{name!r} is corrupt or truncated: {_TENSORS} is not readable ({why}). Save "
        "the model again, or copy the file again.",
        path=name,
        member=_TENSORS,
    )


# ------------------------------------------------------------- what the file must hold


@dataclasses.dataclass
class _Plan:
    """What a checked ``skact.json`` describes, before any tensor is read.

    ``encoder`` and ``projector`` are the networks built on the meta device (shapes
    and dtypes, no memory); ``arrays`` the adapter's arrays as ``(shape, dtype)``;
    ``optimizer_state`` whether the file says it holds the optimiser's state (None: a
    file of older skact, which does not say).
    """

    estimator: ACTEncoder
    config: dict[str, Any]
    custom: str | None
    encoder: torch.nn.Module
    projector: torch.nn.Module | None
    arrays: dict[str, tuple[tuple[int, ...], torch.dtype]]
    correlation_width: int
    optimizer_state: bool | None
    weight_bytes: int
    tensor_bytes: int
    target: torch.device


def _plan(
    cls: type[ACTEncoder],
    config: dict[str, Any],
    name: str,
    encoder: Any,
    device: str | torch.device | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> _Plan:
    """The estimator, adapter and networks a checked configuration describes.

    What comes from the file fails as a corrupt file; the caller's ``encoder`` and
    ``device`` fail with their own errors; an architecture needing more than
    ``max_bytes`` of tensors is refused before anything of its size is allocated.
    """
    with _corrupt_unless_ok(name, _CONFIG):
        custom = config["custom_encoder"]
        saved_encoder = config["params"]["encoder"]
        if custom is not None and not isinstance(custom, str):
            raise _corrupt(name, _CONFIG, f"custom_encoder={custom!r}")
    if custom is not None and encoder is None:
        raise ValueError(
            f"this model was fitted with a user-supplied encoder ({custom}); its code is "
            "not saved, only its weights. Pass the same architecture: "
            "skact.load(path, encoder=<module or callable>)."
        )
    if custom is None and encoder is not None:
        raise ValueError(
            f"encoder= is only for models fitted with a user-supplied encoder; this "
            f"one used encoder={saved_encoder!r}."
        )
    with _corrupt_unless_ok(name, _CONFIG):
        estimator = _estimator(cls, config, custom is not None, name)
        fitted = config["fitted"]
        _check_fitted(fitted, name)
        arrays = _placeholder_adapter(estimator, config["adapter"], fitted, name, max_bytes)
        estimator._network_name = (
            None if custom is not None else _saved_network(estimator, fitted, name)
        )
        fitted["network"] = estimator._network_name  # resolved, for files that lack it
        width = fitted["n_components_out"]
        saved = torch.device(fitted["device"])
        optimizer_state = config.get("optimizer_state")
        if optimizer_state is not None and type(optimizer_state) is not bool:
            raise _corrupt(name, _CONFIG, f"optimizer_state={optimizer_state!r}")
    if custom is not None:
        estimator.set_params(encoder=encoder)
    if device is not None:
        estimator.set_params(device=device)
    estimator._validate_params()  # only the caller's encoder and device can fail now
    target = _target_device(saved, device)
    network, projector = _planned_networks(estimator, width, custom, name)
    # G is the cross-correlation of what the objective sees: the head's output.
    correlation = width if projector is None else int(estimator.projection_dim or 0)
    weights = [*network.state_dict().values()]
    parameters = [*network.parameters()]
    if projector is not None:
        weights += projector.state_dict().values()
        parameters += projector.parameters()
    # Adam's two moments and step per parameter, unless the file says they are left out.
    adam = optimizer_state is not False
    expected = (
        sum(_nbytes(t) for t in weights)
        + (2 * sum(_nbytes(p) for p in parameters) if adam else 0)
        + 4 * correlation**2  # the adversary's G, float32
        + _cpu_generator_state_size()
        + sum(math.prod(s) * d.itemsize for s, d in arrays.values())
    )
    records = len(weights) + (3 * len(parameters) if adam else 0) + len(arrays) + 2
    if expected > max_bytes:
        # The networks were built on the meta device: nothing of this size exists yet.
        count = sum(p.numel() for p in parameters)
        raise _too_large(
            name,
            _CONFIG,
            f"it describes networks of {count:,} parameters, {expected:,} bytes of "
            f"tensors{' with the optimizer state' if adam else ''}",
            max_bytes,
            expected + _BYTES_PER_TENSOR_RECORD * records + _MiB,
        )
    return _Plan(
        estimator=estimator,
        config=config,
        custom=custom,
        encoder=network,
        projector=projector,
        arrays=arrays,
        correlation_width=correlation,
        optimizer_state=optimizer_state,
        weight_bytes=sum(_nbytes(t) for t in weights),
        tensor_bytes=2 * expected + _BYTES_PER_TENSOR_RECORD * records + _MiB,
        target=target,
    )


#: What ``set_output(transform=...)`` accepts.
_OUTPUT_CONTAINERS = ("default", "pandas", "polars")


def _estimator(
    cls: type[ACTEncoder], config: dict[str, Any], custom: bool, name: str
) -> ACTEncoder:
    """The estimator with the saved parameters and output container, checked."""
    params = _params_from_json(config["params"])
    if custom:
        params["encoder"] = "auto"  # stands in for the caller's, validated apart
    estimator = cls(**params)
    try:
        estimator._validate_params()
    except ValueError as exc:
        raise _corrupt(name, _CONFIG, f"its parameters are invalid ({exc})") from None
    output = config["output"]
    if output is not None:
        if output not in _OUTPUT_CONTAINERS:
            raise _corrupt(
                name,
                _CONFIG,
                f"output={output!r} is not one of set_output's {_OUTPUT_CONTAINERS}",
            )
        estimator.set_output(transform=output)
    return estimator


def _placeholder_adapter(
    estimator: ACTEncoder,
    spec: dict[str, Any],
    fitted: dict[str, Any],
    name: str,
    max_bytes: int,
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Give ``estimator`` the saved adapter with placeholder arrays (enough to build
    its networks); return the shapes and dtypes the real arrays must have (at most
    ``max_bytes`` in all: the placeholders are allocated)."""
    kind = spec["kind"]
    if kind not in ADAPTERS:
        raise ModelFileError(
            f"{name!r} holds an unknown input adapter kind {kind!r}; this skact "
            f"knows {sorted(ADAPTERS)}. Upgrade skact to load this model.",
            path=name,
            member=_CONFIG,
        )
    state = spec["state"]
    references = _array_references(state)
    # An optional array may be absent (a model saved before it existed).
    arrays: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
        f"adapter.{key}": ((_count(saved.length(state, fitted), key, name),), saved.dtype)
        for key, saved in ADAPTERS[kind].saved_arrays.items()
        if not saved.optional or f"adapter.{key}" in references
    }
    if references != set(arrays):
        raise _corrupt(
            name,
            _CONFIG,
            f"the adapter refers to arrays {sorted(references)}, not {sorted(arrays)}",
        )
    _check_category_dtypes(state, name)
    needed = sum(math.prod(shape) * dtype.itemsize for shape, dtype in arrays.values())
    if needed > max_bytes:
        raise _too_large(
            name,
            _CONFIG,
            f"its input statistics alone take {needed:,} bytes",
            max_bytes,
            2 * needed + _MiB,
        )
    placeholders = {key: torch.ones(shape, dtype=d) for key, (shape, d) in arrays.items()}
    adapter = ADAPTERS[kind].from_state_dict(_join_arrays(state, placeholders))
    # Images know their width; a table's is checked against its names and weights.
    width = adapter.fitted_attributes().get("n_features_in_")
    if width is not None and width != fitted["n_features_in_"]:
        raise _corrupt(
            name,
            _CONFIG,
            f"n_features_in_={fitted['n_features_in_']}, but its images have "
            f"{width} values",
        )
    estimator._adapter = adapter
    return arrays


def _planned_networks(
    estimator: ACTEncoder, width: int, custom: str | None, name: str
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The networks to check the tensors against: built-in ones on the meta device
    (a lying architecture allocates nothing), a caller's encoder as it is."""
    if custom is not None:
        try:
            return _networks(estimator, width, "cpu")
        except Exception as exc:
            raise ValueError(
                f"the encoder passed to skact.load does not build a network for this "
                f"model's input of shape {estimator._adapter.input_shape}: {exc}"
            ) from exc
    try:
        network, projector = _networks(estimator, width, "meta")
        produced = estimator.n_components  # what a built-in encoder outputs, if set
        if produced is None:  # a probe on the meta device (a quarter second for ResNet)
            network.eval()
            probe = torch.zeros((2, *estimator._adapter.input_shape), device="meta")
            produced = network(probe).shape[-1]
    except Exception as exc:
        produced, failure = None, type(exc).__name__
    if produced != width:
        architecture = ", ".join(f"{k}={v!r}" for k, v in estimator._architecture().items())
        why = f"outputs {produced} features, not {width}" if produced else failure
        raise _corrupt(
            name,
            _CONFIG,
            f"its parameters ({architecture}) do not describe the network for its "
            f"{estimator._adapter.kind} input ({why})",
        )
    return network, projector


def _nbytes(tensor: Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _count(value: Any, what: str, name: str) -> int:
    if type(value) is not int or value < 0:
        raise _corrupt(name, _CONFIG, f"the length of {what} is {value!r}")
    return value


def _check_fitted(fitted: dict[str, Any], name: str) -> None:
    """Refuse fitted values skact does not write, before they reach int() or a network;
    give the ones files of older skact lack their defaults (each field's)."""
    for field in _state.FITTED_STATE:
        if field.stored is not _state.Stored.JSON:
            continue
        key = field.file_key
        if key not in fitted and field.default is not None:
            fitted[key] = field.default(fitted)
        value = fitted[key]
        assert field.check is not None  # _check_schema
        if not field.check(value, fitted):
            problem = field.problem.format(key=key, value=value)
            raise _corrupt(name, _CONFIG, f"fitted {problem}")


def _check_schema() -> None:
    """Refuse a fitted state that :func:`load` could not check: each field the file
    holds needs a check (a JSON field its own; a tensor field its own or one of
    :data:`_TENSOR_CHECKS`), and the keys must not collide."""
    json_keys, tensor_keys = [], [_ARRAYS]
    for field in _state.FITTED_STATE:
        if field.stored is _state.Stored.JSON:
            json_keys.append(field.file_key)
            checked = field.check is not None
        elif field.stored in (_state.Stored.TENSORS, _state.Stored.GENERATOR):
            tensor_keys.append(field.file_key)
            checked = field.check is not None or field.name in _TENSOR_CHECKS
        else:
            continue
        if not checked:
            raise TypeError(
                f"the fitted attribute {field.name} is declared in skact._state as "
                f"{field.stored.name} without a check: skact.load could not refuse a "
                "tampered value. Give its Field a check."
            )
    for keys in (json_keys, tensor_keys):
        if len(set(keys)) != len(keys):
            raise TypeError(f"fitted fields share a key in the model file: {keys}")


def _saved_network(estimator: ACTEncoder, fitted: dict[str, Any], name: str) -> str:
    """The built-in network to rebuild: the one ``encoder="auto"`` resolved to when
    the model was fitted, or the one the parameters name."""
    adapter, encoder = estimator._adapter, str(estimator.encoder)
    network = fitted.get("network")  # absent from files of older skact
    if encoder == "auto" and network is not None:
        if network not in adapter.networks:
            raise _corrupt(name, _CONFIG, f"fitted network={network!r}")
        return str(network)
    try:
        # Older skact chose "auto"'s network by the view size alone, as CUDA does now;
        # a name does not depend on the device.
        return adapter.network_name(encoder, "cuda")
    except ValueError:
        raise _corrupt(
            name,
            _CONFIG,
            f"its parameters (encoder={encoder!r}) do not describe the network for its "
            f"{adapter.kind} input",
        ) from None


def _check_category_dtypes(state: dict[str, Any], name: str) -> None:
    """Category dtypes are ``"str"`` or numbers: a JSON-chosen dtype such as
    ``"V1000000000"`` would allocate a gigabyte per category."""
    for dtype in state.get("category_dtypes", []):
        if dtype == "str":
            continue
        if not isinstance(dtype, str) or np.dtype(dtype).kind not in "biuf":
            raise _corrupt(name, _CONFIG, f"category dtype {dtype!r}")


def _array_references(value: Any) -> set[str]:
    """The keys of ``tensors.pt``'s arrays that an adapter state refers to."""
    if isinstance(value, dict):
        refs = {v for k, v in value.items() if k in ("__tensor__", "__ndarray__")}
        for v in value.values():
            refs |= _array_references(v)
        return refs
    if isinstance(value, list):
        return set().union(*map(_array_references, value)) if value else set()
    return set()


def _networks(
    estimator: ACTEncoder, width: int, device: str
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The encoder and projection head for ``estimator``'s adapter, on ``device``
    ("meta" to learn shapes and dtypes without allocating a possibly huge network)."""
    with torch.random.fork_rng(devices=[]), torch.device(device):
        network = estimator._make_encoder(estimator._adapter.input_shape)
        projector = estimator._make_projector(width)
    return network, projector


def _allocated(plan: _Plan, width: int) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The planned networks on the CPU, ready to receive every saved tensor.

    Built-in ones are moved off the meta device uninitialised: the saved weights
    overwrite them all, and initialising ResNet-18 first cost a tenth of a second.
    """
    modules = [m for m in (plan.encoder, plan.projector) if m is not None]
    on_meta = any(t.is_meta for m in modules for t in m.state_dict().values())
    if not on_meta:
        return plan.encoder, plan.projector  # a caller's encoder, built on the CPU
    # A buffer outside the state dict would stay uninitialised: build afresh then.
    if any(set(dict(m.named_buffers())) - set(m.state_dict()) for m in modules):
        return _networks(plan.estimator, width, "cpu")
    projector = None if plan.projector is None else plan.projector.to_empty(device="cpu")
    return plan.encoder.to_empty(device="cpu"), projector


@functools.cache
def _cpu_generator_state_size() -> int:
    return torch.Generator().get_state().numel()


# ----------------------------------------------------------------- checking the tensors


def _check_tensors(tensors: dict[str, Any], plan: _Plan, name: str) -> None:
    """Refuse tensors that do not fit the architecture: wrong keys, shapes or dtypes
    (a (1,) scale would broadcast, int64 weights be cast), or values that are not
    finite. Everything is checked here, not later inside torch or transform."""
    # The adapter first: it fixes the input width the encoder's shapes follow.
    arrays = tensors[_ARRAYS]
    expected_arrays = {
        key: torch.empty(shape, dtype=dtype, device="meta")
        for key, (shape, dtype) in plan.arrays.items()
    }
    _check_state(arrays, expected_arrays, "", name)
    # Arrays that divide (the adapter's declaration says which): never 0.
    saved = type(plan.estimator._adapter).saved_arrays
    for key, value in arrays.items():
        if saved[key.rsplit(".", 1)[-1]].positive and not bool((value > 0).all()):
            raise _corrupt(name, _TENSORS, f"{key} holds values <= 0")
    for field in _tensor_fields():
        value = tensors[field.file_key]
        against_networks = _TENSOR_CHECKS.get(field.name)
        if against_networks is not None:
            against_networks(value, plan, name)
            continue
        _check_finite(value, field.file_key, name)
        assert field.check is not None  # _check_schema
        if not field.check(value, plan.config["fitted"]):
            problem = field.problem.format(key=field.file_key, value=value)
            raise _corrupt(name, _TENSORS, problem)


def _check_encoder(state: Any, plan: _Plan, name: str) -> None:
    expected = plan.encoder.state_dict()
    if plan.custom is not None:
        # The caller's architecture: a mismatch is theirs to fix (shapes), unless
        # the values themselves are damaged.
        _check_finite(state, "encoder", name)
        _check_state(state, expected, "encoder", name, caller_error=True)
    else:
        _check_state(state, expected, "encoder", name)


def _check_projector(state: Any, plan: _Plan, name: str) -> None:
    if plan.projector is None:
        if state is not None:
            raise _corrupt(
                name, _TENSORS, "it holds projector weights for a model without one"
            )
    else:
        _check_state(state, plan.projector.state_dict(), "projector", name)


def _check_optimizer_state(state: Any, plan: _Plan, name: str) -> None:
    parameters = [*plan.encoder.parameters()]
    if plan.projector is not None:
        parameters += plan.projector.parameters()
    _check_optimizer(state, parameters, plan.optimizer_state, name, plan.config["fitted"])


def _check_state(
    state: Any,
    expected: dict[str, Tensor],
    what: str,
    name: str,
    *,
    caller_error: bool = False,
) -> None:
    """``state`` must hold exactly ``expected``'s keys, each a tensor of the same
    shape and dtype, with finite values. ``what`` prefixes the keys in messages
    ("encoder" gives "encoder.layers.0.weight"); an empty one leaves them as they are.
    ``caller_error``: a mismatch is the caller's (their encoder), a plain ValueError."""
    label = f"{what}." if what else ""
    network = f"the saved {what or 'input statistics'} do not fit the model built for them"
    if what in ("encoder", "projector"):
        network = f"the saved {what} weights do not fit the network built for them"
    problem = None
    if not isinstance(state, dict) or set(state) != set(expected):
        keys = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        problem = f"{network}: they hold {keys}, the network {sorted(expected)}"
    else:
        for key, want in expected.items():
            got = state[key]
            if isinstance(got, Tensor) and (got.shape, got.dtype) == (
                want.shape,
                want.dtype,
            ):
                continue
            found = (
                f"{got.dtype} of shape {tuple(got.shape)}"
                if isinstance(got, Tensor)
                else type(got).__name__
            )
            problem = (
                f"{network}: {label}{key} is {found}, not {want.dtype} of shape "
                f"{tuple(want.shape)}"
            )
            break
    if problem is not None:
        if caller_error:
            raise ValueError(problem)
        raise _corrupt(name, _TENSORS, problem)
    _check_finite(state, what, name)


def _check_finite(state: Any, what: str, name: str) -> None:
    if not isinstance(state, dict):
        return
    label = f"{what}." if what else ""
    for key, value in state.items():
        if isinstance(value, Tensor) and value.is_floating_point():
            # A finite sum means finite values (NaN and inf propagate), in a fraction
            # of isfinite's time; only a sum that overflows needs the full check.
            if bool(value.sum().isfinite()):
                continue
            if not bool(torch.isfinite(value).all()):
                raise _corrupt(name, _TENSORS, f"{label}{key} holds NaN or infinite values")


#: Adam's state per parameter (``make_adam``: no amsgrad).
_ADAM_STATE = ("exp_avg", "exp_avg_sq", "step")
#: ``|exp_avg| <= _ADAM_MOMENT_RATIO * sqrt(exp_avg_sq)`` holds for every state Adam
#: can reach with torch's default betas (0.9, 0.999), which ``make_adam`` uses: by
#: Cauchy-Schwarz, |sum_k (1-b1) b1^k g_k| <= sqrt(sum_k (1-b1)^2 b1^2k / ((1-b2) b2^k))
#: * sqrt(sum_k (1-b2) b2^k g_k^2), and the first root is at most
#: sqrt((1-b1)^2 / ((1-b2) (1 - b1^2/b2))) = 7.27. Trained models reached 6.8. A
#: moment beyond it is what drives weights to 1e29 in the next warm fit: Adam's step
#: is lr * exp_avg / sqrt(exp_avg_sq), a few lr at most when the two are Adam's own.
_ADAM_MOMENT_RATIO = 8.0
#: Slack for the bound above where exp_avg_sq underflows (gradients below about 1e-19
#: square to denormals or 0 in float32): a moment this small moves a weight by 1e-4 *
#: lr at most (Adam's eps is 1e-8), harmless.
_ADAM_MOMENT_SLACK = 1e-12
#: Adam's moments never exceed the largest recent gradient, and gradients scale with
#: the loss. Measured, the moments reached 0.054 times the largest loss recorded (at
#: least 1): ResNet-18 image models and (512, 512) table models, learning rates 1e-3
#: to 1.0, alpha up to 100 (moments of 557 for losses of 17,800), weight decay 1,
#: inputs with outliers of 1e9. Moments a million times the loss are no training's:
#: they would freeze the next fit (a second moment decays by 0.999 a step) or, with a
#: first moment to match, throw the weights far away.
_ADAM_MOMENT_PER_LOSS = 1e6


def _check_optimizer(
    state: Any,
    parameters: Sequence[Tensor],
    recorded: bool | None,
    name: str,
    fitted: dict[str, Any],
) -> None:
    """Adam's saved state: one entry per parameter, moments of the parameter's shape
    and within what Adam can produce in the training ``fitted`` records (its losses,
    its step count); or None, only where ``skact.json`` says it was not saved
    (``recorded`` False), or does not say (None: older skact)."""
    if state is None:
        if recorded:
            raise _corrupt(
                name,
                _TENSORS,
                f"{_CONFIG} says it holds the optimizer's state, but {_TENSORS} has none",
            )
        return
    if recorded is False:
        raise _corrupt(
            name,
            _TENSORS,
            f"it holds an optimizer state, but {_CONFIG} says it was saved without one",
        )
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise _corrupt(name, _TENSORS, "the optimizer state is not a torch optimizer's")
    groups = state["param_groups"]
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups
    ):
        raise _corrupt(name, _TENSORS, "the optimizer's parameter groups are malformed")
    ids = [i for g in groups for i in g["params"]]
    if ids != list(range(len(parameters))):
        raise _corrupt(
            name,
            _TENSORS,
            f"the optimizer state covers {len(ids)} parameters; the network has "
            f"{len(parameters)}",
        )
    for group in groups:
        for key, value in group.items():
            if key != "params" and not _plain(value):
                raise _corrupt(name, _TENSORS, f"the optimizer's {key}={value!r}")
    per_parameter = state["state"]
    if not isinstance(per_parameter, dict) or not set(per_parameter) <= set(ids):
        raise _corrupt(name, _TENSORS, "the optimizer state names unknown parameters")
    losses = [
        abs(v)
        for v in fitted["loss_curve_"] + fitted["validation_loss_curve_"]
        if math.isfinite(v)
    ]
    loss = max([1.0, *losses])
    for i, entry in per_parameter.items():
        if not isinstance(entry, dict):
            raise _corrupt(name, _TENSORS, f"the optimizer state of parameter {i}")
        if set(entry) != set(_ADAM_STATE):
            raise _corrupt(
                name,
                _TENSORS,
                f"the optimizer state of parameter {i} holds {sorted(map(str, entry))}, "
                f"not Adam's {list(_ADAM_STATE)}",
            )
        param = parameters[i]
        for key, value in entry.items():
            scalar = key == "step"
            ok = isinstance(value, Tensor) and (
                (value.numel() == 1 and value.is_floating_point())
                if scalar
                else (value.shape == param.shape and value.dtype == param.dtype)
            )
            if not ok:
                found = (
                    f"{value.dtype} of shape {tuple(value.shape)}"
                    if isinstance(value, Tensor)
                    else repr(value)
                )
                raise _corrupt(
                    name,
                    _TENSORS,
                    f"the optimizer's {key} of parameter {i} is {found}, for a "
                    f"parameter of shape {tuple(param.shape)}",
                )
        _check_finite(entry, f"optimizer.state.{i}", name)
        _check_adam_values(entry, i, fitted["step"], loss, name)


def _check_adam_values(
    entry: dict[str, Tensor], i: int, steps: int, loss: float, name: str
) -> None:
    """Adam's state of parameter ``i``, finite and of the right shapes, against what
    Adam can produce in ``steps`` steps of a training whose largest loss was ``loss``
    (at least 1; see :data:`_ADAM_MOMENT_RATIO` and :data:`_ADAM_MOMENT_PER_LOSS`)."""
    step = float(entry["step"])
    if not (step.is_integer() and 0 <= step <= steps):
        # A negative or fractional step makes Adam's bias correction 1 - 0.9**step
        # negative or tiny: the first step of the next fit would throw the weights.
        raise _corrupt(
            name,
            _TENSORS,
            f"the optimizer's step of parameter {i} is {step}; Adam counts whole steps, "
            f"from 0 to the model's {steps} (fitted step in {_CONFIG})",
        )
    exp_avg, exp_avg_sq = entry["exp_avg"], entry["exp_avg_sq"]
    if exp_avg_sq.numel() == 0:
        return
    if bool((exp_avg_sq < 0).any()):
        raise _corrupt(
            name,
            _TENSORS,
            f"the optimizer's exp_avg_sq of parameter {i} holds negative "
            "values (an average of squares)",
        )
    root = exp_avg_sq.sqrt()
    for what, values in (("exp_avg", exp_avg.abs()), ("sqrt(exp_avg_sq)", root)):
        largest = float(values.max())
        if largest > _ADAM_MOMENT_PER_LOSS * loss:
            raise _corrupt(
                name,
                _TENSORS,
                f"the optimizer's {what} of parameter {i} reaches {largest:.3g}, more "
                f"than {_ADAM_MOMENT_PER_LOSS:.0e} times the largest loss the training "
                f"recorded ({loss:.3g}): no gradient of real training is that large",
            )
    excess = exp_avg.abs() - (_ADAM_MOMENT_RATIO * root + _ADAM_MOMENT_SLACK)
    if bool((excess > 0).any()):
        ratio = float((exp_avg.abs() / root.clamp_min(_ADAM_MOMENT_SLACK)).max())
        raise _corrupt(
            name,
            _TENSORS,
            f"the optimizer's exp_avg of parameter {i} is up to {ratio:.3g} times "
            f"sqrt(exp_avg_sq); Adam's moments stay within {_ADAM_MOMENT_RATIO:g} times",
        )


def _plain(value: Any) -> bool:
    """A hyperparameter value torch could have written: a finite number, a bool, a
    string, None, or a tuple of those."""
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


def _check_adversary(state: Any, width: int, name: str) -> None:
    """The ACT adversary: plain settings and a (width, width) float32 ``G`` or None
    (finite or not: loading drops a non-finite one)."""
    if state is None:
        return
    if not isinstance(state, dict):
        raise _corrupt(name, _TENSORS, "the adversary state is not a dict")
    for key, value in state.items():
        if isinstance(value, Tensor):
            if value.shape != (width, width) or value.dtype != torch.float32:
                raise _corrupt(
                    name,
                    _TENSORS,
                    f"adversary.{key} is {value.dtype} of shape {tuple(value.shape)}, "
                    f"not float32 of shape {(width, width)}",
                )
        elif not _plain(value):
            raise _corrupt(name, _TENSORS, f"adversary.{key}={value!r}")
    # No finiteness check: older skact saved a NaN G after a divergence, which is no
    # damage (saving again could not fix it); loading drops it (skact._state._adversary).


def _check_generator(state: Any, plan: _Plan, name: str) -> None:
    """The random generator's state, tried on the generator it will restore: a wrong
    one must fail here, not in the first step of a later ``partial_fit``."""
    if not isinstance(state, Tensor) or state.dtype != torch.uint8 or state.ndim != 1:
        raise _corrupt(name, _TENSORS, "the random generator state is not a uint8 vector")
    saved = torch.device(plan.config["fitted"]["device"])
    if saved.type != plan.target.type:
        return  # reseeded for the new device type (see _random.generator_state_for)
    try:
        _random.make_generator(plan.target, 0).set_state(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise _corrupt(
            name, _TENSORS, f"the random generator state is invalid ({exc})"
        ) from None


def _check_adversary_state(state: Any, plan: _Plan, name: str) -> None:
    _check_adversary(state, plan.correlation_width, name)


#: The checks of the tensor fields against the networks the saved parameters describe,
#: by field name, in the order of ``FITTED_STATE`` (a field of ``skact._state``
#: declared with its own ``check`` needs none here).
_TENSOR_CHECKS: dict[str, Callable[[Any, _Plan, str], None]] = {
    "encoder_": _check_encoder,
    "projector_": _check_projector,
    "_optimizer_state": _check_optimizer_state,
    "_adversary_state": _check_adversary_state,
    "_generator_state": _check_generator,
}


def _target_device(saved: torch.device, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return _device.resolve_device(device)
    return _state.available_or_cpu(saved)


# -------------------------------------------------------------------------- rebuilding


def _rebuild(plan: _Plan, tensors: dict[str, Any]) -> ACTEncoder:
    """A fitted estimator from a checked plan and its checked tensors: each field of
    ``skact._state`` decoded from what the file holds, in declaration order."""
    estimator = plan.estimator
    fitted = plan.config["fitted"]
    adapter_spec = plan.config["adapter"]
    estimator._adapter = ADAPTERS[adapter_spec["kind"]].from_state_dict(
        _join_arrays(adapter_spec["state"], tensors[_ARRAYS])
    )
    network, projector = _allocated(plan, int(fitted["n_components_out"]))
    loading = _state.Loading(
        estimator=estimator,
        device=plan.target,
        saved_device=torch.device(fitted["device"]),
        networks={"encoder_": network, "projector_": projector},
    )
    for field in _state.FITTED_STATE:
        if field.stored is _state.Stored.ADAPTER:
            continue  # read above: the networks and the derived fields need it
        if field.stored is _state.Stored.DERIVED:
            saved = None
        elif field.stored is _state.Stored.JSON:
            saved = fitted[field.file_key]
        else:
            saved = tensors[field.file_key]
        value = field.decode(saved, loading)
        if value is not _state.UNSET:
            setattr(estimator, field.name, value)
    return estimator


# ------------------------------------------------------------------ JSON conversions

#: How an ImageAugment or TabularAugment parameter is marked in the saved parameters.
_AUGMENT_KEYS = {"__image_augment__": ImageAugment, "__tabular_augment__": TabularAugment}
#: How an objective instance is marked: its registry name and parameters.
_OBJECTIVE_KEY = "__objective__"
#: How a list of skact's own callbacks is marked: each one's class name and parameters.
_CALLBACKS_KEY = "__callbacks__"
#: The callbacks a model file can hold: skact's own, rebuilt from their parameters.
#: The callbacks a model file stores, by name and parameters: those that hold no path.
#: A CSVLogger is left out: a file that named where a later fit writes could make
#: skact overwrite any file the user can write (skact.load trusts nothing in it).
SAVED_CALLBACKS = {c.__name__: c for c in (EarlyStopping,)}


def _params_to_json(params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """JSON-able parameters, and the qualified name of a user encoder (else None)."""
    out: dict[str, Any] = {}
    custom = None
    for name, value in params.items():
        if name == "encoder" and not isinstance(value, str):
            kind = type(value) if isinstance(value, torch.nn.Module) else value
            module = getattr(kind, "__module__", "?")
            custom = f"{module}.{getattr(kind, '__qualname__', type(kind).__qualname__)}"
            out[name] = None
        elif name == "callbacks" and value is not None:
            out[name] = _callbacks_to_json(value)
        elif name == "random_state" and isinstance(value, np.random.RandomState):
            warnings.warn(
                "random_state is a RandomState instance, which is not saved; the loaded "
                "estimator has random_state=None (this does not change transform).",
                UserWarning,
                stacklevel=3,
            )
            out[name] = None
        elif isinstance(value, torch.device):
            out[name] = str(value)
        elif type(value) in (ImageAugment, TabularAugment):  # not a subclass: its code
            augment = {
                k: _json_value(f"{name}.{k}", v) for k, v in value.get_params().items()
            }
            key = next(k for k, kind in _AUGMENT_KEYS.items() if type(value) is kind)
            out[name] = {key: augment}
        elif name == "augment" and value is not None:
            # A callable's code, like a user encoder's, is not saved. Refused rather
            # than loaded with other views: warm_start and partial_fit would then
            # silently train on views the model was not fitted with.
            raise TypeError(UNSAVED_AUGMENT.format(augment=value))
        elif isinstance(value, Objective):
            if OBJECTIVES.get(value.name) is not type(value):
                raise TypeError(
                    f"parameter {name}={value!r} cannot be saved: ACTEncoder.save "
                    f"rebuilds skact's own objectives ({', '.join(OBJECTIVES)}) from "
                    "their parameters, not a subclass; pickle the estimator instead."
                )
            own = {k: _json_value(f"{name}.{k}", v) for k, v in value.get_params().items()}
            out[name] = {_OBJECTIVE_KEY: {"name": value.name, "params": own}}
        else:
            out[name] = _json_value(name, value)
    return out, custom


def _callbacks_to_json(callbacks: list[Any]) -> dict[str, Any] | None:
    """The callbacks of :data:`SAVED_CALLBACKS` by name and parameters; None, with a
    warning, for a list holding any other: a user's class (its code is not saved, like a
    user encoder's) or a callback that writes to a path."""
    others = [c for c in callbacks if SAVED_CALLBACKS.get(type(c).__name__) is not type(c)]
    if others:
        names = ", ".join(sorted({type(c).__qualname__ for c in others}))
        warnings.warn(
            f"callbacks holds callbacks that a model file does not store ({names}: "
            "your own, whose code the file cannot hold, or ones that write to a path, "
            "which a file must never choose): the file has callbacks=None. After "
            "skact.load, set them again with set_params(callbacks=[...]). Pickling "
            "keeps them.",
            UserWarning,
            stacklevel=4,
        )
        return None
    saved = []
    for callback in callbacks:
        params = {
            k: _json_value(
                f"callbacks.{k}", os.fspath(v) if isinstance(v, os.PathLike) else v
            )
            for k, v in callback.get_params().items()
        }
        saved.append({"name": type(callback).__name__, "params": params})
    return {_CALLBACKS_KEY: saved}


def _callbacks_from_json(saved: dict[str, Any]) -> Any:
    """The saved callbacks, or ``saved`` itself where it describes none: the
    estimator's parameter validation then refuses the file."""
    try:
        return [
            SAVED_CALLBACKS[spec["name"]](**spec["params"])
            for spec in saved[_CALLBACKS_KEY]
        ]
    except (KeyError, TypeError):
        return saved


def _json_value(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(name, v) for v in value]
    if isinstance(value, np.ndarray):  # e.g. a boolean mask of categorical features
        return _json_value(name, value.tolist())
    raise TypeError(
        f"parameter {name}={value!r} ({type(value).__name__}) cannot be saved; "
        "ACTEncoder.save stores parameters as JSON (numbers, strings, lists)."
    )


def _params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    # JSON has no tuples; the estimator's sequence parameters are tuples (an array
    # parameter comes back as a tuple too).
    def value(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(v)
        for key, kind in _AUGMENT_KEYS.items():
            if isinstance(v, dict) and key in v:
                return kind(**{k: value(a) for k, a in v[key].items()})
        if isinstance(v, dict) and _OBJECTIVE_KEY in v:
            return _objective_from_json(v)
        if isinstance(v, dict) and _CALLBACKS_KEY in v:
            return _callbacks_from_json(v)
        return v

    return {k: value(v) for k, v in params.items()}


def _objective_from_json(saved: dict[str, Any]) -> Any:
    """The saved objective, or ``saved`` itself where it describes none: the
    estimator's parameter validation then refuses the file."""
    spec = saved[_OBJECTIVE_KEY]
    try:
        objective = OBJECTIVES[spec["name"]](**spec["params"])
        objective.validate()
    except (KeyError, TypeError, ValueError):
        return saved
    return objective


def _split_arrays(value: Any, key: str, arrays: dict[str, Tensor]) -> Any:
    """Replace the arrays and tensors in ``value`` by references into ``arrays``."""
    if isinstance(value, dict):
        return {str(k): _split_arrays(v, f"{key}.{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, f"{key}.{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, Tensor):
        arrays[key] = value.detach().cpu()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            arrays[key] = torch.from_numpy(np.ascontiguousarray(value))
            return {"__ndarray__": key}
        if value.dtype.kind in "OUS":
            items = [
                _json_value(key, v.item() if isinstance(v, np.generic) else v)
                for v in value.ravel()
            ]
            return {"__objects__": items, "dtype": value.dtype.kind, "shape": value.shape}
    if isinstance(value, np.generic):
        return value.item()
    return _json_value(key, value)


def _join_arrays(value: Any, arrays: dict[str, Tensor]) -> Any:
    """Inverse of :func:`_split_arrays`."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return arrays[value["__tensor__"]]
        if "__ndarray__" in value:
            return arrays[value["__ndarray__"]].numpy()
        if "__objects__" in value:
            dtype = object if value["dtype"] == "O" else str
            return np.asarray(value["__objects__"], dtype=dtype).reshape(value["shape"])
        return {k: _join_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays) for v in value]
    return value


def _skact_version() -> str:
    from . import __version__

    return __version__
