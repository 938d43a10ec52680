"""The documentation: example scripts, the user guide's code, generated pages, the build.

The example scripts and the user guide's code blocks run here with every
``ACTEncoder.fit`` capped at 2 epochs, so that they stay fast; what they print and
build is checked against what the pages say. The full Sphinx build with warnings as
errors is marked ``slow`` (CI runs it as its own step).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import runpy
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

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

GUIDE = sorted(p.name for p in (DOCS / "user_guide").glob("*.rst"))
#: Code-block languages that run as Python; a bare ``::`` literal block is Python too
#: (Sphinx's default highlighting).
PYTHON = {"python", "python3", "py"}
_DIRECTIVE = re.compile(r"( *)\.\. code-block:: *(\S+)")
#: rst comments (invisible on the page) about the next block: ``.. not-run: <reason>``
#: keeps it out of the test; ``.. needs: <module>, ...`` runs it where those modules
#: (an optional extra) are installed.
_NOT_RUN = re.compile(r" *\.\. not-run:(.*)")
_NEEDS = re.compile(r" *\.\. needs:(.*)")


class Block(NamedTuple):
    line: int  # 1-based line of the directive or of the paragraph ending in ``::``
    language: str
    code: str
    not_run: str | None  # the reason given by a ``.. not-run:`` comment
    needs: tuple[str, ...] = ()  # modules named by a ``.. needs:`` comment


def code_blocks(page: Path) -> list[Block]:
    """Every code block of an rst page (``.. code-block::`` and ``::``), dedented."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    reason: str | None = None
    needs: tuple[str, ...] = ()
    i = 0
    while i < len(lines):
        line, stripped = lines[i], lines[i].strip()
        marker, needed = _NOT_RUN.match(line), _NEEDS.match(line)
        directive = _DIRECTIVE.match(line)
        if marker:
            reason = marker.group(1).strip()
            assert reason, f"{page.name}:{i + 1}: say why the block does not run"
        elif needed:
            needs = tuple(m.strip() for m in needed.group(1).split(",") if m.strip())
        elif directive or (stripped.endswith("::") and not stripped.startswith("..")):
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while directive and j < len(lines) and lines[j].strip().startswith(":"):
                j += 1  # the directive's options (:caption: ...)
            body = []
            while j < len(lines) and (
                not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
            ):
                body.append(lines[j])
                j += 1
            language = directive.group(2) if directive else "python"
            code = textwrap.dedent("\n".join(body)).strip("\n")
            blocks.append(Block(i + 1, language, code, reason, needs))
            reason, needs, i = None, (), j
            continue
        elif stripped:
            reason, needs = None, ()  # a marker applies to the block right after it
        i += 1
    return blocks


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def python_blocks(page: Path) -> list[str]:
    """The Python blocks of an rst page that run here, in order."""
    return [
        b.code
        for b in code_blocks(page)
        if b.language in PYTHON
        and b.not_run is None
        and all(_installed(m) for m in b.needs)
    ]


def run_page(relpath: str) -> dict:
    """Run a page's Python blocks in one namespace, as a reader would, in order."""
    namespace: dict = {"__name__": "__docs__"}
    for block in python_blocks(DOCS / relpath):
        exec(compile(block, f"{relpath}", "exec"), namespace)
    return namespace


def test_code_block_parser(tmp_path: Path) -> None:
    blocks = python_blocks(DOCS / "user_guide" / "quickstart.rst")
    assert blocks[0].startswith("from sklearn.datasets import load_digits")
    assert all(not b.startswith(" ") for b in blocks)
    page = tmp_path / "page.rst"
    page.write_text(
        "Save it::\n\n    a = 1\n\n    b = a\n\ntext\n\n"
        ".. not-run: needs a GPU\n\n"
        ".. code-block:: python\n   :caption: x.py\n\n   c = 2\n\n"
        ".. code-block:: bash\n\n   ls\n\n"
        ".. math::\n\n   x\n\n"
        ".. needs: no_such_module, json\n\n"
        ".. code-block:: python\n\n   d = 3\n"
    )
    assert code_blocks(page) == [
        Block(1, "python", "a = 1\n\nb = a", None),
        Block(11, "python", "c = 2", "needs a GPU"),
        Block(16, "bash", "ls", None),
        Block(26, "python", "d = 3", None, ("no_such_module", "json")),
    ]
    assert python_blocks(page) == ["a = 1\n\nb = a"]  # the others do not run here
    page.write_text(".. not-run:\n\n.. code-block:: python\n\n   c = 2\n")
    with pytest.raises(AssertionError, match="say why"):
        code_blocks(page)


def test_every_guide_block_runs_or_says_why_not() -> None:
    for name in GUIDE:
        for block in code_blocks(DOCS / "user_guide" / name):
            if block.language in PYTHON:
                continue
            # Shell commands are shown, not run: they install packages or launch jobs.
            assert block.language in ("bash", "console", "text"), (name, block)


def _check_quickstart(ns: dict, out: str) -> None:
    # The values the page quotes in its comments.
    assert ns["features"].shape == (540, 64) and ns["features"].dtype == np.float32
    assert "['actencoder0' 'actencoder1' 'actencoder2']" in out
    assert len(ns["labelled"]) == 50
    assert ns["encoder"].n_iter_ == 2 * ns["encoder"].max_iter  # warm_start continued
    assert "accuracy with 5 labels per class" in out


def _check_tabular(ns: dict, out: str) -> None:
    assert "['actencoder0', 'actencoder1', 'actencoder2']" in out
    assert ns["features"].shape == (569, 16)
    assert "(569, 8)" in out


def _check_few_shot(ns: dict, out: str) -> None:
    assert ns["encoder"].n_iter_ == 2  # never refitted by the pipelines or the search
    assert ns["search"].best_estimator_.steps[0][1].estimator is ns["encoder"]
    assert len(re.findall(r"k= [15] (linear|knn)", out)) == 3 * 2 * 2
    # Balanced accuracy of the majority class over digits' 10 classes: 1/10.
    assert "| majority class | 0.100 ± 0.000 | 0.100 ± 0.000 |" in out
    # The monitored fit: its 50 labels feed the monitor, one value per epoch.
    watched = ns["watched"]
    assert (ns["y_few"] != -1).sum() == 50
    assert watched.monitor_name_ == "few_shot_1nn_accuracy"
    assert len(watched.monitor_curve_) == 2
    assert f"few_shot_1nn_accuracy {watched.monitor_curve_[-1]:.2f}" in out


def _check_grid_search(ns: dict, out: str) -> None:
    assert len(ns["search"].cv_results_["params"]) == 4
    assert len(out.strip().splitlines()) == 1 + 2
    # The search with few labels split with LabeledStratifiedKFold: no fold unscored.
    assert type(ns["search"].cv).__name__ == "LabeledStratifiedKFold"
    assert np.isfinite(ns["search"].cv_results_["mean_test_score"]).all()


def _check_devices(ns: dict, out: str) -> None:
    lines = out.splitlines()
    assert lines[0] == str(ns["encoder"].device_)
    assert lines[1] == "(5, 64)"
    np.testing.assert_array_equal(
        ns["restored"].transform(ns["X"][:5]), ns["encoder"].transform(ns["X"][:5])
    )


#: What a page's code prints or builds, beyond running without an error.
PAGE_CHECKS: dict[str, Callable[[dict, str], None]] = {
    "quickstart.rst": _check_quickstart,
    "tabular.rst": _check_tabular,
    "few_shot.rst": _check_few_shot,
    "grid_search.rst": _check_grid_search,
    "devices.rst": _check_devices,
}


def _check_persistence(ns: dict, out: str) -> None:
    assert "Pass the same architecture" in out
    X = ns["X"][:5]
    again = skact.load("mine.skact", encoder=ns["MyNet"]())
    np.testing.assert_array_equal(ns["encoder"].transform(X), again.transform(X))


def _write_photos() -> None:
    """The folder of photos images.rst streams from (a reader has their own)."""
    from PIL import Image

    Path("photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(f"photos/{i}.jpg")


PAGE_CHECKS["persistence.rst"] = _check_persistence


def _check_quality(ns: dict, out: str) -> None:
    assert "mlp 100 256" in out  # resolved_settings on the 1,257 training digits
    scores = dict(re.findall(r"^([a-zA-Z ]+): (\d\.\d{3}) ± \d\.\d{3}$", out, re.M))
    assert set(scores) == {"ACT", "raw", "PCA", "pretrained", "fitted on the target"}
    assert all(0 <= float(v) <= 1 for v in scores.values())
    # The target's fit with labels: 10 per class of the 5 digits feed the monitor.
    assert (ns["y_few"] != -1).sum() == 50
    assert ns["watched"].monitor_name_ == "few_shot_1nn_accuracy"
    assert f"{ns['watched'].monitor_curve_[-1]:.2f}" in out.splitlines()


PAGE_CHECKS["quality.rst"] = _check_quality


def _check_images(ns: dict, out: str) -> None:
    # The grey scans went through the RGB model, converted as the page says, with one
    # warning naming the conversion.
    assert "ACTEncoder: images have 1 channel, the model was fitted on 3: " in out
    assert "converted grey -> RGB by repeating the channel" in out
    assert ns["upstream"].channel_mismatch == "error"
    with pytest.raises(ValueError, match="channel_mismatch='error' refuses"):
        ns["upstream"].transform(ns["grey_scans"])


PAGE_CHECKS["images.rst"] = _check_images


def _check_export(ns: dict, out: str) -> None:
    # The exported programs' features are transform's, as the page prints.
    assert out.count("True") == 1 + _installed("onnxruntime"), out
    if _installed("onnxruntime"):
        assert "(8, 16) True" in out
        assert Path("cancer.onnx.inputs.json").exists()
    assert ns["feeds"]["codes"][0, 0] == -1  # the unknown city
    assert list(ns["feeds"]) == ["numeric", "codes"]
    digits = ns["program"].module()(ns["torch"].from_numpy(ns["digits"][:4])).numpy()
    np.testing.assert_allclose(digits, ns["vision"].transform(ns["digits"][:4]), atol=1e-4)
    assert "[{'name': 'images', 'dtype': 'uint8', 'shape': ['n', 8, 8]}]" in out


PAGE_CHECKS["export.rst"] = _check_export


def _check_integration(ns: dict, out: str) -> None:
    lines = out.splitlines()
    history = ns["history"]
    assert [r["epoch"] for r in history.records_] == [1, 2]  # capped at 2 epochs
    assert lines[0] == str([round(r["loss"], 2) for r in history.records_])
    assert lines[1] == "1 (2, 64)"  # stopped at step 10 of 8 per epoch
    assert ns["stopped"]._step == 10
    logs = sorted(Path().glob("fit-*.csv"))
    assert len(logs) == 2 * 2 + 1 and lines[2] in {str(p) for p in logs}
    assert 1 <= ns["watched"].n_iter_ <= 2
    if _installed("tensorboard"):
        assert any(Path("runs").iterdir())
    if _installed("mlflow"):
        assert Path("mlflow.db").stat().st_size > 0


PAGE_CHECKS["integration.rst"] = _check_integration


#: What a page's code expects to find on the reader's disk.
def _check_transfer(ns: dict, out: str) -> None:
    assert "(16, 512)" in out.splitlines()[0]
    assert ns["model"].act_loss_curve_  # the regulariser ran on the unlabeled rows
    assert 0.2 < float(out.splitlines()[1].split()[0]) <= 1  # 10 classes: chance 0.1


PAGE_CHECKS["transfer.rst"] = _check_transfer

PAGE_SETUP: dict[str, Callable[[], None]] = {"images.rst": _write_photos}
#: Pages whose code ran in the default test run before every page was run; the others
#: (together over a minute on a 2-core machine) run with ``-m slow``.
DEFAULT_RUN = {
    "quickstart.rst",
    "tabular.rst",
    "few_shot.rst",
    "grid_search.rst",
    "devices.rst",
}


@pytest.mark.parametrize(
    "page",
    [p if p in DEFAULT_RUN else pytest.param(p, marks=pytest.mark.slow) for p in GUIDE],
)
def test_user_guide_code(
    page: str, quick_fits: None, capsys: Capture, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # files the code writes land in a scratch folder
    PAGE_SETUP.get(page, lambda: None)()
    ns = run_page(f"user_guide/{page}")
    PAGE_CHECKS.get(page, lambda ns, out: None)(ns, capsys.readouterr().out)


def test_index_page_code(
    quick_fits: None, capsys: Capture, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ns = run_page("index.rst")
    assert 0 <= float(capsys.readouterr().out) <= 1
    assert ns["model"].named_steps["actencoder"].n_iter_ == 2


# ------------------------------------------------------------------ README and set-up

README = ROOT / "README.md"
#: The README's two set-up commands: the project's guide requires both to work on a
#: fresh clone, and the installation page to give them as the README does.
SETUP_COMMANDS = (
    "pip install torch==2.13.0 -e . && skact demo",
    'pip install torch==2.13.0 -e ".[test,docs]" && '
    'python3 -m pytest -m "not slow and not gpu"',
)


def test_readme_is_short_and_gives_the_two_set_up_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, "the README leads; detail goes to the docs and results"
    stripped = [line.strip() for line in lines]
    for command in SETUP_COMMANDS:
        assert command in stripped, command
    # Both come before the quick start: they are the first thing a reader runs.
    quick_start = stripped.index("## Quick start")
    assert all(stripped.index(c) < quick_start for c in SETUP_COMMANDS)


def test_ci_runs_the_readme_test_command() -> None:
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    install, test = SETUP_COMMANDS[1].split(" && ")
    assert test in ci  # verbatim
    # The same torch pin as the README's install, and its extras (CI adds "export",
    # so that the ONNX tests run rather than skip).
    assert "python3 -m pip install -q torch==2.13.0" in ci
    extras = re.search(r'-e "\.\[([a-z,]+)\]"', install)
    assert extras is not None
    ci_extras = [*extras.group(1).split(","), "export"]
    assert f'python3 -m pip install -q -e ".[{",".join(ci_extras)}]"' in ci


def test_installation_page_agrees_with_the_readme() -> None:
    page = (DOCS / "user_guide" / "installation.rst").read_text(encoding="utf-8")
    commands = [b.code for b in code_blocks(DOCS / "user_guide" / "installation.rst")]
    for command in SETUP_COMMANDS:
        assert command in commands, command
    # What the pin installs, said as the README says it.
    readme = " ".join(README.read_text(encoding="utf-8").split())
    page = " ".join(page.split())
    for words in ("a CPU build from the machine's local wheels", "is a CUDA build"):
        assert words in readme and words in page, words


def test_readme_results_are_copied_from_the_results_files() -> None:
    """Every ``mean ± std`` of the README's results table is in the file its row links."""
    rows = [
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("|") and "benchmarks/results/" in line
    ]
    assert len(rows) >= 5
    for row in rows:
        (path,) = re.findall(r"\]\((benchmarks/results/[\w/.-]+\.md)\)", row)
        results = (ROOT / path).read_text(encoding="utf-8")
        numbers = re.findall(r"\d\.\d{3} ± \d\.\d{3}", row)
        assert len(numbers) == 3, row  # ACT, raw features, the best other
        for number in numbers:
            assert number in results, (number, path)


def test_guide_shell_commands_use_real_options() -> None:
    """Every ``$ skact ...`` line of the user guide parses with the command's parser."""
    from skact.cli.parser import build_parser

    parser = build_parser()
    seen = 0
    for page in sorted((DOCS / "user_guide").glob("*.rst")):
        for block in code_blocks(page):
            if block.language != "console":
                continue
            text = block.code.replace("\\\n", " ")  # continued lines
            for line in text.splitlines():
                if line.startswith("$ skact "):
                    try:
                        parser.parse_args(shlex.split(line)[2:])
                    except SystemExit:
                        pytest.fail(f"{page.name}: {line}")
                    seen += 1
    assert seen >= 10


def test_quality_page_is_linked_where_readers_look() -> None:
    for page in ("index.rst", "troubleshooting.rst"):
        text = (DOCS / "user_guide" / page).read_text(encoding="utf-8")
        intro = text.split("\n\n.. ", 2)[0] if page == "index.rst" else text[:800]
        assert ":doc:`quality`" in intro, page
    assert "docs/user_guide/quality.rst" in README.read_text(encoding="utf-8")


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
    (results / "reruns").mkdir()  # results kept apart, with a top-level file's title
    (results / "reruns" / "fewshot.md").write_text("# Few-shot accuracy\n\nAgain.\n")
    (results / "reruns" / "fewshot.json").write_text("{}")
    (results / "throughput-cpu.md").write_text("# Throughput on a CPU\n")
    (results / "alpha.md").write_text("# Alpha\n")  # not in the order: after it
    (results / "sub").mkdir()  # a figure of its own, and a heading-like line in code
    (results / "sub" / "curve.png").write_bytes(b"sub")
    (results / "sub" / "notes.md").write_text(
        "```sh\n# a shell comment\n```\n\n# Notes\n\n![c](curve.png)\n"
    )
    page = _generate.write_benchmark_results(
        results, tmp_path / "docs" / "gen", page_dir=tmp_path / "docs"
    )
    text = page.read_text()
    assert "# Few-shot accuracy (`reruns/fewshot.md`)\n\nAgain." in text
    assert "# a shell comment\n" in text and "# Notes (`sub/notes.md`)" in text
    assert "![c](gen/benchmarks/sub/curve.png)" in text  # its own folder's figure
    assert (
        tmp_path / "docs" / "gen" / "benchmarks" / "sub" / "curve.png"
    ).read_bytes() == (b"sub")
    # The CPU throughput file is in the order too, before files outside it.
    assert text.index("# Few-shot accuracy\n") < text.index("# Throughput on a CPU")
    assert text.index("# Throughput on a CPU") < text.index("# Alpha")
    assert text.index("# Throughput") < text.index("(`reruns/fewshot.md`)")  # after
    assert "{download}`reruns/fewshot.json <../results/reruns/fewshot.json>`" in text
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


def test_monitor_figure_draws_the_fit_s_curves(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "monitor_curve.png").write_bytes(b"stale")
    include = _generate.write_monitor_figure(tmp_path, max_iter=2)
    text = include.read_text()
    assert text.startswith(".. figure:: /generated/monitor_curve.png\n")
    figure = (tmp_path / "monitor_curve.png").read_bytes()
    assert figure.startswith(b"\x89PNG")  # drawn anew, not the stale file
    # The caption quotes the fit it drew: 2 epochs, 50 of the 1,797 digits labeled.
    assert "ACTEncoder(max_iter=2, random_state=0)" in text
    assert "5 labels per class (50 rows) and -1 for the other 1,747" in text
    first, last, best = (
        float(v) for v in re.findall(r"(?:reads|and|value, )\s?(\d\.\d\d)", text)
    )
    assert 0 <= first <= 1 and 0 <= last <= 1 and best == max(first, last)
    assert "after epoch 2;" in text


def test_monitor_figure_without_matplotlib_leaves_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    (tmp_path / "monitor_curve.png").write_bytes(b"stale")
    include = _generate.write_monitor_figure(tmp_path)
    assert ".. note::" in include.read_text()
    assert "matplotlib" in include.read_text()
    assert not (tmp_path / "monitor_curve.png").exists()  # no figure of an old build


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
    # The few-shot page shows the monitor's curve, drawn by the build.
    few_shot = (out / "user_guide" / "few_shot.html").read_text(encoding="utf-8")
    if importlib.util.find_spec("matplotlib") is not None:
        assert "monitor_curve.png" in few_shot
        assert (out / "_images" / "monitor_curve.png").exists()


# ------------------------------------------------------------------ the architecture page

ARCHITECTURE = DOCS / "architecture.rst"

#: The additions the architecture page's "How to add X" explains, each with its test.
ADDITIONS = (
    "A kind of input",
    "An objective",
    "A view",
    "A callback",
    "A fitted attribute",
)


def test_architecture_page_maps_every_module() -> None:
    page = ARCHITECTURE.read_text(encoding="utf-8")
    package = ROOT / "skact"
    for path in sorted(package.rglob("*.py")):
        if path.name == "__init__.py" and path.parent != package:
            name = f"{path.parent.relative_to(ROOT).as_posix()}/"  # a package: its folder
        else:
            name = path.relative_to(ROOT).as_posix()
        assert f"``{name}``" in page, f"{name} is missing from the module map"


def _how_to_add(page: str) -> dict[str, str]:
    """The "How to add X" section's entries: each term and its text."""
    section = page.split("\nHow to add X\n", 1)[1].split("\n----", 1)[0]
    section = section.rsplit("\n", 1)[0]  # the next section's title
    entries: dict[str, str] = {}
    for line in section.splitlines():
        if line and not line.startswith(" "):
            term = line
            entries[term] = ""
        elif entries:
            entries[term] += line + "\n"
    return entries


def test_architecture_page_links_each_addition_to_a_test_that_exists() -> None:
    entries = _how_to_add(ARCHITECTURE.read_text(encoding="utf-8"))
    assert tuple(entries)[-len(ADDITIONS) :] == ADDITIONS
    for addition in ADDITIONS:
        tests = re.findall(r"``(tests/test_\w+\.py)::(test_\w+)``", entries[addition])
        assert tests, f"{addition!r} names no test"
        for file, name in tests:
            source = (ROOT / file).read_text(encoding="utf-8")
            assert f"\ndef {name}(" in source, f"{file}::{name} does not exist"
