"""A benchmark script imported as a module, for the tests of its pieces."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@contextlib.contextmanager
def benchmark_module(name: str) -> Iterator[ModuleType]:
    """``benchmarks/<name>.py`` as the module ``name``, registered while in use.

    The benchmarks folder is on ``sys.path`` meanwhile, as for the script itself, so a
    benchmark can import another (``from bench_fewshot import ...``); modules imported
    from there are dropped afterwards.
    """
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    sys.path.insert(0, str(BENCHMARKS))
    sys.modules[name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))
        for added in set(sys.modules) - before:
            if (
                getattr(sys.modules[added], "__file__", "")
                and Path(sys.modules[added].__file__ or "").parent == BENCHMARKS
            ):
                del sys.modules[added]
        sys.modules.pop(name, None)
