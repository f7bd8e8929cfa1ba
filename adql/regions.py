"""Sky regions and restriction trees of the query description.

Regions are plain numbers in degrees; the coordinator maps them to the
sharding module's regions.  A restriction tree mirrors the boolean structure
of a WHERE clause with the restrictors the coordinator can use as leaves and
:class:`OtherPredicate` for everything else, so it can tell a cone that
bounds the whole query (reachable from the root through ANDs only) from one
inside an OR or a NOT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adql.refs import TableRef

__all__ = [
    "AndNode",
    "BoxSpec",
    "CircleSpec",
    "DirectorKeyRestrictor",
    "NotNode",
    "OrNode",
    "OtherPredicate",
    "PolygonSpec",
    "RaDecRangeSpec",
    "Region",
    "RestrictionNode",
    "SpatialRestrictor",
    "project_restriction",
]


@dataclass(frozen=True)
class CircleSpec:
    """A cone: centre and radius in degrees."""

    ra: float
    dec: float
    radius: float


@dataclass(frozen=True)
class PolygonSpec:
    """A spherical polygon with great-circle edges; vertices in degrees."""

    vertices: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class BoxSpec:
    """An ADQL BOX: centre, width and height in degrees (great-circle sides)."""

    ra: float
    dec: float
    width: float
    height: float


@dataclass(frozen=True)
class RaDecRangeSpec:
    """A coordinate range from comparisons on a table's position columns.

    Bounds are inclusive and never wrap: ``ra > 350 OR ra < 10`` is two
    ranges under an :class:`OrNode`.  ``ra_min > ra_max`` (or the same for
    dec) means the conditions contradict each other and the range is empty.
    """

    ra_min: float = 0.0
    ra_max: float = 360.0
    dec_min: float = -90.0
    dec_max: float = 90.0

    @property
    def is_empty(self) -> bool:
        """True when no position satisfies the range."""
        return self.ra_min > self.ra_max or self.dec_min > self.dec_max


Region = CircleSpec | PolygonSpec | BoxSpec | RaDecRangeSpec


@dataclass(frozen=True)
class SpatialRestrictor:
    """A condition that keeps only rows whose position lies in a region.

    Attributes
    ----------
    table
        The table occurrence whose position columns are restricted.
    region
        The region.
    predicate
        How it was written: ``contains``, ``intersects``, ``distance`` or ``range``.
    in_and_tree_of_root
        True if the condition is reached from the root of the WHERE clause
        through ANDs only, so it bounds the whole query.
    """

    table: TableRef
    region: Region
    predicate: Literal["contains", "intersects", "distance", "range"]
    in_and_tree_of_root: bool = True


@dataclass(frozen=True)
class DirectorKeyRestrictor:
    """A condition on a table's director-key column.

    ``values`` holds the constants of ``=`` and ``IN``; ``low``/``high`` the
    bounds of ``BETWEEN`` and of ``<``, ``<=``, ``>``, ``>=`` (None when open).
    """

    table: TableRef
    column: str
    operator: Literal["=", "IN", "BETWEEN", "<", "<=", ">", ">="]
    values: tuple[int | float | str, ...] = ()
    low: int | float | None = None
    high: int | float | None = None
    in_and_tree_of_root: bool = True


@dataclass(frozen=True)
class OtherPredicate:
    """A condition the coordinator cannot use to restrict chunks."""

    sql: str = ""


@dataclass(frozen=True)
class AndNode:
    """All children must hold."""

    children: tuple[RestrictionNode, ...]


@dataclass(frozen=True)
class OrNode:
    """At least one child must hold."""

    children: tuple[RestrictionNode, ...]


@dataclass(frozen=True)
class NotNode:
    """The child must not hold."""

    child: RestrictionNode


RestrictionNode = AndNode | OrNode | NotNode | SpatialRestrictor | DirectorKeyRestrictor | OtherPredicate


def project_restriction(node: RestrictionNode, table: TableRef) -> RestrictionNode | None:
    """Return the part of a restriction tree that bounds ``table``'s positions.

    Leaves about other tables, other predicates and NOTs are dropped
    (they never shrink the set of chunks), an OR survives only if every
    branch bounds the table, and None means the table is not bounded.

    >>> from adql.catalog import TableInfo
    >>> ref = TableRef(TableInfo("s", "t", ()), None, ("s", "t"), 0)
    >>> cone = SpatialRestrictor(ref, CircleSpec(1, 2, 3), "contains")
    >>> project_restriction(AndNode((cone, OtherPredicate("x > 1"))), ref) == cone
    True
    >>> project_restriction(OrNode((cone, OtherPredicate("x > 1"))), ref) is None
    True
    """
    if isinstance(node, SpatialRestrictor):
        return node if node.table.occurrence == table.occurrence else None
    if isinstance(node, AndNode):
        kept = [part for child in node.children if (part := project_restriction(child, table)) is not None]
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else AndNode(tuple(kept))
    if isinstance(node, OrNode):
        parts = [project_restriction(child, table) for child in node.children]
        if any(part is None for part in parts):
            return None
        return OrNode(tuple(part for part in parts if part is not None))
    return None
