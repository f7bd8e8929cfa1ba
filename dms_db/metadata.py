"""Tables that dms-db itself keeps on the coordinator and on every worker.

These are the bookkeeping tables owned by the migrations in ``migrations/``
(catalog tables are created by ``dms-db schema deploy`` instead, and chunk
partitions by the loaders).  They are declared once here with SQLAlchemy Core;
alembic's autogenerate compares the databases against these declarations, so
``alembic check`` reports any drift.

Coordinator, schema ``dms``:

* ``node``            workers of the cluster and how to reach them
* ``catalog``         deployed catalogs (Felis YAML kept verbatim, chunk order, overlap)
* ``catalog_table``   their tables with kind, director and position columns
* ``chunk_placement`` which workers hold each chunk (one row per replica)
* ``director_index``  director id -> chunk and HEALPix index, for id lookups and placing child rows
* ``load_ledger``     one row per load: makes loads idempotent and drives recovery
* ``chunk_row_count`` rows per table and chunk, so ``COUNT(*)`` needs no scan
* ``query_log``       every query: who, what, how long, how many rows
* ``transaction_outcome`` commit decisions of distributed (two-phase) transactions
* ``uws_job``         TAP async jobs (UWS 1.1): owner, phase, times, parameters, result
* ``api_token``       bearer tokens of the TAP service (only their SHA-256 is stored)
* ``metadata_epoch``  one counter, raised by triggers whenever a table in
  :data:`METADATA_EPOCH_SOURCES` changes, so query engines know when to drop
  their cached catalogs and chunk placement

plus the standard ``TAP_SCHEMA`` tables.

Worker, schema ``dms_worker``:

* ``node_identity``   the node's name, so a worker can tell it was registered
* ``deployed_table``  catalog tables present on this worker (walked by migrations)
* ``chunk_partition`` chunk and overlap partitions created on this worker
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from dms_db.tap_schema import TAP_SCHEMA_NAME, define_tap_schema_tables

COORDINATOR_SCHEMA = "dms"
WORKER_SCHEMA = "dms_worker"

_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

coordinator_metadata = MetaData(naming_convention=_NAMING)
worker_metadata = MetaData(naming_convention=_NAMING)


def _created_at() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


node = Table(
    "node",
    coordinator_metadata,
    Column("node_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("dsn", Text, nullable=False),
    Column("state", String(16), nullable=False, server_default="active"),
    _created_at(),
    CheckConstraint("role IN ('worker')", name="role"),
    CheckConstraint("state IN ('active', 'draining', 'retired')", name="state"),
    schema=COORDINATOR_SCHEMA,
)

ACTIVE_WORKERS_SQL = (
    "SELECT name, dsn, node_id FROM dms.node WHERE role = 'worker' AND state = 'active' ORDER BY node_id"
)
"""(name, DSN, node id) of the workers that take part in loads, deploys, placement and queries."""

catalog = Table(
    "catalog",
    coordinator_metadata,
    Column("schema_name", String(63), primary_key=True),
    Column("felis_name", String(128), nullable=False),
    Column("version", String(64)),
    Column("description", Text),
    Column("chunk_order", SmallInteger, nullable=False),
    Column("overlap_arcsec", Double, nullable=False),
    Column("source_yaml", Text, nullable=False),
    _created_at(),
    CheckConstraint("chunk_order BETWEEN 0 AND 12", name="chunk_order"),
    schema=COORDINATOR_SCHEMA,
)

catalog_table = Table(
    "catalog_table",
    coordinator_metadata,
    Column(
        "schema_name",
        String(63),
        ForeignKey(f"{COORDINATOR_SCHEMA}.catalog.schema_name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("table_name", String(63), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("director_table", String(63)),
    Column("director_key", String(63)),
    Column("ra_column", String(63)),
    Column("dec_column", String(63)),
    CheckConstraint("kind IN ('director', 'child', 'replicated')", name="kind"),
    schema=COORDINATOR_SCHEMA,
)

chunk_placement = Table(
    "chunk_placement",
    coordinator_metadata,
    Column("chunk_order", SmallInteger, primary_key=True),
    Column("chunk_id", BigInteger, primary_key=True),
    Column("replica", SmallInteger, primary_key=True),
    Column("node_id", Integer, ForeignKey(f"{COORDINATOR_SCHEMA}.node.node_id", ondelete="RESTRICT"), nullable=False),
    UniqueConstraint("chunk_order", "chunk_id", "node_id"),
    Index(None, "node_id"),
    schema=COORDINATOR_SCHEMA,
)

director_index = Table(
    "director_index",
    coordinator_metadata,
    Column("schema_name", String(63), primary_key=True),
    Column("table_name", String(63), primary_key=True),
    Column("object_id", BigInteger, primary_key=True),
    Column("chunk_id", BigInteger, nullable=False),
    Column("healpix_index", BigInteger, nullable=False),
    Column("load_id", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["schema_name", "table_name"],
        [f"{COORDINATOR_SCHEMA}.catalog_table.schema_name", f"{COORDINATOR_SCHEMA}.catalog_table.table_name"],
        ondelete="CASCADE",
    ),
    schema=COORDINATOR_SCHEMA,
)

load_ledger = Table(
    "load_ledger",
    coordinator_metadata,
    Column("load_id", BigInteger, primary_key=True, autoincrement=True),
    Column("schema_name", String(63), nullable=False),
    Column("table_name", String(63), nullable=False),
    Column("source_name", Text, nullable=False),
    Column("source_digest", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("row_count", BigInteger),
    Column("transaction_gid", String(128)),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("error", Text),
    CheckConstraint("state IN ('started', 'prepared', 'committed', 'aborted')", name="state"),
    Index(
        "uq_load_ledger_committed_source",
        "schema_name",
        "table_name",
        "source_digest",
        unique=True,
        postgresql_where="state = 'committed'",
    ),
    schema=COORDINATOR_SCHEMA,
)

chunk_row_count = Table(
    "chunk_row_count",
    coordinator_metadata,
    Column("schema_name", String(63), primary_key=True),
    Column("table_name", String(63), primary_key=True),
    Column("chunk_id", BigInteger, primary_key=True),
    Column("row_count", BigInteger, nullable=False),
    CheckConstraint("row_count >= 0", name="non_negative"),
    schema=COORDINATOR_SCHEMA,
)

query_log = Table(
    "query_log",
    coordinator_metadata,
    Column("query_id", BigInteger, primary_key=True, autoincrement=True),
    Column("owner", String(128), nullable=False, server_default="anonymous"),
    Column("query_text", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("duration_ms", Double),
    Column("row_count", BigInteger),
    Column("outcome", String(16), nullable=False, server_default="running"),
    Column("error", Text),
    CheckConstraint("outcome IN ('running', 'ok', 'error', 'aborted', 'overflow')", name="outcome"),
    Index(None, "started_at"),
    schema=COORDINATOR_SCHEMA,
)

UWS_PHASES = (
    "PENDING",
    "QUEUED",
    "EXECUTING",
    "COMPLETED",
    "ERROR",
    "ABORTED",
    "UNKNOWN",
    "HELD",
    "SUSPENDED",
    "ARCHIVED",
)

uws_job = Table(
    "uws_job",
    coordinator_metadata,
    Column("job_id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("run_id", Text),
    Column("phase", String(16), nullable=False, server_default="PENDING"),
    Column("creation_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("start_time", DateTime(timezone=True)),
    Column("end_time", DateTime(timezone=True)),
    Column("execution_duration", Integer, nullable=False),
    Column("destruction_time", DateTime(timezone=True), nullable=False),
    Column("parameters", JSONB, nullable=False, server_default="{}"),
    Column("error_type", String(16)),
    Column("error_summary", Text),
    Column("result_path", Text),
    Column("result_media_type", Text),
    Column("row_count", BigInteger),
    Column("overflow", Boolean),
    CheckConstraint("phase IN (" + ", ".join(f"'{p}'" for p in UWS_PHASES) + ")", name="phase"),
    CheckConstraint("error_type IS NULL OR error_type IN ('transient', 'fatal')", name="error_type"),
    Index(None, "owner", "creation_time"),
    Index(None, "destruction_time"),
    schema=COORDINATOR_SCHEMA,
)

api_token = Table(
    "api_token",
    coordinator_metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("note", Text),
    _created_at(),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Index(None, "owner"),
    schema=COORDINATOR_SCHEMA,
)

transaction_outcome = Table(
    "transaction_outcome",
    coordinator_metadata,
    Column("gid", String(128), primary_key=True),
    Column("purpose", String(32), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=COORDINATOR_SCHEMA,
)

tap_schema_tables = define_tap_schema_tables(coordinator_metadata)

metadata_epoch = Table(
    "metadata_epoch",
    coordinator_metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("singleton", name="singleton"),
    schema=COORDINATOR_SCHEMA,
)

METADATA_EPOCH_SQL = "SELECT epoch FROM dms.metadata_epoch"
"""The counter query engines compare with the epoch their cached metadata was read under."""

METADATA_EPOCH_SOURCES: tuple[tuple[str, str], ...] = (
    (COORDINATOR_SCHEMA, "node"),
    (COORDINATOR_SCHEMA, "catalog"),
    (COORDINATOR_SCHEMA, "catalog_table"),
    (COORDINATOR_SCHEMA, "chunk_placement"),
    *((TAP_SCHEMA_NAME, name) for name in ("schemas", "tables", "columns", "keys", "key_columns")),
)
"""(schema, table) of what query engines cache: a change to any of them raises ``metadata_epoch``."""

node_identity = Table(
    "node_identity",
    worker_metadata,
    Column("node_name", String(64), primary_key=True),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=WORKER_SCHEMA,
)

deployed_table = Table(
    "deployed_table",
    worker_metadata,
    Column("schema_name", String(63), primary_key=True),
    Column("table_name", String(63), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("chunk_order", SmallInteger),
    CheckConstraint("kind IN ('director', 'child', 'replicated')", name="kind"),
    schema=WORKER_SCHEMA,
)

chunk_partition = Table(
    "chunk_partition",
    worker_metadata,
    Column("schema_name", String(63), primary_key=True),
    Column("table_name", String(63), primary_key=True),
    Column("chunk_id", BigInteger, primary_key=True),
    Column("is_overlap", Boolean, primary_key=True),
    _created_at(),
    ForeignKeyConstraint(
        ["schema_name", "table_name"],
        [f"{WORKER_SCHEMA}.deployed_table.schema_name", f"{WORKER_SCHEMA}.deployed_table.table_name"],
        ondelete="CASCADE",
    ),
    schema=WORKER_SCHEMA,
)
