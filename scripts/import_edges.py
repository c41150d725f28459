"""Print the import edges between reelwatch's top-level packages and modules, and the
cycles among them (strongly connected components), from the source, with grimp (the
graph import-linter checks; docs/architecture.md). ``-v`` lists each module-level edge.

    python scripts/import_edges.py [-v]
"""

from __future__ import annotations

import sys
from collections import defaultdict

import grimp


def top(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_edges() -> dict[tuple[str, str], set[tuple[str, str]]]:
    graph = grimp.build_graph("reelwatch")
    edges: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = top(module), top(imported)
            if a != b and "reelwatch" not in (a, b) and b.startswith("reelwatch."):
                edges[(a, b)].add((module, imported))
    return edges


def cycles(edges: dict[tuple[str, str], set[tuple[str, str]]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member."""
    successors: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        successors[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in successors[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted({a for a, _ in edges} | {b for _, b in edges}):
        if node not in index:
            visit(node)
    return found


def main() -> None:
    edges = package_edges()
    for (a, b), modules in sorted(edges.items()):
        print(f"{a} -> {b} ({len(modules)})")
        if "-v" in sys.argv:
            for importer, imported in sorted(modules):
                print(f"    {importer} -> {imported}")
    print("cycles:", cycles(edges) or "none")


if __name__ == "__main__":
    main()
