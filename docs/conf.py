"""Sphinx configuration of the skact documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

Three parts of the site are generated at build time into ``docs/generated/`` (ignored
by git), so that they follow the code and the saved results without anyone editing an
index: the API reference (autosummary, from ``__all__`` of every public module), one page
per script in ``examples/``, and the benchmark results from ``benchmarks/results/``.
Two figures are drawn there too: augmented views (images guide) and a small fit's
monitor curve with its caption (few-shot guide; a note instead without matplotlib).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "generated"
sys.path.insert(0, str(ROOT))  # the checkout's skact wins over an installed one

import skact  # noqa: E402  (after the sys.path line: import this checkout's skact)

sys.path.insert(0, str(DOCS))
from _generate import (  # noqa: E402  (docs/ just went on sys.path)
    write_augmentation_figure,
    write_benchmark_results,
    write_example_pages,
    write_monitor_figure,
)

project = "skact"
author = "skact developers"
copyright = "skact developers"
version = release = skact.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "generated/*.inc.md",
    "generated/*.inc.rst",
    "generated/benchmarks/*",
]
# Markdown saved by the benchmark scripts is machine-written: a skipped heading level in
# it should not fail the build.
suppress_warnings = ["myst.header"]

# -- API reference -------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # document exactly what each module exports
autosummary_imported_members = False
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False  # the class template lists methods instead
numpydoc_class_members_toctree = False


def _public_submodules(package: str) -> dict[str, list[str]]:
    """Map each public (sub)package of ``package`` to its public submodules' full names.

    The module template reads this to list submodules: autosummary's own list follows
    ``__all__``, which names only the estimator at the top level.
    """
    import importlib
    import pkgutil

    tree: dict[str, list[str]] = {}
    todo = [package]
    while todo:
        name = todo.pop()
        module = importlib.import_module(name)
        children = []
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if not info.name.startswith("_"):
                children.append(f"{name}.{info.name}")
                if info.ispkg:
                    todo.append(f"{name}.{info.name}")
        tree[name] = sorted(children)
    return tree


autosummary_context = {"public_submodules": _public_submodules("skact")}

# -- MyST (Markdown results tables) --------------------------------------------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- HTML ----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skact {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
html_show_sourcelink = False
# Pages without sub-pages need no section navigation.
html_sidebars = {"index": [], "method": [], "benchmarks": []}

# Facts quoted in the prose come from the code, so the docs cannot drift from it.
_defaults = skact.ACTEncoder().get_params()
rst_epilog = "\n".join(
    f".. |default_{name}| replace:: ``{_defaults[name]!r}``"
    for name in (
        "adversary",
        "adversary_momentum",
        "alpha",
        "batch_size",
        "corruption_rate",
        "hidden_layer_sizes",
        "learning_rate",
        "max_iter",
        "n_views",
        "noise_scale",
        "projection_dim",
    )
)

# -- Links into scikit-learn's documentation ------------------------------------------
# Methods inherited from scikit-learn (set_output, get_metadata_routing) carry :ref:
# and :term: roles to labels of scikit-learn's own site; resolve them to links there
# rather than fail the build (intersphinx would need the network at build time).
SKLEARN_DOCS = "https://scikit-learn.org/stable/"
SKLEARN_LABELS = {
    "metadata_routing": "metadata_routing.html",
    "sphx_glr_auto_examples_miscellaneous_plot_set_output.py": (
        "auto_examples/miscellaneous/plot_set_output.html"
    ),
}


def _sklearn_reference(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a :ref: from an inherited scikit-learn docstring to scikit-learn.org."""
    from urllib.parse import quote

    from docutils import nodes

    reftype = node.get("reftype")
    if reftype not in ("ref", "term") or "sklearn." not in (node.source or ""):
        return None
    label = node["reftarget"]
    text = contnode.astext()
    if reftype == "term":  # set_score_request's :term:`meta-estimator`
        page = f"glossary.html#term-{quote(label.lower())}"
    else:
        page = SKLEARN_LABELS.get(label, f"search.html?q={quote(label)}")
        if text == label:  # a bare label: say what it is instead of printing it
            text = "scikit-learn's example"
    return nodes.reference(text, text, internal=False, refuri=SKLEARN_DOCS + page)


def setup(app: Any) -> None:
    app.connect("missing-reference", _sklearn_reference)


# -- Generated pages -----------------------------------------------------------------
GENERATED.mkdir(exist_ok=True)
write_example_pages(ROOT / "examples", GENERATED / "examples")
write_benchmark_results(ROOT / "benchmarks" / "results", GENERATED, page_dir=DOCS)
write_augmentation_figure(GENERATED)
write_monitor_figure(GENERATED)
