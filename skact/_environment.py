"""Versions of the software a result was measured with (benchmarks record them)."""

from __future__ import annotations

import platform

import numpy as np
import sklearn
import torch


def versions() -> dict[str, str]:
    """Versions of Python, skact and the libraries its numbers depend on.

    Returns
    -------
    dict of str to str
        ``python``, ``skact``, ``torch``, ``scikit-learn`` and ``numpy``.
    """
    from . import __version__

    return {
        "python": platform.python_version(),
        "skact": __version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }
