"""Operand type rules, checked before PostgreSQL would reject a query.

ADQL leaves most type rules to the database; PostgreSQL enforces them at
execution, with messages about its own types.  These checks find the same
problems at translation time and explain them in ADQL terms: comparing a
number with a string, a CASE whose branches have different types, SUM of a
string, CAST of a geometry, ``||`` without a string.
"""

from __future__ import annotations

from sqlglot import exp

from adql.types import AdqlType, infer_type

__all__ = ["category", "check_operands", "comparable"]

_CAST_FROM_BOOLEAN = {exp.DataType.Type.INT, exp.DataType.Type.CHAR, exp.DataType.Type.VARCHAR}
_TEXT_TARGETS = {exp.DataType.Type.CHAR, exp.DataType.Type.VARCHAR}


def category(node: exp.Expr) -> str:
    """Return the comparison category of an ADQL expression.

    One of ``number``, ``text``, ``literal`` (a string literal, which
    PostgreSQL can also read as a timestamp), ``timestamp``, ``boolean``,
    ``geometry`` or ``unknown`` (NULL).
    """
    value_type = infer_type(node)
    inner = node
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Literal) and inner.is_string:
        return "literal"
    return _category_of(value_type)


def _category_of(value_type: AdqlType) -> str:
    if value_type.is_unknown:
        return "unknown"
    if value_type.geometry:
        return "geometry"
    if value_type.is_timestamp:
        return "timestamp"
    if value_type.is_numeric:
        return "number"
    if value_type.is_boolean:
        return "boolean"
    if value_type.is_string:
        return "text"
    return value_type.datatype or "unknown"


def comparable(left: exp.Expr, right: exp.Expr) -> bool:
    """Return True if PostgreSQL can compare the two values.

    >>> from sqlglot import exp
    >>> comparable(exp.Literal.number(1), exp.Literal.string("a"))
    False
    >>> comparable(exp.Literal.string("2024-01-01"), exp.Literal.string("b"))
    True
    """
    a, b = category(left), category(right)
    if "unknown" in (a, b):
        return True
    if "geometry" in (a, b):
        return False
    if a == b:
        return True
    return {a, b} in ({"literal", "text"}, {"literal", "timestamp"})


def _describe(node: exp.Expr) -> str:
    return infer_type(node).describe()


def check_operands(node: exp.Expr) -> tuple[str, str] | None:
    """Return (problem, hint) if ``node``'s operands cannot work together, else None."""
    if isinstance(node, exp.In) and not node.args.get("query"):
        for value in node.expressions:
            if not comparable(node.this, value):
                return f"IN compares {_describe(node.this)} with {_describe(value)}", "use values of one type"
    elif isinstance(node, exp.In):
        query = node.args["query"]
        query = query.this if isinstance(query, exp.Subquery) else query
        single = isinstance(query, exp.Select) and len(query.expressions) == 1
        if single and not comparable(node.this, query.expressions[0]):
            return "IN compares values of different types with its subquery", "select values of the same type"
    elif isinstance(node, exp.Between):
        for bound in (node.args["low"], node.args["high"]):
            if not comparable(node.this, bound):
                return f"BETWEEN compares {_describe(node.this)} with {_describe(bound)}", "use bounds of the same type"
    elif isinstance(node, exp.Case):
        return _same_types(
            [branch.args["true"] for branch in node.args.get("ifs") or []]
            + ([node.args["default"]] if node.args.get("default") is not None else []),
            "CASE",
        )
    elif isinstance(node, exp.Anonymous) and node.name.upper() == "COALESCE":
        return _same_types(list(node.expressions), "COALESCE")
    elif isinstance(node, exp.DPipe):
        kinds = {category(node.this), category(node.expression)}
        if not kinds & {"text", "literal", "unknown"}:
            return "|| joins strings", "CAST one operand to VARCHAR"
        if "geometry" in kinds:
            return "|| cannot join geometries", "use COORD1 and COORD2"
    elif isinstance(node, exp.Cast):
        return _cast_problem(node)
    elif isinstance(node, (exp.Sum, exp.Avg)):
        argument = node.this.expressions[0] if isinstance(node.this, exp.Distinct) else node.this
        kind = category(argument)
        if kind not in ("number", "unknown"):
            return f"{node.key.upper()} needs numbers but was given {_describe(argument)}", "aggregate a numeric column"
    elif isinstance(node, (exp.Min, exp.Max)):
        argument = node.this.expressions[0] if isinstance(node.this, exp.Distinct) else node.this
        if category(argument) in ("boolean", "geometry"):
            return (
                f"{node.key.upper()} cannot order {_describe(argument)}",
                "aggregate a number, string or timestamp",
            )
    return None


def _same_types(values: list[exp.Expr], what: str) -> tuple[str, str] | None:
    known = [value for value in values if category(value) != "unknown"]
    for value in known[1:]:
        if not comparable(known[0], value) or category(value) == "geometry":
            return (
                f"{what} mixes {_describe(known[0])} and {_describe(value)}",
                "CAST the values to one type",
            )
    return None


def _cast_problem(node: exp.Cast) -> tuple[str, str] | None:
    source = category(node.this)
    target = node.args["to"].this
    if source == "geometry":
        return "geometries cannot be CAST", "use COORD1, COORD2 or AREA to get numbers"
    if source == "boolean" and target not in _CAST_FROM_BOOLEAN:
        return "a boolean can only be CAST to INTEGER, CHAR or VARCHAR", "CAST to INTEGER first"
    if source == "timestamp" and target not in (*_TEXT_TARGETS, exp.DataType.Type.TIMESTAMP):
        return "a timestamp can only be CAST to CHAR, VARCHAR or TIMESTAMP", "compare timestamps directly"
    if source == "number" and target == exp.DataType.Type.TIMESTAMP:
        return "a number cannot be CAST to TIMESTAMP", "write the timestamp as a string"
    return None
