"""The import graph: one installed name, layers that point one way, no cycles.

Every module's imports are read from its source (``ast``), module-level and function-level
(lazy) alike, so an import hidden inside a function counts as much as one at the top.

Layers, bottom to top; a module may import its own layer and the layers below it:

    records  <-  envs  <-  configs  <-  agents  <-  algorithms  <-  cli / play / inspect
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Installed subpackage -> the folder it lives in (pyproject's package-dir).
FOLDERS = {
    "agentropy.envs": ROOT / "envs",
    "agentropy.agents": ROOT / "agents",
    "agentropy.algorithms": ROOT / "algorithms",
    "agentropy.configs": ROOT / "configs",
    "agentropy": ROOT / "agentropy",
}

#: Module-name prefix -> layer number (longest prefix wins).
LAYERS = {
    "agentropy.records": 0,
    "agentropy.envs": 1,
    "agentropy.configs": 2,
    "agentropy.agents": 3,
    "agentropy.algorithms": 4,
    "agentropy.cli": 5,
    "agentropy.play": 5,
    "agentropy.inspect": 5,
    "agentropy": 5,
}
GENERIC = ("envs", "agents", "algorithms", "configs")


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            out.setdefault(name, path)
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported agentropy module, line) for every import in the file, resolved to a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # "from agentropy.x import y": y may be a module of its own
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            if target.split(".")[0] in GENERIC:
                found.append((target, node.lineno))
            elif target == "agentropy" or target.startswith("agentropy."):
                found.append((target, node.lineno))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_generic_top_level_imports():
    bad = [f"{MODULES[m]}:{line}: imports {t}" for m, edges in GRAPH.items() for t, line in edges
           if t.split(".")[0] in GENERIC]
    assert not bad, "\n".join(bad)


def test_layers_point_one_way():
    bad = []
    for module, edges in GRAPH.items():
        for target, line in edges:
            if target.split(".")[0] in GENERIC or target == "agentropy":
                continue
            if _layer(target) > _layer(module):
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} (layer {_layer(module)}) "
                           f"imports {target} (layer {_layer(target)})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    edges = defaultdict(set)
    for module, targets in GRAPH.items():
        for target, _ in targets:
            # a submodule import also runs its packages' __init__: an edge to each of them
            while target and target != module:
                if target in MODULES and not module.startswith(target + "."):
                    edges[module].add(target)
                target = target.rpartition(".")[0]
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(MODULES):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    import importlib

    importlib.import_module(module)
