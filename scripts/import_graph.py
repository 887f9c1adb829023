"""The import graph between the ledger's layers, read from the source with `ast` (nothing is imported).

Each node is a layer: a sub-package or module of `ledger/` (`ledger.domain`, `ledger.service`, ...), or one of
the top-level packages (`api`, `jobs`, `projections`). Prints every edge with the modules that make it, then
the cycles between layers and every edge that points up (RANK below) or from an entrypoint into an adapter.
Exits 1 if there is any of those, other than through the composition root (`ledger.bootstrap`).

    python scripts/import_graph.py            # edges and cycles
    python scripts/import_graph.py --modules  # module-level edges instead
    python scripts/import_graph.py --top      # the four top-level packages only
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ledger", "api", "jobs", "projections")
ROOTS = {"ledger.bootstrap"}  # the composition root: allowed to close a cycle
# Dependencies point down: entrypoints -> composition root -> use cases -> read model, settings -> adapters -> domain.
RANK = {
    "ledger.domain": 0,
    "ledger.alipay": 1, "ledger.adapters": 1,
    "ledger.config": 2, "projections": 2,
    "ledger.service": 3, "ledger.intake": 3, "jobs": 3,
    "ledger.bootstrap": 4,
    "api": 5, "ledger.cli": 5,
}
ENTRYPOINTS = {"api", "ledger.cli"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str, top: bool = False) -> str:
    parts = module.split(".")
    if parts[0] == "ledger" and len(parts) > 1 and not top:
        return ".".join(parts[:2])
    return parts[0]


def imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def graph(modules_level: bool, top: bool = False) -> dict[str, dict[str, set[str]]]:
    known = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            known[module_name(path)] = path
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, path in known.items():
        for target in imports(path, module):
            while target not in known and "." in target:  # `from a.b import name` names a.b.name
                target = target.rsplit(".", 1)[0]
            if target not in known:
                continue
            a, b = (module, target) if modules_level else (layer(module, top), layer(target, top))
            if a != b:
                edges[a][b].add(f"{module} -> {target}")
    return edges


def cycles(edges: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    nodes = set(edges) | {b for targets in edges.values() for b in targets}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    modules_level = "--modules" in sys.argv
    edges = graph(modules_level, top="--top" in sys.argv)
    for a in sorted(edges):
        for b in sorted(edges[a]):
            print(f"{a} -> {b}  ({len(edges[a][b])})")
    if modules_level:
        return 0
    wrong = [f"{a} -> {b}" for a in sorted(edges) for b in sorted(edges[a])
             if a not in ROOTS and (RANK.get(b, 0) > RANK.get(a, 0) or (a in ENTRYPOINTS and b == "ledger.adapters"))]
    for edge in wrong:
        print("points up or into an adapter:", edge)
    without_root = {a: {b: v for b, v in t.items() if b not in ROOTS} for a, t in edges.items() if a not in ROOTS}
    all_cycles, bad = cycles(edges), cycles(without_root)
    for component in all_cycles:
        print("cycle:", " <-> ".join(component))
    if bad:
        print("cycles without the composition root:", "; ".join(" <-> ".join(c) for c in bad))
    if bad or wrong:
        return 1
    print("every dependency points down; no cycle between layers other than through the composition root")
    return 0


if __name__ == "__main__":
    sys.exit(main())
