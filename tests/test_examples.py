"""The README's Python snippets and the gallery (``examples/plot_*.py``), run as written.

README: every ```` ```python ```` block of ``README.md`` is executed in a fresh namespace
(the snippets load data that ships offline and assert the values their comments state).
A snippet that needs an optional extra (torch, scanpy, dask...) which is not installed
is skipped.

Gallery: each example is smoke-run at a small size. It reads ``N2S_EXAMPLE_SMALL=1`` and
shrinks its data (the few size variables some examples read on their own are set small
too, see ``SMALL_ENV``) and saves its figures as PNG files to ``N2S_EXAMPLES_OUT``; the
test checks that they are there and decode. An example whose optional dependency is
missing is skipped: it may declare its needs in a comment line ``# requires: torch
skorch`` and is also skipped when it stops on a ``ModuleNotFoundError`` for a package
other than sklearn_n2s.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))
REQUIRES = re.compile(r"^#\s*requires:\s*(.+)$", re.MULTILINE)
MISSING = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
# N2S_EXAMPLE_SMALL is the convention; the others are read by examples that take
# explicit sizes (plot_mnist_n2snet.py). Examples ignore what they do not read.
SMALL_ENV = {"N2S_EXAMPLE_SMALL": "1", "N2S_EXAMPLE_N_IMAGES": "48",
             "N2S_EXAMPLE_EPOCHS": "1", "MPLBACKEND": "Agg", "N2S_PROGRESS": "0"}
# The figures each example saves when headless.
FIGURES = {"plot_median_calibration.py": 2, "plot_gaussian_wavelet_calibration.py": 2,
           "plot_mnist_n2snet.py": 1, "plot_single_cell_rank.py": 1}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ README
def _readme_snippets():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    snippets = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start()) + 2  # first line of code, 1-based
        headings = re.findall(r"^#+ (.+)$", text[:match.start()], re.MULTILINE) or [""]
        section = re.sub(r"\W+", "-", headings[-1].split("(")[0]).strip("-").lower()
        snippets.append(pytest.param(match.group(1), line, id=f"line{line}-{section}"))
    return snippets


README_SNIPPETS = _readme_snippets()


def _imported_roots(code):
    roots = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_readme_has_snippets():
    assert len(README_SNIPPETS) >= 3


@pytest.mark.parametrize("code, line", README_SNIPPETS)
def test_readme_snippet(code, line, tmp_path, monkeypatch):
    for root in sorted(_imported_roots(code) - {"sklearn_n2s"}):
        pytest.importorskip(root)
    monkeypatch.chdir(tmp_path)  # a snippet that writes files writes them here
    namespace = {"__name__": "__readme__"}
    try:
        exec(compile(code, f"README.md:{line}", "exec"), namespace)
    except ModuleNotFoundError as exc:  # e.g. N2SNet, imported lazily, needs torch
        root = (exc.name or "").split(".")[0]
        if root and root != "sklearn_n2s" and importlib.util.find_spec(root) is None:
            pytest.skip(f"README snippet at line {line} needs {root}")
        raise


# ----------------------------------------------------------------------------- gallery
def _missing_requirements(path):
    declared = REQUIRES.findall(path.read_text())
    names = [n for line in declared for n in re.split(r"[\s,]+", line.strip()) if n]
    return [n for n in names if importlib.util.find_spec(n) is None]


def _run_example(path, cwd, **env):
    pytest.importorskip("matplotlib")
    missing = _missing_requirements(path)
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)}")
    environ = {k: v for k, v in os.environ.items()
               if k not in ("N2S_EXAMPLES_OUT", "N2S_EXAMPLE_OUTPUT")}
    environ.update(SMALL_ENV, **env)
    result = subprocess.run([sys.executable, str(path)], cwd=cwd, env=environ,
                            capture_output=True, text=True, check=False, timeout=600)
    absent = MISSING.search(result.stderr)
    if result.returncode != 0 and absent and not absent.group(1).startswith("sklearn_n2s"):
        pytest.skip(f"{path.name} needs {absent.group(1)}")
    assert result.returncode == 0, result.stderr[-3000:]


def _assert_pngs(folder, expected):
    from PIL import Image

    pngs = sorted(Path(folder).glob("*.png"))
    assert len(pngs) == expected, [p.name for p in pngs]
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE, png.name
        with Image.open(png) as image:
            assert image.format == "PNG"
            image.load()  # decodes every chunk: a truncated file fails here
            assert image.width > 50 and image.height > 50


def test_the_gallery_is_not_empty():
    assert EXAMPLES, "no examples/plot_*.py found"
    assert {p.name for p in EXAMPLES} == set(FIGURES), "update FIGURES for new examples"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_small_and_saves_its_figures(path, tmp_path):
    out = tmp_path / "figures"
    _run_example(path, tmp_path, N2S_EXAMPLES_OUT=str(out))
    _assert_pngs(out, FIGURES[path.name])


SHOWING = [p for p in EXAMPLES if "plt.show()" in p.read_text()]


@pytest.mark.parametrize("path", SHOWING, ids=[p.name for p in SHOWING])
def test_example_saves_instead_of_showing_without_a_screen(path, tmp_path):
    # MPLBACKEND=Agg and no N2S_EXAMPLES_OUT: the figures land in the working directory.
    _run_example(path, tmp_path)
    _assert_pngs(tmp_path, FIGURES[path.name])
