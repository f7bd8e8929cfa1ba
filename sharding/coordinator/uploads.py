"""Tables a client uploads with its query (TAP UPLOAD), as ``TAP_UPLOAD.<name>``.

An upload lives only for its query: its rows are copied into a temporary
table of the query's coordinator session and then handled like any nested
query's result (:mod:`sharding.coordinator.materialize`): read as a table on
the coordinator, or sent along inline to the workers a level runs on.  An
inner join of an upload with a partitioned table is therefore chunk-local,
whatever the join condition.

A positional crossmatch (``CONTAINS(POINT(t.ra, t.dec), CIRCLE(u.ra, u.dec,
r))`` with ``u`` the upload, or ``DISTANCE(...) < r``) also bounds the chunks
to ask: only chunks within ``r`` of some uploaded position can hold a match,
so the upload goes only to the workers holding those chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sqlglot import exp

from adql import ColumnInfo, TableInfo
from adql.refs import TableRef
from sharding.coordinator.locality import LevelLayout, conjuncts, radius_deg, spoint_owner
from sharding.coordinator.materialize import MaterializedRelation
from sharding.coordinator.pruning import ChunkSet, grown_chunks
from sharding.healpix import chunk_for_position

__all__ = [
    "UPLOAD_SCHEMA",
    "UploadedTable",
    "crossmatch_chunks",
    "store_upload",
    "upload_table_info",
    "use_upload_relations",
]

UPLOAD_SCHEMA = "TAP_UPLOAD"

_PG_TYPES = {
    "boolean": "boolean",
    "short": "smallint",
    "int": "integer",
    "long": "bigint",
    "float": "real",
    "double": "double precision",
    "unsignedByte": "smallint",
}


@dataclass(frozen=True)
class UploadedTable:
    """An uploaded table: its name under TAP_UPLOAD, column metadata and rows.

    Attributes
    ----------
    name
        Table name; queries call it ``TAP_UPLOAD.<name>``.
    columns
        VOTable metadata of each column (datatype, arraysize, xtype, unit, UCD).
    rows
        The rows as tuples of Python values (None for NULL).
    ra_column, dec_column
        Position columns in degrees, if the table has them; they let a
        crossmatch bound the chunks it reads.
    """

    name: str
    columns: tuple[ColumnInfo, ...]
    rows: Sequence[tuple[Any, ...]]
    ra_column: str | None = None
    dec_column: str | None = None


def upload_table_info(upload: UploadedTable) -> TableInfo:
    """The translator's view of an upload."""
    return TableInfo(
        UPLOAD_SCHEMA,
        upload.name,
        upload.columns,
        kind="upload",
        ra_column=upload.ra_column,
        dec_column=upload.dec_column,
        description="table uploaded with the query",
    )


def _pg_type(column: ColumnInfo) -> str:
    if column.xtype == "timestamp":
        return "timestamp"
    scalar = _PG_TYPES.get(column.datatype)
    if scalar is None:
        return "text"
    if column.arraysize and column.datatype not in ("char", "unicodeChar"):
        return f"{scalar}[]"
    return scalar


async def store_upload(session: psycopg.AsyncConnection, upload: UploadedTable, serial: int) -> MaterializedRelation:
    """Copy an upload into a temporary table of the session; return it as a relation."""
    table = f"_dms_tmp_{serial}"
    columns = tuple((column.name, _pg_type(column)) for column in upload.columns)
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_sql)) for name, type_sql in columns
    )
    await session.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(sql.Identifier(table), definition))
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
    async with session.cursor().copy(copy) as writer:
        for row in upload.rows:
            await writer.write_row(row)
    return MaterializedRelation(serial, table, columns, len(upload.rows))


def use_upload_relations(tree: exp.Expr, relations: dict[str, MaterializedRelation]) -> None:
    """Replace every ``TAP_UPLOAD.<name>`` in the tree by its relation's placeholder, in place.

    Columns written ``TAP_UPLOAD.name.col`` lose their schema part, and an
    upload read without an alias gets its own name as alias, so that every
    column reference still names its FROM item.
    """
    for table in list(tree.find_all(exp.Table)):
        ref = table.meta.get("table_ref") if table._meta else None
        if ref is None or ref.table.kind != "upload":
            continue
        relation = relations[ref.table.table_name]
        alias = table.alias or ref.table.table_name
        placeholder = exp.select("*").from_(exp.Table(this=exp.to_identifier(relation.placeholder, quoted=True)))
        subquery = exp.Subquery(this=placeholder, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        subquery.meta["upload_ref"] = ref
        table.replace(subquery)
    for column in tree.find_all(exp.Column):
        if column.args.get("db") is not None and column.args["db"].name.upper() == UPLOAD_SCHEMA:
            column.set("db", None)
            column.set("catalog", None)


@dataclass(frozen=True)
class _Crossmatch:
    catalog_ref: TableRef
    upload_ref: TableRef
    radius_deg: float


def _crossmatches(select: exp.Select, partitioned: dict[int, TableRef]) -> list[_Crossmatch]:
    """Conjuncts ``SPOINT(a) <@ SCIRCLE(SPOINT(b), r)`` between a partitioned table and an upload."""
    conditions = conjuncts(select.args.get("where"))
    for join in select.args.get("joins") or []:
        if (join.args.get("side") or "").lower() in ("", "inner"):
            conditions += conjuncts(join.args.get("on"))
    found = []
    for conjunct in conditions:
        if not isinstance(conjunct, exp.ArrayContainedBy):
            continue
        circle = conjunct.expression
        if not (
            isinstance(circle, exp.Anonymous) and circle.name.upper() == "SCIRCLE" and len(circle.expressions) == 2
        ):
            continue
        inner, outer = spoint_owner(conjunct.this), spoint_owner(circle.expressions[0])
        radius = radius_deg(circle.expressions[1])
        if inner is None or outer is None or radius is None or radius < 0:
            continue
        for catalog_ref, upload_ref in ((inner, outer), (outer, inner)):
            if catalog_ref.occurrence in partitioned and upload_ref.table.kind == "upload":
                found.append(_Crossmatch(catalog_ref, upload_ref, radius))
    return found


async def crossmatch_chunks(
    session: psycopg.AsyncConnection,
    select: exp.Select,
    layout: LevelLayout,
    relations: dict[str, MaterializedRelation],
    *,
    chunk_order: int,
    margin_deg: float,
) -> ChunkSet:
    """Chunks a positional crossmatch with an upload can find rows in (None: not bounded)."""
    partitioned = {ref.occurrence: ref for ref in layout.partitioned}
    bounded: ChunkSet = None
    for match in _crossmatches(select, partitioned):
        relation = relations.get(match.upload_ref.table.table_name)
        if relation is None:
            continue
        info = match.upload_ref.table
        query = sql.SQL("SELECT {}, {} FROM {} WHERE {} IS NOT NULL AND {} IS NOT NULL").format(
            sql.Identifier(str(info.ra_column)),
            sql.Identifier(str(info.dec_column)),
            sql.Identifier(relation.table),
            sql.Identifier(str(info.ra_column)),
            sql.Identifier(str(info.dec_column)),
        )
        cursor = await session.execute(query)
        positions = np.array(await cursor.fetchall(), dtype=float).reshape(-1, 2)
        chunks = _chunks_near(positions, match.radius_deg, chunk_order)
        if chunks is not None and (
            match.catalog_ref.table.kind == "child" or match.catalog_ref.occurrence in layout.overlap_partner
        ):
            chunks = grown_chunks(chunks, chunk_order, margin_deg)
        if chunks is not None:
            bounded = chunks if bounded is None else bounded & chunks
    return bounded


def _chunks_near(positions: np.ndarray, radius_deg: float, chunk_order: int) -> ChunkSet:
    """Chunks within ``radius_deg`` of any of the positions (None: too wide to bound).

    The chunks holding the positions, grown by their neighbours: a superset
    of the chunks a circle of that radius touches, computed without a loop
    over the rows.  Positions that are not finite or out of range match nothing.
    """
    if len(positions) == 0:
        return frozenset()
    ra, dec = positions[:, 0], positions[:, 1]
    usable = np.isfinite(ra) & np.isfinite(dec) & (dec >= -90.0) & (dec <= 90.0)
    if not usable.any():
        return frozenset()
    own = chunk_for_position(np.mod(ra[usable], 360.0), dec[usable], chunk_order)
    return grown_chunks(np.unique(own), chunk_order, radius_deg)
