"""Translate ADQL geometry calls and spatial predicates to pgSphere.

:class:`SpatialTranslator` turns geometry-valued ADQL expressions into
:class:`~adql.geometry.GeoValue` objects and spatial predicates into
pgSphere operators:

* ``CONTAINS(a, b)`` is ``a <@ b`` (``a = b`` for two points);
* ``INTERSECTS(a, b)`` is ``a && b``, or a containment when one side is a
  point (as ADQL 2.1 requires);
* ``DISTANCE(p, q) < r`` becomes ``p <@ scircle(q, radians(r))`` followed by
  the exact distance test, so a cone search on a table position uses the
  GiST index on ``spoint(radians(ra), radians(dec))``.

Numeric sub-expressions are translated through a callback so that this
module only knows about geometry.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from adql.errors import AdqlError, AdqlGeometryError, AdqlTypeError, AdqlUnsupportedError, node_span
from adql.folding import constant_number, constant_string
from adql.geometry import (
    GeoValue,
    box_corner_sql,
    box_corners,
    centroid_of,
    circle_value,
    fn,
    num,
    point_value,
    polygon_value,
)
from adql.stcs import StcsError, StcsShape, parse_stcs
from adql.types import AdqlType, infer_type

__all__ = ["GEOMETRY_FUNCTIONS", "PREDICATES", "SpatialTranslator", "check_coordsys"]

GEOMETRY_FUNCTIONS = {"POINT", "CIRCLE", "BOX", "POLYGON", "REGION", "CENTROID"}
PREDICATES = {"CONTAINS", "INTERSECTS"}
GEO_KEY = "adql_geo"
"""Meta key holding the GeoValue a translated geometry node came from."""

_ACCEPTED_FRAMES = ("", "ICRS", "UNKNOWNFRAME", "J2000")


def check_coordsys(text: str) -> None:
    """Accept an empty or ICRS coordinate-system argument, refuse others.

    >>> check_coordsys("ICRS GEOCENTER")
    >>> try:
    ...     check_coordsys("GALACTIC")
    ... except AdqlUnsupportedError as error:
    ...     print(error.error_type, error.hint)
    Unsupported pass '' or 'ICRS'
    """
    words = text.split()
    frame = words[0].upper() if words else ""
    if frame not in _ACCEPTED_FRAMES:
        raise AdqlUnsupportedError(
            f"coordinate system {text!r} is not supported; positions are ICRS",
            feature="coordsys",
            hint="pass '' or 'ICRS'",
        )


def _has_columns(node: exp.Expr) -> bool:
    return any(isinstance(n, exp.Column) for n in node.walk())


def is_call(node: exp.Expr, *names: str) -> bool:
    """Return True if ``node`` is a call of one of the ADQL functions ``names``."""
    while isinstance(node, exp.Paren):
        node = node.this
    return isinstance(node, exp.Anonymous) and node.name.upper() in names


def unwrap(node: exp.Expr) -> exp.Expr:
    """Return ``node`` without enclosing parentheses."""
    while isinstance(node, exp.Paren):
        node = node.this
    return node


class SpatialTranslator:
    """Builds pgSphere SQL for ADQL geometry.

    Parameters
    ----------
    text
        The query text, for error positions.
    scalar
        Callback translating a numeric ADQL expression to PostgreSQL.
    """

    def __init__(self, text: str, scalar: Callable[[exp.Expr], exp.Expr]) -> None:
        self.text = text
        self.scalar = scalar

    def fail(self, error: AdqlError, node: exp.Expr) -> AdqlError:
        return error.with_position(self.text, node_span(node))

    # ------------------------------------------------------------- values

    def geo(self, node: exp.Expr) -> GeoValue:
        """Translate a geometry-valued ADQL expression."""
        try:
            value = self._geo(node)
        except AdqlError as error:
            raise self.fail(error, node) from None
        value.references_columns = _has_columns(node)
        return value

    def _geo(self, node: exp.Expr) -> GeoValue:
        node = unwrap(node)
        if isinstance(node, exp.Anonymous):
            name = node.name.upper()
            if name in GEOMETRY_FUNCTIONS:
                return getattr(self, f"_{name.lower()}")(node)
        value_type = infer_type(node)
        kind = value_type.geometry
        if kind in ("point", "circle", "polygon"):
            return GeoValue(kind, self.scalar(node))
        raise AdqlTypeError(
            f"expected a geometry (POINT, CIRCLE, POLYGON...) but found {value_type.describe()}",
            hint="build one with POINT(ra, dec) or CIRCLE(ra, dec, radius)",
        )

    def _numbers(self, args: list[exp.Expr], what: str) -> list[tuple[exp.Expr, float | None]]:
        result = []
        for arg in args:
            arg_type = infer_type(arg)
            if not (arg_type.is_numeric or arg_type.is_unknown):
                raise self.fail(
                    AdqlTypeError(
                        f"{what} needs numbers (degrees) but was given {arg_type.describe()}",
                        hint="coordinates are numbers in degrees",
                    ),
                    arg,
                )
            result.append((self.scalar(arg), constant_number(arg)))
        return result

    def _split_coordsys(self, node: exp.Anonymous) -> list[exp.Expr]:
        args = list(node.expressions)
        if args and infer_type(args[0]).is_string:
            text = constant_string(args[0])
            if text is None:
                raise self.fail(
                    AdqlTypeError(
                        "the coordinate system must be a string literal", hint="pass 'ICRS' or '', or leave it out"
                    ),
                    args[0],
                )
            try:
                check_coordsys(text)
            except AdqlError as error:
                raise self.fail(error, args[0]) from None
            return args[1:]
        return args

    def _is_point(self, node: exp.Expr) -> bool:
        return infer_type(node).geometry == "point"

    def _point(self, node: exp.Anonymous) -> GeoValue:
        args = self._split_coordsys(node)
        if len(args) != 2:
            raise AdqlTypeError("POINT takes a longitude and a latitude", hint="write POINT(ra, dec)")
        (ra, ra_value), (dec, dec_value) = self._numbers(args, "POINT")
        return point_value(ra, dec, ra_value, dec_value)

    def _center_and_rest(self, node: exp.Anonymous, name: str, rest: int) -> tuple[GeoValue, list[exp.Expr]]:
        args = self._split_coordsys(node)
        if args and self._is_point(args[0]) and len(args) == 1 + rest:
            return self.geo(args[0]), args[1:]
        if len(args) == 2 + rest:
            (ra, ra_value), (dec, dec_value) = self._numbers(args[:2], name)
            return point_value(ra, dec, ra_value, dec_value), args[2:]
        raise AdqlTypeError(f"wrong arguments for {name}", hint=f"see the signature of {name}")

    def _circle(self, node: exp.Anonymous) -> GeoValue:
        center, rest = self._center_and_rest(node, "CIRCLE", 1)
        [(radius, radius_value)] = self._numbers(rest, "CIRCLE")
        try:
            return circle_value(center, radius, radius_value)
        except AdqlError as error:
            raise self.fail(error, rest[0]) from None

    def _box(self, node: exp.Anonymous) -> GeoValue:
        center, rest = self._center_and_rest(node, "BOX", 2)
        (width, width_value), (height, height_value) = self._numbers(rest, "BOX")
        if center.constant is not None and width_value is not None and height_value is not None:
            ra, dec = center.constant
            corners = box_corners(ra, dec, width_value, height_value)
            value = polygon_value([(num(a), num(d)) for a, d in corners], list(corners))
            value.box = (ra, dec, width_value, height_value)
            return value
        for size, size_value in ((width_value, width_value), (height_value, height_value)):
            if size is not None and size_value is not None and not 0 < size_value < 180:
                raise AdqlGeometryError("box sizes must be between 0 and 180 degrees")
        if center.coordinates is not None:
            ra_sql, dec_sql = center.coordinates
        else:
            ra_sql = fn("degrees", fn("long", center.sql))  # type: ignore[arg-type]
            dec_sql = fn("degrees", fn("lat", center.sql))  # type: ignore[arg-type]
        corners_sql = box_corner_sql(ra_sql, dec_sql, width, height)
        return polygon_value(corners_sql, [(None, None)] * 4)

    def _polygon(self, node: exp.Anonymous) -> GeoValue:
        args = self._split_coordsys(node)
        if args and all(self._is_point(arg) for arg in args):
            if len(args) < 3:
                raise AdqlTypeError("POLYGON needs at least three points", hint="write POLYGON(p1, p2, p3)")
            vertices = []
            constants: list[tuple[float | None, float | None]] = []
            for arg in args:
                point = self.geo(arg)
                if point.coordinates is not None:
                    vertices.append(point.coordinates)
                else:
                    vertices.append(
                        (fn("degrees", fn("long", point.sql)), fn("degrees", fn("lat", point.sql)))  # type: ignore[arg-type]
                    )
                constants.append(point.constant if point.constant is not None else (None, None))  # type: ignore[arg-type]
            return polygon_value(vertices, constants)
        if len(args) < 6 or len(args) % 2:
            raise AdqlTypeError(
                "POLYGON needs at least three (ra, dec) pairs or three points",
                hint="write POLYGON(ra1, dec1, ra2, dec2, ra3, dec3)",
            )
        numbers = self._numbers(args, "POLYGON")
        vertices = [(numbers[i][0], numbers[i + 1][0]) for i in range(0, len(numbers), 2)]
        constants = [(numbers[i][1], numbers[i + 1][1]) for i in range(0, len(numbers), 2)]
        return polygon_value(vertices, constants)

    def _centroid(self, node: exp.Anonymous) -> GeoValue:
        return centroid_of(self.geo(node.expressions[0]))

    def _region(self, node: exp.Anonymous) -> GeoValue:
        text = constant_string(node.expressions[0])
        if text is None:
            raise AdqlUnsupportedError(
                "REGION needs a constant STC-S string", feature="REGION", hint="write REGION('Circle ICRS 10 20 1')"
            )
        try:
            shape = parse_stcs(text)
        except StcsError as error:
            raise AdqlGeometryError(
                f"invalid STC-S region: {error}",
                hint="write e.g. REGION('Circle ICRS 10 20 0.5') or REGION('Polygon ICRS 1 2 3 4 5 6')",
            ) from None
        return self.shape(shape)

    def shape(self, shape: StcsShape) -> GeoValue:
        """Translate a parsed STC-S region (compound ones keep their structure)."""
        if shape.is_compound:
            return GeoValue("region", None, shape=shape)
        values = shape.numbers
        if shape.kind == "point":
            return point_value(num(values[0]), num(values[1]), values[0], values[1])
        if shape.kind == "circle":
            center = point_value(num(values[0]), num(values[1]), values[0], values[1])
            return circle_value(center, num(values[2]), values[2])
        if shape.kind == "box":
            corners = box_corners(*values)
            value = polygon_value([(num(a), num(d)) for a, d in corners], list(corners))
            value.box = values  # type: ignore[assignment]
            return value
        pairs = list(zip(values[0::2], values[1::2], strict=True))
        return polygon_value([(num(a), num(d)) for a, d in pairs], list(pairs))

    # --------------------------------------------------------- predicates

    def predicate(self, node: exp.Anonymous) -> exp.Expr:
        """Return the boolean pgSphere test for CONTAINS or INTERSECTS."""
        name = node.name.upper()
        first, second = node.expressions
        left, right = self.geo(first), self.geo(second)
        try:
            if name == "CONTAINS":
                return self.contains(left, right)
            return self.intersects(left, right)
        except AdqlError as error:
            raise self.fail(error, node) from None

    def contains(self, inner: GeoValue, outer: GeoValue) -> exp.Expr:
        """Return the test "``inner`` lies within ``outer``"."""
        if outer.kind == "region":
            assert outer.shape is not None
            return self._compound(inner, outer.shape, self.contains)
        if inner.kind == "region":
            raise AdqlUnsupportedError("a compound REGION can only be the second argument of CONTAINS")
        if inner.kind == "point" and outer.kind == "point":
            return exp.EQ(this=inner.sql, expression=outer.sql)
        if outer.kind == "point":
            raise AdqlTypeError(
                f"CONTAINS({inner.kind.upper()}, POINT) asks whether a region lies within a point",
                hint="CONTAINS(a, b) tests whether a lies inside b; did you mean CONTAINS(POINT, ...)?",
            )
        test = exp.ArrayContainedBy(this=inner.sql, expression=outer.sql)
        mirror = _mirrored_cone(inner, outer)
        return test if mirror is None else exp.Paren(this=exp.and_(test, mirror, copy=False))

    def intersects(self, left: GeoValue, right: GeoValue) -> exp.Expr:
        """Return the test "``left`` and ``right`` overlap"."""
        if right.kind == "region":
            assert right.shape is not None
            if right.shape.kind != "union" and left.kind != "point":
                raise AdqlUnsupportedError(
                    f"INTERSECTS with a compound {right.shape.kind} region is only supported for points"
                )
            return self._compound(left, right.shape, self.intersects)
        if left.kind == "region":
            return self.intersects(right, left)
        if left.kind == "point" or right.kind == "point":
            point, other = (left, right) if left.kind == "point" else (right, left)
            return self.contains(point, other)
        return exp.ArrayOverlaps(this=left.sql, expression=right.sql)

    def _compound(self, value: GeoValue, shape: StcsShape, test: Callable[[GeoValue, GeoValue], exp.Expr]) -> exp.Expr:
        if shape.kind == "not":
            if value.kind != "point":
                raise AdqlUnsupportedError("Not regions are only supported around points")
            return exp.Not(this=exp.Paren(this=self._compound(value, shape.children[0], test)))
        if not shape.is_compound:
            return test(_copy(value), self.shape(shape))
        if shape.kind == "intersection" and value.kind != "point":
            raise AdqlUnsupportedError("Intersection regions are only supported around points")
        parts = [self._compound(value, child, test) for child in shape.children]
        joined = exp.or_(*parts, copy=False) if shape.kind == "union" else exp.and_(*parts, copy=False)
        return exp.Paren(this=joined)

    # ----------------------------------------------------------- distance

    def distance_points(self, node: exp.Anonymous) -> tuple[GeoValue, GeoValue]:
        """Return the two points of a DISTANCE call (two- or four-argument form)."""
        args = list(node.expressions)
        if len(args) == 4:
            numbers = self._numbers(args, "DISTANCE")
            first = point_value(numbers[0][0], numbers[1][0], numbers[0][1], numbers[1][1])
            second = point_value(numbers[2][0], numbers[3][0], numbers[2][1], numbers[3][1])
            first.references_columns = _has_columns(args[0]) or _has_columns(args[1])
            second.references_columns = _has_columns(args[2]) or _has_columns(args[3])
            return first, second
        first, second = self.geo(args[0]), self.geo(args[1])
        for value, arg in ((first, args[0]), (second, args[1])):
            if value.kind != "point":
                raise self.fail(
                    AdqlTypeError(
                        f"DISTANCE needs points but was given a {value.kind.upper()}",
                        hint="use CENTROID(...) for the centre of a region",
                    ),
                    arg,
                )
        return first, second

    def distance(self, node: exp.Anonymous) -> exp.Expr:
        """Return ``DISTANCE(...)`` in degrees."""
        first, second = self.distance_points(node)
        return fn("degrees", fn("dist", first.sql, second.sql))  # type: ignore[arg-type]

    def distance_within(self, node: exp.Anonymous, radius: exp.Expr, strict: bool) -> exp.Expr:
        """Return ``DISTANCE(...) < radius`` (``<=`` unless ``strict``) in indexable form.

        The containment test finds candidates through the GiST index (it
        includes the boundary); the exact distance comparison then decides.
        """
        first, second = self.distance_points(node)
        if second.references_columns and not first.references_columns:
            first, second = second, first
        radius_value = constant_number(radius)
        radius_sql = self.scalar(radius)
        distance = fn("degrees", fn("dist", first.sql.copy(), second.sql.copy()))  # type: ignore[union-attr]
        exact = (exp.LT if strict else exp.LTE)(this=distance, expression=_wrap(radius_sql.copy()))
        if radius_value is not None:
            if not 0 <= radius_value <= 90:
                return exact
            circle_radius = fn("radians", radius_sql)
        else:
            circle_radius = fn(
                "least",
                fn("greatest", fn("radians", radius_sql), exp.Literal.number(0)),
                exp.Div(this=fn("pi"), expression=exp.Literal.number(2), typed=True),
            )
        cone = exp.ArrayContainedBy(this=first.sql, expression=fn("scircle", second.sql, circle_radius))  # type: ignore[arg-type]
        if not (first.references_columns and second.references_columns):
            return exp.Paren(this=exp.and_(cone, exact, copy=False))
        # A crossmatch: either table may be the inner side of the join, so
        # offer the containment both ways and let the planner pick an index.
        mirror = exp.ArrayContainedBy(
            this=second.sql.copy(),  # type: ignore[union-attr]
            expression=fn("scircle", first.sql.copy(), circle_radius.copy()),  # type: ignore[union-attr]
        )
        return exp.Paren(this=exp.and_(cone, mirror, exact, copy=False))


def _mirrored_cone(point: GeoValue, circle: GeoValue) -> exp.Expr | None:
    """Return "centre within radius of point" for a crossmatch-like CONTAINS.

    ``CONTAINS(POINT(a), CIRCLE(POINT(b), r))`` is symmetric in a and b; when
    both come from tables, the mirrored test lets an index on b's table serve.
    """
    center = circle.center
    if not (point.kind == "point" and circle.kind == "circle" and point.references_columns):
        return None
    if center is None or circle.radius is None or center.sql is None:
        return None
    if not any(isinstance(n, exp.Column) for n in center.sql.walk()):
        return None
    return exp.ArrayContainedBy(
        this=center.sql.copy(),
        expression=fn("scircle", point.sql.copy(), fn("radians", circle.radius.copy())),  # type: ignore[union-attr]
    )


def _copy(value: GeoValue) -> GeoValue:
    return GeoValue(
        value.kind,
        value.sql.copy() if value.sql is not None else None,
        value.constant,
        value.coordinates,
        value.vertices,
        value.box,
        value.shape,
        value.references_columns,
        value.center,
        value.radius,
    )


def _wrap(node: exp.Expr) -> exp.Expr:
    if isinstance(node, (exp.Column, exp.Literal, exp.Anonymous, exp.Paren, exp.Func)):
        return node
    return exp.Paren(this=node)


def geometry_kind(value_type: AdqlType) -> str | None:
    """Return the geometry kind of a type, treating BOX and REGION results as polygons."""
    return value_type.geometry
