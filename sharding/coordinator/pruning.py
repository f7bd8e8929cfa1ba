"""The chunk set of a query level: which chunks can hold rows of its result.

A chunk-local query level (see :mod:`sharding.coordinator.locality`) returns
rows whose partitioned tables all come from one chunk, so a condition that
every result row satisfies bounds the chunks to ask.  The translator's
restriction tree says which conditions those are: a restrictor reached
through ANDs only bounds the whole level, ORs take the union of their
branches, and anything under a NOT (or any other predicate) bounds nothing.

Spatial restrictors give the chunks a region touches.  A child table's rows
live in the chunk of their director's position, and the rows of the
overlap side of a near-neighbour join in the chunk of their partner; both lie
within the catalog's overlap margin of the restricted position, so for them
the region's chunks are grown by their neighbours.  Director-key restrictors
(``=``, ``IN``, ranges) are looked up in the coordinator's director index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import healpy as hp
import numpy as np
from psycopg import sql

from adql.description import (
    AndNode,
    BoxSpec,
    CircleSpec,
    DirectorKeyRestrictor,
    NotNode,
    OrNode,
    PolygonSpec,
    RaDecRangeSpec,
    RestrictionNode,
    SpatialRestrictor,
)
from adql.refs import TableRef
from dms_db.errors import RegionError
from sharding import regions

__all__ = [
    "ALL_CHUNKS",
    "ChunkSet",
    "DirectorIndex",
    "Lookup",
    "chunk_set",
    "director_lookup",
    "grown_chunks",
    "region_of",
]

ChunkSet = frozenset[int] | None
"""A set of chunk ids, or None for every chunk."""

ALL_CHUNKS: ChunkSet = None

DirectorIndex = Callable[[TableRef, DirectorKeyRestrictor], "frozenset[int] | None"]
"""Looks up the chunks of a director-key restrictor (None: cannot tell)."""


def region_of(spec: CircleSpec | PolygonSpec | BoxSpec | RaDecRangeSpec) -> regions.Region | None:
    """The sharding region of a translator region (None for an empty coordinate range)."""
    if isinstance(spec, CircleSpec):
        return regions.Circle(spec.ra, spec.dec, spec.radius)
    if isinstance(spec, PolygonSpec):
        return regions.Polygon(spec.vertices)
    if isinstance(spec, BoxSpec):
        return regions.Box(spec.ra, spec.dec, spec.width, spec.height)
    if spec.is_empty:
        return None
    return regions.RaDecRange(spec.ra_min, spec.ra_max, spec.dec_min, spec.dec_max)


def grown_chunks(chunks: Iterable[int], chunk_order: int, margin_deg: float) -> ChunkSet:
    """Chunks within ``margin_deg`` of ``chunks``: the chunks plus their neighbours.

    Every point within the margin of a chunk lies in that chunk or in one of
    its (up to eight) neighbours when the margin is well below a chunk's
    size; for larger margins the answer is every chunk.
    """
    chunk_list = np.fromiter((int(c) for c in chunks), dtype=np.int64)
    if margin_deg <= 0.0 or chunk_list.size == 0:
        return frozenset(int(c) for c in chunk_list)
    nside = 2**chunk_order
    if margin_deg > 0.25 * np.degrees(hp.nside2resol(nside)):
        return ALL_CHUNKS
    neighbours = hp.get_all_neighbours(nside, chunk_list, nest=True).ravel()
    return frozenset(int(c) for c in np.concatenate([chunk_list, neighbours[neighbours >= 0]]))


class _Evaluator:
    def __init__(
        self,
        chunk_order: int,
        margin_deg: float,
        partitioned: set[int],
        grown: set[int],
        director_index: DirectorIndex,
    ) -> None:
        self.chunk_order = chunk_order
        self.margin_deg = margin_deg
        self.partitioned = partitioned
        self.grown = grown
        self.director_index = director_index

    def evaluate(self, node: RestrictionNode) -> ChunkSet:
        if isinstance(node, AndNode):
            bounded = [s for s in (self.evaluate(child) for child in node.children) if s is not None]
            if not bounded:
                return ALL_CHUNKS
            result = bounded[0]
            for other in bounded[1:]:
                result = result & other
            return result
        if isinstance(node, OrNode):
            union: set[int] = set()
            for child in node.children:
                found = self.evaluate(child)
                if found is None:
                    return ALL_CHUNKS
                union |= found
            return frozenset(union)
        if isinstance(node, NotNode):
            return ALL_CHUNKS
        if isinstance(node, SpatialRestrictor):
            return self.spatial(node)
        if isinstance(node, DirectorKeyRestrictor):
            if node.table.occurrence not in self.partitioned:
                return ALL_CHUNKS
            return self.director_index(node.table, node)
        return ALL_CHUNKS

    def spatial(self, node: SpatialRestrictor) -> ChunkSet:
        occurrence = node.table.occurrence
        if occurrence not in self.partitioned:
            return ALL_CHUNKS
        try:
            region = region_of(node.region)
            if region is None:
                return frozenset()
            if occurrence in self.grown and isinstance(region, regions.Circle):
                # A cone grows exactly: its radius plus the margin.
                wider = regions.Circle(region.ra, region.dec, min(region.radius + self.margin_deg, 90.0))
                return frozenset(int(c) for c in wider.chunks(self.chunk_order))
            chunks = [int(c) for c in region.chunks(self.chunk_order)]
        except RegionError:
            return ALL_CHUNKS  # PostgreSQL decides what the region holds; every chunk is asked
        if occurrence in self.grown:
            return grown_chunks(chunks, self.chunk_order, self.margin_deg)
        return frozenset(chunks)


def chunk_set(
    restrictions: RestrictionNode | None,
    *,
    chunk_order: int,
    margin_deg: float,
    partitioned: Iterable[TableRef],
    grown: Iterable[TableRef],
    director_index: DirectorIndex,
) -> ChunkSet:
    """The chunks that can hold result rows of one chunk-local query level.

    Parameters
    ----------
    restrictions
        The level's restriction tree (WHERE and inner-join conditions).
    chunk_order, margin_deg
        The catalog's chunk order and overlap margin.
    partitioned
        The level's partitioned table occurrences.
    grown
        Occurrences whose rows may sit up to the margin away from the chunk
        that holds them (child tables, the overlap side of a near-neighbour join).
    director_index
        Lookup of director-key restrictors.
    """
    if restrictions is None:
        return ALL_CHUNKS
    evaluator = _Evaluator(
        chunk_order,
        margin_deg,
        {ref.occurrence for ref in partitioned},
        {ref.occurrence for ref in grown},
        director_index,
    )
    return evaluator.evaluate(restrictions)


@dataclass(frozen=True, eq=False)
class Lookup:
    """A director-index look-up made while planning (:func:`director_lookup`'s SQL and parameters) and its answer."""

    query: str
    params: tuple[object, ...]
    chunks: frozenset[int]

    def literal_sql(self) -> str:
        """The query with its parameters written in as literals, for a multi-statement message."""
        return sql.SQL(self.query.replace("%s", "{}")).format(*map(sql.Literal, self.params)).as_string(None)


def director_lookup(
    schema_name: str, director_table: str, restrictor: DirectorKeyRestrictor
) -> tuple[str, list[object]] | None:
    """SQL and parameters finding the chunks of a key restrictor in ``dms.director_index``.

    The query returns one ``chunk_id`` per row.  None when the restriction
    cannot be looked up (non-numeric values): the level then reads every chunk.
    """
    base = "SELECT DISTINCT chunk_id FROM dms.director_index WHERE schema_name = %s AND table_name = %s AND "
    params: list[object] = [schema_name, director_table]
    if restrictor.operator in ("=", "IN"):
        ids = _integral_ids(restrictor.values)
        if ids is None:
            return None
        return base + "object_id = ANY(%s)", [*params, ids]
    low, high = restrictor.low, restrictor.high
    if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in (low, high)):
        return None
    conditions, values = [], []
    if low is not None:
        conditions.append("object_id > %s" if restrictor.operator == ">" else "object_id >= %s")
        values.append(low)
    if high is not None:
        conditions.append("object_id < %s" if restrictor.operator == "<" else "object_id <= %s")
        values.append(high)
    if not conditions:
        return None
    return base + " AND ".join(conditions), [*params, *values]


def _integral_ids(values: Iterable[object]) -> list[int] | None:
    ids = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not value.is_integer():
            continue  # an integer key never equals it
        ids.append(int(value))
    return ids
