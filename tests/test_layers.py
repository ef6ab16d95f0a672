"""The layers the README describes, checked on the source: what may import what, where SQL
lives, and that the runtime stays in small parts."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A statement as this project writes them: keywords in capitals.
SQL = re.compile(
    r"^\s*(SELECT\s.*|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE (TABLE|INDEX|DATABASE)"
    r"|ALTER TABLE|DROP (TABLE|INDEX)|WITH \w+ AS)\b",
    re.DOTALL,
)


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("package", ["graphs", "storage", "tools"])
def test_below_the_api_nothing_knows_http(package: str) -> None:
    web = {"api", "fastapi", "starlette", "sse_starlette"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(_top(_imports(path)) & web)
        for path in _modules(package)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_storage_imports_no_other_layer() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_top(_imports(path)) & {"api", "graphs", "tools"})
        for path in _modules("storage")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_routes_reach_storage_only_through_services() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_top(_imports(path)) & {"storage"})
        for path in _modules("api/routes")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_sql_is_written_only_in_storage() -> None:
    found = []
    for package in ("api", "graphs", "tools"):
        for path in _modules(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if SQL.match(node.value):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_the_runtime_is_in_small_parts() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in _modules("graphs/runtime")
    }
    assert {name: n for name, n in sizes.items() if n > 300} == {}


def test_every_route_declares_what_it_answers() -> None:
    from fastapi.datastructures import DefaultPlaceholder
    from fastapi.routing import APIRoute

    from api.app import create_app
    from api.errors import routes_of

    undeclared = [
        f"{sorted(route.methods)} {route.path}"
        for route in routes_of(create_app().routes)
        if isinstance(route, APIRoute)
        and route.response_model is None
        and isinstance(route.response_class, DefaultPlaceholder)
    ]
    assert undeclared == []


def test_every_package_is_listed_for_installation() -> None:
    # pyproject lists the packages by hand (their names are generic); one left out is missing
    # from a non-editable install, which then fails at its first import of it.
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("api", "graphs", "storage", "tools")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert listed == found
