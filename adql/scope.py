"""Scopes for name resolution: which tables a clause can see, and their columns.

A :class:`Source` is one item of a FROM clause (a catalog table, a derived
table or a common table expression) with the columns it exposes; a
:class:`Scope` is the list of sources visible at one level of a query, linked
to the enclosing level for correlated subqueries.  Lookups follow ADQL's
case rules and report unknown names with the closest real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlglot import exp

from adql.catalog import ColumnInfo, Name, TableInfo, suggest
from adql.errors import AdqlNameError
from adql.refs import TableRef
from adql.types import AdqlType

__all__ = ["OutputColumn", "Scope", "Source", "SourceColumn", "StarItem", "column_type", "did_you_mean", "name_of"]


@dataclass(frozen=True)
class OutputColumn:
    """A column a query produces: its result name and type."""

    name: str
    type: AdqlType

    def __deepcopy__(self, memo: dict) -> OutputColumn:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


@dataclass(frozen=True)
class SourceColumn:
    """A column exposed by a FROM item."""

    name: str
    sql_name: str
    type: AdqlType
    info: ColumnInfo | None = None

    def __deepcopy__(self, memo: dict) -> SourceColumn:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


def column_type(info: ColumnInfo) -> AdqlType:
    """Return the ADQL type of a catalog column, with its metadata."""
    return AdqlType(
        datatype=info.datatype,
        arraysize=info.arraysize,
        xtype=info.xtype,
        unit=info.unit,
        ucd=info.ucd,
        description=info.description,
    )


def name_of(identifier: exp.Expr | None) -> Name | None:
    """Return the ADQL name of an identifier node (None for None)."""
    if identifier is None:
        return None
    if isinstance(identifier, exp.Identifier):
        return Name(identifier.name, bool(identifier.quoted))
    return Name(identifier.name, False)


def did_you_mean(close: list[str]) -> str | None:
    """Return a "did you mean ...?" hint for close names, or None."""
    if not close:
        return None
    return "did you mean " + " or ".join(close) + "?"


def _names_match(definition: Name, reference: Name) -> bool:
    if definition.quoted and reference.quoted:
        return definition.text == reference.text
    return definition.text.lower() == reference.text.lower()


@dataclass(eq=False)
class Source:
    """One FROM item and the columns it exposes.

    Attributes
    ----------
    kind
        ``table``, ``derived`` or ``cte``.
    name
        Table or CTE name as it may be used to qualify columns when there
        is no alias (None for derived tables).
    schema
        Schema of a catalog table.
    alias
        Correlation name as written, if any.
    qualifier
        SQL identifier parts that qualify this source's columns.
    columns
        Exposed columns in order.
    table, ref
        Catalog table and its occurrence (catalog tables only).
    """

    kind: Literal["table", "derived", "cte"]
    name: str | None
    schema: str | None
    alias: Name | None
    qualifier: tuple[str, ...]
    columns: list[SourceColumn]
    table: TableInfo | None = None
    ref: TableRef | None = None

    def label(self) -> str:
        """Return the name users know this source by."""
        if self.alias is not None:
            return self.alias.text
        if self.schema:
            return f"{self.schema}.{self.name}"
        return self.name or "subquery"

    def answers_to(self, table: Name, schema: Name | None) -> bool:
        """Return True if ``schema.table`` (or ``table``) names this source."""
        if self.alias is not None:
            return schema is None and _names_match(self.alias, table)
        if self.name is None or not table.matches(self.name):
            return False
        if schema is None:
            return True
        return self.schema is not None and schema.matches(self.schema)

    def find(self, name: Name) -> SourceColumn | None:
        """Return the column ``name`` refers to, or None."""
        exact = [column for column in self.columns if column.name == name.text]
        if exact:
            return exact[0]
        if name.quoted:
            return None
        folded = [column for column in self.columns if column.name.lower() == name.text.lower()]
        if len(folded) > 1:
            raise AdqlNameError(
                f"column {name} of {self.label()} is ambiguous: " + ", ".join(f'"{c.name}"' for c in folded),
                ambiguous=True,
                hint="write the column name in double quotes with its exact case",
            )
        return folded[0] if folded else None

    def column_node(self, column: SourceColumn) -> exp.Column:
        """Return a qualified, quoted reference to ``column`` of this source."""
        parts = [exp.to_identifier(part, quoted=True) for part in self.qualifier]
        node = exp.Column(this=exp.to_identifier(column.sql_name, quoted=True), table=parts[-1])
        if len(parts) > 1:
            node.set("db", parts[0])
        return node

    def __deepcopy__(self, memo: dict) -> Source:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


@dataclass(frozen=True)
class StarItem:
    """One column that ``SELECT *`` produces at this point of a FROM clause."""

    name: str
    type: AdqlType
    build: Callable[[], exp.Expr]
    source: Source | None
    column: SourceColumn | None

    def __deepcopy__(self, memo: dict) -> StarItem:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


@dataclass(eq=False)
class Scope:
    """The sources visible at one query level, and the enclosing level.

    Attributes
    ----------
    parent
        Scope of the enclosing query (for correlated references).
    sources
        FROM items visible so far, in order.
    merged
        Columns merged by USING or NATURAL joins: lower-cased name to a
        factory building the expression that stands for the merged value.
    star
        What ``*`` expands to.
    correlated
        Set when a column of an enclosing scope is referenced.
    """

    parent: Scope | None = None
    sources: list[Source] = field(default_factory=list)
    merged: dict[str, StarItem] = field(default_factory=dict)
    star: list[StarItem] = field(default_factory=list)
    correlated: bool = False

    def qualified(self, table: Name, schema: Name | None) -> list[Source]:
        """Return the sources of this level answering to ``schema.table``."""
        return [source for source in self.sources if source.answers_to(table, schema)]

    def unqualified(self, name: Name) -> list[tuple[Source, SourceColumn]]:
        """Return every (source, column) of this level that ``name`` matches."""
        found = []
        for source in self.sources:
            column = source.find(name)
            if column is not None:
                found.append((source, column))
        return found

    def all_column_names(self) -> list[str]:
        """Return every column name visible here and in enclosing scopes."""
        names: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            for source in scope.sources:
                names.extend(column.name for column in source.columns)
            scope = scope.parent
        return names

    def labels(self) -> list[str]:
        """Return the names of the visible sources."""
        labels: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            labels.extend(source.label() for source in scope.sources)
            scope = scope.parent
        return labels

    def suggest_columns(self, name: str) -> list[str]:
        """Return the visible column names closest to ``name``."""
        return suggest(name, self.all_column_names())
