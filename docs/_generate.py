"""Pages generated at build time from files outside ``docs/`` (called by ``conf.py``).

Each writer is robust to what exists: a results file or an example script that appears
later is picked up by the next build with no index to edit, and a missing one is simply
absent from the site.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

#: Results pages shown first, in this order; any other saved results follow by name.
RESULTS_ORDER = ("fewshot", "throughput-cpu", "throughput", "distributed")
FIGURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")
_HEADING = re.compile(r"^(#{1,6})(\s)", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_FIRST_TITLE = re.compile(r"^# .*$", re.MULTILINE)
_IMAGE = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)")


def _results_key(path: Path) -> tuple[int, str]:
    stem = path.stem
    rank = RESULTS_ORDER.index(stem) if stem in RESULTS_ORDER else len(RESULTS_ORDER)
    return rank, stem


def _title_of(stem: str) -> str:
    return stem.replace("_", " ").replace("-", " ").capitalize()


def _outside_fences(text: str) -> Callable[[int], bool]:
    """Whether a position of ``text`` lies outside its fenced code blocks."""
    fences = [m.span() for m in _FENCE.finditer(text)]
    return lambda pos: not any(a <= pos < b for a, b in fences)


def _with_path_in_title(text: str, where: str) -> str:
    """``text`` with `` (`where`)`` after its first top-level heading (outside code)."""
    outside = _outside_fences(text)
    title = next((m for m in _FIRST_TITLE.finditer(text) if outside(m.start())), None)
    if title is None:
        return f"# `{where}`\n\n{text}"
    return f"{text[: title.end()]} (`{where}`){text[title.end() :]}"


def _normalise_headings(text: str, top: int) -> str:
    """Shift Markdown headings (outside code fences) so the highest one is ``#`` * top."""
    outside = _outside_fences(text)
    levels = [len(m.group(1)) for m in _HEADING.finditer(text) if outside(m.start())]
    if not levels:
        return text
    shift = top - min(levels)

    def repl(m: re.Match[str]) -> str:
        if not outside(m.start()):
            return m.group(0)
        level = min(6, max(1, len(m.group(1)) + shift))
        return "#" * level + m.group(2)

    return _HEADING.sub(repl, text)


def write_benchmark_results(results: Path, generated: Path, page_dir: Path) -> Path:
    """Write ``generated/benchmark_results.inc.md`` from ``benchmarks/results/``.

    Every ``*.md`` there becomes a section (its first heading is the title, else the
    file name), then every ``*.md`` one folder down (its path added to the title);
    figures not shown by a Markdown file get a section of their own; every other file
    (JSON, CSV) is offered as a download. Files deeper than one folder are not shown.
    Figures are copied into the documentation sources (with their folder), since
    Sphinx only reads images from there.

    Parameters
    ----------
    results : Path
        The ``benchmarks/results`` folder (it may be missing).
    generated : Path
        Output folder inside the documentation sources.
    page_dir : Path
        Folder of the page that includes the file: links are relative to it.

    Returns
    -------
    Path
        The file written.
    """
    out_dir = generated / "benchmarks"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)

    def files_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.glob("*") if p.is_file())

    folders = sorted(d for d in results.glob("*") if d.is_dir()) if results.is_dir() else []
    files = files_in(results) if results.is_dir() else []
    # Results kept apart in a folder (explorations, re-runs) follow the main ones.
    nested = [p for folder in folders for p in files_in(folder)]
    tables = sorted((p for p in files if p.suffix == ".md"), key=_results_key)
    tables += [p for p in nested if p.suffix == ".md"]
    figures = [p for p in files + nested if p.suffix.lower() in FIGURE_SUFFIXES]
    raw = [p for p in files + nested if p not in tables and p not in figures]

    def rel(path: Path) -> str:
        return path.relative_to(results).as_posix()

    for fig in figures:
        (out_dir / rel(fig)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(fig, out_dir / rel(fig))
    fig_link = Path(os.path.relpath(out_dir, page_dir)).as_posix()
    raw_link = Path(os.path.relpath(results, page_dir)).as_posix()

    parts: list[str] = []
    shown: set[str] = set()
    for table in tables:
        text = table.read_text(encoding="utf-8").strip()
        if not _HEADING.search(text):
            text = f"# {_title_of(table.stem)}\n\n{text}"
        text = _normalise_headings(text, top=1)
        if table.parent != results:  # a top-level file's title, told apart by its path
            text = _with_path_in_title(text, rel(table))

        def relink(m: re.Match[str], folder: Path = table.parent) -> str:
            target = m.group(2)
            figure = folder / target
            if "://" in target or figure not in figures:
                return m.group(0)
            shown.add(rel(figure))
            return f"{m.group(1)}{fig_link}/{rel(figure)}"

        parts.append(_IMAGE.sub(relink, text))
    extra = [fig for fig in figures if rel(fig) not in shown]
    if extra:
        parts.append("# Figures")
        for fig in extra:
            parts.append(
                f"```{{figure}} {fig_link}/{rel(fig)}\n:width: 90%\n\n"
                f"{_title_of(fig.stem)} (`benchmarks/results/{rel(fig)}`)\n```"
            )
    if raw:
        parts.append("# Raw results")
        parts.append(
            "The numbers above as the benchmark scripts saved them:\n\n"
            + "\n".join(f"- {{download}}`{rel(p)} <{raw_link}/{rel(p)}>`" for p in raw)
        )
    if not parts:
        parts.append(
            "No benchmark results are saved in this checkout yet. Each script in "
            "`benchmarks/` writes its tables to `benchmarks/results/`, and the next "
            "documentation build shows them here."
        )
    target = generated / "benchmark_results.inc.md"
    target.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return target


def write_example_pages(examples: Path, out_dir: Path) -> list[Path]:
    """Write one page per ``examples/*.py``: its docstring, then its code.

    Parameters
    ----------
    examples : Path
        The ``examples`` folder.
    out_dir : Path
        Where the pages go (``docs/generated/examples``).

    Returns
    -------
    list of Path
        The pages written, by script name.
    """
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    pages = []
    for script in sorted(examples.glob("*.py")):
        source = script.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or _title_of(script.stem)
        title, _, body = doc.partition("\n")
        rel = Path("..", "..", "..", "examples", script.name).as_posix()
        page = [
            title,
            "=" * len(title),
            "",
            body.strip(),
            "",
            f"Run it with ``python examples/{script.name}``"
            f" (:download:`download <{rel}>`).",
            "",
            f".. literalinclude:: {rel}",
            "   :language: python",
            f"   :lines: {_first_code_line(source)}-",
            "",
        ]
        path = out_dir / f"{script.stem}.rst"
        path.write_text("\n".join(page), encoding="utf-8")
        pages.append(path)
    return pages


def _first_code_line(source: str) -> int:
    """1-based line just after the module docstring (and blank lines after it)."""
    tree = ast.parse(source)
    first = tree.body[0] if tree.body else None
    line = 1
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        line = (first.end_lineno or 0) + 1
    lines = source.splitlines()
    while line <= len(lines) and not lines[line - 1].strip():
        line += 1
    return line


def write_augmentation_figure(generated: Path) -> Path:
    """Draw augmented views of digits and of a colour image to ``augmented_views.png``.

    Row 1: digits with the default views for tiny images; row 2: a synthetic 32x32
    colour image with the ACT paper's views. Each row starts with the original.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from skact.adapters.image import default_augment

    generator = torch.Generator().manual_seed(0)
    digit = torch.tensor(load_digits().images[0] / 16.0, dtype=torch.float32)[None, None]
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    colour = np.stack([xx, yy, 1 - xx * yy], axis=0)
    colour[:, 8:20, 10:24] = [[[0.9]], [[0.2]], [[0.1]]]
    colour_t = torch.tensor(colour, dtype=torch.float32)[None]
    rows = [
        (digit, default_augment(1, (8, 8))),
        (colour_t, default_augment(3, (32, 32))),
    ]
    n_views = 7
    fig, axes = plt.subplots(2, n_views + 1, figsize=(1.3 * (n_views + 1), 2.8))
    for row, (image, augment) in enumerate(rows):
        views = augment(image.expand(n_views, -1, -1, -1).contiguous(), generator)
        pictures = [image[0], *views]
        for col, picture in enumerate(pictures):
            array = picture.clamp(0, 1).permute(1, 2, 0).numpy()
            ax = axes[row, col]
            ax.imshow(array[..., 0] if array.shape[2] == 1 else array, cmap="gray")
            ax.set_axis_off()
            ax.set_title("original" if col == 0 else f"view {col}", fontsize=8)
    fig.tight_layout()
    generated.mkdir(parents=True, exist_ok=True)
    target = generated / "augmented_views.png"
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


#: The monitor figure's fit: digits as a table (an MLP fits it in seconds; the 8x8
#: images' ConvNet took several times longer), 5 labels per class.
MONITOR_EPOCHS = 20
MONITOR_LABELS_PER_CLASS = 5


def write_monitor_figure(generated: Path, max_iter: int = MONITOR_EPOCHS) -> Path:
    """Fit ACTEncoder on digits with a few labels; draw its loss and monitor per epoch.

    Writes ``monitor_curve.png`` and ``monitor_curve.inc.rst``, the figure directive
    with a caption quoting the fit's numbers. Without matplotlib, the include file
    says the figure is drawn where matplotlib is installed, and no figure is written.

    Parameters
    ----------
    generated : Path
        Output folder inside the documentation sources (``docs/generated``).
    max_iter : int, default=MONITOR_EPOCHS
        Epochs of the fit.

    Returns
    -------
    Path
        The include file written.
    """
    generated.mkdir(parents=True, exist_ok=True)
    figure = generated / "monitor_curve.png"
    include = generated / "monitor_curve.inc.rst"
    try:
        import matplotlib
    except ImportError:
        figure.unlink(missing_ok=True)  # an older build's, of other code
        include.write_text(
            ".. note::\n\n   The figure of a fit's monitor curve is drawn by the "
            "documentation build where matplotlib is installed.\n",
            encoding="utf-8",
        )
        return include
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from skact import ACTEncoder
    from skact.evaluation import sample_k_shot

    X, y = load_digits(return_X_y=True)
    labeled = sample_k_shot(y, k=MONITOR_LABELS_PER_CLASS, random_state=0)
    y_semi = np.full_like(y, -1)
    y_semi[labeled] = y[labeled]
    threads = torch.get_num_threads()
    # One thread: the same figure on every machine (sums split across threads differ
    # in their last bits), and no slower for this small MLP; on a shared 2-core CPU
    # the idle-spinning second thread cost 65 s of CPU time against 9 s with one.
    torch.set_num_threads(1)
    try:
        encoder = ACTEncoder(max_iter=max_iter, random_state=0).fit(X, y_semi)
    finally:
        torch.set_num_threads(threads)
    epochs = np.arange(1, encoder.n_iter_ + 1)
    monitor = np.asarray(encoder.monitor_curve_)
    best = int(np.argmax(monitor))  # the first of equals, as keep_best="monitor"

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), sharex=True)
    left.plot(epochs, encoder.loss_curve_, marker=".", color="tab:blue")
    left.set(title="loss_curve_", xlabel="epoch", ylabel="training loss")
    right.plot(epochs, monitor, marker=".", color="tab:green")
    right.plot(epochs[best], monitor[best], "o", mfc="none", ms=11, color="tab:red")
    right.annotate(
        'kept by keep_best="monitor"',
        (epochs[best], monitor[best]),
        xytext=(-20, -32),
        textcoords="offset points",
        ha="left",
        fontsize=8,
        color="tab:red",
    )
    right.set(
        title=f"monitor_curve_ ({len(labeled)} labeled rows)",
        xlabel="epoch",
        ylabel="few-shot 1-NN accuracy",
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    # Replaced whole: a build running at the same time (a shared checkout) never
    # finds the figure missing or half written.
    drawing = figure.with_suffix(".tmp.png")
    fig.savefig(drawing, dpi=110)
    plt.close(fig)
    os.replace(drawing, figure)

    caption = (
        f"``ACTEncoder(max_iter={max_iter}, random_state=0).fit(X, y)`` on the "
        f"{len(y):,} digits as a table of 64 pixels, with ``y`` holding "
        f"{MONITOR_LABELS_PER_CLASS} labels per class ({len(labeled)} rows) and -1 for "
        f"the other {len(y) - len(labeled):,}. The monitor reads "
        f"{monitor[0]:.2f} after epoch 1 and {monitor[-1]:.2f} after epoch "
        f"{encoder.n_iter_}; its highest value, {monitor[best]:.2f}, comes first "
        f"after epoch {best + 1}. Drawn by the documentation build "
        "(``docs/_generate.py``)."
    )
    include.write_text(
        f".. figure:: /generated/{figure.name}\n   :width: 95%\n\n   {caption}\n",
        encoding="utf-8",
    )
    return include
