"""The ``skact`` command: a few-shot demo, and fit / transform / export / evaluate on files.

``skact demo`` shows the main job on scikit-learn's bundled digits; ``skact fit``,
``skact transform`` and ``skact evaluate`` do the same on the user's data (a CSV, .npy or
Parquet table, or a folder of images); ``skact export`` writes a fitted model for
serving without skact (ONNX or ``torch.export``). Run ``skact COMMAND --help`` for the
options.
Exit status: 0 on success, 2 for bad arguments or unreadable inputs, 1 when the work
itself fails (for example a table whose width does not match the model), 130 after
Ctrl-C. Output files are written whole or not at all, and never over an input.

The package: :mod:`~skact.cli.parser` derives the options from ``ACTEncoder``'s
parameters, :mod:`~skact.cli.commands` runs them, :mod:`~skact.cli.files` reads and
writes the files. It is a client of the library: it imports skact's public API
(:mod:`skact`, :mod:`skact.evaluation`, :mod:`skact.callbacks`) and, for the few
internals only a command needs, :mod:`skact._cli_support`, which says why each is there.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TextIO

from .commands import COMMANDS, render_error
from .errors import CommandError, Interrupted, UsageError
from .files import list_images, read_data, write_features
from .parser import build_parser

__all__ = [
    "CommandError",
    "Interrupted",
    "UsageError",
    "build_parser",
    "list_images",
    "main",
    "read_data",
    "write_features",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skact`` command.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad arguments or inputs, 1 when the work fails,
        130 after Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's usage errors
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with _plain_warnings(args.command):
            return int(COMMANDS[args.command](args))
    except CommandError as exc:
        error, code = str(exc), exc.exit_code
    # NonFiniteLossError is a FloatingPointError; networks too large, a MemoryError.
    except (ValueError, OSError, FloatingPointError, MemoryError) as exc:
        error, code = render_error(exc, args.command), 1
    except KeyboardInterrupt:  # outputs are written whole or not at all
        error, code = "interrupted (Ctrl-C); no file was written", 130
    print(f"skact {args.command}: error: {error}", file=sys.stderr)
    return code


@contextlib.contextmanager
def _plain_warnings(command: str) -> Iterator[None]:
    """Show warnings as ``skact COMMAND: warning: message`` lines inside the block.

    Python's format names the file and line that warned (the ``skact`` script's
    ``sys.exit(main())``), which tells a user of the command nothing. The filters are
    Python's own (a warning is shown once per place), and a message already shown by
    this command is not repeated (``evaluate`` transforms the pool and the test rows,
    which would say one conversion twice); the display is restored after.
    """
    shown: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = f"skact {command}: warning: {message}"
        if text not in shown:
            shown.add(text)
            print(text, file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
