"""The command's failures and their exit statuses."""

from __future__ import annotations

__all__ = ["CommandError", "Interrupted", "UsageError"]


class CommandError(Exception):
    """A failure reported as ``skact COMMAND: error: ...`` with exit status 1."""

    exit_code = 1


class UsageError(CommandError):
    """Bad arguments or unreadable inputs: exit status 2, like argparse's own errors."""

    exit_code = 2


class Interrupted(CommandError):
    """Ctrl-C: exit status 130, as a shell reports a process stopped by SIGINT."""

    exit_code = 130
