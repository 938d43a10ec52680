"""``bench_fewshot.py`` with ``skact._auto.CPU_FAST_PATHS`` set by the first argument.

The switch gates the CPU's bf16 rule for images (issue 28): ``on`` measures what the
rule would give, ``off`` today's default, with everything else (seeds, draws) the same.

Usage::

    python benchmarks/precision_switch.py on --datasets digits_images --rows act
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import bench_fewshot

from skact import _auto


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in ("on", "off"):
        raise SystemExit("usage: precision_switch.py {on,off} [bench_fewshot.py options]")
    _auto.CPU_FAST_PATHS = argv[0] == "on"
    return bench_fewshot.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
