"""Catalog metadata for name resolution: tables and columns from TAP_SCHEMA.

The translator needs to know which tables and columns exist, their VOTable
types and units, and how each table is partitioned.  :class:`TableCatalog`
holds that, answers lookups with ADQL's case rules (regular identifiers
match case-insensitively, delimited ones exactly) and suggests the closest
real names when a lookup fails.  It is built either from plain dataclasses
(tests, uploads) or from a database's standard TAP_SCHEMA 1.1 tables.

Physical naming is fixed: ADQL table ``s.T`` is PostgreSQL ``"s"."T"`` with
the case stored in TAP_SCHEMA, and its columns keep their stored case too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from adql.errors import AdqlNameError

__all__ = [
    "ColumnInfo",
    "Name",
    "TableCatalog",
    "TableInfo",
    "TableKind",
    "TableKindInfo",
]

TableKind = Literal["director", "child", "replicated", "tap_schema", "upload"]


@dataclass(frozen=True)
class ColumnInfo:
    """One column as TAP_SCHEMA.columns describes it.

    Attributes
    ----------
    name
        Column name with its stored case (also the PostgreSQL name).
    datatype
        VOTable datatype: boolean, short, int, long, float, double, char,
        unicodeChar, unsignedByte.
    arraysize
        VOTable arraysize (``"*"``, ``"16*"``, ``"2"``) or None for scalars.
    xtype
        DALI xtype (``point``, ``circle``, ``polygon``, ``timestamp``...).
    unit, ucd, description
        Metadata passed through to result columns.
    """

    name: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    description: str | None = None

    def __deepcopy__(self, memo: dict) -> ColumnInfo:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


@dataclass(frozen=True)
class TableKindInfo:
    """How a table is stored in the cluster (not part of TAP_SCHEMA).

    Attributes
    ----------
    kind
        ``director`` (partitioned by its own position), ``child`` (stored
        with its director row), ``replicated`` (on every worker),
        ``tap_schema`` or ``upload``.
    director_key
        Column holding the director's id (for directors: their own id).
    director_table
        Qualified ADQL name of the director table (children only).
    ra_column, dec_column
        Position columns in degrees, if the table has a position.
    """

    kind: TableKind = "replicated"
    director_key: str | None = None
    director_table: str | None = None
    ra_column: str | None = None
    dec_column: str | None = None

    def __deepcopy__(self, memo: dict) -> TableKindInfo:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


@dataclass(frozen=True)
class TableInfo:
    """One table: its names, columns and partitioning.

    Attributes
    ----------
    schema_name
        ADQL and PostgreSQL schema name (stored case).
    table_name
        Table name without the schema (stored case).
    columns
        Columns in TAP_SCHEMA order (``column_index``, then name).
    kind, director_key, director_table, ra_column, dec_column
        See :class:`TableKindInfo`.
    description
        Table description from TAP_SCHEMA, if any.
    """

    schema_name: str
    table_name: str
    columns: tuple[ColumnInfo, ...] = field(repr=False)
    kind: TableKind = "replicated"
    director_key: str | None = None
    director_table: str | None = None
    ra_column: str | None = None
    dec_column: str | None = None
    description: str | None = field(default=None, compare=False)

    @property
    def qualified_name(self) -> str:
        """Return the ADQL name ``schema.table``."""
        return f"{self.schema_name}.{self.table_name}"

    def find_column(self, name: Name) -> ColumnInfo | None:
        """Return the column ``name`` refers to under ADQL case rules, or None.

        An exact (case-sensitive) match wins; otherwise a regular identifier
        matches a unique column case-insensitively.  Several case-insensitive
        matches for a regular identifier raise an ambiguity error.
        """
        return _pick(name, self.columns, lambda c: c.name, f"column of {self.qualified_name}")

    def column_names(self) -> list[str]:
        """Return the column names in order."""
        return [column.name for column in self.columns]

    def __deepcopy__(self, memo: dict) -> TableInfo:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


@dataclass(frozen=True)
class Name:
    """An identifier as written in ADQL: its text and whether it was quoted.

    >>> Name("ra").matches("RA"), Name("ra", quoted=True).matches("RA")
    (True, False)
    """

    text: str
    quoted: bool = False

    def matches(self, candidate: str) -> bool:
        """Return True if this identifier refers to ``candidate`` under ADQL rules."""
        if self.quoted:
            return self.text == candidate
        return self.text.lower() == candidate.lower()

    @property
    def sql_name(self) -> str:
        """Return the PostgreSQL spelling for names the query itself defines.

        Regular identifiers fold to lower case (as PostgreSQL folds them);
        delimited ones keep their case.  Used for aliases and CTE names.
        """
        return self.text if self.quoted else self.text.lower()

    def __str__(self) -> str:
        if self.quoted:
            return '"' + self.text.replace('"', '""') + '"'
        return self.text

    def __deepcopy__(self, memo: dict) -> Name:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


def _pick(name: Name, items: Iterable[Any], key: Any, what: str) -> Any:
    items = list(items)
    exact = [item for item in items if key(item) == name.text]
    if exact:
        return exact[0]
    if name.quoted:
        return None
    folded = [item for item in items if key(item).lower() == name.text.lower()]
    if len(folded) > 1:
        spelled = ", ".join(f'"{key(item)}"' for item in folded)
        raise AdqlNameError(
            f"{name.text} matches several {what}s that differ only in case: {spelled}",
            ambiguous=True,
            hint="write the name in double quotes with its exact case",
        )
    return folded[0] if folded else None


def suggest(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Return the candidates closest to ``name`` (case-insensitive), best first.

    >>> suggest("dec1", ["ra", "dec", "decErr"])
    ['dec', 'decErr']
    """
    candidates = list(dict.fromkeys(candidates))
    lowered = {candidate.lower(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.5)
    return [lowered[match] for match in matches]


class TableCatalog:
    """The tables a query may use, looked up with ADQL's case rules.

    Parameters
    ----------
    tables
        The tables.  Qualified names must be unique.

    Examples
    --------
    >>> t = TableInfo("apdb", "DiaObject", (ColumnInfo("ra", "double"),), kind="director")
    >>> catalog = TableCatalog([t])
    >>> catalog.find_table(Name("APDB"), Name("diaobject")).table_name
    'DiaObject'
    """

    def __init__(self, tables: Iterable[TableInfo]) -> None:
        self._tables: tuple[TableInfo, ...] = tuple(tables)
        seen: set[tuple[str, str]] = set()
        for table in self._tables:
            key = (table.schema_name, table.table_name)
            if key in seen:
                raise ValueError(f"duplicate table {table.qualified_name}")
            seen.add(key)

    @classmethod
    def from_tables(cls, tables: Iterable[TableInfo]) -> TableCatalog:
        """Build a catalog from plain :class:`TableInfo` values (tests, uploads)."""
        return cls(tables)

    @property
    def tables(self) -> tuple[TableInfo, ...]:
        """Return all tables."""
        return self._tables

    def with_tables(self, extra: Iterable[TableInfo]) -> TableCatalog:
        """Return a new catalog that also holds ``extra`` (e.g. uploaded tables)."""
        return TableCatalog([*self._tables, *extra])

    def schema_names(self) -> list[str]:
        """Return the distinct schema names."""
        return list(dict.fromkeys(table.schema_name for table in self._tables))

    def find_table(self, schema: Name | None, table: Name) -> TableInfo:
        """Return the table an ADQL table name refers to.

        Parameters
        ----------
        schema
            The schema part, or None for an unqualified name.
        table
            The table part.

        Raises
        ------
        AdqlNameError
            Unknown schema or table (with suggestions), or an unqualified
            name present in several schemas.
        """
        if schema is not None:
            schemas = [s for s in self.schema_names() if schema.matches(s)]
            if not schemas:
                if schema.text.lower() in ("pg_catalog", "information_schema") or schema.text.lower().startswith("pg_"):
                    raise AdqlNameError(
                        f"schema {schema} is a PostgreSQL system catalog, which queries cannot read",
                        hint="the tables available to ADQL are listed in TAP_SCHEMA.tables",
                    )
                close = suggest(schema.text, self.schema_names())
                raise AdqlNameError(
                    f"unknown schema {schema}",
                    hint=_hint(close, "the schemas are listed in TAP_SCHEMA.schemas"),
                )
            candidates = [t for t in self._tables if t.schema_name in schemas]
            found = _pick(table, candidates, lambda t: t.table_name, f"table of schema {schema}")
            if found is None:
                close = suggest(table.text, [t.table_name for t in candidates])
                qualified = [f"{schemas[0]}.{name}" for name in close]
                raise AdqlNameError(
                    f"schema {schema} has no table {table}",
                    hint=_hint(qualified, "the tables are listed in TAP_SCHEMA.tables"),
                )
            return found
        found = [t for t in self._tables if table.matches(t.table_name)]
        exact = [t for t in found if t.table_name == table.text]
        if len(exact) == 1 or len(found) == 1:
            return exact[0] if len(exact) == 1 else found[0]
        if found:
            names = ", ".join(t.qualified_name for t in found)
            raise AdqlNameError(
                f"table {table} exists in several schemas ({names})",
                ambiguous=True,
                hint="qualify it with its schema, e.g. " + found[0].qualified_name,
            )
        if table.text.lower().startswith("pg_"):
            raise AdqlNameError(
                f"{table} is a PostgreSQL system catalog, which queries cannot read",
                hint="the tables available to ADQL are listed in TAP_SCHEMA.tables",
            )
        names = [t.qualified_name for t in self._tables]
        by_table = suggest(table.text, [t.table_name for t in self._tables])
        close = [t.qualified_name for t in self._tables if t.table_name in by_table] or suggest(table.text, names)
        raise AdqlNameError(
            f"unknown table {table}",
            hint=_hint(close, "tables are named schema.table; they are listed in TAP_SCHEMA.tables"),
        )

    @classmethod
    def from_tap_schema(cls, conn: Any, kinds: Mapping[str, TableKindInfo] | None = None) -> TableCatalog:
        """Read the catalog from a database's TAP_SCHEMA 1.1 tables.

        Parameters
        ----------
        conn
            An open psycopg (3) connection.
        kinds
            Partitioning of each table, keyed by qualified ADQL name
            (``apdb.DiaSource``).  Tables not listed are ``tap_schema`` if
            they are in TAP_SCHEMA and ``replicated`` otherwise.

        Returns
        -------
        TableCatalog
        """
        from adql._tap_schema import read_tap_schema

        return cls(read_tap_schema(conn, kinds or {}))


def _hint(close: list[str], fallback: str) -> str:
    if close:
        return "did you mean " + " or ".join(close) + "?"
    return fallback
