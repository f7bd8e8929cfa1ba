"""Define the TAP_SCHEMA tables and derive their rows from a catalog's Felis schema.

TAP_SCHEMA (TAP 1.1, section 4) is how TAP clients discover tables, columns, units, UCDs
and foreign keys. dms-db never writes these rows by hand: they come from the same Felis
YAML that defines the catalog (STYLE.md rule 2), with the datatype mapping of felis' own
``felis.tap_schema.DataLoader``, and the tables themselves are declared here once as
SQLAlchemy Core tables.

The PostgreSQL schema is called ``TAP_SCHEMA`` in upper case, so SQLAlchemy quotes it
(``"TAP_SCHEMA".tables``), as CDS's Vollt TAP library does (DaCHS and the CADC service use
a lower-case ``tap_schema`` instead). The point is that the physical name is spelled
exactly as the standard and the rows (``TAP_SCHEMA.tables``) spell it: the ADQL layer
resolves names case-insensitively against TAP_SCHEMA and emits quoted canonical names,
which it must do anyway for mixed-case catalog tables such as ``apdb."DiaSource"``. The
column names are exactly the standard ones, with no additions, so generic TAP clients
read them unchanged. `TAP_SCHEMA_NAME` is the one place the name is spelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from felis.datamodel import Column as FelisColumn
from felis.datamodel import ForeignKeyConstraint, UniqueConstraint
from felis.types import FelisType
from sqlalchemy import Column, Integer, MetaData, PrimaryKeyConstraint, String, Table
from sqlalchemy import ForeignKeyConstraint as SAForeignKey

from dms_db.catalog_schema import CatalogSchema, CatalogTable

__all__ = [
    "TAP_SCHEMA_NAME",
    "TapSchemaRows",
    "TapSchemaTables",
    "define_tap_schema_tables",
    "tap_column_name",
    "tap_schema_rows",
    "tap_schema_self_rows",
]

TAP_SCHEMA_NAME = "TAP_SCHEMA"
"""Name of the PostgreSQL schema (and ADQL schema) holding the TAP_SCHEMA tables."""

_SELF_INDEX = 100000  # sort TAP_SCHEMA after the catalogs, as felis does


@dataclass(frozen=True)
class TapSchemaTables:
    """The five TAP_SCHEMA tables, in the order that satisfies their foreign keys."""

    schemas: Table
    tables: Table
    columns: Table
    keys: Table
    key_columns: Table

    def all(self) -> tuple[Table, ...]:
        """Return the tables in dependency order: insert in this order, delete in reverse."""
        return (self.schemas, self.tables, self.columns, self.keys, self.key_columns)


def define_tap_schema_tables(metadata: MetaData) -> TapSchemaTables:
    """Declare the TAP 1.1 TAP_SCHEMA tables in ``metadata``, with the standard's keys.

    Strings are unbounded ``VARCHAR`` because Felis descriptions often exceed the sizes
    some services pick, and qualified table names can be 127 bytes long. Column comments
    are the standard's descriptions; `tap_schema_self_rows` reads them back.

    Parameters
    ----------
    metadata
        Where to declare the tables, e.g. the coordinator's metadata used by migrations.
    """

    def text(name: str, comment: str, *, nullable: bool = True) -> Column[str]:
        return Column(name, String, nullable=nullable, comment=comment)

    def number(name: str, comment: str, *, nullable: bool = True) -> Column[int]:
        return Column(name, Integer, nullable=nullable, comment=comment)

    def table(name: str, comment: str, *items: Any) -> Table:
        return Table(name, metadata, *items, schema=TAP_SCHEMA_NAME, comment=comment)

    schemas = table(
        "schemas",
        "description of schemas in this tableset",
        text("schema_name", "schema name for reference to tap_schema.schemas", nullable=False),
        text("utype", "lists the utypes of schemas in the tableset"),
        text("description", "describes schemas in the tableset"),
        number("schema_index", "recommended sort order when listing schemas"),
        PrimaryKeyConstraint("schema_name", name="schemas_pkey"),
    )
    tables = table(
        "tables",
        "description of tables in this tableset",
        text("schema_name", "the schema this table belongs to", nullable=False),
        text("table_name", "the fully qualified table name", nullable=False),
        text("table_type", "one of: table view", nullable=False),
        text("utype", "lists the utype of tables in the tableset"),
        text("description", "describes tables in the tableset"),
        number("table_index", "recommended sort order when listing tables"),
        PrimaryKeyConstraint("table_name", name="tables_pkey"),
        SAForeignKey(["schema_name"], [schemas.c.schema_name], name="tables_schema_name_fkey"),
    )
    columns = table(
        "columns",
        "description of columns in this tableset",
        text("table_name", "the table this column belongs to", nullable=False),
        text("column_name", "the column name", nullable=False),
        text("utype", "lists the utypes of columns in the tableset"),
        text("ucd", "lists the UCDs of columns in the tableset"),
        text("unit", "lists the unit used for column values in the tableset"),
        text("description", "describes the columns in the tableset"),
        text("datatype", "lists the ADQL datatype of columns in the tableset", nullable=False),
        text("arraysize", "lists the size of variable-length columns in the tableset"),
        text("xtype", "a DALI or custom extended type annotation"),
        number("size", "deprecated: use arraysize"),
        number("principal", "a principal column; 1 means 1, 0 means 0", nullable=False),
        number("indexed", "an indexed column; 1 means 1, 0 means 0", nullable=False),
        number("std", "a standard column; 1 means 1, 0 means 0", nullable=False),
        number("column_index", "recommended sort order when listing columns of a table"),
        PrimaryKeyConstraint("table_name", "column_name", name="columns_pkey"),
        SAForeignKey(["table_name"], [tables.c.table_name], name="columns_table_name_fkey"),
    )
    keys = table(
        "keys",
        "description of foreign keys in this tableset",
        text("key_id", "unique key to join to tap_schema.key_columns", nullable=False),
        text("from_table", "the table with the foreign key", nullable=False),
        text("target_table", "the table with the primary key", nullable=False),
        text("utype", "lists the utype of keys in the tableset"),
        text("description", "describes keys in the tableset"),
        PrimaryKeyConstraint("key_id", name="keys_pkey"),
        SAForeignKey(["from_table"], [tables.c.table_name], name="keys_from_table_fkey"),
        SAForeignKey(["target_table"], [tables.c.table_name], name="keys_target_table_fkey"),
    )
    key_columns = table(
        "key_columns",
        "description of foreign key columns in this tableset",
        text("key_id", "key to join to tap_schema.keys", nullable=False),
        text("from_column", "column in the from_table", nullable=False),
        text("target_column", "column in the target_table", nullable=False),
        PrimaryKeyConstraint("key_id", "from_column", "target_column", name="key_columns_pkey"),
        SAForeignKey(["key_id"], [keys.c.key_id], name="key_columns_key_id_fkey"),
    )
    return TapSchemaTables(schemas, tables, columns, keys, key_columns)


@dataclass(frozen=True)
class TapSchemaRows:
    """Rows for the five TAP_SCHEMA tables; each dict's keys are exactly the table's columns."""

    schemas: list[dict[str, Any]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    key_columns: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: TapSchemaRows) -> TapSchemaRows:
        """Combine the rows of several schemas, e.g. ``tap_schema_self_rows() + tap_schema_rows(apdb)``."""
        return TapSchemaRows(
            self.schemas + other.schemas,
            self.tables + other.tables,
            self.columns + other.columns,
            self.keys + other.keys,
            self.key_columns + other.key_columns,
        )


def _size(arraysize: str | None) -> int | None:
    """The deprecated ``size`` column: the number in ``n`` or ``n*``, as felis computes it."""
    match = re.fullmatch(r"([0-9]+)\*?", arraysize or "")
    return int(match.group(1)) if match else None


def _indexed_columns(table: CatalogTable) -> set[str]:
    """Columns that a query can restrict cheaply, for the ``indexed`` flag.

    Felis flags a single-column primary key and single-column indexes. dms-db also flags
    the leading column of every multi-column key or index (a B-tree serves it too), the
    director key of partitioned tables (the director index maps it to a chunk) and the
    position columns of every table that has them (``dms_db.physical`` builds a pgSphere
    index on them, or for child tables the coordinator turns a region into ranges of the
    HEALPix index of the row's position).
    """
    felis = table.felis
    by_id = {column.id: column.name for column in felis.columns}
    leading = [ids[0] for ids in (index.columns for index in felis.indexes) if ids]
    leading += [c.columns[0] for c in felis.constraints if isinstance(c, UniqueConstraint) and c.columns]
    names = {by_id[column_id] for column_id in leading if column_id in by_id}
    names.update(table.primary_key[:1])
    if table.is_partitioned and table.director_key:
        names.add(table.director_key)
    names.update(name for name in (table.ra_column, table.dec_column) if name)
    return names


def _column_row(qualified: str, column: FelisColumn, indexed: bool) -> dict[str, Any]:
    """One ``TAP_SCHEMA.columns`` row, mapped from Felis as ``felis.tap_schema.DataLoader`` does."""
    arraysize = str(column.votable_arraysize) if column.votable_arraysize else None
    return {
        "table_name": qualified,
        "column_name": column.name,
        "utype": column.votable_utype,
        "ucd": column.ivoa_ucd,
        "unit": column.ivoa_unit or column.fits_tunit or None,
        "description": column.description,
        "datatype": FelisType.felis_type(column.datatype.value).votable_name,
        "arraysize": arraysize,
        "xtype": column.votable_xtype,
        "size": _size(arraysize),
        "principal": column.tap_principal or 0,
        "indexed": int(indexed),
        "std": column.tap_std or 0,
        "column_index": column.tap_column_index,
    }


def tap_schema_rows(catalog: CatalogSchema, *, schema_index: int | None = None) -> TapSchemaRows:
    """Derive the TAP_SCHEMA rows that describe a deployed catalog.

    Tables are qualified with the deployed name (``catalog.name``), which is the name ADQL
    queries use. ``key_id`` values are prefixed with it too, because Felis constraint names
    are only unique within one file and two catalogs may be deployed from the same file.

    Parameters
    ----------
    catalog
        The loaded catalog.
    schema_index
        Sort position of this schema among the others in TAP clients.
    """
    rows = TapSchemaRows(
        schemas=[
            {
                "schema_name": catalog.name,
                "utype": catalog.felis.votable_utype,
                "description": catalog.description,
                "schema_index": schema_index,
            }
        ]
    )
    qualified = {table.name: f"{catalog.name}.{table.name}" for table in catalog.tables}
    owner = {column.id: (table, column) for table in catalog.tables for column in table.felis.columns}
    for table in catalog.tables:
        felis = table.felis
        rows.tables.append(
            {
                "schema_name": catalog.name,
                "table_name": qualified[table.name],
                "table_type": "table",
                "utype": felis.votable_utype,
                "description": table.description,
                "table_index": felis.tap_table_index or 0,
            }
        )
        indexed = _indexed_columns(table)
        rows.columns.extend(_column_row(qualified[table.name], c, c.name in indexed) for c in felis.columns)
        for constraint in felis.constraints:
            if not isinstance(constraint, ForeignKeyConstraint):
                continue
            key_id = f"{catalog.name}.{constraint.name}"
            target = owner[constraint.referenced_columns[0]][0]
            rows.keys.append(
                {
                    "key_id": key_id,
                    "from_table": qualified[table.name],
                    "target_table": qualified[target.name],
                    "utype": constraint.votable_utype,
                    "description": constraint.description,
                }
            )
            rows.key_columns.extend(
                {"key_id": key_id, "from_column": owner[source][1].name, "target_column": owner[target_id][1].name}
                for source, target_id in zip(constraint.columns, constraint.referenced_columns, strict=True)
            )
    return rows


RESERVED_COLUMN_NAMES = frozenset({"size"})
"""Columns of TAP_SCHEMA whose names are ADQL reserved words (``SIZE`` is reserved in SQL-92 and ADQL).

TAP 1.1 section 4.3 says TAP_SCHEMA.columns lists such names delimited,
as a query must write them: ``"size"``.
"""


def tap_column_name(name: str) -> str:
    """The ``column_name`` TAP_SCHEMA lists for a column: delimited if it is a reserved word.

    >>> tap_column_name("size"), tap_column_name("table_name")
    ('"size"', 'table_name')
    """
    return f'"{name}"' if name.lower() in RESERVED_COLUMN_NAMES else name


def tap_schema_self_rows() -> TapSchemaRows:
    """Rows that describe TAP_SCHEMA itself, as TAP 1.1 requires, read from `define_tap_schema_tables`."""
    tap = define_tap_schema_tables(MetaData())
    rows = TapSchemaRows(
        schemas=[
            {
                "schema_name": TAP_SCHEMA_NAME,
                "utype": None,
                "description": "A TAP-standard-mandated schema to describe tablesets in a TAP 1.1 service",
                "schema_index": _SELF_INDEX,
            }
        ]
    )
    for position, table in enumerate(tap.all()):
        qualified = f"{TAP_SCHEMA_NAME}.{table.name}"
        rows.tables.append(
            {
                "schema_name": TAP_SCHEMA_NAME,
                "table_name": qualified,
                "table_type": "table",
                "utype": None,
                "description": table.comment,
                "table_index": _SELF_INDEX + 1000 * position,
            }
        )
        leading_key = next(iter(table.primary_key.columns)).name
        for index, column in enumerate(table.columns, start=1):
            is_text = isinstance(column.type, String)
            rows.columns.append(
                {
                    "table_name": qualified,
                    "column_name": tap_column_name(column.name),
                    "utype": None,
                    "ucd": None,
                    "unit": None,
                    "description": column.comment,
                    "datatype": "char" if is_text else "int",
                    "arraysize": "*" if is_text else None,
                    "xtype": None,
                    "size": None,
                    "principal": 1,
                    "indexed": int(column.name == leading_key),
                    "std": 1,
                    "column_index": index,
                }
            )
        for foreign_key in sorted(table.foreign_key_constraints, key=lambda fk: str(fk.name)):
            key_id = f"{TAP_SCHEMA_NAME}.{foreign_key.name}"
            rows.keys.append(
                {
                    "key_id": key_id,
                    "from_table": qualified,
                    "target_table": f"{TAP_SCHEMA_NAME}.{foreign_key.referred_table.name}",
                    "utype": None,
                    "description": None,
                }
            )
            rows.key_columns.extend(
                {"key_id": key_id, "from_column": element.parent.name, "target_column": element.column.name}
                for element in foreign_key.elements
            )
    return rows
