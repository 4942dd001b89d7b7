"""Sphinx configuration of the sklearn_n2s documentation.

Build it with ``sphinx-build -W --keep-going doc doc/build/html`` (warnings are errors,
as in the test suite's ``tests/test_docs.py``). Everything Sphinx generates lands in
``doc/build/`` (ignored by git): the API pages (autosummary), the gallery
(sphinx-gallery) and, with the command above, the HTML.

The gallery runs the examples in ``examples/plot_*.py`` and shows the figures they save
(they write PNG files to ``N2S_EXAMPLES_OUT`` when headless; ``doc/_ext/n2s_gallery.py``
collects them). Environment variables:

- ``N2S_DOCS_EXECUTE``: a regular expression; only the examples whose path matches it
  are executed (default: all). ``N2S_DOCS_EXECUTE=none`` executes none, as
  ``-D plot_gallery=0`` does: the pages then show the code without figures.
- ``N2S_EXAMPLE_SMALL=1``: the examples run on small data (what the test suite uses).
- ``N2S_DOCS_EXAMPLES``: the examples' folder, when this folder is built from a copy.
"""

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

import sklearn_n2s  # noqa: E402

project = "sklearn_n2s"
author = "the sklearn_n2s developers"
copyright = "the sklearn_n2s developers, BSD-3-Clause"
release = version = sklearn_n2s.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "n2s_docstrings",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["build/html", "build/doctrees", "build/**/*.ipynb"]
html_theme = "alabaster"
html_title = f"sklearn_n2s {release}"
html_static_path = []
pygments_style = "sphinx"

# API pages: one per public name, written to build/generated (ignored by git).
autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
# numpydoc lists the methods of each class in a table; their pages are not generated
# (one page per class keeps the build fast), so the table must not link to them.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Docstrings mention private modules and third-party objects that this site does not
# document; references that cannot be resolved stay plain text (not nitpicky).
nitpicky = False

# The gallery: examples/ -> build/auto_examples. The examples save their figures as PNG
# files where N2S_EXAMPLES_OUT says; the scraper moves them into the gallery.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("N2S_PROGRESS", "0")
os.environ["N2S_EXAMPLES_OUT"] = tempfile.mkdtemp(prefix="n2s_gallery_")
_execute = os.environ.get("N2S_DOCS_EXECUTE", "")
sphinx_gallery_conf = {
    "examples_dirs": os.environ.get("N2S_DOCS_EXAMPLES", str(HERE.parent / "examples")),
    "gallery_dirs": "build/auto_examples",
    "filename_pattern": _execute or "/plot_",
    "plot_gallery": "False" if _execute.lower() == "none" else "True",
    "image_scrapers": ("n2s_gallery.saved_figures", "matplotlib"),
    "reset_modules": ("matplotlib", "n2s_gallery.reset_saved_figures"),
    "write_computation_times": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}
