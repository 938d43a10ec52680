"""``python -m skact``: the ``skact`` command (see :mod:`skact.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
