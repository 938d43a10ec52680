"""The documentation: example scripts, the user guide's code, generated pages, the build.

The example scripts and the user guide's code blocks run here with every
``ACTEncoder.fit`` capped at 2 epochs, so that they stay fast; what they print and
build is checked against what the pages say. The full Sphinx build with warnings as
errors is marked ``slow`` (CI runs it as its own step).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest

import skact
from skact import ACTEncoder

Capture = pytest.CaptureFixture[str]
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

sys.path.insert(0, str(DOCS))
import _generate  # noqa: E402  (docs/_generate.py: the build-time page writers)

sys.path.remove(str(DOCS))


@pytest.fixture
def quick_fits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Cap every ``ACTEncoder.fit`` at 2 epochs, whatever ``max_iter`` the code asks for.

    ``n_jobs`` runs in this process (so the cap holds there too): starting worker
    processes, each importing torch, would cost more than the fits. The thread rule
    under a real ``n_jobs=2`` has its own tests with the estimator.
    """
    fit = ACTEncoder.fit

    def capped_fit(self: ACTEncoder, X: object, y: object = None) -> ACTEncoder:
        return fit(
            self.set_params(
                max_iter=2 if isinstance(self.max_iter, str) else min(self.max_iter, 2)
            ),
            X,
            y,
        )

    monkeypatch.setattr(ACTEncoder, "fit", capped_fit)
    with joblib.parallel_config(backend="sequential"):
        yield


# ------------------------------------------------------------------ example scripts


def _run_example(name: str, capsys: Capture) -> tuple[str, dict]:
    namespace = runpy.run_path(str(ROOT / "examples" / name), run_name="__main__")
    return capsys.readouterr().out, namespace


def test_examples_are_all_tested() -> None:
    tested = {"few_shot_digits.py", "frozen_transfer.py", "grid_search.py"}
    assert {p.name for p in EXAMPLES} == tested, "add a test for each new example"


def test_example_few_shot_digits(quick_fits: None, capsys: Capture) -> None:
    out, _ = _run_example("few_shot_digits.py", capsys)
    lines = out.strip().splitlines()
    assert lines[0].split() == ["features", "k=1", "k=5", "k=10"]
    rows = {}
    for line in lines[1:]:
        name, cells = line[:12].strip(), line[12:]
        rows[name] = [float(m) for m in re.findall(r"(\d\.\d{3}) ±", cells)]
    assert list(rows) == ["ACT", "PCA", "raw pixels"]
    for means in rows.values():
        assert len(means) == 3 and all(0 <= m <= 1 for m in means)
    # More labels, better probe: holds for the fixed raw-pixel baseline on any machine.
    assert rows["raw pixels"][0] < rows["raw pixels"][1] < rows["raw pixels"][2]
    assert rows["raw pixels"][2] > 0.8


def test_example_frozen_transfer(quick_fits: None, capsys: Capture) -> None:
    out, ns = _run_example("frozen_transfer.py", capsys)
    assert "encoder epochs: 2, weights unchanged: True" in out
    assert ns["search"].best_params_["logisticregression__C"] in (0.01, 0.1, 1.0, 10.0)
    # Cross-validation cloned the pipeline; the frozen step is still the same encoder.
    frozen = ns["search"].best_estimator_.steps[0][1]
    assert frozen.estimator is ns["encoder"]
    assert len(ns["y_few"]) == 100


def test_example_grid_search(quick_fits: None, capsys: Capture) -> None:
    out, ns = _run_example("grid_search.py", capsys)
    search = ns["search"]
    assert len(search.cv_results_["params"]) == 4
    assert set(search.best_params_) == {"actencoder__alpha", "actencoder__n_components"}
    assert f"best: {search.best_params_}" in out
    best = search.best_estimator_.named_steps["actencoder"]
    assert best.transform(ns["X"][:3]).shape == (
        3,
        search.best_params_["actencoder__n_components"],
    )


# ------------------------------------------------------------------ user guide code

_CODE_BLOCK = re.compile(
    r"^( *)\.\. code-block:: python\n((?:\1 +:.*\n)*)\n((?:\1 +.*\n|\n)+)", re.MULTILINE
)


def python_blocks(page: Path) -> list[str]:
    """The ``.. code-block:: python`` blocks of an rst page, dedented, in order."""
    blocks = []
    for m in _CODE_BLOCK.finditer(page.read_text(encoding="utf-8")):
        lines = m.group(3).rstrip("\n").splitlines()
        indent = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
        blocks.append("\n".join(x[indent:] for x in lines))
    return blocks


def run_page(relpath: str) -> dict:
    """Run a page's Python blocks in one namespace, as a reader would, in order."""
    namespace: dict = {"__name__": "__docs__"}
    for block in python_blocks(DOCS / relpath):
        exec(compile(block, f"{relpath}", "exec"), namespace)
    return namespace


def test_python_blocks_parser() -> None:
    blocks = python_blocks(DOCS / "user_guide" / "quickstart.rst")
    assert blocks[0].startswith("from sklearn.datasets import load_digits")
    assert all(not b.startswith(" ") for b in blocks)


def test_index_page_code(quick_fits: None, capsys: Capture) -> None:
    ns = run_page("index.rst")
    assert 0 <= float(capsys.readouterr().out) <= 1
    assert ns["model"].named_steps["actencoder"].n_iter_ == 2


def test_quickstart_code(quick_fits: None, capsys: Capture) -> None:
    ns = run_page("user_guide/quickstart.rst")
    out = capsys.readouterr().out
    # The values the page quotes in its comments.
    assert ns["features"].shape == (540, 64) and ns["features"].dtype == np.float32
    assert "['actencoder0' 'actencoder1' 'actencoder2']" in out
    assert len(ns["labelled"]) == 50
    assert ns["encoder"].n_iter_ == 2 * ns["encoder"].max_iter  # warm_start continued
    assert "accuracy with 5 labels per class" in out


def test_tabular_code(quick_fits: None, capsys: Capture) -> None:
    ns = run_page("user_guide/tabular.rst")
    out = capsys.readouterr().out
    assert "['actencoder0', 'actencoder1', 'actencoder2']" in out
    assert ns["features"].shape == (569, 16)
    assert "(569, 8)" in out


def test_few_shot_code(quick_fits: None, capsys: Capture) -> None:
    ns = run_page("user_guide/few_shot.rst")
    out = capsys.readouterr().out
    assert ns["encoder"].n_iter_ == 2  # never refitted by the pipelines or the search
    assert ns["search"].best_estimator_.steps[0][1].estimator is ns["encoder"]
    assert len(re.findall(r"k= [15] (linear|knn)", out)) == 3 * 2 * 2


def test_grid_search_code(quick_fits: None, capsys: Capture) -> None:
    ns = run_page("user_guide/grid_search.rst")
    assert len(ns["search"].cv_results_["params"]) == 4
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 2


def test_devices_code(quick_fits: None, capsys: Capture) -> None:
    ns = run_page("user_guide/devices.rst")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(ns["encoder"].device_)
    assert out[1] == "(5, 64)"
    np.testing.assert_array_equal(
        ns["restored"].transform(ns["X"][:5]), ns["encoder"].transform(ns["X"][:5])
    )


# ------------------------------------------------------------------ generated pages


def test_normalise_headings_shifts_to_top_level_outside_code() -> None:
    text = "## Title\n\ntext\n\n#### Sub\n\n```\n## not a heading\n```\n"
    out = _generate._normalise_headings(text, top=1)
    assert out.splitlines()[0] == "# Title"
    assert "### Sub" in out
    assert "## not a heading" in out  # inside a code fence: untouched


def test_benchmark_results_without_results(tmp_path: Path) -> None:
    page = _generate.write_benchmark_results(
        tmp_path / "missing", tmp_path / "gen", page_dir=tmp_path
    )
    assert "No benchmark results are saved" in page.read_text()


def test_benchmark_results_sections_order_figures_and_downloads(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "throughput.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    (results / "fewshot.md").write_text("## Few-shot accuracy\n\n![curve](curve.png)\n")
    (results / "curve.png").write_bytes(b"\x89PNG")
    (results / "extra.svg").write_text("<svg/>")
    (results / "fewshot.json").write_text("{}")
    page = _generate.write_benchmark_results(
        results, tmp_path / "docs" / "gen", page_dir=tmp_path / "docs"
    )
    text = page.read_text()
    # fewshot first; its heading lifted to the top level; a title added to the other.
    assert text.index("# Few-shot accuracy") < text.index("# Throughput")
    assert "![curve](gen/benchmarks/curve.png)" in text  # relinked to the copied figure
    assert "{figure} gen/benchmarks/extra.svg" in text  # unreferenced figure still shown
    assert "curve.png`" not in text.split("# Figures")[1]  # not shown twice
    assert "{download}`fewshot.json <../results/fewshot.json>`" in text
    assert (
        tmp_path / "docs" / "gen" / "benchmarks" / "curve.png"
    ).read_bytes() == b"\x89PNG"


def test_example_pages(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "demo.py").write_text('"""A demo\n\nIt shows things.\n"""\n\nimport os\n')
    (page,) = _generate.write_example_pages(examples, tmp_path / "out")
    text = page.read_text()
    assert text.startswith("A demo\n======\n\nIt shows things.")
    assert ":lines: 6-" in text  # the code without its docstring


# ------------------------------------------------------------------ the build


def public_names() -> dict[str, list[str]]:
    """Every public module of skact and the names its ``__all__`` exports."""
    modules = {"skact": list(skact.__all__)}
    for info in pkgutil.walk_packages(skact.__path__, "skact."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            module = importlib.import_module(info.name)
            modules[info.name] = list(getattr(module, "__all__", []))
    return modules


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    for dist in ("sphinx", "numpydoc", "pydata_sphinx_theme", "myst_parser"):
        pytest.importorskip(dist)
    out = tmp_path / "html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    # Every public module and every name it exports has its API page.
    for module, names in public_names().items():
        assert (out / "generated" / f"{module}.html").exists(), module
        for name in names:
            assert (out / "generated" / f"{module}.{name}.html").exists(), name
    # The glob toctree lists every user-guide page, whoever wrote it.
    guide = (out / "user_guide" / "index.html").read_text(encoding="utf-8")
    for page in (DOCS / "user_guide").glob("*.rst"):
        if page.stem != "index":
            assert f'href="{page.stem}.html"' in guide, page.stem
    # Saved results appear on the benchmarks page.
    bench = (out / "benchmarks.html").read_text(encoding="utf-8")
    results = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    if results:
        assert "<table" in bench
    else:
        assert "No benchmark results are saved" in bench
    assert "\\langle" in (out / "method.html").read_text(encoding="utf-8")  # math kept
