"""HEALPix index ranges that bound a child table's rows in a worker query.

Child tables carry no GiST index on their position (see
:data:`dms_db.physical.HEALPIX_LOOKUP_KINDS`); their ``healpix_index`` is the
order-29 index of each row's own position, with a B-tree.  When a query level
bounds a child occurrence's positions (the translator's
:class:`~adql.description.HealpixTarget`), the coordinator ANDs
``healpix_index`` ranges covering that region into the occurrence's chunk
filter.  The ranges are a superset of the region (:meth:`Region.index_ranges`),
and the query's own spatial condition still decides each row, so the answer
cannot change; only the way PostgreSQL finds the rows does.

The restriction tree is evaluated like the chunk set in
:mod:`sharding.coordinator.pruning`: AND intersects, OR unions, anything else
bounds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlglot import exp

from adql.description import AndNode, CircleSpec, HealpixTarget, OrNode, RestrictionNode, SpatialRestrictor
from dms_db.errors import RegionError
from dms_db.physical import HEALPIX_COLUMN, HEALPIX_LOOKUP_KINDS
from sharding.coordinator.pruning import region_of
from sharding.healpix import PixelRange, intersect_ranges, limit_ranges, merge_ranges

__all__ = ["MAX_RANGES", "occurrence_ranges", "range_condition", "restriction_ranges"]

MAX_RANGES = 8
"""Ranges per region and per occurrence: a handful of B-tree range scans, still tight."""

PGSPHERE_TOLERANCE_DEG = math.degrees(1e-8)
"""pgSphere counts a point within 1e-9 rad outside a circle as inside; cones are widened by ten times that."""


def restriction_ranges(node: RestrictionNode) -> list[PixelRange] | None:
    """Order-29 ranges holding every position that can satisfy ``node`` (None: unbounded)."""
    if isinstance(node, SpatialRestrictor):
        return _region_ranges(node)
    if isinstance(node, AndNode):
        bounded = [found for child in node.children if (found := restriction_ranges(child)) is not None]
        if not bounded:
            return None
        result = bounded[0]
        for other in bounded[1:]:
            result = intersect_ranges(result, other)
        return result
    if isinstance(node, OrNode):
        union: list[PixelRange] = []
        for child in node.children:
            found = restriction_ranges(child)
            if found is None:
                return None
            union.extend(found)
        return limit_ranges(union, MAX_RANGES) if union else []
    return None


def _region_ranges(node: SpatialRestrictor) -> list[PixelRange] | None:
    spec = node.region
    if isinstance(spec, CircleSpec):
        spec = CircleSpec(spec.ra, spec.dec, min(spec.radius + PGSPHERE_TOLERANCE_DEG, 180.0))
    try:
        region = region_of(spec)
        if region is None:
            return []
        return region.index_ranges(MAX_RANGES)
    except RegionError:
        return None  # PostgreSQL decides what the region holds; no ranges are added


def occurrence_ranges(targets: Iterable[HealpixTarget]) -> dict[int, list[PixelRange]]:
    """Ranges per table occurrence, for the child occurrences whose positions the level bounds."""
    found: dict[int, list[PixelRange]] = {}
    for target in targets:
        info = target.table.table
        if info.kind not in HEALPIX_LOOKUP_KINDS or info.ra_column is None or target.restriction is None:
            continue
        ranges = restriction_ranges(target.restriction)
        if ranges is not None:
            found[target.table.occurrence] = merge_ranges(ranges)
    return found


def range_condition(ranges: list[PixelRange]) -> exp.Expr:
    """``healpix_index`` within one of ``ranges`` (FALSE for none), for a B-tree bitmap scan."""
    column = exp.column(HEALPIX_COLUMN, quoted=True)
    parts: list[exp.Expr] = [
        exp.and_(
            exp.GTE(this=column.copy(), expression=exp.Literal.number(r.start)),
            exp.LT(this=column.copy(), expression=exp.Literal.number(r.stop)),
        )
        for r in ranges
    ]
    if not parts:
        return exp.false()
    return exp.or_(*parts) if len(parts) > 1 else parts[0]
