"""Results of nested queries, kept on the coordinator and handed to the next phase.

A subquery, a WITH query, a derived table or one side of a set operation is
run first, as a query of its own, into a temporary table of the
coordinator's session.  A later phase that runs on the coordinator reads
that table; a phase that runs on the workers receives the rows inline, as a
typed ``VALUES`` list (so workers need no extra round trip or state), up to
a size limit.

Placeholders keep the query trees small: the tree refers to the table
``_dms_values_<n>``; the SQL text of each phase then names either the
temporary table or the inline rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from adql.errors import AdqlUnsupportedError

__all__ = ["MaterializedRelation", "inline_rows", "placeholder_name", "relation_columns"]

PLACEHOLDER_PREFIX = "_dms_values_"


def placeholder_name(serial: int) -> str:
    """The table name that stands for materialized relation ``serial`` in a query tree."""
    return f"{PLACEHOLDER_PREFIX}{serial}"


@dataclass(frozen=True)
class MaterializedRelation:
    """A nested query's rows in a coordinator temporary table."""

    serial: int
    table: str
    columns: tuple[tuple[str, str], ...]
    """(name, PostgreSQL type) of each column."""
    row_count: int

    @property
    def placeholder(self) -> str:
        """The name standing for this relation in query trees."""
        return placeholder_name(self.serial)


async def relation_columns(conn: psycopg.AsyncConnection, table: str) -> tuple[tuple[str, str], ...]:
    """(name, type) of a temporary table's columns, in order."""
    cursor = await conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [sql.Identifier(table).as_string(conn)],
    )
    return tuple((str(name), str(type_sql)) for name, type_sql in await cursor.fetchall())


async def inline_rows(conn: psycopg.AsyncConnection, relation: MaterializedRelation, row_limit: int) -> str:
    """SQL text of a derived table holding the relation's rows as typed literals.

    PostgreSQL renders each row (``quote_nullable`` of the text form), so
    every value round-trips exactly, floats included.
    """
    if relation.row_count > row_limit:
        raise AdqlUnsupportedError(
            f"unsupported because a subquery returns {relation.row_count} rows, more than the {row_limit} "
            "that can be sent along to the workers",
            hint="restrict the subquery (a region, a TOP or a narrower condition) or join the tables directly",
            line=1,
            column=1,
        )
    alias = sql.Identifier(f"_dms_v{relation.serial}").as_string(conn)
    casts = ", ".join(
        f"CAST({'v' + str(i)} AS {type_sql}) AS {sql.Identifier(name).as_string(conn)}"
        for i, (name, type_sql) in enumerate(relation.columns)
    )
    if relation.row_count == 0:
        nulls = ", ".join(
            f"CAST(NULL AS {type_sql}) AS {sql.Identifier(name).as_string(conn)}" for name, type_sql in relation.columns
        )
        return f"(SELECT {nulls} WHERE FALSE) AS {alias}"
    rendered = ", ".join(
        f"quote_nullable({sql.Identifier(name).as_string(conn)}::text)" for name, _ in relation.columns
    )
    cursor = await conn.execute(
        f"SELECT '(' || concat_ws(', ', {rendered}) || ')' FROM {sql.Identifier(relation.table).as_string(conn)}"  # noqa: S608
    )
    rows = ", ".join(row[0] for row in await cursor.fetchall())
    names = ", ".join(f"v{i}" for i in range(len(relation.columns)))
    return f"(SELECT {casts} FROM (VALUES {rows}) AS _dms_rows({names})) AS {alias}"  # noqa: S608
