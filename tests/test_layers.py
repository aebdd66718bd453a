"""The package's layers: no import cycle (lazy imports inside functions included) and arrows that
point down — the simulator knows nothing of the fleet, the planner or the nodes; the fleet core
nothing of the planner; cores never import rclpy. Read from the source (ast), so a lazy import
counts as much as a top-level one."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "wm_agent"

#: area -> areas it must never import (a core's arrows point down: sim < fleet, world_model <
#: planning < evaluation < nodes / CLI)
FORBIDDEN = {
    "sim": {"fleet", "world_model", "planning", "bags", "evaluation", "nodes"},
    "fleet": {"world_model", "planning", "bags", "evaluation", "nodes"},
    "world_model": {"fleet", "planning", "bags", "evaluation", "nodes"},
    "planning": {"fleet", "bags", "evaluation", "nodes"},
    "bags": {"sim", "fleet", "world_model", "planning", "evaluation", "nodes"},
    "evaluation": {"fleet", "nodes"},
}
CORES = ("sim", "fleet", "world_model", "planning", "bags", "evaluation")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """wm_agent modules ``name`` imports anywhere in its source; ``from pkg import sub`` counts
    as importing ``pkg.sub`` only (not the package's __init__) when ``sub`` is a module."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            subs = {f"{base}.{a.name}" for a in node.names}
            found |= (subs if subs <= modules.keys() else {base} | (subs & modules.keys()))
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {n: _imports(n, p, modules) for n, p in modules.items()}


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(v: str) -> None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(w):], w]))
            if w not in state:
                visit(w)
        path.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)


def test_arrows_point_down() -> None:
    bad = []
    for name, deps in _graph().items():
        area = name.split(".")[1] if name.count(".") else ""
        for dep in deps:
            dep_area = dep.split(".")[1] if dep.count(".") else ""
            if dep_area in FORBIDDEN.get(area, set()):
                bad.append(f"{name} imports {dep}")
    assert bad == [], bad


def test_cores_never_import_rclpy() -> None:
    bad = []
    for p in PKG.rglob("*.py"):
        area = p.relative_to(PKG).parts[0]
        if area not in CORES:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{p.relative_to(PKG)}: {n}" for n in names if n.split(".")[0] == "rclpy"]
    assert bad == [], bad
