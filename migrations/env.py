"""Alembic environment: migrate the coordinator, then every worker.

Each node keeps its own ``alembic_version`` table, so a node that was down
during an upgrade is simply behind and catches up on the next run.  Revisions
have one upgrade/downgrade function per node role (``coordinator``, ``worker``),
as in alembic's multi-database template.

The nodes come from ``config.attributes["topology"]`` when dms-db calls alembic
itself, else from the dms-db configuration plus the workers registered on the
coordinator with ``dms-db cluster add-worker``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData

from dms_db.metadata import COORDINATOR_SCHEMA, WORKER_SCHEMA, coordinator_metadata, worker_metadata
from dms_db.migration_support import managed_schemas_filter, node_engine
from dms_db.topology import NodeRole, Topology

TARGETS: dict[NodeRole, tuple[MetaData, frozenset[str]]] = {
    NodeRole.COORDINATOR: (coordinator_metadata, frozenset({COORDINATOR_SCHEMA, "TAP_SCHEMA"})),
    NodeRole.WORKER: (worker_metadata, frozenset({WORKER_SCHEMA})),
}


def _topology() -> Topology:
    topology = context.config.attributes.get("topology")
    if topology is not None:
        return topology
    from dms_db.cluster import topology_for_migrations

    return topology_for_migrations()


def run_migrations_online() -> None:
    """Run the pending revisions on every node, one transaction per node."""
    for node in _topology().nodes:
        metadata, schemas = TARGETS[node.role]
        engine = node_engine(node.dsn)
        try:
            with engine.connect() as connection:
                # A login role named like one of our schemas ("dms") would make that schema
                # the default one through "$user" in search_path and confuse autogenerate.
                connection.exec_driver_sql("SET search_path TO public")
                connection.commit()
                connection.dialect.default_schema_name = "public"
                context.configure(
                    connection=connection,
                    target_metadata=metadata,
                    include_schemas=True,
                    include_name=managed_schemas_filter(schemas),
                    upgrade_token=f"{node.role}_upgrades",
                    downgrade_token=f"{node.role}_downgrades",
                    compare_type=True,
                    transaction_per_migration=False,
                )
                with context.begin_transaction():
                    context.run_migrations(node_role=node.role.value)
        finally:
            engine.dispose()


if context.is_offline_mode():
    raise SystemExit("dms-db migrations run online only: every node is upgraded through its own connection")
run_migrations_online()
