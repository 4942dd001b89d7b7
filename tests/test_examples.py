"""Smoke-run every example of the gallery (``examples/plot_*.py``) at a small size.

Each example reads ``N2S_EXAMPLE_SMALL=1`` and shrinks its data (the few size variables
some examples read on their own are set small too, see ``SMALL_ENV``). An example whose
optional dependency is missing is skipped: it may declare its needs in a comment line
``# requires: torch skorch`` and is also skipped when it stops on a
``ModuleNotFoundError`` for a package other than sklearn_n2s.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("plot_*.py"))
REQUIRES = re.compile(r"^#\s*requires:\s*(.+)$", re.MULTILINE)
MISSING = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
# N2S_EXAMPLE_SMALL is the convention; the others are read by examples that take
# explicit sizes (plot_mnist_n2snet.py). Examples ignore what they do not read.
SMALL_ENV = {"N2S_EXAMPLE_SMALL": "1", "N2S_EXAMPLE_N_IMAGES": "48",
             "N2S_EXAMPLE_EPOCHS": "1", "MPLBACKEND": "Agg", "N2S_PROGRESS": "0"}


def _missing_requirements(path):
    declared = REQUIRES.findall(path.read_text())
    names = [n for line in declared for n in re.split(r"[\s,]+", line.strip()) if n]
    return [n for n in names if importlib.util.find_spec(n) is None]


def test_the_gallery_is_not_empty():
    assert EXAMPLES, "no examples/plot_*.py found"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_small(path, tmp_path):
    pytest.importorskip("matplotlib")
    missing = _missing_requirements(path)
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)}")
    env = dict(os.environ, **SMALL_ENV, N2S_EXAMPLE_OUTPUT=str(tmp_path / "figure.png"))
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=False, timeout=600)
    absent = MISSING.search(result.stderr)
    if result.returncode != 0 and absent and not absent.group(1).startswith("sklearn_n2s"):
        pytest.skip(f"{path.name} needs {absent.group(1)}")
    assert result.returncode == 0, result.stderr[-3000:]
