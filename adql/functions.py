"""The ADQL functions and optional features this translator implements.

One table, :data:`FUNCTIONS`, lists every ADQL function with its arity, the
TAPRegExt feature it belongs to (``None`` for the core language) and its
result type; :data:`OPERATOR_FEATURES` does the same for optional clauses and
operators.  The grammar check, the type rules and the published capabilities
are all derived from these tables, so a function cannot be advertised without
being implemented or implemented without being checked.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADQL_BITWISE",
    "ADQL_COMMON_TABLE",
    "ADQL_CONDITIONAL",
    "ADQL_GEO",
    "ADQL_OFFSET",
    "ADQL_SETS",
    "ADQL_STRING",
    "ADQL_TYPE",
    "ADQL_UNIT",
    "ALL_FEATURES",
    "FUNCTIONS",
    "OPERATOR_FEATURES",
    "UDF",
    "Feature",
    "FunctionSpec",
]

_TAPREGEXT = "ivo://ivoa.net/std/TAPRegExt"
ADQL_GEO = f"{_TAPREGEXT}#features-adqlgeo"
ADQL_STRING = f"{_TAPREGEXT}#features-adql-string"
ADQL_SETS = f"{_TAPREGEXT}#features-adql-sets"
ADQL_COMMON_TABLE = f"{_TAPREGEXT}#features-adql-common-table"
ADQL_TYPE = f"{_TAPREGEXT}#features-adql-type"
ADQL_CONDITIONAL = f"{_TAPREGEXT}#features-adql-conditional"
ADQL_UNIT = f"{_TAPREGEXT}#features-adql-unit"
ADQL_BITWISE = f"{_TAPREGEXT}#features-adql-bitwise"
ADQL_OFFSET = f"{_TAPREGEXT}#features-adql-offset"
UDF = f"{_TAPREGEXT}#features-udf"


@dataclass(frozen=True)
class Feature:
    """One optional ADQL language feature as TAPRegExt names it.

    Attributes
    ----------
    type
        The TAPRegExt feature-group URI.
    form
        The feature's name within the group, e.g. ``CONTAINS``.
    description
        One line for the capabilities document.
    """

    type: str
    form: str
    description: str

    @property
    def key(self) -> str:
        """Return ``type#form``-like identifier used in messages."""
        return f"{self.type}!{self.form}"


@dataclass(frozen=True)
class FunctionSpec:
    """An ADQL function: its arity, feature and result type.

    Attributes
    ----------
    name
        Upper-case ADQL name.
    min_args, max_args
        Accepted argument counts (``max_args`` None means unbounded).
    feature
        The optional feature, or None for core ADQL.
    returns
        Result kind: ``double``, ``int``, ``string``, ``point``, ``circle``,
        ``polygon``, ``region``, ``timestamp``, ``same`` (type of the first
        argument) or ``predicate`` (the 0/1 integer of CONTAINS/INTERSECTS).
    signature
        Human-readable call form for messages.
    arg_counts
        Exact allowed counts when they are not a contiguous range.
    """

    name: str
    min_args: int
    max_args: int | None
    feature: Feature | None
    returns: str
    signature: str
    arg_counts: tuple[int, ...] | None = None

    def accepts(self, count: int) -> bool:
        """Return True if the function accepts ``count`` arguments."""
        if self.arg_counts is not None:
            return count in self.arg_counts
        if count < self.min_args:
            return False
        return self.max_args is None or count <= self.max_args


def _geo(form: str, description: str) -> Feature:
    return Feature(ADQL_GEO, form, description)


_GEO = {
    "AREA": _geo("AREA", "Area of a geometry in square degrees."),
    "BOX": _geo("BOX", "Box with great-circle sides, by centre, width and height (deprecated)."),
    "CENTROID": _geo("CENTROID", "Centre of a circle or (constant) polygon."),
    "CIRCLE": _geo("CIRCLE", "Circle by centre and radius in degrees (at most 90)."),
    "CONTAINS": _geo("CONTAINS", "1 if the first geometry lies within the second."),
    "COORD1": _geo("COORD1", "Longitude of a point in degrees."),
    "COORD2": _geo("COORD2", "Latitude of a point in degrees."),
    "COORDSYS": _geo("COORDSYS", "Coordinate system of a geometry (always ICRS here)."),
    "DISTANCE": _geo("DISTANCE", "Great-circle distance in degrees (two points or four numbers)."),
    "INTERSECTS": _geo("INTERSECTS", "1 if two geometries overlap."),
    "POINT": _geo("POINT", "Point by longitude and latitude in degrees."),
    "POLYGON": _geo("POLYGON", "Polygon with great-circle edges by its vertices."),
    "REGION": _geo("REGION", "Region from an STC-S string (Position, Circle, Box, Polygon, Union...)."),
}

_STRING_LOWER = Feature(ADQL_STRING, "LOWER", "Lower-case a string.")
_STRING_UPPER = Feature(ADQL_STRING, "UPPER", "Upper-case a string.")
_STRING_ILIKE = Feature(ADQL_STRING, "ILIKE", "Case-insensitive LIKE.")
_COALESCE = Feature(ADQL_CONDITIONAL, "COALESCE", "First non-NULL argument.")
_IN_UNIT = Feature(ADQL_UNIT, "IN_UNIT", "Convert a value with a known unit to another unit.")
_CAST = Feature(ADQL_TYPE, "CAST", "Convert to SMALLINT, INTEGER, BIGINT, REAL, DOUBLE, CHAR, VARCHAR, TIMESTAMP.")

OPERATOR_FEATURES: dict[str, Feature] = {
    "UNION": Feature(ADQL_SETS, "UNION", "Union of two query results."),
    "EXCEPT": Feature(ADQL_SETS, "EXCEPT", "Rows of the first result not in the second."),
    "INTERSECT": Feature(ADQL_SETS, "INTERSECT", "Rows common to two query results."),
    "WITH": Feature(ADQL_COMMON_TABLE, "WITH", "Named subqueries (common table expressions)."),
    "CAST": _CAST,
    "ILIKE": _STRING_ILIKE,
    "OFFSET": Feature(ADQL_OFFSET, "OFFSET", "Skip the first rows of the result."),
    "BIT_AND": Feature(ADQL_BITWISE, "BIT_AND", "Bitwise AND of integers (x & y)."),
    "BIT_OR": Feature(ADQL_BITWISE, "BIT_OR", "Bitwise OR of integers (x | y)."),
    "BIT_XOR": Feature(ADQL_BITWISE, "BIT_XOR", "Bitwise XOR of integers (x ^ y)."),
    "BIT_NOT": Feature(ADQL_BITWISE, "BIT_NOT", "Bitwise NOT of an integer (~x)."),
}


def _spec(
    name: str,
    lo: int,
    hi: int | None,
    returns: str,
    signature: str,
    feature: Feature | None = None,
    counts: tuple[int, ...] | None = None,
) -> FunctionSpec:
    return FunctionSpec(name, lo, hi, feature, returns, signature, counts)


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        # Mathematical functions (ADQL 2.1 section 2.3).
        _spec("ABS", 1, 1, "same", "ABS(x)"),
        _spec("CEILING", 1, 1, "double", "CEILING(x)"),
        _spec("DEGREES", 1, 1, "double", "DEGREES(x)"),
        _spec("EXP", 1, 1, "double", "EXP(x)"),
        _spec("FLOOR", 1, 1, "double", "FLOOR(x)"),
        _spec("LOG", 1, 1, "double", "LOG(x)"),
        _spec("LOG10", 1, 1, "double", "LOG10(x)"),
        _spec("MOD", 2, 2, "mod", "MOD(x, y)"),
        _spec("PI", 0, 0, "double", "PI()"),
        _spec("POWER", 2, 2, "double", "POWER(x, y)"),
        _spec("RADIANS", 1, 1, "double", "RADIANS(x)"),
        _spec("RAND", 0, 1, "double", "RAND([seed])"),
        _spec("ROUND", 1, 2, "double", "ROUND(x [, n])"),
        _spec("SQRT", 1, 1, "double", "SQRT(x)"),
        _spec("TRUNCATE", 1, 2, "double", "TRUNCATE(x [, n])"),
        # Trigonometric functions.
        _spec("ACOS", 1, 1, "double", "ACOS(x)"),
        _spec("ASIN", 1, 1, "double", "ASIN(x)"),
        _spec("ATAN", 1, 1, "double", "ATAN(x)"),
        _spec("ATAN2", 2, 2, "double", "ATAN2(y, x)"),
        _spec("COS", 1, 1, "double", "COS(x)"),
        _spec("COT", 1, 1, "double", "COT(x)"),
        _spec("SIN", 1, 1, "double", "SIN(x)"),
        _spec("TAN", 1, 1, "double", "TAN(x)"),
        # Timestamp constructor (type system section).
        _spec("TIMESTAMP", 1, 1, "timestamp", "TIMESTAMP('YYYY-MM-DD[Thh:mm:ss]')"),
        # Geometry (optional feature adqlgeo).
        _spec("AREA", 1, 1, "double", "AREA(geometry)", _GEO["AREA"]),
        _spec(
            "BOX",
            3,
            5,
            "polygon",
            "BOX([coordsys,] ra, dec, width, height) or BOX([coordsys,] point, width, height)",
            _GEO["BOX"],
        ),
        _spec("CENTROID", 1, 1, "point", "CENTROID(geometry)", _GEO["CENTROID"]),
        _spec(
            "CIRCLE",
            2,
            4,
            "circle",
            "CIRCLE([coordsys,] ra, dec, radius) or CIRCLE([coordsys,] point, radius)",
            _GEO["CIRCLE"],
        ),
        _spec("CONTAINS", 2, 2, "predicate", "CONTAINS(geometry, geometry)", _GEO["CONTAINS"]),
        _spec("COORD1", 1, 1, "double", "COORD1(point)", _GEO["COORD1"]),
        _spec("COORD2", 1, 1, "double", "COORD2(point)", _GEO["COORD2"]),
        _spec("COORDSYS", 1, 1, "string", "COORDSYS(geometry)", _GEO["COORDSYS"]),
        _spec(
            "DISTANCE",
            2,
            4,
            "double",
            "DISTANCE(point, point) or DISTANCE(ra1, dec1, ra2, dec2)",
            _GEO["DISTANCE"],
            (2, 4),
        ),
        _spec("INTERSECTS", 2, 2, "predicate", "INTERSECTS(geometry, geometry)", _GEO["INTERSECTS"]),
        _spec("POINT", 2, 3, "point", "POINT([coordsys,] ra, dec)", _GEO["POINT"]),
        _spec(
            "POLYGON",
            3,
            None,
            "polygon",
            "POLYGON([coordsys,] ra1, dec1, ra2, dec2, ra3, dec3, ...) or POLYGON(p1, p2, p3, ...)",
            _GEO["POLYGON"],
        ),
        _spec("REGION", 1, 1, "region", "REGION('STC-S text')", _GEO["REGION"]),
        # Optional string functions.
        _spec("LOWER", 1, 1, "string", "LOWER(string)", _STRING_LOWER),
        _spec("UPPER", 1, 1, "string", "UPPER(string)", _STRING_UPPER),
        # Optional conditional and unit functions.
        _spec("COALESCE", 1, None, "same", "COALESCE(x, y, ...)", _COALESCE),
        _spec("IN_UNIT", 2, 2, "in_unit", "IN_UNIT(x, 'unit')", _IN_UNIT),
    )
}

AGGREGATES = ("COUNT", "SUM", "AVG", "MIN", "MAX")
"""ADQL set functions (parsed by sqlglot into its aggregate classes)."""


def _collect_features() -> tuple[Feature, ...]:
    seen: dict[tuple[str, str], Feature] = {}
    for spec in FUNCTIONS.values():
        if spec.feature is not None:
            seen[(spec.feature.type, spec.feature.form)] = spec.feature
    for feature in OPERATOR_FEATURES.values():
        seen[(feature.type, feature.form)] = feature
    return tuple(sorted(seen.values(), key=lambda f: (f.type, f.form)))


ALL_FEATURES: tuple[Feature, ...] = _collect_features()
"""Every optional feature the translator implements, sorted by type and form."""
