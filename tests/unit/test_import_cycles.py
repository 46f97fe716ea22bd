"""No import circles among the project's own modules (the layer, tools/, bench/).

Every ``import`` and ``from ... import`` statement counts, wherever it stands: at module level, under
``TYPE_CHECKING``, or inside a function. A function-level import that closes a loop is still a circle: it only
moves the moment the loop is walked. The lazy imports the project makes on purpose are of drivers (psycopg2,
PyMySQL, redis) and other packages outside the project, so they never enter this graph and need no exemption.
What is not a statement is not counted: the registry and the local targets find their plugins by name at run time
(``importlib.import_module``), which is the point of a registry.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

from helpers import REPO_ROOT

# Where each tree's modules are importable from (the folder on sys.path), as the Makefile and pytest set it.
SOURCE_ROOTS = (
    REPO_ROOT / "layers" / "rotation_core",
    REPO_ROOT / "tools",
    REPO_ROOT / "bench",
)


def modules_under(root: Path) -> dict[str, Path]:
    """Every module below ``root``, by its import name (a package by its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Every name an import statement of the module asks for, absolute (``a.b`` and ``a.b.c`` for
    ``from a.b import c``: ``c`` may be a module)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base_parts = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(roots: Iterable[Path]) -> dict[str, set[str]]:
    """Module -> the project's modules it imports."""
    modules: dict[str, Path] = {}
    for root in roots:
        modules.update(modules_under(root))
    return {
        module: {name for name in imported_names(module, path) if name in modules and name != module}
        for module, path in modules.items()
    }


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            following = next(edges, None)
            if following is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif following not in index:
                index[following] = low[following] = len(index)
                stack.append(following)
                on_stack.add(following)
                work.append((following, iter(sorted(graph[following]))))
            elif following in on_stack:
                low[node] = min(low[node], index[following])
    return found


def described(graph: Mapping[str, set[str]], component: list[str]) -> str:
    ties = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component]
    return f"{', '.join(component)} ({'; '.join(ties)})"


def test_import_graph_of_the_project_has_no_circle() -> None:
    graph = import_graph(SOURCE_ROOTS)
    assert "rotation_core.rotator" in graph  # the roots are read (an empty graph has no circle either)
    assert "rotation_local.server_kinds" in graph
    assert "run" in graph  # bench/run.py

    found = circles(graph)

    assert not found, "import circles: " + " | ".join(described(graph, component) for component in found)


def test_import_graph_function_level_import_that_closes_a_loop_is_a_circle(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text("from shop.stock import reserve\n")
    (package / "stock.py").write_text("def reserve():\n    from . import orders\n    return orders\n")
    (package / "prices.py").write_text("import shop.orders\n")

    graph = import_graph([tmp_path])

    assert circles(graph) == [["shop.orders", "shop.stock"]]


def test_import_graph_type_checking_import_counts_and_outside_packages_do_not(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shop import stock\nimport psycopg2\n"
    )
    (package / "stock.py").write_text("from shop.orders import place\n")

    graph = import_graph([tmp_path])

    assert graph["shop.orders"] == {"shop", "shop.stock"}
    assert circles(graph) == [["shop.orders", "shop.stock"]]
