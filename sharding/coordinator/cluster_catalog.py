"""What the coordinator knows about the deployed catalogs, read once per engine.

The translator needs a :class:`adql.TableCatalog` whose tables carry their
partitioning (director, child, replicated, TAP_SCHEMA); the planner needs
each catalog's chunk order and overlap margin.  Both come from the
coordinator database: TAP_SCHEMA for names, types and units, and
``dms.catalog`` / ``dms.catalog_table`` for partitioning.  Reading them once
and refreshing only on demand keeps translation off the database.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from adql import TableCatalog, TableKindInfo

__all__ = ["CatalogLayout", "ClusterCatalog", "read_cluster_catalog", "read_table_kinds"]


@dataclass(frozen=True)
class CatalogLayout:
    """Partitioning parameters of one deployed catalog (one ADQL schema)."""

    schema_name: str
    chunk_order: int
    overlap_deg: float


@dataclass(frozen=True)
class ClusterCatalog:
    """The translator's catalog plus the partitioning of every deployed schema."""

    tables: TableCatalog
    layouts: dict[str, CatalogLayout]

    def layout(self, schema_name: str) -> CatalogLayout:
        """The layout of a deployed schema (its chunk order and overlap margin)."""
        return self.layouts[schema_name]


def read_table_kinds(conn: psycopg.Connection) -> dict[str, TableKindInfo]:
    """Partitioning of every deployed table, keyed by qualified ADQL name (``apdb.DiaSource``)."""
    kinds: dict[str, TableKindInfo] = {}
    rows = conn.execute(
        "SELECT schema_name, table_name, kind, director_table, director_key, ra_column, dec_column "
        "FROM dms.catalog_table"
    ).fetchall()
    for schema_name, table_name, kind, director_table, director_key, ra_column, dec_column in rows:
        # TableKindInfo names a child's director qualified with its schema; directors have none.
        director = f"{schema_name}.{director_table}" if kind == "child" and director_table else None
        kinds[f"{schema_name}.{table_name}"] = TableKindInfo(kind, director_key, director, ra_column, dec_column)
    return kinds


def read_cluster_catalog(conn: psycopg.Connection) -> ClusterCatalog:
    """Read the translator catalog and the catalog layouts from the coordinator."""
    tables = TableCatalog.from_tap_schema(conn, read_table_kinds(conn))
    layouts = {
        name: CatalogLayout(name, int(order), float(overlap) / 3600.0)
        for name, order, overlap in conn.execute("SELECT schema_name, chunk_order, overlap_arcsec FROM dms.catalog")
    }
    return ClusterCatalog(tables, layouts)
