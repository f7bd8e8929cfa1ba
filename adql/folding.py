"""Evaluate constant ADQL expressions at translation time.

Geometry needs to know literal values: a circle radius above 90 degrees or a
degenerate polygon must be reported before the query runs, and the query
description gives the coordinator regions as numbers.  Only pure arithmetic
on literals and a few deterministic functions are folded; anything else is
"not constant".
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sqlglot import exp

__all__ = ["constant_number", "constant_string"]

_UNARY: dict[str, Callable[[float], float]] = {
    "RADIANS": math.radians,
    "DEGREES": math.degrees,
    "SQRT": math.sqrt,
    "ABS": abs,
    "SIN": math.sin,
    "COS": math.cos,
    "TAN": math.tan,
    "ASIN": math.asin,
    "ACOS": math.acos,
    "ATAN": math.atan,
    "EXP": math.exp,
    "LOG": math.log,
    "LOG10": math.log10,
    "FLOOR": math.floor,
    "CEILING": math.ceil,
}


def constant_number(node: exp.Expr | None) -> float | None:
    """Return the value of a constant numeric ADQL expression, or None.

    >>> from adql.dialect import parse_adql
    >>> constant_number(parse_adql("SELECT -(1 + 2) * 0.5 FROM t").expressions[0])
    -1.5
    >>> constant_number(parse_adql("SELECT ra + 1 FROM t").expressions[0]) is None
    True
    """
    try:
        value = _fold(node)
    except (ArithmeticError, ValueError, OverflowError):
        return None
    if value is None or not math.isfinite(value):
        return None
    return value


def _fold(node: exp.Expr | None) -> float | None:
    if node is None:
        return None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return None
        return float(node.this)
    if isinstance(node, (exp.Paren, exp.Alias)):
        return _fold(node.this)
    if isinstance(node, exp.Neg):
        value = _fold(node.this)
        return None if value is None else -value
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        left, right = _fold(node.this), _fold(node.expression)
        if left is None or right is None:
            return None
        if isinstance(node, exp.Add):
            return left + right
        if isinstance(node, exp.Sub):
            return left - right
        if isinstance(node, exp.Mul):
            return left * right
        if right == 0:
            return None
        if node.this.is_int and node.expression.is_int:
            return float(int(left / right))
        return left / right
    if isinstance(node, exp.Anonymous):
        name = node.name.upper()
        args = [_fold(arg) for arg in node.expressions]
        if any(arg is None for arg in args):
            return None
        if name == "PI" and not args:
            return math.pi
        if name in _UNARY and len(args) == 1:
            return float(_UNARY[name](args[0]))  # type: ignore[arg-type]
        if name == "POWER" and len(args) == 2:
            return float(args[0] ** args[1])  # type: ignore[operator]
    return None


def constant_string(node: exp.Expr | None) -> str | None:
    """Return the text of a string literal (possibly parenthesized), or None."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    return None
