"""The verifier stays light enough for a staff device."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("flask", "sqlalchemy", "click", "qrcode", "PIL", "zxingcpp")


def test_verifier_imports_without_web_database_terminal_or_image_libraries() -> None:
    code = (
        "import sys, wallet.verifier\n"
        f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import one another, directly or around a circle."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in edges.get(module, ()):
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            group = []
            while (top := stack.pop()) != module:
                group.append(top)
            if group:
                found.append(sorted([module, *group]))

    for module in sorted(edges):
        if module not in order:
            visit(module)
    return found


def test_cycle_finder_names_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(edges) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_circle() -> None:
    """Imports hidden in functions or behind TYPE_CHECKING count too: a circle is a
    layering mistake, whatever trick keeps Python from tripping over it."""
    import grimp

    graph = grimp.build_graph("wallet")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert import_cycles(edges) == []


def service_calls_from_the_edges() -> set[tuple[str, str]]:
    """(services module, function) for every ``module.function`` web and cli call."""
    import ast
    from pathlib import Path

    import wallet

    root = Path(wallet.__file__).parent
    found: set[tuple[str, str]] = set()
    for path in [*root.joinpath("web").glob("*.py"), *root.joinpath("cli").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "wallet.services":
                aliases.update({a.asname or a.name: a.name for a in node.names})
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in aliases
            ):
                found.add((aliases[node.func.value.id], node.func.attr))
    return found


def test_web_and_cli_get_domain_values_from_services_never_orm_rows() -> None:
    """A newcomer once could not tell who owns a pass rule: views read ORM rows directly."""
    import importlib
    import inspect

    calls = service_calls_from_the_edges()
    assert ("passes", "issue_pass") in calls and ("accounts", "list_users") in calls
    leaking = []
    for module_name, function_name in sorted(calls):
        function = getattr(importlib.import_module(f"wallet.services.{module_name}"), function_name)
        if not inspect.isfunction(function):
            continue
        returned = str(inspect.signature(function).return_annotation)
        if "Row" in returned:
            leaking.append(f"{module_name}.{function_name} -> {returned}")
    assert leaking == []
