"""The documentation site builds with warnings as errors, and covers the public API.

One Sphinx build (``sphinx-build -W --keep-going``, the ``docs`` extra; skipped without
it) into a temporary folder. The gallery executes one example, at its small size, so
that the figure collection is exercised; the others are smoke-run by
``tests/test_examples.py`` and appear here as code. About 20 s of CPU.
"""

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "doc"
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None
        for m in ("sphinx", "numpydoc", "sphinx_gallery", "matplotlib")),
    reason="needs the 'docs' extra")

#: The modules whose public names (``__all__``) the API reference must list.
DOCUMENTED = ["sklearn_n2s", "sklearn_n2s.image", "sklearn_n2s.table",
              "sklearn_n2s.model_selection", "sklearn_n2s.blockwise", "sklearn_n2s.io",
              "sklearn_n2s.utils.estimator_checks", "sklearn_n2s.neural"]
#: Extras without which a module cannot be imported (and so is not checked).
NEEDS = {"sklearn_n2s.neural": ("torch", "skorch"), "sklearn_n2s.blockwise": ("dask",)}
GUIDE = ["j_invariance", "outputs", "calibration", "families", "neural",
         "correlated_noise", "tables", "large_data", "cli", "napari"]
EXECUTED = "plot_median_calibration"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # Built from a copy: what Sphinx generates (API pages, the gallery and its cache of
    # executed examples) starts empty, so a stale figure cannot hide a broken gallery.
    out = tmp_path_factory.mktemp("doc")
    source = out / "doc"
    shutil.copytree(DOC, source, ignore=shutil.ignore_patterns("build", "__pycache__"))
    env = dict(os.environ, N2S_DOCS_EXECUTE=EXECUTED, N2S_EXAMPLE_SMALL="1",
               N2S_DOCS_EXAMPLES=str(ROOT / "examples"), MPLBACKEND="Agg",
               N2S_PROGRESS="0", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(source), str(out / "html"), "-d", str(out / "doctrees")],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"sphinx failed:\n{done.stdout}\n{done.stderr}"
    return out / "html"


def test_builds_the_guide_and_the_home_page(site):
    home = (site / "index.html").read_text(encoding="utf-8")
    for page in GUIDE:
        assert (site / "user_guide" / f"{page}.html").is_file(), page
        assert f"user_guide/{page}.html" in home, f"{page} is not in the table of contents"
    # the maths of the contract is rendered, not left as reST
    contract = (site / "user_guide" / "j_invariance.html").read_text(encoding="utf-8")
    assert "\\mathbb{E}" in contract and ":math:" not in contract


def _public_names(module_name):
    needs = NEEDS.get(module_name, ())
    if any(importlib.util.find_spec(m) is None for m in needs):
        return []
    module = importlib.import_module(module_name)
    return list(module.__all__)


def test_api_reference_lists_every_public_name(site):
    top = set(_public_names("sklearn_n2s"))
    generated = {p.stem for p in (site / "build" / "generated").glob("*.html")}
    missing = []
    for module_name in DOCUMENTED:
        for name in _public_names(module_name):
            home = "sklearn_n2s" if name in top else module_name
            if f"{home}.{name}" not in generated and f"{home}.{name}" not in missing:
                missing.append(f"{home}.{name}")
    assert not missing, ("add these names to doc/api.rst (under their module's "
                         f"autosummary): {missing}")
    page = (site / "build" / "generated" / "sklearn_n2s.DonutMedian.html").read_text(
        encoding="utf-8")
    # numpydoc rendered the sections
    assert "Parameters" in page and "radius" in page and "Examples" in page


def test_gallery_shows_every_example_and_the_figures_of_the_executed_one(site):
    gallery = site / "build" / "auto_examples"
    examples = sorted(p.stem for p in (ROOT / "examples").glob("plot_*.py"))
    assert examples and sorted(p.stem for p in gallery.glob("plot_*.html")) == examples
    page = (gallery / f"{EXECUTED}.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+_\d{3}\.png)"', page)
    assert len(images) >= 2, "the executed example's figures are not in its page"
    for src in images:
        figure = (gallery / src).resolve()
        assert figure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), src
