"""Initial dms-db tables on the coordinator and the workers.

Coordinator: schema ``dms`` (nodes, catalogs, placement, director index, load
ledger, row counts, query log, transaction outcomes) and ``TAP_SCHEMA``.
Worker: schema ``dms_worker`` (identity, deployed tables, chunk partitions).
Every node gets the pgSphere extension.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateSchema, DropSchema

from dms_db.errors import SetupError

PGSPHERE_PACKAGE = "postgresql-15-pgsphere"


def _require_pgsphere() -> None:
    """Create pgSphere, or stop with the package to install on that server."""
    bind = op.get_bind()
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_sphere'")).first()
    if available is None:
        raise SetupError(
            f"pgSphere is not installed on {bind.engine.url.host or 'this server'}: "
            f"install the Debian package {PGSPHERE_PACKAGE} there, then run 'alembic upgrade head' again"
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(node_role: str) -> None:
    """Upgrade one node; env.py calls this once per node with its role."""
    globals()[f"upgrade_{node_role}"]()


def downgrade(node_role: str) -> None:
    """Downgrade one node; env.py calls this once per node with its role."""
    globals()[f"downgrade_{node_role}"]()


def upgrade_coordinator() -> None:
    _require_pgsphere()
    op.execute(CreateSchema("dms", if_not_exists=True))
    op.execute(CreateSchema("TAP_SCHEMA", if_not_exists=True))
    op.create_table(
        "schemas",
        sa.Column(
            "schema_name", sa.String(), nullable=False, comment="schema name for reference to tap_schema.schemas"
        ),
        sa.Column("utype", sa.String(), nullable=True, comment="lists the utypes of schemas in the tableset"),
        sa.Column("description", sa.String(), nullable=True, comment="describes schemas in the tableset"),
        sa.Column("schema_index", sa.Integer(), nullable=True, comment="recommended sort order when listing schemas"),
        sa.PrimaryKeyConstraint("schema_name", name="schemas_pkey"),
        schema="TAP_SCHEMA",
        comment="description of schemas in this tableset",
    )
    op.create_table(
        "catalog",
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("felis_name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("chunk_order", sa.SmallInteger(), nullable=False),
        sa.Column("overlap_arcsec", sa.Double(), nullable=False),
        sa.Column("source_yaml", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("chunk_order BETWEEN 0 AND 12", name=op.f("ck_catalog_chunk_order")),
        sa.PrimaryKeyConstraint("schema_name", name=op.f("pk_catalog")),
        schema="dms",
    )
    op.create_table(
        "chunk_row_count",
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("row_count >= 0", name=op.f("ck_chunk_row_count_non_negative")),
        sa.PrimaryKeyConstraint("schema_name", "table_name", "chunk_id", name=op.f("pk_chunk_row_count")),
        schema="dms",
    )
    op.create_table(
        "load_ledger",
        sa.Column("load_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("transaction_gid", sa.String(length=128), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('started', 'prepared', 'committed', 'aborted')", name=op.f("ck_load_ledger_state")
        ),
        sa.PrimaryKeyConstraint("load_id", name=op.f("pk_load_ledger")),
        schema="dms",
    )
    op.create_index(
        "uq_load_ledger_committed_source",
        "load_ledger",
        ["schema_name", "table_name", "source_digest"],
        unique=True,
        schema="dms",
        postgresql_where="state = 'committed'",
    )
    op.create_table(
        "node",
        sa.Column("node_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("dsn", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("role IN ('worker')", name=op.f("ck_node_role")),
        sa.CheckConstraint("state IN ('active', 'draining', 'retired')", name=op.f("ck_node_state")),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node")),
        sa.UniqueConstraint("name", name=op.f("uq_node_name")),
        schema="dms",
    )
    op.create_table(
        "query_log",
        sa.Column("query_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=128), server_default="anonymous", nullable=False),
        sa.Column("query_text", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=True),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), server_default="running", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('running', 'ok', 'error', 'aborted', 'overflow')", name=op.f("ck_query_log_outcome")
        ),
        sa.PrimaryKeyConstraint("query_id", name=op.f("pk_query_log")),
        schema="dms",
    )
    op.create_index(op.f("ix_query_log_started_at"), "query_log", ["started_at"], unique=False, schema="dms")
    op.create_table(
        "transaction_outcome",
        sa.Column("gid", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("gid", name=op.f("pk_transaction_outcome")),
        schema="dms",
    )
    op.create_table(
        "tables",
        sa.Column("schema_name", sa.String(), nullable=False, comment="the schema this table belongs to"),
        sa.Column("table_name", sa.String(), nullable=False, comment="the fully qualified table name"),
        sa.Column("table_type", sa.String(), nullable=False, comment="one of: table view"),
        sa.Column("utype", sa.String(), nullable=True, comment="lists the utype of tables in the tableset"),
        sa.Column("description", sa.String(), nullable=True, comment="describes tables in the tableset"),
        sa.Column("table_index", sa.Integer(), nullable=True, comment="recommended sort order when listing tables"),
        sa.ForeignKeyConstraint(["schema_name"], ["TAP_SCHEMA.schemas.schema_name"], name="tables_schema_name_fkey"),
        sa.PrimaryKeyConstraint("table_name", name="tables_pkey"),
        schema="TAP_SCHEMA",
        comment="description of tables in this tableset",
    )
    op.create_table(
        "catalog_table",
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("director_table", sa.String(length=63), nullable=True),
        sa.Column("director_key", sa.String(length=63), nullable=True),
        sa.Column("ra_column", sa.String(length=63), nullable=True),
        sa.Column("dec_column", sa.String(length=63), nullable=True),
        sa.CheckConstraint("kind IN ('director', 'child', 'replicated')", name=op.f("ck_catalog_table_kind")),
        sa.ForeignKeyConstraint(
            ["schema_name"],
            ["dms.catalog.schema_name"],
            name=op.f("fk_catalog_table_schema_name_catalog"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schema_name", "table_name", name=op.f("pk_catalog_table")),
        schema="dms",
    )
    op.create_table(
        "chunk_placement",
        sa.Column("chunk_order", sa.SmallInteger(), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("replica", sa.SmallInteger(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["dms.node.node_id"], name=op.f("fk_chunk_placement_node_id_node"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("chunk_order", "chunk_id", "replica", name=op.f("pk_chunk_placement")),
        sa.UniqueConstraint(
            "chunk_order", "chunk_id", "node_id", name=op.f("uq_chunk_placement_chunk_order_chunk_id_node_id")
        ),
        schema="dms",
    )
    op.create_index(op.f("ix_chunk_placement_node_id"), "chunk_placement", ["node_id"], unique=False, schema="dms")
    op.create_table(
        "columns",
        sa.Column("table_name", sa.String(), nullable=False, comment="the table this column belongs to"),
        sa.Column("column_name", sa.String(), nullable=False, comment="the column name"),
        sa.Column("utype", sa.String(), nullable=True, comment="lists the utypes of columns in the tableset"),
        sa.Column("ucd", sa.String(), nullable=True, comment="lists the UCDs of columns in the tableset"),
        sa.Column("unit", sa.String(), nullable=True, comment="lists the unit used for column values in the tableset"),
        sa.Column("description", sa.String(), nullable=True, comment="describes the columns in the tableset"),
        sa.Column(
            "datatype", sa.String(), nullable=False, comment="lists the ADQL datatype of columns in the tableset"
        ),
        sa.Column(
            "arraysize", sa.String(), nullable=True, comment="lists the size of variable-length columns in the tableset"
        ),
        sa.Column("xtype", sa.String(), nullable=True, comment="a DALI or custom extended type annotation"),
        sa.Column("size", sa.Integer(), nullable=True, comment="deprecated: use arraysize"),
        sa.Column("principal", sa.Integer(), nullable=False, comment="a principal column; 1 means 1, 0 means 0"),
        sa.Column("indexed", sa.Integer(), nullable=False, comment="an indexed column; 1 means 1, 0 means 0"),
        sa.Column("std", sa.Integer(), nullable=False, comment="a standard column; 1 means 1, 0 means 0"),
        sa.Column(
            "column_index",
            sa.Integer(),
            nullable=True,
            comment="recommended sort order when listing columns of a table",
        ),
        sa.ForeignKeyConstraint(["table_name"], ["TAP_SCHEMA.tables.table_name"], name="columns_table_name_fkey"),
        sa.PrimaryKeyConstraint("table_name", "column_name", name="columns_pkey"),
        schema="TAP_SCHEMA",
        comment="description of columns in this tableset",
    )
    op.create_table(
        "keys",
        sa.Column("key_id", sa.String(), nullable=False, comment="unique key to join to tap_schema.key_columns"),
        sa.Column("from_table", sa.String(), nullable=False, comment="the table with the foreign key"),
        sa.Column("target_table", sa.String(), nullable=False, comment="the table with the primary key"),
        sa.Column("utype", sa.String(), nullable=True, comment="lists the utype of keys in the tableset"),
        sa.Column("description", sa.String(), nullable=True, comment="describes keys in the tableset"),
        sa.ForeignKeyConstraint(["from_table"], ["TAP_SCHEMA.tables.table_name"], name="keys_from_table_fkey"),
        sa.ForeignKeyConstraint(["target_table"], ["TAP_SCHEMA.tables.table_name"], name="keys_target_table_fkey"),
        sa.PrimaryKeyConstraint("key_id", name="keys_pkey"),
        schema="TAP_SCHEMA",
        comment="description of foreign keys in this tableset",
    )
    op.create_table(
        "director_index",
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("healpix_index", sa.BigInteger(), nullable=False),
        sa.Column("load_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_name", "table_name"],
            ["dms.catalog_table.schema_name", "dms.catalog_table.table_name"],
            name=op.f("fk_director_index_schema_name_catalog_table"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schema_name", "table_name", "object_id", name=op.f("pk_director_index")),
        schema="dms",
    )
    op.create_table(
        "key_columns",
        sa.Column("key_id", sa.String(), nullable=False, comment="key to join to tap_schema.keys"),
        sa.Column("from_column", sa.String(), nullable=False, comment="column in the from_table"),
        sa.Column("target_column", sa.String(), nullable=False, comment="column in the target_table"),
        sa.ForeignKeyConstraint(["key_id"], ["TAP_SCHEMA.keys.key_id"], name="key_columns_key_id_fkey"),
        sa.PrimaryKeyConstraint("key_id", "from_column", "target_column", name="key_columns_pkey"),
        schema="TAP_SCHEMA",
        comment="description of foreign key columns in this tableset",
    )


def downgrade_coordinator() -> None:
    op.drop_table("key_columns", schema="TAP_SCHEMA")
    op.drop_table("director_index", schema="dms")
    op.drop_table("keys", schema="TAP_SCHEMA")
    op.drop_table("columns", schema="TAP_SCHEMA")
    op.drop_index(op.f("ix_chunk_placement_node_id"), table_name="chunk_placement", schema="dms")
    op.drop_table("chunk_placement", schema="dms")
    op.drop_table("catalog_table", schema="dms")
    op.drop_table("tables", schema="TAP_SCHEMA")
    op.drop_table("transaction_outcome", schema="dms")
    op.drop_index(op.f("ix_query_log_started_at"), table_name="query_log", schema="dms")
    op.drop_table("query_log", schema="dms")
    op.drop_table("node", schema="dms")
    op.drop_index(
        "uq_load_ledger_committed_source",
        table_name="load_ledger",
        schema="dms",
        postgresql_where="state = 'committed'",
    )
    op.drop_table("load_ledger", schema="dms")
    op.drop_table("chunk_row_count", schema="dms")
    op.drop_table("catalog", schema="dms")
    op.drop_table("schemas", schema="TAP_SCHEMA")
    op.execute(DropSchema("TAP_SCHEMA", if_exists=True))
    op.execute(DropSchema("dms", if_exists=True))


def upgrade_worker() -> None:
    _require_pgsphere()
    op.execute(CreateSchema("dms_worker", if_not_exists=True))
    op.create_table(
        "deployed_table",
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("chunk_order", sa.SmallInteger(), nullable=True),
        sa.CheckConstraint("kind IN ('director', 'child', 'replicated')", name=op.f("ck_deployed_table_kind")),
        sa.PrimaryKeyConstraint("schema_name", "table_name", name=op.f("pk_deployed_table")),
        schema="dms_worker",
    )
    op.create_table(
        "node_identity",
        sa.Column("node_name", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("node_name", name=op.f("pk_node_identity")),
        schema="dms_worker",
    )
    op.create_table(
        "chunk_partition",
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("is_overlap", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_name", "table_name"],
            ["dms_worker.deployed_table.schema_name", "dms_worker.deployed_table.table_name"],
            name=op.f("fk_chunk_partition_schema_name_deployed_table"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schema_name", "table_name", "chunk_id", "is_overlap", name=op.f("pk_chunk_partition")),
        schema="dms_worker",
    )


def downgrade_worker() -> None:
    # Catalogs live only as long as dms-db's bookkeeping of them.
    deployed = op.get_bind().execute(sa.text("SELECT DISTINCT schema_name FROM dms_worker.deployed_table"))
    for (schema_name,) in deployed.all():
        op.execute(DropSchema(schema_name, cascade=True, if_exists=True))
    op.drop_table("chunk_partition", schema="dms_worker")
    op.drop_table("node_identity", schema="dms_worker")
    op.drop_table("deployed_table", schema="dms_worker")
    op.execute(DropSchema("dms_worker", if_exists=True))
