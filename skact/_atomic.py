"""Write a file so that it is either the old one or the complete new one, never half.

The content goes to a temporary file beside the destination (same folder, so the same
file system), which :func:`os.replace` then moves over the destination in one step. A
failure, Ctrl-C or ``kill -9`` before that step leaves the destination as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from typing import IO, Any

__all__ = [
    "PARTIAL_SUFFIX",
    "STALE_SECONDS",
    "atomic_write",
    "check_writable",
    "remove_stale_partials",
]

#: Suffix of the temporary files, named ``.<destination name>.<pid>-<random>.partial``
#: so that a user who sees one left by a killed process can tell what it was.
PARTIAL_SUFFIX = ".partial"
_PARTIAL = re.compile(r"\..+\.(\d+)-[0-9a-f]{8}" + re.escape(PARTIAL_SUFFIX))
#: A temporary file untouched for this long, of a process that is gone, is a leftover.
STALE_SECONDS = 60.0


@contextlib.contextmanager
def atomic_write(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes], *, text: bool = False
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the ``with`` block succeeds.

    The file gets the mode of the file it replaces, or the umask's mode for a new file;
    a symbolic link at ``path`` keeps pointing where it did and its target is replaced.
    If the block raises (KeyboardInterrupt included), the temporary file is removed and
    ``path`` is untouched. Temporary files that killed processes left in the folder are
    removed (see :func:`remove_stale_partials`).

    ``path`` must name a file, as for :func:`open`: an empty path raises
    ``FileNotFoundError``, and a folder, or a path ending with a separator, raises
    ``IsADirectoryError`` before anything is written (resolving the path would drop
    the separator, and ``"notes.csv/"`` would replace the file ``notes.csv``).

    Parameters
    ----------
    path : str, bytes or path-like
        Destination file (bytes are decoded as :func:`os.fsdecode` does).
    text : bool, default=False
        Open in text mode (UTF-8, no newline translation, as :mod:`csv` wants) instead
        of binary.

    Yields
    ------
    file object
        The temporary file, open for writing.
    """
    path = os.fsdecode(path)
    if not path:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if names_a_folder(path) or os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    target = os.path.realpath(path)  # a link's target is what gets replaced
    remove_stale_partials(os.path.dirname(target))
    try:
        tmp, fd = _create_beside(target)
    except OSError as exc:
        # The user asked for ``path``; the hidden temporary name would only confuse.
        raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from None
    try:
        if text:
            file: IO[Any] = os.fdopen(fd, "w", encoding="utf-8", newline="")
        else:
            file = os.fdopen(fd, "wb")
        with file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: The characters that end a path naming a folder on this system.
SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)


def names_a_folder(path: str) -> bool:
    """Whether ``path`` ends with a separator: a folder, whatever exists there.

    ``open``, ``os.replace`` and ``pathlib.Path`` drop a trailing separator, so a write
    to ``"notes.csv/"`` would replace the file ``notes.csv``.

    Parameters
    ----------
    path : str

    Returns
    -------
    bool
    """
    return path.endswith(SEPARATORS)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise the OSError that :func:`atomic_write` to ``path`` would raise on opening.

    The check does what the write will do first: it creates (and removes) a temporary
    file in the folder of ``path`` (of its target, for a symbolic link). So it fails
    where the write would, whoever runs it: a folder without write permission, a
    read-only file system (which stops root too), a missing folder or a file in the
    folder's place. A full disk is only found by the write itself.

    Parameters
    ----------
    path : str or path-like
        Destination file.

    Raises
    ------
    OSError
        Naming ``path``, as :func:`atomic_write` would.
    """
    try:
        tmp, fd = _create_beside(os.path.realpath(path))
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from None
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _create_beside(target: str) -> tuple[str, int]:
    """Create a new, empty temporary file in ``target``'s folder: its path and fd."""
    folder, name = os.path.split(target)
    while True:
        random = f"{os.getpid()}-{secrets.token_hex(4)}"
        tmp = os.path.join(folder, f".{name}.{random}{PARTIAL_SUFFIX}")
        try:
            # O_EXCL and mode 0o666: never another's file, and the umask applies, as
            # it does for a plain open(). O_BINARY (Windows): without it the C runtime
            # writes each b"\n" as b"\r\n", corrupting a .npy or a model file.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def remove_stale_partials(folder: str, names: re.Pattern[str] = _PARTIAL) -> None:
    """Remove the temporary files that killed writes left in ``folder``.

    A file is left alone while it is younger than :data:`STALE_SECONDS` or its process
    (named in the file name) is alive, so another process's write keeps its file.

    Parameters
    ----------
    folder : str
        The folder to tidy; unreadable folders and entries are skipped.
    names : re.Pattern, default: :func:`atomic_write`'s temporary files
        The names of the files to remove; its first group, where it matches, is the
        writing process's id (a name without one is a leftover once stale).
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        match = names.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < STALE_SECONDS:
            continue
        pid = match.group(1) if match.re.groups else None
        if pid is not None and _process_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def _process_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would send Ctrl-C on Windows: never guess there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or an id no process can have
    return True
