"""ADQL's non-geometric functions in PostgreSQL, with ADQL's meanings.

The names are mostly shared but the meanings are not: ADQL ``LOG`` is the
natural logarithm (PostgreSQL ``log`` is base 10), ``TRUNCATE`` and
``ROUND`` take a precision for doubles (PostgreSQL only rounds ``numeric``
to a precision), ``MOD`` works on doubles (PostgreSQL's does not), and
``IN_UNIT`` needs the unit of its operand from the catalog.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from adql.errors import AdqlTypeError, AdqlUnsupportedError
from adql.geometry import as_double, fn
from adql.types import AdqlType

__all__ = ["translate_function", "translate_mod"]

_SAME_NAME = {
    "ABS": "abs",
    "CEILING": "ceil",
    "DEGREES": "degrees",
    "EXP": "exp",
    "FLOOR": "floor",
    "LOG10": "log",
    "LOG": "ln",
    "PI": "pi",
    "POWER": "power",
    "RADIANS": "radians",
    "SQRT": "sqrt",
    "ACOS": "acos",
    "ASIN": "asin",
    "ATAN": "atan",
    "ATAN2": "atan2",
    "COS": "cos",
    "COT": "cot",
    "SIN": "sin",
    "TAN": "tan",
}

_NUMERIC_ARGS = {*_SAME_NAME, "MOD", "ROUND", "TRUNCATE", "RAND"}


def _numeric(node: exp.Expr) -> exp.Expr:
    return exp.Cast(this=node, to=exp.DataType.build("numeric"))


def translate_mod(left: exp.Expr, right: exp.Expr, integers: bool) -> exp.Expr:
    """Return ADQL ``MOD(x, y)``: remainder with the sign of ``x``.

    PostgreSQL's ``mod`` exists for integers and numerics only, so doubles
    use ``x - y * trunc(x / y)``.

    >>> from sqlglot import exp
    >>> translate_mod(exp.column("x"), exp.column("y"), False).sql("postgres")
    'x - y * TRUNC(CAST(x AS DOUBLE PRECISION) / y)'
    """
    if integers:
        return fn("mod", left, right)
    quotient = exp.Div(this=as_double(left.copy()), expression=right.copy(), typed=True)
    return exp.Sub(
        this=left,
        expression=exp.Mul(this=_wrap(right), expression=fn("trunc", quotient)),
    )


def _wrap(node: exp.Expr) -> exp.Expr:
    if isinstance(node, (exp.Column, exp.Literal, exp.Anonymous, exp.Paren, exp.Func)):
        return node
    return exp.Paren(this=node)


def _round_like(function: str) -> Callable[[list[exp.Expr], list[AdqlType]], exp.Expr]:
    def build(args: list[exp.Expr], types: list[AdqlType]) -> exp.Expr:
        # numeric rounds half away from zero (double rounds half to even) and
        # is the only type PostgreSQL rounds to a number of places.
        places = args[1] if len(args) > 1 else exp.Literal.number(0)
        return as_double(fn(function, _numeric(args[0]), exp.Cast(this=places, to=exp.DataType.build("int"))))

    return build


def _in_unit(args: list[exp.Expr], types: list[AdqlType], target: str | None) -> exp.Expr:
    source = types[0].unit
    if target is None:
        raise AdqlTypeError(
            "the second argument of IN_UNIT must be a string literal naming a unit",
            hint="write IN_UNIT(ra, 'arcsec')",
        )
    if not source:
        raise AdqlTypeError(
            "IN_UNIT needs a value whose unit is known (a column with a unit)",
            hint="apply IN_UNIT directly to a catalog column",
        )
    factor = unit_factor(source, target)
    if factor == 1.0:
        return as_double(args[0])
    return exp.Mul(this=as_double(args[0]), expression=exp.Literal.number(repr(factor)))


def unit_factor(source: str, target: str) -> float:
    """Return the factor converting a value in ``source`` units to ``target``.

    >>> unit_factor("deg", "arcsec")
    3600.0
    """
    from astropy import units

    try:
        source_unit = _parse_unit(units, source)
    except ValueError:
        raise AdqlUnsupportedError(f"the unit {source!r} of the value is not understood") from None
    try:
        target_unit = _parse_unit(units, target)
    except ValueError:
        raise AdqlTypeError(
            f"{target!r} is not a valid VOUnit", hint="write units like 'deg', 'arcsec', 'mJy', 'km/s'"
        ) from None
    try:
        return float(source_unit.to(target_unit))
    except units.UnitConversionError:
        raise AdqlTypeError(
            f"cannot convert {source!r} to {target!r}", hint="the units measure different quantities"
        ) from None


def _parse_unit(units, text: str):  # type: ignore[no-untyped-def]
    for fmt in ("vounit", "generic"):
        try:
            unit = units.Unit(text, format=fmt, parse_strict="raise")
        except (ValueError, TypeError):
            continue
        if isinstance(unit, units.UnrecognizedUnit):
            continue
        return unit
    raise ValueError(text)


def translate_function(
    name: str, args: list[exp.Expr], types: list[AdqlType], literal_second: str | None = None
) -> exp.Expr:
    """Translate one non-geometric ADQL function call to PostgreSQL.

    Parameters
    ----------
    name
        Upper-case ADQL function name.
    args
        Arguments, already translated.
    types
        ADQL types of the arguments.
    literal_second
        The text of the second argument when it is a string literal
        (IN_UNIT's unit).

    Examples
    --------
    >>> from sqlglot import exp
    >>> from adql.types import DOUBLE
    >>> translate_function("LOG", [exp.column("x")], [DOUBLE]).sql("postgres")
    'LN(x)'
    >>> translate_function("TRUNCATE", [exp.column("x"), exp.Literal.number(2)], [DOUBLE, DOUBLE]).sql("postgres")
    'CAST(TRUNC(CAST(x AS DECIMAL), CAST(2 AS INT)) AS DOUBLE PRECISION)'
    """
    if name in _NUMERIC_ARGS:
        for arg_type in types:
            if not (arg_type.is_numeric or arg_type.is_unknown):
                raise AdqlTypeError(
                    f"{name} needs numeric arguments but was given {arg_type.describe()}",
                    hint="CAST the argument to a number",
                )
    if name in _SAME_NAME:
        return fn(_SAME_NAME[name], *args)
    if name == "MOD":
        return translate_mod(args[0], args[1], all(t.is_integer for t in types))
    if name == "ROUND":
        return _round_like("round")(args, types)
    if name == "TRUNCATE":
        return _round_like("trunc")(args, types)
    if name == "RAND":
        return fn("random")
    if name in ("LOWER", "UPPER"):
        if not (types[0].is_string or types[0].is_unknown):
            raise AdqlTypeError(
                f"{name} needs a string but was given {types[0].describe()}",
                hint="CAST the value to VARCHAR first",
            )
        return exp.Lower(this=args[0]) if name == "LOWER" else exp.Upper(this=args[0])
    if name == "COALESCE":
        return exp.Coalesce(this=args[0], expressions=args[1:])
    if name == "TIMESTAMP":
        if not (types[0].is_string or types[0].is_timestamp):
            raise AdqlTypeError("TIMESTAMP needs a string", hint="write TIMESTAMP('2024-01-31T12:00:00')")
        return exp.Cast(this=args[0], to=exp.DataType.build("timestamp"))
    if name == "IN_UNIT":
        return _in_unit(args, types, literal_second)
    raise AdqlUnsupportedError(f"{name}() is not supported")
