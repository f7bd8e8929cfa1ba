"""Catalog-level services used by the CLI and the service: deploy and list catalogs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from dms_db.catalog_schema import load_catalog_schema, shipped_schema_names, shipped_schema_path
from dms_db.cluster import resolve_topology
from dms_db.config import DmsConfig
from dms_db.deploy import DeployReport, deploy_catalog
from dms_db.errors import NotFoundError, SchemaError


def deploy_schema_file(
    config: DmsConfig, source: str, name: str | None = None, chunk_order: int | None = None
) -> DeployReport:
    """Deploy a Felis YAML file (or a shipped schema named ``apdb``/``dr``) onto the cluster."""
    path = Path(source)
    if not path.exists():
        try:
            path = shipped_schema_path(source)
        except SchemaError:
            raise NotFoundError(
                f"schema file {source} does not exist", hint="give a Felis YAML path, or 'apdb' or 'dr'"
            ) from None
    catalog = load_catalog_schema(path, name=name)
    topology = resolve_topology(config)
    order = config.chunk_order if chunk_order is None else chunk_order
    return deploy_catalog(topology, catalog, order, config.overlap_arcsec)


def deploy_shipped_schemas(config: DmsConfig) -> list[DeployReport]:
    """Deploy (or confirm) the shipped ``apdb`` and ``dr`` schemas: the embedded default's catalogs."""
    return [deploy_schema_file(config, name) for name in shipped_schema_names()]


@dataclass(frozen=True)
class DeployedCatalog:
    """A row of ``dms-db schema list``."""

    schema_name: str
    felis_name: str
    version: str | None
    chunk_order: int
    tables: int


def list_catalogs(config: DmsConfig) -> list[DeployedCatalog]:
    """The catalogs deployed on the cluster."""
    topology = resolve_topology(config)
    with psycopg.connect(topology.coordinator.dsn) as conn:
        rows = conn.execute(
            "SELECT c.schema_name, c.felis_name, c.version, c.chunk_order, count(t.table_name) "
            "FROM dms.catalog c LEFT JOIN dms.catalog_table t USING (schema_name) "
            "GROUP BY c.schema_name ORDER BY c.schema_name"
        ).fetchall()
    return [DeployedCatalog(*row) for row in rows]
