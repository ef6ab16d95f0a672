"""The tools, called as the agent calls them (``tool.invoke`` with the model's arguments)."""

from __future__ import annotations

import importlib
import time
from datetime import UTC, datetime

import httpx
import pytest

from api.routes.meta import server_version
from tests.conftest import User
from tools import TOOLS
from tools.errors import ToolInputError


def calc(expression: str) -> str:
    return TOOLS["calculator"].invoke({"expression": expression})


def convert(value: float, from_unit: str, to_unit: str) -> str:
    return TOOLS["unit_converter"].invoke(
        {"value": value, "from_unit": from_unit, "to_unit": to_unit}
    )


def test_registry_lists_exactly_the_tools() -> None:
    assert sorted(TOOLS) == [
        "ask_human", "calculator", "current_datetime", "http_fetch", "knowledge_search", "recall",
        "remember", "unit_converter",
    ]  # fmt: skip
    for name, tool in TOOLS.items():
        schema = tool.tool_call_schema.model_json_schema()
        assert schema["description"], name
        for arg, spec in schema["properties"].items():
            assert spec.get("description"), f"{name}.{arg} has no description"


async def test_tools_endpoint(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get("/tools", headers=user.headers)
    assert response.status_code == 200
    listed = {t["name"]: t for t in response.json()}
    assert sorted(listed) == sorted(TOOLS)
    assert listed["calculator"]["parameters"]["required"] == ["expression"]
    assert listed["unit_converter"]["parameters"]["required"] == ["value", "from_unit", "to_unit"]
    # The run's runtime (user, store) is injected, never an argument the model sees.
    assert list(listed["remember"]["parameters"]["properties"]) == ["text", "key"]
    assert list(listed["recall"]["parameters"]["properties"]) == ["query", "k"]
    # Every tool here is built in: the server's own package and version.
    assert {(t["package"], t["version"]) for t in listed.values()} == {
        ("switchboard", server_version())
    }
    assert (await client.get("/tools")).status_code == 401


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("2+3*4", "14"),
        ("(2+3)*4", "20"),
        ("7 // 2", "3"),
        ("7 % 3", "1"),
        ("-2 ** 2", "-4"),
        ("2 ** 10", "1024"),
        ("2 ** 0.5", "1.41421356237"),
        ("sqrt(2)", "1.41421356237"),
        ("1 / 3", "0.333333333333"),
        ("10 / 4", "2.5"),
        ("log(8, 2)", "3"),
        ("log10(1000)", "3"),
        ("sin(pi / 6)", "0.5"),
        ("factorial(20)", "2432902008176640000"),
        ("max(1, 5, 3) + min(4, 2)", "7"),
        ("round(2.675, 2)", "2.67"),
        ("2 ** 100", "1267650600228229401496703205376"),
    ],
)
def test_calculator_results(expression: str, result: str) -> None:
    assert calc(expression) == result


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "Only these functions can be called"),
        ("(1).__class__", "Attribute is not allowed"),
        ("().__class__.__bases__", "Attribute is not allowed"),
        ("9**9**9", "Exponents are limited"),
        ("10 ** 1001", "Exponents are limited"),
        ("99 ** 999", "more than 1000 digits"),
        ("9**999 * 9**999 * 9**999 * 9**999", "more than 1000 digits"),
        ("[1, 2]", "List is not allowed"),
        ("'a' * 10", "Only numbers are allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("open('x')", "Only these functions can be called"),
        ("x + 1", "Unknown name 'x'"),
        ("sqrt(x=4)", "positional arguments only"),
        ("True + 1", "Only numbers are allowed"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("1 +", "not a valid arithmetic expression"),
        ("1 / 0", "Division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("factorial(171)", "limited to n ≤ 170"),
        ("exp(1000)", "too large"),
        ("+".join(["1"] * 150), "more than 200 parts"),
    ],
)
def test_calculator_refuses_hostile_or_bad_input(expression: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ToolInputError) as error:
        calc(expression)
    assert message in str(error.value)
    assert time.perf_counter() - started < 1.0


def test_calculator_refuses_overlong_expressions() -> None:
    with pytest.raises(ToolInputError, match="longer than 500"):
        TOOLS["calculator"].func("1+" * 300 + "1")


def test_current_datetime(monkeypatch: pytest.MonkeyPatch) -> None:
    # The package re-exports the tool under its module's name: fetch the module itself.
    module = importlib.import_module("tools.current_datetime")
    monkeypatch.setattr(module, "_now", lambda: datetime(2026, 11, 24, 19, 38, 47, tzinfo=UTC))
    tool = TOOLS["current_datetime"]
    assert tool.invoke({}) == "2026-11-24T19:38:47+00:00 (Tuesday, UTC)"
    assert tool.invoke({"timezone": "Europe/Paris"}) == (
        "2026-11-24T20:38:47+01:00 (Tuesday, Europe/Paris)"
    )
    assert tool.invoke({"timezone": "Asia/Tokyo"}) == (
        "2026-11-25T04:38:47+09:00 (Wednesday, Asia/Tokyo)"
    )
    with pytest.raises(ToolInputError, match="Unknown timezone 'Mars/Olympus'"):
        tool.invoke({"timezone": "Mars/Olympus"})
    with pytest.raises(ToolInputError, match="Unknown timezone"):
        tool.invoke({"timezone": "../../etc/passwd"})


@pytest.mark.parametrize(
    ("value", "source", "target", "sentence"),
    [
        (10, "km", "mi", "10 km = 6.21371 mi"),
        (1, "mile", "feet", "1 mi = 5280 ft"),
        (12, "in", "cm", "12 in = 30.48 cm"),
        (5, "pounds", "kg", "5 lb = 2.26796 kg"),
        (1, "t", "g", "1 t = 1e+06 g"),
        (1, "gallon", "l", "1 gal = 3.78541 l"),
        (2, "cups", "ml", "2 cup = 473.176 ml"),
        (2, "hours", "min", "2 h = 120 min"),
        (1, "week", "day", "1 week = 7 day"),
        (100, "km/h", "m/s", "100 km/h = 27.7778 m/s"),
        (60, "mph", "km/h", "60 mph = 96.5606 km/h"),
        (10, "knots", "km/h", "10 knot = 18.52 km/h"),
        (100, "C", "F", "100 C = 212 F"),
        (0, "celsius", "K", "0 C = 273.15 K"),
        (-40, "°F", "°C", "-40 F = -40 C"),
        (0, "K", "Fahrenheit", "0 K = -459.67 F"),
    ],
)
def test_unit_conversions(value: float, source: str, target: str, sentence: str) -> None:
    assert convert(value, source, target) == sentence


def test_unit_converter_errors() -> None:
    with pytest.raises(ToolInputError, match=r"Cannot convert mass \(kg\) to length \(m\)"):
        convert(1, "kg", "m")
    with pytest.raises(ToolInputError, match=r"Cannot convert temperature \(C\) to time"):
        convert(1, "C", "s")
    with pytest.raises(ToolInputError, match=r"Unknown unit 'parsec'\. Supported units: length"):
        convert(1, "parsec", "m")
