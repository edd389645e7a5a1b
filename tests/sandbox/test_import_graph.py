"""The sandbox package's modules import each other without a cycle.

The graph is read from the source with `ast`, not from `sys.modules`: every `import
x402_compute_sandbox.x`, `from x402_compute_sandbox.x import …`, `from .x import …` and `from . import x`
is an edge, at module level and inside functions alike (a lazy import that closes a cycle is still a
cycle: it only moves the failure from import time to the first call). `from .pkg import name` is an
edge to the submodule `pkg.name` when that is a module, else to `pkg`. Subpackages' `__init__` imports
of their own submodules are edges too; the implicit "a submodule imports its package first" is not.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "x402_compute_sandbox"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (packages by their __init__)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its body)."""
    files = module_files(root, package)
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files:   # `import pkg.mod.attr` -> the module part
                    target = target.rpartition(".")[0]
                if target and target != name and target.split(".")[0] == package:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, …, a], or None (iterative depth-first search, colours white/grey/black)."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child, 2) == 1:
                return path[path.index(child):] + [child]
            elif colour.get(child) == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_the_sandbox_package_has_no_import_cycle():
    graph = import_graph(ROOT, PACKAGE)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_the_edges_that_exist():
    """The scan is not vacuous: known edges, lazy and relative ones included, are found."""
    graph = import_graph(ROOT, PACKAGE)
    assert len(graph) >= 15
    assert f"{PACKAGE}.app" in graph[f"{PACKAGE}.sandbox"]            # top level, relative
    assert f"{PACKAGE}.server" in graph[f"{PACKAGE}.app"]
    assert f"{PACKAGE}.sandbox" in graph[f"{PACKAGE}.__main__"]       # inside main()
    assert f"{PACKAGE}.chains.evm" in graph[f"{PACKAGE}.facilitator"]  # inside a method
    assert f"{PACKAGE}.networks" in graph[f"{PACKAGE}.chains.evm"]     # `from ..networks import`
    # The composition root is a leaf for everyone but the entry point.
    assert {m for m, deps in graph.items() if f"{PACKAGE}.sandbox" in deps} == {f"{PACKAGE}.__main__"}
    # server.py is the HTTP primitives only: it imports nothing of the package.
    assert graph[f"{PACKAGE}.server"] == set()


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}, None),    # a diamond is no cycle
    ({"a": set(), "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
])
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle


def test_a_lazy_import_back_up_is_a_cycle(tmp_path):
    """The shape this package had: server.py's Sandbox imported app lazily, app imported server."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "server.py").write_text("class Sandbox:\n    def __init__(self):\n        from .app import App\n")
    (pkg / "app.py").write_text("from .server import Sandbox\n")
    (pkg / "leaf.py").write_text("import pkg.server\nfrom pkg import app\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.leaf"] == {"pkg.server", "pkg.app"}
    assert find_cycle(graph) == ["pkg.app", "pkg.server", "pkg.app"]
