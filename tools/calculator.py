"""``calculator``: exact arithmetic for the model, without ever evaluating code.

The expression is parsed with ``ast`` and walked node by node against a whitelist: numbers,
``+ - * / // % **``, parentheses and a fixed set of math functions and constants. Anything else
(names, attributes, subscripts, strings, lambdas …) is refused before anything runs, and powers
whose result would be enormous are refused before they are computed.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any

from langchain_core.tools import tool
from pydantic import Field

from tools.errors import ToolInputError

MAX_LENGTH = 500
MAX_NODES = 200
MAX_RESULT_DIGITS = 1000
MAX_FACTORIAL = 170

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _factorial(x: float) -> int:
    if x != int(x) or x < 0:
        raise ToolInputError("factorial needs a whole number ≥ 0.")
    if x > MAX_FACTORIAL:
        raise ToolInputError(f"factorial is limited to n ≤ {MAX_FACTORIAL}.")
    return math.factorial(int(x))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "floor": math.floor,
    "ceil": math.ceil,
    "fabs": math.fabs,
    "abs": abs,
    "round": round,
    "factorial": _factorial,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "min": min,
    "max": max,
}
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_HELP = "Use numbers, + - * / // % ** and parentheses, functions like sqrt(x), and pi, e, tau."


def _power(base: Any, exponent: Any) -> Any:
    if abs(exponent) > 1000:
        raise ToolInputError("Exponents are limited to ±1000.")
    if abs(base) > 1 and exponent > 0 and exponent * math.log10(abs(base)) > MAX_RESULT_DIGITS:
        raise ToolInputError(f"The result would have more than {MAX_RESULT_DIGITS} digits.")
    return base**exponent


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolInputError(f"Only numbers are allowed, not {node.value!r}. {_HELP}")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise ToolInputError(f"Unknown name {node.id!r}. {_HELP}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ToolInputError(
                f"Only these functions can be called: {', '.join(sorted(FUNCTIONS))}."
            )
        if node.keywords:
            raise ToolInputError("Functions take positional arguments only, e.g. log(8, 2).")
        return FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args))
    raise ToolInputError(f"{type(node).__name__} is not allowed in an expression. {_HELP}")


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely; raises ``ToolInputError`` with a reason."""
    if len(expression) > MAX_LENGTH:
        raise ToolInputError(f"The expression is longer than {MAX_LENGTH} characters.")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ToolInputError(f"That is not a valid arithmetic expression. {_HELP}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolInputError(f"The expression has more than {MAX_NODES} parts.")
    try:
        return _eval(tree)
    except ToolInputError:
        raise
    except ZeroDivisionError:
        raise ToolInputError("Division by zero.") from None
    except OverflowError:
        raise ToolInputError("The result is too large.") from None
    except (ValueError, TypeError) as exc:
        # math domain errors and wrong argument counts: the message is Python's own, and safe.
        raise ToolInputError(f"Math error: {exc}.") from None
    except RecursionError:
        raise ToolInputError("The expression is nested too deeply.") from None


def format_number(value: int | float) -> str:
    """Integers exactly; floats to 12 significant digits (``1.41421356237``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return format(value, ".12g")
    if value.bit_length() > MAX_RESULT_DIGITS * 3.33:
        raise ToolInputError(f"The result would have more than {MAX_RESULT_DIGITS} digits.")
    return str(value)


@tool("calculator")
def calculator(
    expression: Annotated[
        str,
        Field(
            description=(
                "An arithmetic expression, e.g. '(3 + 4) * 2', 'sqrt(2) / 3', '2 ** 10', "
                "'log(8, 2)', 'sin(pi / 6)'."
            ),
            max_length=MAX_LENGTH,
        ),
    ],
) -> str:
    """Compute the exact value of an arithmetic expression.

    Use it for any arithmetic instead of doing it in your head. Supports + - * / // % **,
    parentheses, the constants pi, e and tau, and the functions sqrt, log (natural, or with a
    base as second argument), log10, log2, exp, sin, cos, tan, asin, acos, atan, atan2, sinh,
    cosh, tanh, floor, ceil, abs, fabs, round, factorial, degrees, radians, hypot, min, max.
    Angles are in radians. Returns the number: integers exactly, other results to 12
    significant digits.
    """
    return format_number(evaluate(expression))
