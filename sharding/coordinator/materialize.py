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

from sharding.coordinator.failures import unsupported_query

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
        raise unsupported_query(
            f"a subquery returns {relation.row_count} rows, more than the {row_limit} that can be sent along "
            "to the workers",
            "restrict the subquery (a region, a TOP or a narrower condition) or join the tables directly",
        )
    alias = sql.Identifier(f"_dms_v{relation.serial}")
    names = [sql.Identifier(name) for name, _ in relation.columns]
    types = [sql.SQL(type_sql) for _, type_sql in relation.columns]  # format_type() output
    if relation.row_count == 0:
        nulls = sql.SQL(", ").join(
            sql.SQL("CAST(NULL AS {}) AS {}").format(type_sql, name)
            for name, type_sql in zip(names, types, strict=True)
        )
        return sql.SQL("(SELECT {} WHERE FALSE) AS {}").format(nulls, alias).as_string(conn)
    rendered = sql.SQL(", ").join(sql.SQL("quote_nullable({}::text)").format(name) for name in names)
    cursor = await conn.execute(
        sql.SQL("SELECT '(' || concat_ws(', ', {}) || ')' FROM {}").format(rendered, sql.Identifier(relation.table))
    )
    values = sql.SQL(", ").join(sql.SQL(row[0]) for row in await cursor.fetchall())  # literals PostgreSQL quoted
    slots = [sql.Identifier(f"v{i}") for i in range(len(names))]
    casts = sql.SQL(", ").join(
        sql.SQL("CAST({} AS {}) AS {}").format(slot, type_sql, name)
        for slot, type_sql, name in zip(slots, types, names, strict=True)
    )
    derived = sql.SQL("(SELECT {} FROM (VALUES {}) AS _dms_rows({})) AS {}")
    return derived.format(casts, values, sql.SQL(", ").join(slots), alias).as_string(conn)
