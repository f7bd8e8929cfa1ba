"""Small shared values: a table as a query uses it, and a result column.

They live apart from :mod:`adql.resolve` and :mod:`adql.description` so
that both (and the coordinator) can import them without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from adql.catalog import TableInfo
from adql.types import AdqlType

__all__ = ["ResultColumn", "TableRef"]


@dataclass(frozen=True)
class TableRef:
    """One occurrence of a catalog table in a query.

    Attributes
    ----------
    table
        The catalog table.
    alias
        The correlation name as it appears in the PostgreSQL text (regular
        ADQL aliases are folded to lower case), or None.
    sql_qualifier
        The identifier parts that qualify this table's columns in the
        translated SQL: ``(alias,)`` or ``(schema, table)``.  The
        coordinator uses it to add predicates (e.g. HEALPix ranges) on this
        occurrence.
    occurrence
        Serial number of the occurrence within the whole query, so that two
        occurrences of one table (a self-join) stay distinct.
    """

    table: TableInfo
    alias: str | None
    sql_qualifier: tuple[str, ...]
    occurrence: int

    def __repr__(self) -> str:
        alias = f" AS {self.alias}" if self.alias else ""
        return f"TableRef({self.table.qualified_name}{alias} #{self.occurrence})"

    def __deepcopy__(self, memo: dict) -> TableRef:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


@dataclass(frozen=True)
class ResultColumn:
    """Metadata of one result column, as a TAP service publishes it.

    Geometry values come out as DALI arrays of doubles in degrees:
    ``point`` (arraysize 2), ``circle`` (3) and ``polygon`` (``*``).
    """

    name: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    description: str | None = None

    @classmethod
    def from_type(cls, name: str, value_type: AdqlType) -> ResultColumn:
        """Build the metadata of a column called ``name`` holding ``value_type``."""
        datatype = value_type.datatype or "char"
        arraysize = value_type.arraysize
        xtype = value_type.xtype
        if value_type.geometry in ("box", "polygon"):
            datatype, arraysize, xtype = "double", "*", "polygon"
        elif value_type.geometry == "point":
            datatype, arraysize = "double", "2"
        elif value_type.geometry == "circle":
            datatype, arraysize = "double", "3"
        elif value_type.geometry == "region":
            datatype, arraysize, xtype = "double", "*", "polygon"
        elif value_type.is_unknown:
            arraysize = "*"
        return cls(
            name=name,
            datatype=datatype,
            arraysize=arraysize,
            xtype=xtype,
            unit=value_type.unit,
            ucd=value_type.ucd,
            description=value_type.description,
        )

    def __deepcopy__(self, memo: dict) -> ResultColumn:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self
