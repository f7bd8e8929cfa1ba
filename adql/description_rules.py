"""Recognise restrictors in a resolved WHERE clause.

Builds the restriction tree of :mod:`adql.regions` from ADQL conditions:
``CONTAINS``/``INTERSECTS`` of a table position in a constant region (either
comparison order, 1 or 0), ``DISTANCE`` of a table position to a constant
point below a constant radius, comparisons and ``BETWEEN`` on position
columns (merged per table within an AND), and ``=``, ``IN``, ``BETWEEN`` and
range comparisons on director keys.  Everything else is an
:class:`~adql.regions.OtherPredicate`.
"""

from __future__ import annotations

from sqlglot import exp

from adql.errors import AdqlError
from adql.folding import constant_number
from adql.geometry import GeoValue
from adql.refs import TableRef
from adql.regions import (
    AndNode,
    BoxSpec,
    CircleSpec,
    DirectorKeyRestrictor,
    NotNode,
    OrNode,
    OtherPredicate,
    PolygonSpec,
    RaDecRangeSpec,
    Region,
    RestrictionNode,
    SpatialRestrictor,
)
from adql.resolve import BINDING_KEY
from adql.spatial import SpatialTranslator, unwrap
from adql.stcs import StcsShape

__all__ = ["restriction_tree"]

_FLIP = {exp.LT: exp.GT, exp.LTE: exp.GTE, exp.GT: exp.LT, exp.GTE: exp.LTE, exp.EQ: exp.EQ}
_OPERATOR = {exp.EQ: "=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}


def _binding(node: exp.Expr) -> tuple[TableRef, str] | None:
    node = unwrap(node)
    if isinstance(node, exp.Column) and node._meta:
        binding = node._meta.get(BINDING_KEY)
        if binding is not None and binding[0].ref is not None:
            return binding[0].ref, binding[1].name
    return None


def _constant(node: exp.Expr) -> int | float | str | None:
    node = unwrap(node)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this)
        if node.is_int:
            return int(node.this)
    if isinstance(node, exp.Neg) and isinstance(unwrap(node.this), exp.Literal) and unwrap(node.this).is_int:
        return -int(unwrap(node.this).this)
    return constant_number(node)


class _Builder:
    def __init__(self, text: str) -> None:
        self.spatial = SpatialTranslator(text, lambda node: node.copy())

    def tree(self, node: exp.Expr) -> RestrictionNode:
        node = unwrap(node)
        if isinstance(node, exp.And):
            children: list[RestrictionNode] = []
            for part in node.flatten():
                child = self.tree(part)
                children.extend(child.children if isinstance(child, AndNode) else [child])
            return AndNode(tuple(_merge_ranges(children)))
        if isinstance(node, exp.Or):
            children = []
            for part in node.flatten():
                child = self.tree(part)
                children.extend(child.children if isinstance(child, OrNode) else [child])
            return OrNode(tuple(children))
        if isinstance(node, exp.Not):
            return NotNode(self.tree(node.this))
        try:
            found = self.leaf(node)
        except AdqlError:
            found = None
        return found if found is not None else OtherPredicate(node.sql(dialect="postgres"))

    def leaf(self, node: exp.Expr) -> RestrictionNode | None:
        if isinstance(node, (exp.EQ, exp.NEQ)):
            for call, other in ((node.this, node.expression), (node.expression, node.this)):
                call = unwrap(call)
                value = _constant(other)
                if (
                    isinstance(call, exp.Anonymous)
                    and call.name.upper() in ("CONTAINS", "INTERSECTS")
                    and value in (0, 1)
                ):
                    found = self.containment(call)
                    if found is None:
                        return None
                    return found if (value == 1) == isinstance(node, exp.EQ) else NotNode(found)
        if isinstance(node, (exp.LT, exp.LTE, exp.GT, exp.GTE)):
            for call, other, cls in (
                (node.this, node.expression, type(node)),
                (node.expression, node.this, _FLIP[type(node)]),
            ):
                call = unwrap(call)
                if isinstance(call, exp.Anonymous) and call.name.upper() == "DISTANCE" and cls in (exp.LT, exp.LTE):
                    return self.distance(call, other)
        if isinstance(node, exp.Between):
            return self.between(node)
        if isinstance(node, (exp.EQ, exp.LT, exp.LTE, exp.GT, exp.GTE)):
            return self.comparison(node)
        if isinstance(node, exp.In) and not node.args.get("query"):
            return self.in_list(node)
        return None

    # --------------------------------------------------------------- spatial

    def position_of(self, node: exp.Expr) -> TableRef | None:
        node = unwrap(node)
        if not (isinstance(node, exp.Anonymous) and node.name.upper() == "POINT"):
            return None
        args = [a for a in node.expressions if not (isinstance(a, exp.Literal) and a.is_string)]
        if len(args) != 2:
            return None
        return self.position_pair(args[0], args[1])

    def position_pair(self, ra: exp.Expr, dec: exp.Expr) -> TableRef | None:
        ra_binding, dec_binding = _binding(ra), _binding(dec)
        if ra_binding is None or dec_binding is None:
            return None
        ref, ra_name = ra_binding
        other_ref, dec_name = dec_binding
        table = ref.table
        if other_ref.occurrence != ref.occurrence or table.ra_column is None:
            return None
        if ra_name == table.ra_column and dec_name == table.dec_column:
            return ref
        return None

    def region_of(self, node: exp.Expr) -> RestrictionNode | None:
        if any(isinstance(n, exp.Column) for n in node.walk()):
            return None
        value = self.spatial.geo(node)
        if value.kind == "region" and value.shape is not None:
            return _shape_marker(value.shape)
        return _region(value)

    def containment(self, call: exp.Anonymous) -> RestrictionNode | None:
        first, second = call.expressions
        ref = self.position_of(first)
        if ref is None and call.name.upper() == "INTERSECTS":
            ref = self.position_of(second)
            first, second = second, first
        if ref is None:
            return None
        region = self.region_of(second)
        if region is None:
            return None
        predicate = "contains" if call.name.upper() == "CONTAINS" else "intersects"
        return _attach(region, ref, predicate)

    def distance(self, call: exp.Anonymous, radius: exp.Expr) -> RestrictionNode | None:
        radius_value = constant_number(radius)
        if radius_value is None or radius_value < 0:
            return None
        args = list(call.expressions)
        pairs = []
        if len(args) == 4:
            pairs = [((args[0], args[1]), (args[2], args[3])), ((args[2], args[3]), (args[0], args[1]))]
            for (ra, dec), (c_ra, c_dec) in pairs:
                ref = self.position_pair(ra, dec)
                center = (constant_number(c_ra), constant_number(c_dec))
                if ref is not None and None not in center:
                    return _circle(ref, center, radius_value)  # type: ignore[arg-type]  # checked not None
            return None
        for position, other in ((args[0], args[1]), (args[1], args[0])):
            ref = self.position_of(position)
            if ref is None or any(isinstance(n, exp.Column) for n in other.walk()):
                continue
            value = self.spatial.geo(other)
            if value.kind == "point" and value.constant is not None:
                return _circle(ref, value.constant, radius_value)
        return None

    # ---------------------------------------------------- ranges and keys

    def between(self, node: exp.Between) -> RestrictionNode | None:
        binding = _binding(node.this)
        low, high = _constant(node.args["low"]), _constant(node.args["high"])
        if binding is None or low is None or high is None:
            return None
        ref, column = binding
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            found = _range(ref, column, float(low), float(high))
            if found is not None:
                return found
        if column == ref.table.director_key and not isinstance(low, str) and not isinstance(high, str):
            return DirectorKeyRestrictor(ref, column, "BETWEEN", low=low, high=high)
        return None

    def comparison(self, node: exp.Expr) -> RestrictionNode | None:
        for side, other, cls in (
            (node.this, node.expression, type(node)),
            (node.expression, node.this, _FLIP[type(node)]),
        ):
            binding = _binding(side)
            value = _constant(other)
            if binding is None or value is None:
                continue
            ref, column = binding
            if isinstance(value, (int, float)) and cls is not exp.EQ:
                low = float(value) if cls in (exp.GT, exp.GTE) else None
                high = float(value) if cls in (exp.LT, exp.LTE) else None
                found = _range(ref, column, low, high)
                if found is not None:
                    return found
            if column == ref.table.director_key:
                operator = _OPERATOR[cls]
                if operator == "=":
                    return DirectorKeyRestrictor(ref, column, "=", values=(value,))
                if isinstance(value, str):
                    return None
                low = value if operator in (">", ">=") else None
                high = value if operator in ("<", "<=") else None
                return DirectorKeyRestrictor(ref, column, operator, low=low, high=high)  # type: ignore[arg-type]
        return None

    def in_list(self, node: exp.In) -> RestrictionNode | None:
        binding = _binding(node.this)
        if binding is None:
            return None
        ref, column = binding
        if column != ref.table.director_key:
            return None
        values = [_constant(value) for value in node.expressions]
        if any(value is None for value in values):
            return None
        return DirectorKeyRestrictor(ref, column, "IN", values=tuple(values))  # type: ignore[arg-type]


def _range(ref: TableRef, column: str, low: float | None, high: float | None) -> SpatialRestrictor | None:
    table = ref.table
    if table.ra_column is None:
        return None
    if column == table.ra_column:
        spec = RaDecRangeSpec(ra_min=low if low is not None else 0.0, ra_max=high if high is not None else 360.0)
    elif column == table.dec_column:
        spec = RaDecRangeSpec(dec_min=low if low is not None else -90.0, dec_max=high if high is not None else 90.0)
    else:
        return None
    return SpatialRestrictor(ref, spec, "range")


def _merge_ranges(children: list[RestrictionNode]) -> list[RestrictionNode]:
    merged: dict[int, SpatialRestrictor] = {}
    result: list[RestrictionNode] = []
    for child in children:
        if isinstance(child, SpatialRestrictor) and isinstance(child.region, RaDecRangeSpec):
            key = child.table.occurrence
            if key in merged:
                old = merged[key].region
                new = child.region
                assert isinstance(old, RaDecRangeSpec)
                combined = RaDecRangeSpec(
                    max(old.ra_min, new.ra_min),
                    min(old.ra_max, new.ra_max),
                    max(old.dec_min, new.dec_min),
                    min(old.dec_max, new.dec_max),
                )
                index = result.index(merged[key])
                merged[key] = SpatialRestrictor(child.table, combined, "range")
                result[index] = merged[key]
                continue
            merged[key] = child
        result.append(child)
    return result


class _Marker:
    """A region tree not yet attached to a table (compound STC-S)."""

    def __init__(self, kind: str, children: list[_Marker], region: Region | None = None) -> None:
        self.kind = kind
        self.children = children
        self.region = region


def _region(value: GeoValue) -> _Marker | None:
    if value.constant is None:
        return None
    if value.kind == "circle":
        ra, dec, radius = value.constant
        return _Marker("leaf", [], CircleSpec(ra, dec, radius))
    if value.kind == "polygon":
        if value.box is not None:
            return _Marker("leaf", [], BoxSpec(*value.box))
        pairs = tuple(zip(value.constant[0::2], value.constant[1::2], strict=True))
        return _Marker("leaf", [], PolygonSpec(pairs))
    return None


def _shape_marker(shape: StcsShape) -> _Marker | None:
    if shape.kind == "not":
        return None
    if not shape.is_compound:
        if shape.kind == "circle":
            return _Marker("leaf", [], CircleSpec(*shape.numbers))
        if shape.kind == "box":
            return _Marker("leaf", [], BoxSpec(*shape.numbers))
        if shape.kind == "polygon":
            return _Marker("leaf", [], PolygonSpec(tuple(zip(shape.numbers[0::2], shape.numbers[1::2], strict=True))))
        return None
    children = [_shape_marker(child) for child in shape.children]
    if shape.kind == "union" and any(child is None for child in children):
        return None
    return _Marker(shape.kind, [child for child in children if child is not None])


def _attach(marker: _Marker, ref: TableRef, predicate: str) -> RestrictionNode:
    if marker.kind == "leaf":
        return SpatialRestrictor(ref, marker.region, predicate)  # type: ignore[arg-type]
    children = tuple(_attach(child, ref, predicate) for child in marker.children)
    if marker.kind == "union":
        return OrNode(children)
    return AndNode(children) if children else OtherPredicate()


def _circle(ref: TableRef, center: tuple[float, ...], radius: float) -> SpatialRestrictor | None:
    if radius > 90:
        return None
    return SpatialRestrictor(ref, CircleSpec(center[0] % 360.0, center[1], radius), "distance")


def restriction_tree(conditions: list[exp.Expr], text: str = "") -> RestrictionNode:
    """Return the restriction tree of the AND of ``conditions``.

    Parameters
    ----------
    conditions
        Resolved ADQL conditions (WHERE and inner-join ON), combined with AND.
    text
        Query text.
    """
    builder = _Builder(text)
    trees = [builder.tree(condition) for condition in conditions]
    if len(trees) == 1:
        return trees[0]
    children: list[RestrictionNode] = []
    for tree in trees:
        children.extend(tree.children if isinstance(tree, AndNode) else [tree])
    return AndNode(tuple(_merge_ranges(children)))
