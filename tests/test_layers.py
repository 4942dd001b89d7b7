"""The house keeps its layers: no import cycles, and the import-linter contracts hold.

The contracts (``[tool.importlinter]`` in ``pyproject.toml``) put ``cli`` on top, then
``plotting``/``io``, ``blockwise``, ``model_selection``, the three families (``image``,
``table``, ``neural``, independent of each other), the shared contract and the masking
core, and ``utils`` at the bottom.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
grimp = pytest.importorskip("grimp")


def _module_graph():
    graph = grimp.build_graph("sklearn_n2s", include_external_packages=False)
    return {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}


def _find_cycle(edges):
    """One import cycle as a list of modules, or None (iterative depth-first search)."""
    state = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack, path = [(start, iter(sorted(edges[start])))], [start]
        state[start] = "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(child) == "open":
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = "open"
                stack.append((child, iter(sorted(edges.get(child, ())))))
                path.append(child)
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules():
    edges = _module_graph()
    # A package's __init__ re-exports its private modules: that edge is the package
    # itself, not a dependency, so it is left out of the cycle search.
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in edges.items()}
    assert _find_cycle(edges) is None


def test_import_linter_contracts_are_kept():
    linter = Path(sys.executable).with_name("lint-imports")
    if not linter.exists():
        pytest.skip("import-linter is not installed (the test extra installs it)")
    result = subprocess.run([str(linter), "--config", str(ROOT / "pyproject.toml")],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed (the test extra installs it)")
    result = subprocess.run([str(ruff), "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
