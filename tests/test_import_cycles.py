"""No import circle through the app's wiring module: app.py builds the window and may start
the self-test or the start-up probe, so those must never import app.py back (they get what
they need passed in). Every import counts, also those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """desktop module -> the desktop modules it imports (anywhere in the file)."""
    modules = {_module_name(p): p for p in (REPO / "desktop").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found.update(t for t in targets if t in modules)
        graph[name] = found - {name}
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A path of imports from `start` to `goal`, if there is one."""
    stack = [(start, [start])]
    seen = {start}
    while stack:
        node, path = stack.pop()
        for following in graph.get(node, ()):
            if following == goal:
                return [*path, goal]
            if following not in seen:
                seen.add(following)
                stack.append((following, [*path, following]))
    return None


def test_nothing_that_app_imports_imports_app_back() -> None:
    graph = import_graph()
    assert "desktop.app" in graph and "desktop.cli.self_test" in graph
    for module in sorted(graph["desktop.app"]):
        circle = _reaches(graph, module, "desktop.app")
        assert circle is None, " -> ".join(["desktop.app", *circle])


def test_bench_and_self_test_are_not_in_a_circle_with_app() -> None:
    graph = import_graph()
    for module in ("desktop.bench.ui", "desktop.cli.self_test", "desktop.startup_probe"):
        there = _reaches(graph, "desktop.app", module)
        back = _reaches(graph, module, "desktop.app")
        assert not (there and back), (there, back)
