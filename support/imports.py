"""The import graph of one Python package, read from its source with `ast` (nothing is
imported), and the cycles in it.

Every import of a module of the same package counts, wherever it is written: at the top, under
`if TYPE_CHECKING:`, inside a function. A cycle hidden that way still means two modules that
cannot be read, tested or moved one without the other.

An edge goes to the module whose code the statement needs: `from . import tokens` and
`from .tokens import Principal` both point at `pkg.tokens`; a name taken from a package
(`from .rest import describe`) points at that package's `__init__`. The parent packages Python
runs first are not counted: a package's `__init__` importing its own modules is no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

Graph = dict[str, set[str]]


def module_files(package_dir: Path) -> dict[str, Path]:
    """Each module of the package by dotted name (`auth_proxy.tokens`; a package's `__init__.py`
    by the package's own name)."""
    package_dir = Path(package_dir)
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(
    node: ast.Import | ast.ImportFrom, name: str, is_package: bool, modules: Mapping[str, Path]
) -> Iterator[str]:
    """The package's modules one import statement needs."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in modules:
                yield alias.name
        return
    if node.level:  # relative: from the module's own package, one level up per extra dot
        package = name if is_package else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        source = f"{package}.{node.module}" if node.module else package
    else:
        source = node.module or ""
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        if submodule in modules:
            yield submodule
        elif source in modules:
            yield source


def import_graph(package_dir: Path) -> Graph:
    """For each module of the package at `package_dir`, the modules of the same package it
    imports anywhere in its source."""
    modules = module_files(package_dir)
    graph: Graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = {
            target
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for target in _imported(node, name, is_package, modules)
            if target != name
        }
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle of each group of modules that import one another (a strongly connected
    component of more than one module), as a path `[a, b, ..., a]`; none for an acyclic
    graph."""
    found = []
    for component in _strongly_connected(graph):
        if len(component) > 1:
            found.append(_cycle_in(component, graph))
    return sorted(found)


def _strongly_connected(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (no recursion limit for a large package)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _cycle_in(component: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside it."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target == start:
                    return [*paths[node], start]
                if target in component and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def describe(found: list[list[str]]) -> str:
    """The cycles one per line, for an assertion message."""
    return "\n".join(" -> ".join(cycle) for cycle in found)
