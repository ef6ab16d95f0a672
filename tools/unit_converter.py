"""``unit_converter``: length, mass, volume, time, speed and temperature conversions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from langchain_core.tools import tool
from pydantic import Field

from tools.errors import ToolInputError

# Factor to the dimension's base unit (m, kg, l, s, m/s), and the spellings accepted.
_UNITS: dict[str, dict[str, tuple[float, tuple[str, ...]]]] = {
    "length": {
        "m": (1.0, ("meter", "meters", "metre", "metres")),
        "km": (1000.0, ("kilometer", "kilometers", "kilometre", "kilometres")),
        "cm": (0.01, ("centimeter", "centimeters", "centimetre", "centimetres")),
        "mm": (0.001, ("millimeter", "millimeters", "millimetre", "millimetres")),
        "mi": (1609.344, ("mile", "miles")),
        "yd": (0.9144, ("yard", "yards")),
        "ft": (0.3048, ("foot", "feet")),
        "in": (0.0254, ("inch", "inches")),
    },
    "mass": {
        "kg": (1.0, ("kilogram", "kilograms", "kilo", "kilos")),
        "g": (0.001, ("gram", "grams")),
        "mg": (1e-6, ("milligram", "milligrams")),
        "lb": (0.45359237, ("lbs", "pound", "pounds")),
        "oz": (0.028349523125, ("ounce", "ounces")),
        "t": (1000.0, ("tonne", "tonnes", "metric ton", "metric tons")),
    },
    "volume": {
        "l": (1.0, ("liter", "liters", "litre", "litres")),
        "ml": (0.001, ("milliliter", "milliliters", "millilitre", "millilitres")),
        "gal": (3.785411784, ("gallon", "gallons", "us gallon", "us gallons")),
        "qt": (0.946352946, ("quart", "quarts")),
        "pt": (0.473176473, ("pint", "pints")),
        "cup": (0.2365882365, ("cups",)),
        "fl_oz": (0.0295735295625, ("fl oz", "fluid ounce", "fluid ounces")),
    },
    "time": {
        "s": (1.0, ("sec", "secs", "second", "seconds")),
        "min": (60.0, ("mins", "minute", "minutes")),
        "h": (3600.0, ("hr", "hrs", "hour", "hours")),
        "day": (86400.0, ("d", "days")),
        "week": (604800.0, ("wk", "weeks")),
    },
    "speed": {
        "m/s": (1.0, ("mps", "meters per second", "metres per second")),
        "km/h": (1 / 3.6, ("kph", "kmh", "kilometers per hour", "kilometres per hour")),
        "mph": (0.44704, ("mi/h", "miles per hour")),
        "knot": (1852 / 3600, ("knots", "kn", "kt")),
    },
}
# Temperature is affine, not a factor: converted through kelvin.
_TEMPERATURE: dict[
    str, tuple[tuple[str, ...], Callable[[float], float], Callable[[float], float]]
] = {
    "C": (("c", "°c", "celsius", "degc"), lambda v: v + 273.15, lambda k: k - 273.15),
    "F": (
        ("f", "°f", "fahrenheit", "degf"),
        lambda v: (v - 32) * 5 / 9 + 273.15,
        lambda k: (k - 273.15) * 9 / 5 + 32,
    ),
    "K": (("k", "kelvin", "kelvins"), lambda v: v, lambda k: k),
}

_LOOKUP: dict[str, tuple[str, str]] = {}
for _dimension, _units in _UNITS.items():
    for _symbol, (_factor, _aliases) in _units.items():
        for _name in (_symbol, *_aliases):
            _LOOKUP[_name.lower()] = (_dimension, _symbol)
for _symbol, (_aliases, _, _) in _TEMPERATURE.items():
    for _name in _aliases:
        _LOOKUP[_name] = ("temperature", _symbol)


def _unit(name: str) -> tuple[str, str]:
    found = _LOOKUP.get(" ".join(name.strip().lower().split()))
    if found is None:
        supported = (
            "; ".join(f"{dim}: {', '.join(units)}" for dim, units in _UNITS.items())
            + "; temperature: C, F, K"
        )
        raise ToolInputError(f"Unknown unit {name!r}. Supported units: {supported}.")
    return found


def _format(value: float) -> str:
    return format(value, ".6g")


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit``."""
    source, target = _unit(from_unit), _unit(to_unit)
    if source[0] != target[0]:
        names = ", ".join(_UNITS.get(source[0], _TEMPERATURE))
        raise ToolInputError(
            f"Cannot convert {source[0]} ({source[1]}) to {target[0]} ({target[1]}). "
            f"{source[0].capitalize()} units: {names}."
        )
    if source[0] == "temperature":
        return _TEMPERATURE[target[1]][2](_TEMPERATURE[source[1]][1](value))
    units = _UNITS[source[0]]
    return value * units[source[1]][0] / units[target[1]][0]


@tool("unit_converter")
def unit_converter(
    value: Annotated[float, Field(description="The quantity to convert, e.g. 10.")],
    from_unit: Annotated[
        str, Field(description="Unit of the value, e.g. 'km', 'pounds', '°C'.", max_length=40)
    ],
    to_unit: Annotated[
        str, Field(description="Unit to convert to, e.g. 'mi', 'kg', 'F'.", max_length=40)
    ],
) -> str:
    """Convert a quantity between units of length, mass, volume, time, speed or temperature.

    Units: length m, km, cm, mm, mi, yd, ft, in; mass kg, g, mg, lb, oz, t; volume l, ml, gal
    (US), qt, pt, cup, fl_oz; time s, min, h, day, week; speed m/s, km/h, mph, knot;
    temperature C, F, K. Full names ("kilometers", "Fahrenheit") work too. Returns a sentence
    such as "10 km = 6.21371 mi", rounded to 6 significant digits.
    """
    result = convert(value, from_unit, to_unit)
    src, dst = _unit(from_unit)[1], _unit(to_unit)[1]
    return f"{_format(value)} {src} = {_format(result)} {dst}"
