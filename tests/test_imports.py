"""The import graph follows the data: no room imports one after it, and no module imports itself
back through others. Every import counts, those inside functions and under TYPE_CHECKING too."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.require import REPO

PACKAGE = REPO / "collector"

# The rooms in the order data flows through them. A room may import itself and the rooms before
# it. `listen` (address parsing) and the generated `_proto` stubs are leaves that anyone may use.
ORDER = (
    ("_proto", "listen"),
    ("bpf",),
    ("event",),
    ("k8s",),
    ("policy",),
    ("hub",),
    ("outlets",),
    ("metrics",),
    ("tail",),
    ("config",),
    ("engine",),
    ("cli", "__main__"),
)
RANK = {room: rank for rank, rooms in enumerate(ORDER) for room in rooms}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every collector module `path` imports, resolved to the module or package named."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("collector"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("collector"):
            found.add(node.module)
            # `from collector.x import y` may name a module y: count it as an import of x.y too.
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (REPO / Path(*candidate.split("."))).with_suffix(".py").is_file():
                    found.add(candidate)
    return found


def graph() -> dict[str, set[str]]:
    modules = {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "_proto" not in path.relative_to(PACKAGE).parts
    }
    return {name: imports_of(path) for name, path in modules.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_room_is_placed_in_the_order() -> None:
    rooms = {room(m) for m in graph()} - {""}
    assert rooms <= set(RANK), f"rooms missing from ORDER: {sorted(rooms - set(RANK))}"


def test_no_room_imports_a_room_after_it() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if room(module) and room(target) and RANK[room(target)] > RANK[room(module)]
    ]
    assert upward == []


def test_nothing_outside_the_cli_imports_it() -> None:
    assert [
        m for m, targets in graph().items() if room(m) != "cli" and any(room(t) == "cli" for t in targets)
    ] == ["collector.__main__"]


def test_the_module_graph_has_no_cycle() -> None:
    edges = graph()
    # A package's __init__ re-exports its modules; an import of the package is an import of
    # those, so `collector.x` -> its modules is an edge, and one module of x importing
    # `collector.x` would be a cycle through the __init__.
    state: dict[str, int] = {}
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if target not in edges:
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from collector.engine import Collector\n"
    )
    assert "collector.engine" in imports_of(source)
