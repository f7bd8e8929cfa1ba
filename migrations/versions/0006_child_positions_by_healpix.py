"""Find child-table rows by HEALPix ranges: own-position ``healpix_index``, no GiST.

Child tables (DiaSource, Source, ForcedSource) lose their pgSphere GiST index,
whose build cost more than the COPY that fills them; the coordinator now ANDs
order-29 ``healpix_index`` ranges covering a query's region, which the
existing B-tree answers (see ``dms_db.physical.HEALPIX_LOOKUP_KINDS``).  For
that, a child row's ``healpix_index`` must be the index of its own position;
rows written before this revision carry their director's, so it is recomputed
from the position columns the dropped index names, with the loader's own
function (pgSphere's ``healpix_nest`` puts the exact north pole in the wrong
base pixel).

Downgrade changes nothing: earlier revisions never read a child's
``healpix_index`` in queries, and they answer the same queries without the GiST
index, only more slowly.  A DBA who downgrades for long can rebuild it on the
parent table, e.g. ``CREATE INDEX ON apdb."DiaSource" USING gist
(spoint(radians(ra), radians(dec)))``, which reaches every partition.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from alembic import op
from sqlalchemy import text

from dms_db.physical import HEALPIX_COLUMN, POSITION_INDEX_PURPOSE, index_name
from sharding.healpix import healpix_index

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GIST_EXPRESSION = re.compile(r"USING gist \(spoint\(radians\((?P<ra>.+)\), radians\((?P<dec>.+)\)\)\)$")


def upgrade(node_role: str) -> None:
    """Upgrade one node; env.py calls this once per node with its role."""
    globals()[f"upgrade_{node_role}"]()


def downgrade(node_role: str) -> None:
    """Downgrade one node; env.py calls this once per node with its role."""
    globals()[f"downgrade_{node_role}"]()


def upgrade_coordinator() -> None:
    pass


def downgrade_coordinator() -> None:
    pass


def _child_tables() -> list[tuple[str, str]]:
    rows = op.get_bind().execute(
        text("SELECT schema_name, table_name FROM dms_worker.deployed_table WHERE kind = 'child' ORDER BY 1, 2")
    )
    return [(schema_name, table_name) for schema_name, table_name in rows]


def _quoted(schema_name: str, name: str) -> str:
    """``schema.name`` quoted by the dialect (the names come from the catalog, not from SQL)."""
    preparer = op.get_bind().dialect.identifier_preparer
    return f"{preparer.quote_identifier(schema_name)}.{preparer.quote_identifier(name)}"


def _partitions(schema_name: str, table_name: str) -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass(:parent)"),
        {"parent": _quoted(schema_name, table_name)},
    )
    return [name for (name,) in rows]


def _reindex_partition(partition: str, ra: str, dec: str) -> None:
    """Set each row's ``healpix_index`` to that of its own position, computed as the loader does.

    ``partition`` comes from ``regclass`` output and ``ra``/``dec`` from the
    index definition PostgreSQL printed, so they are already quoted SQL.
    """
    bind = op.get_bind()
    read = f"SELECT ctid::text, {ra}, {dec} FROM {partition} WHERE {ra} IS NOT NULL AND {dec} IS NOT NULL"  # noqa: S608
    rows = bind.execute(text(read)).all()
    if not rows:
        return
    ctids = [row[0] for row in rows]
    index = healpix_index(np.array([row[1] for row in rows], float), np.array([row[2] for row in rows], float))
    column = op.get_bind().dialect.identifier_preparer.quote_identifier(HEALPIX_COLUMN)
    update = f"UPDATE {partition} AS t SET {column} = v.idx "  # noqa: S608
    update += "FROM unnest(CAST(:ctids AS tid[]), CAST(:idx AS bigint[])) AS v(row_id, idx) WHERE t.ctid = v.row_id"
    bind.execute(text(update), {"ctids": ctids, "idx": [int(i) for i in index]})


def upgrade_worker() -> None:
    bind = op.get_bind()
    for schema_name, table_name in _child_tables():
        index = index_name(table_name, POSITION_INDEX_PURPOSE)
        definition = bind.execute(
            text("SELECT pg_get_indexdef(to_regclass(:name))"), {"name": _quoted(schema_name, index)}
        ).scalar()
        if definition is None:
            continue
        match = _GIST_EXPRESSION.search(definition)
        if match is None:
            raise RuntimeError(f"unexpected position index on {schema_name}.{table_name}: {definition}")
        for partition in _partitions(schema_name, table_name):
            _reindex_partition(partition, match.group("ra"), match.group("dec"))
        bind.execute(text(f"DROP INDEX {_quoted(schema_name, index)}"))


def downgrade_worker() -> None:
    """Nothing to undo that earlier revisions need (see the module docstring)."""
