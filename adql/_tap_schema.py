"""Read TAP_SCHEMA (1.0 or 1.1) tables into :class:`~adql.catalog.TableInfo` values.

Kept apart from :mod:`adql.catalog` so that the catalog's lookup rules do not
depend on a database driver.  Older TAP_SCHEMA versions lack ``arraysize``,
``xtype`` and ``column_index`` and give ADQL type names (``VARCHAR``,
``POINT``) instead of VOTable ones; both are normalised here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql

from adql.catalog import ColumnInfo, TableInfo, TableKindInfo

__all__ = ["normalize_datatype", "read_tap_schema", "undelimited"]

TAP_SCHEMA = "TAP_SCHEMA"

# TAP 1.0 (ADQL type names) -> VOTable datatype, arraysize, xtype.
_ADQL_TYPES: dict[str, tuple[str, str | None, str | None]] = {
    "SMALLINT": ("short", None, None),
    "INTEGER": ("int", None, None),
    "BIGINT": ("long", None, None),
    "REAL": ("float", None, None),
    "DOUBLE": ("double", None, None),
    "BOOLEAN": ("boolean", None, None),
    "CHAR": ("char", None, None),
    "VARCHAR": ("char", "*", None),
    "CLOB": ("char", "*", "clob"),
    "TIMESTAMP": ("char", "*", "timestamp"),
    "POINT": ("double", "2", "point"),
    "CIRCLE": ("double", "3", "circle"),
    "POLYGON": ("double", "*", "polygon"),
    "REGION": ("char", "*", "region"),
    "BINARY": ("unsignedByte", None, None),
    "VARBINARY": ("unsignedByte", "*", None),
    "BLOB": ("unsignedByte", "*", "blob"),
}


_VOTABLE_TYPES = {
    "boolean",
    "bit",
    "unsignedByte",
    "short",
    "int",
    "long",
    "char",
    "unicodeChar",
    "float",
    "double",
    "floatComplex",
    "doubleComplex",
}


def normalize_datatype(
    datatype: str | None, arraysize: str | None, xtype: str | None
) -> tuple[str, str | None, str | None]:
    """Return VOTable (datatype, arraysize, xtype) for TAP_SCHEMA values.

    >>> normalize_datatype("adql:VARCHAR", None, None)
    ('char', '*', None)
    >>> normalize_datatype("double", "2", "point")
    ('double', '2', 'point')
    """
    raw = (datatype or "char").strip()
    upper = raw.upper()
    if upper.startswith("ADQL:"):
        upper = upper[5:]
    if upper in _ADQL_TYPES and raw not in _VOTABLE_TYPES:
        votable, size, kind = _ADQL_TYPES[upper]
        return votable, arraysize or size, xtype or kind
    if xtype and xtype.lower().startswith("adql:"):
        xtype = xtype[5:].lower()
    return raw, arraysize or None, xtype or None


def undelimited(name: str) -> str:
    """The column's real name: TAP_SCHEMA lists reserved words delimited (``"size"``).

    >>> undelimited('"size"'), undelimited("ra"), undelimited('"a""b"')
    ('size', 'ra', 'a"b')
    """
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def _columns_of(conn: Any, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (TAP_SCHEMA, table),
    ).fetchall()
    return {row[0] for row in rows}


def _select(conn: Any, table: str, wanted: list[str]) -> list[dict[str, Any]]:
    present = _columns_of(conn, table)
    chosen = [name for name in wanted if name in present]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(name) for name in chosen),
        sql.Identifier(TAP_SCHEMA, table),
    )
    rows = conn.execute(query).fetchall()
    return [dict(zip(chosen, row, strict=True)) for row in rows]


def _split_table_name(schema_name: str, table_name: str) -> str:
    prefix = schema_name + "."
    if table_name.startswith(prefix):
        return table_name[len(prefix) :]
    if table_name.lower().startswith(prefix.lower()):
        return table_name[len(prefix) :]
    return table_name


def read_tap_schema(conn: Any, kinds: Mapping[str, TableKindInfo]) -> list[TableInfo]:
    """Read all tables and columns listed in TAP_SCHEMA.

    Parameters
    ----------
    conn
        psycopg connection.
    kinds
        Partitioning per qualified ADQL table name (case-insensitive keys
        are not assumed: use the TAP_SCHEMA spelling).

    Returns
    -------
    list of TableInfo
        In TAP_SCHEMA order (``table_index``, then name).
    """
    tables = _select(conn, "tables", ["schema_name", "table_name", "description", "table_index"])
    columns = _select(
        conn,
        "columns",
        [
            "table_name",
            "column_name",
            "datatype",
            "arraysize",
            "xtype",
            "unit",
            "ucd",
            "description",
            "column_index",
        ],
    )
    by_table: dict[str, list[dict[str, Any]]] = {}
    for row in columns:
        by_table.setdefault(row["table_name"], []).append(row)

    def column_order(row: dict[str, Any]) -> tuple[int, str]:
        index = row.get("column_index")
        return (index if index is not None else 1 << 30, row["column_name"])

    def table_order(row: dict[str, Any]) -> tuple[int, str]:
        index = row.get("table_index")
        return (index if index is not None else 1 << 30, row["table_name"])

    result = []
    for row in sorted(tables, key=table_order):
        qualified = row["table_name"]
        schema_name = row["schema_name"]
        table_name = _split_table_name(schema_name, qualified)
        infos = []
        for column in sorted(by_table.get(qualified, []), key=column_order):
            datatype, arraysize, xtype = normalize_datatype(
                column.get("datatype"), column.get("arraysize"), column.get("xtype")
            )
            infos.append(
                ColumnInfo(
                    name=undelimited(column["column_name"]),
                    datatype=datatype,
                    arraysize=arraysize,
                    xtype=xtype,
                    unit=column.get("unit") or None,
                    ucd=column.get("ucd") or None,
                    description=column.get("description") or None,
                )
            )
        key = f"{schema_name}.{table_name}"
        default_kind = "tap_schema" if schema_name == TAP_SCHEMA else "replicated"
        kind = kinds.get(key) or kinds.get(qualified) or TableKindInfo(kind=default_kind)
        result.append(
            TableInfo(
                schema_name=schema_name,
                table_name=table_name,
                columns=tuple(infos),
                kind=kind.kind,
                director_key=kind.director_key,
                director_table=kind.director_table,
                ra_column=kind.ra_column,
                dec_column=kind.dec_column,
                description=row.get("description"),
            )
        )
    return result
