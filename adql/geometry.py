"""ADQL geometry values as pgSphere expressions, and back to DALI arrays.

ADQL geometries are in degrees on the ICRS sphere; pgSphere works in
radians.  :class:`GeoValue` is one translated geometry: its pgSphere SQL, its
kind, and -- when every argument is a literal -- its value in degrees, which
lets the translator validate it (radius at most 90 degrees, polygons that
pgSphere accepts) and report it to the coordinator as a region.

Points are always built as ``spoint(radians(ra), radians(dec))``, the exact
expression of the GiST index the deploy code creates on every positioned
table, so that containment tests on table positions can use that index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from adql.errors import AdqlGeometryError
from adql.stcs import StcsShape

__all__ = [
    "GeoValue",
    "box_corners",
    "centroid_of",
    "circle_value",
    "dali_array",
    "point_value",
    "polygon_value",
    "spoint_sql",
]


def fn(name: str, *args: exp.Expr) -> exp.Expr:
    """Return a call of the PostgreSQL function ``name``."""
    return exp.Anonymous(this=name, expressions=list(args))


def num(value: float) -> exp.Expr:
    """Return a numeric literal (negative values as a negation)."""
    if value < 0:
        return exp.Neg(this=exp.Literal.number(repr(float(-value))))
    return exp.Literal.number(repr(float(value)))


def as_double(node: exp.Expr) -> exp.Expr:
    """Return ``CAST(node AS DOUBLE PRECISION)``."""
    return exp.Cast(this=node, to=exp.DataType.build("double"))


@dataclass
class GeoValue:
    """A translated geometry.

    Attributes
    ----------
    kind
        ``point``, ``circle``, ``polygon`` or ``region`` (a compound STC-S
        region, usable only as the second argument of CONTAINS/INTERSECTS).
    sql
        pgSphere expression (None for compound regions).
    constant
        Value in degrees when known at translation time: (ra, dec) for
        points, (ra, dec, radius) for circles, vertex pairs for polygons.
    coordinates
        For points built from two ADQL expressions, those expressions
        (translated to PostgreSQL), so DALI output and vertex lists avoid a
        round trip through pgSphere.
    vertices
        For polygons built from vertex expressions, their (ra, dec) SQL.
    box
        (ra, dec, width, height) in degrees when the polygon is a constant BOX.
    shape
        The parsed STC-S of a compound REGION.
    references_columns
        True if the value depends on table columns (it can use an index).
    center, radius
        For circles: the centre point and the radius (degrees) SQL.
    """

    kind: str
    sql: exp.Expr | None
    constant: tuple[float, ...] | None = None
    coordinates: tuple[exp.Expr, exp.Expr] | None = None
    vertices: list[tuple[exp.Expr, exp.Expr]] | None = None
    box: tuple[float, float, float, float] | None = None
    shape: StcsShape | None = None
    references_columns: bool = field(default=False)
    center: GeoValue | None = None
    radius: exp.Expr | None = None

    def __deepcopy__(self, memo: dict) -> GeoValue:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


def spoint_sql(ra: exp.Expr, dec: exp.Expr) -> exp.Expr:
    """Return ``spoint(radians(ra), radians(dec))`` (the indexed expression)."""
    return fn("spoint", fn("radians", ra), fn("radians", dec))


def _check_point(ra: float, dec: float) -> None:
    if not -90.0 <= dec <= 90.0:
        raise AdqlGeometryError(
            f"latitude {dec:g} is outside [-90, 90] degrees", hint="the second coordinate is a declination"
        )


def point_value(ra: exp.Expr, dec: exp.Expr, ra_value: float | None, dec_value: float | None) -> GeoValue:
    """Build a point from translated coordinate expressions."""
    constant = None
    if ra_value is not None and dec_value is not None:
        _check_point(ra_value, dec_value)
        constant = (ra_value % 360.0, dec_value)
    return GeoValue("point", spoint_sql(ra, dec), constant, coordinates=(ra, dec))


def circle_value(center: GeoValue, radius: exp.Expr, radius_value: float | None) -> GeoValue:
    """Build a circle; constant radii must lie in [0, 90] degrees."""
    if radius_value is not None and not 0 <= radius_value <= 90:
        raise AdqlGeometryError(
            f"circle radius {radius_value:g} degrees is outside [0, 90]",
            hint="pgSphere circles have radii of at most 90 degrees; use NOT CONTAINS for the complement",
        )
    sql = fn("scircle", center.sql, fn("radians", radius))  # type: ignore[arg-type]
    constant = None
    if center.constant is not None and radius_value is not None:
        constant = (*center.constant, radius_value)
    value = GeoValue("circle", sql, constant)
    value.center = center
    value.radius = radius
    return value


def _unit_vector(ra: float, dec: float) -> tuple[float, float, float]:
    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def _cross(u: Sequence[float], v: Sequence[float]) -> tuple[float, float, float]:
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _dot(u: Sequence[float], v: Sequence[float]) -> float:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _check_polygon(pairs: list[tuple[float, float]]) -> None:
    """Refuse polygons pgSphere would reject or misread, with a clear message."""
    if len(pairs) < 3:
        raise AdqlGeometryError("a polygon needs at least three vertices", hint="add vertices")
    for ra, dec in pairs:
        _check_point(ra, dec)
    vectors = [_unit_vector(ra, dec) for ra, dec in pairs]
    count = len(vectors)
    for i in range(count):
        a, b = vectors[i], vectors[(i + 1) % count]
        if _dot(a, b) > 1 - 1e-15:
            raise AdqlGeometryError(
                f"polygon vertices {i + 1} and {(i + 1) % count + 1} coincide",
                hint="give distinct vertices",
            )
        if _dot(a, b) < -1 + 1e-12:
            raise AdqlGeometryError(
                f"polygon vertices {i + 1} and {(i + 1) % count + 1} are antipodal, so the edge is undefined",
                hint="split the edge with an intermediate vertex",
            )
    normal = [0.0, 0.0, 0.0]
    for i in range(count):
        c = _cross(vectors[i], vectors[(i + 1) % count])
        normal = [normal[k] + c[k] for k in range(3)]
    if math.sqrt(_dot(normal, normal)) < 1e-12:
        raise AdqlGeometryError(
            "the polygon is degenerate (its vertices lie on one great circle)",
            hint="give at least three vertices that enclose an area",
        )
    # Every edge must turn the same way (pgSphere needs a convex polygon).
    signs = set()
    for i in range(count):
        a, b, c = vectors[i], vectors[(i + 1) % count], vectors[(i + 2) % count]
        turn = _dot(_cross(a, b), c)
        if abs(turn) > 1e-14:
            signs.add(turn > 0)
    if not signs:
        raise AdqlGeometryError(
            "the polygon is degenerate (its vertices lie on one great circle)",
            hint="give at least three vertices that enclose an area",
        )
    if len(signs) > 1:
        raise AdqlGeometryError(
            "the polygon is not convex or its edges cross",
            hint="list the vertices in order around a convex outline; split concave regions with OR",
        )


def polygon_literal(pairs: list[tuple[float, float]]) -> exp.Expr:
    """Return a pgSphere polygon literal for vertices in degrees."""
    text = ",".join(f"({ra!r}d,{dec!r}d)" for ra, dec in pairs)
    return exp.Cast(this=exp.Literal.string("{" + text + "}"), to=exp.DataType.build("spoly", udt=True))


def _concat(parts: list[exp.Expr]) -> exp.Expr:
    result = parts[0]
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part, safe=True)
    return result


def polygon_value(
    vertices: list[tuple[exp.Expr, exp.Expr]], constants: list[tuple[float | None, float | None]]
) -> GeoValue:
    """Build a polygon from vertex coordinate expressions (degrees).

    Constant polygons become literals (after validation); others are built
    at run time from text, which is how pgSphere 1.2 reads polygons.
    """
    if all(ra is not None and dec is not None for ra, dec in constants):
        pairs = [(float(ra), float(dec)) for ra, dec in constants]  # type: ignore[arg-type]
        _check_polygon(pairs)
        normalized = [(ra % 360.0, dec) for ra, dec in pairs]
        return GeoValue("polygon", polygon_literal(pairs), tuple(v for pair in normalized for v in pair))
    parts: list[exp.Expr] = [exp.Literal.string("{")]
    for index, (ra, dec) in enumerate(vertices):
        parts.append(exp.Literal.string("(" if index == 0 else ",("))
        parts.append(exp.Cast(this=as_double(ra), to=exp.DataType.build("text")))
        parts.append(exp.Literal.string("d,"))
        parts.append(exp.Cast(this=as_double(dec), to=exp.DataType.build("text")))
        parts.append(exp.Literal.string("d)"))
    parts.append(exp.Literal.string("}"))
    sql = exp.Cast(this=exp.Paren(this=_concat(parts)), to=exp.DataType.build("spoly", udt=True))
    return GeoValue("polygon", sql, vertices=vertices)


def box_corners(ra: float, dec: float, width: float, height: float) -> list[tuple[float, float]]:
    """Return the four corners (degrees) of an STC box.

    The box's arms run along the coordinate axes at its centre and its sides
    are great circles meeting the arms at right angles, so in a frame
    centred on the box the corners are at longitude +-width/2 and latitude
    +-atan(tan(height/2) * cos(width/2)).

    >>> [(round(a, 6), round(d, 6)) for a, d in box_corners(0, 0, 2, 2)]
    [(359.0, -0.999848), (1.0, -0.999848), (1.0, 0.999848), (359.0, 0.999848)]
    """
    if not (0 < width < 180 and 0 < height < 180):
        raise AdqlGeometryError(
            f"box width {width:g} and height {height:g} must be between 0 and 180 degrees",
            hint="use a POLYGON or several regions for larger areas",
        )
    _check_point(ra, dec)
    half_w = math.radians(width / 2)
    corner_lat = math.atan(math.tan(math.radians(height / 2)) * math.cos(half_w))
    a0, d0 = math.radians(ra), math.radians(dec)
    corners = []
    for lon, lat in ((-half_w, -corner_lat), (half_w, -corner_lat), (half_w, corner_lat), (-half_w, corner_lat)):
        x, y, z = math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)
        x1 = x * math.cos(d0) - z * math.sin(d0)
        z1 = x * math.sin(d0) + z * math.cos(d0)
        big_x = x1 * math.cos(a0) - y * math.sin(a0)
        big_y = x1 * math.sin(a0) + y * math.cos(a0)
        corners.append(
            (math.degrees(math.atan2(big_y, big_x)) % 360.0, math.degrees(math.asin(max(-1.0, min(1.0, z1)))))
        )
    return corners


def box_corner_sql(ra: exp.Expr, dec: exp.Expr, width: exp.Expr, height: exp.Expr) -> list[tuple[exp.Expr, exp.Expr]]:
    """Return SQL for the corners of a box with non-constant arguments.

    Same construction as :func:`box_corners`, written as PostgreSQL
    trigonometry (in degrees, via the ``*d`` functions).
    """
    half_w = exp.Div(this=exp.Paren(this=width), expression=exp.Literal.number(2), typed=True)
    half_h = exp.Div(this=exp.Paren(this=height), expression=exp.Literal.number(2), typed=True)
    corner_lat = fn("atand", exp.Mul(this=fn("tand", half_h), expression=fn("cosd", half_w)))
    corners = []
    for lon_sign, lat_sign in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        lon = half_w.copy() if lon_sign > 0 else exp.Neg(this=half_w.copy())
        lat = corner_lat.copy() if lat_sign > 0 else exp.Neg(this=corner_lat.copy())
        x = exp.Mul(this=fn("cosd", lat.copy()), expression=fn("cosd", lon.copy()))
        y = exp.Mul(this=fn("cosd", lat.copy()), expression=fn("sind", lon.copy()))
        z = fn("sind", lat.copy())
        x1 = exp.Sub(
            this=exp.Mul(this=x, expression=fn("cosd", dec.copy())),
            expression=exp.Mul(this=z.copy(), expression=fn("sind", dec.copy())),
        )
        z1 = exp.Add(
            this=exp.Mul(this=x.copy(), expression=fn("sind", dec.copy())),
            expression=exp.Mul(this=z, expression=fn("cosd", dec.copy())),
        )
        big_x = exp.Sub(
            this=exp.Mul(this=exp.Paren(this=x1), expression=fn("cosd", ra.copy())),
            expression=exp.Mul(this=y.copy(), expression=fn("sind", ra.copy())),
        )
        big_y = exp.Add(
            this=exp.Mul(this=exp.Paren(this=x1.copy()), expression=fn("sind", ra.copy())),
            expression=exp.Mul(this=y, expression=fn("cosd", ra.copy())),
        )
        corners.append((fn("atan2d", big_y, big_x), fn("asind", z1)))
    return corners


def centroid_of(value: GeoValue) -> GeoValue:
    """Return the centroid of a point, circle or constant polygon.

    The centroid of a polygon is the normalised mean of its vertex vectors.
    """
    if value.kind == "point":
        return value
    if value.kind == "circle":
        constant = value.constant[:2] if value.constant else None
        return GeoValue("point", fn("center", value.sql), constant)  # type: ignore[arg-type]
    if value.kind == "polygon" and value.constant is None:
        return GeoValue("point", _from_template(_POLYGON_CENTROID, value.sql))  # type: ignore[arg-type]
    if value.kind == "polygon" and value.constant is not None:
        pairs = list(zip(value.constant[0::2], value.constant[1::2], strict=True))
        vectors = [_unit_vector(ra, dec) for ra, dec in pairs]
        total = [sum(v[k] for v in vectors) for k in range(3)]
        norm = math.sqrt(_dot(total, total))
        ra = math.degrees(math.atan2(total[1], total[0])) % 360.0
        dec = math.degrees(math.asin(max(-1.0, min(1.0, total[2] / norm))))
        return point_value(num(ra), num(dec), ra, dec)
    raise AdqlGeometryError(
        "CENTROID is only supported for points, circles and constant polygons",
        hint="compute the centre from the polygon's vertices",
    )


def dali_array(value: GeoValue) -> exp.Expr:
    """Return the DALI array (degrees) of a geometry, for result columns.

    Points give ``[ra, dec]``, circles ``[ra, dec, radius]``, polygons
    ``[ra1, dec1, ra2, dec2, ...]``.
    """
    if value.constant is not None:
        return exp.Array(expressions=[as_double(num(v)) for v in value.constant])
    if value.kind == "point":
        sql = value.sql
        return exp.Array(
            expressions=[fn("degrees", fn("long", sql.copy())), fn("degrees", fn("lat", sql.copy()))]  # type: ignore[union-attr]
        )
    if value.kind == "circle":
        sql = value.sql
        center = fn("center", sql.copy())  # type: ignore[union-attr]
        return exp.Array(
            expressions=[
                fn("degrees", fn("long", center.copy())),
                fn("degrees", fn("lat", center)),
                fn("degrees", fn("radius", sql.copy())),  # type: ignore[union-attr]
            ]
        )
    if value.kind == "polygon" and value.vertices is not None:
        values: list[exp.Expr] = []
        for ra, dec in value.vertices:
            values.extend([as_double(ra.copy()), as_double(dec.copy())])
        return exp.Array(expressions=values)
    if value.kind == "polygon":
        return _polygon_text_array(value.sql)  # type: ignore[arg-type]
    raise AdqlGeometryError("this region cannot be returned as a column", hint="select its parts instead")


# Fixed SQL templates (no user input); ``polygon`` is replaced by a pgSphere
# polygon expression.  pgSphere 1.2 has no vertex accessor, so vertices are
# read back from its text output, which lists them in radians (the default
# output mode) in order.
_POLYGON_DEGREES = """
SELECT ARRAY(
  SELECT degrees(u.v)
  FROM unnest(CAST(string_to_array(translate(CAST(polygon AS TEXT), '{}() ', ''), ',') AS DOUBLE PRECISION[]))
       WITH ORDINALITY AS u(v, i)
  ORDER BY u.i)
"""
_POLYGON_CENTROID = """
SELECT (SELECT spoint(
          atan2(SUM(cos(p.b) * sin(p.l)), SUM(cos(p.b) * cos(p.l))),
          atan2(SUM(sin(p.b)), sqrt(power(SUM(cos(p.b) * cos(p.l)), 2) + power(SUM(cos(p.b) * sin(p.l)), 2))))
        FROM (SELECT MAX(CASE WHEN u.i % 2 = 1 THEN u.v END) AS l,
                     MAX(CASE WHEN u.i % 2 = 0 THEN u.v END) AS b
              FROM unnest(CAST(string_to_array(translate(CAST(polygon AS TEXT), '{}() ', ''), ',')
                               AS DOUBLE PRECISION[])) WITH ORDINALITY AS u(v, i)
              GROUP BY (u.i + 1) / 2) AS p)
"""


def _from_template(template: str, polygon: exp.Expr) -> exp.Expr:
    """Return the single expression of a template with ``polygon`` substituted."""
    import sqlglot

    tree = sqlglot.parse_one(template, read="postgres")
    for column in list(tree.find_all(exp.Column)):
        if column.name == "polygon" and not column.table:
            column.replace(polygon.copy())
    return tree.expressions[0]


def _polygon_text_array(polygon: exp.Expr) -> exp.Expr:
    """Return the vertices of a pgSphere polygon as a degree array."""
    return _from_template(_POLYGON_DEGREES, polygon)
