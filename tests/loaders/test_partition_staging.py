"""Partitions a load creates are filled unindexed, then indexed and attached; the result is a normal partition.

After any load, every chunk partition must be attached to its parent and carry
exactly the parent's indexes (each attached to the parent's index, so that the
planner and ``\\d`` see them as partitions of it), with no leftover CHECK
constraint.  A cone search on a chunk must still use the pgSphere GiST index.
Loads into chunks that already have rows go through the existing partitions.
A load that fails in any worker's thread or in validation leaves no table behind.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from dms_db.catalog_schema import load_catalog_schema, shipped_schema_path
from dms_db.catalog_service import deploy_schema_file
from dms_db.physical import attach_staged_partition, chunk_partition_name, index_name, stage_chunk_partitions
from loaders import writer
from loaders.bulk_load import KeyRuns, load_inputs, repeated_in_batch
from loaders.errors import LoadValidationError
from loaders.simulate import SimulationConfig, simulate_survey
from loaders.writer import EncodedChunks, copy_columns
from tests.harness import DatabaseCluster

SCHEMA = "apdb"
CHUNK_ORDER = 7


@pytest.fixture(scope="module")
def survey() -> dict[str, pd.DataFrame]:
    config = SimulationConfig(seed=3, n_objects=1500, n_visits=12, variable_fraction=0.5, include_data_release=False)
    return simulate_survey(config).tables


def partitions(conn: psycopg.Connection) -> dict[str, str]:
    """Partition name -> parent name, for every partitioned table of the catalog schema."""
    rows = conn.execute(
        "SELECT c.relname, p.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "JOIN pg_class p ON p.oid = h.inhparent JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r'",
        (SCHEMA,),
    )
    return dict(rows.fetchall())


def index_parents(conn: psycopg.Connection, table: str) -> dict[str, str | None]:
    """Index of ``table`` -> the parent index it is attached to (None: attached to none)."""
    rows = conn.execute(
        "SELECT i.relname, pi.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "LEFT JOIN pg_inherits h ON h.inhrelid = x.indexrelid LEFT JOIN pg_class pi ON pi.oid = h.inhparent "
        "WHERE x.indrelid = %s::regclass AND x.indisvalid",
        (sql.Identifier(SCHEMA, table).as_string(conn),),
    )
    return dict(rows.fetchall())


def check_constraints(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
        (sql.Identifier(SCHEMA, table).as_string(conn),),
    )
    return [name for (name,) in rows]


def assert_partitions_are_complete(cluster: DatabaseCluster) -> int:
    """Every partition of every worker is attached with exactly its parent's indexes; returns their number."""
    seen = 0
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            registered = conn.execute(
                "SELECT count(*) FROM dms_worker.chunk_partition WHERE schema_name = %s", (SCHEMA,)
            ).fetchone()[0]
            attached = partitions(conn)
            assert len(attached) == registered, "a registered partition is not attached"
            for partition, parent in attached.items():
                expected = set(index_parents(conn, parent))
                assert expected, parent
                own = index_parents(conn, partition)
                assert sorted(own.values(), key=str) == sorted(expected), (partition, own)
                assert check_constraints(conn, partition) == [], partition
            seen += len(attached)
    return seen


def rows_on_workers(cluster: DatabaseCluster, query: str, params: tuple[object, ...]) -> list[tuple[str, tuple]]:
    """(worker name, row) for every row ``query`` returns on each worker."""
    found = []
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            found += [(worker.name, row) for row in conn.execute(query, params)]
    return found


def relation_ids(cluster: DatabaseCluster) -> dict[tuple[str, str], int]:
    """(worker, relation) -> oid of every table and index in the catalog schema."""
    rows = rows_on_workers(
        cluster,
        "SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
        (SCHEMA,),
    )
    return {(worker, name): int(oid) for worker, (name, oid) in rows}


def chunk_tables(cluster: DatabaseCluster, table: str) -> list[str]:
    """Tables of the catalog schema named like a chunk partition of ``table``, attached or not."""
    rows = rows_on_workers(
        cluster,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s",
        (SCHEMA, table + "\\_\\_%"),
    )
    return [name for _, (name,) in rows if name != f"{table}__overlap"]


def test_new_partitions_are_attached_with_every_parent_index(
    make_cluster: Callable[..., DatabaseCluster], survey: dict[str, pd.DataFrame]
) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, SCHEMA, chunk_order=CHUNK_ORDER)
    load_inputs(cluster.topology, "apdb.DiaObject", [survey["apdb.DiaObject"]], batch_rows=400)
    load_inputs(cluster.topology, "apdb.DiaSource", [survey["apdb.DiaSource"]], batch_rows=500)
    # DiaObject main and overlap partitions and DiaSource partitions, on both workers
    assert assert_partitions_are_complete(cluster) > 3
    # The load analysed what it wrote: no partition is left to the planner's guesses.
    unanalysed = rows_on_workers(
        cluster,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.reltuples < 0",
        (SCHEMA,),
    )
    assert unanalysed == [], unanalysed

    # The partitions' own indexes serve queries: a director's GiST, a child's HEALPix B-tree.
    objects = survey["apdb.DiaObject"]
    ra, dec = float(objects["ra"].iloc[0]), float(objects["dec"].iloc[0])
    director_plan = _plan_on_chunk_of(
        cluster,
        "DiaObject",
        'EXPLAIN SELECT count(*) FROM apdb."DiaObject" WHERE chunk_id = %s '
        "AND spoint(radians(ra), radians(dec)) <@ scircle(spoint(radians(%s), radians(%s)), radians(0.05))",
        (ra, dec),
    )
    child_plan = _plan_on_chunk_of(
        cluster,
        "DiaSource",
        'EXPLAIN SELECT count(*) FROM apdb."DiaSource" WHERE chunk_id = %s '
        "AND healpix_index >= %s AND healpix_index < %s",
        (0, 2**40),
    )
    for plan, table, purpose in ((director_plan, "DiaObject", "spoint"), (child_plan, "DiaSource", "healpix")):
        chunk_id = plan[1]
        assert index_name(chunk_partition_name(table, chunk_id), purpose) in plan[0], plan[0]
        assert "Seq Scan" not in plan[0], plan[0]


def _plan_on_chunk_of(cluster: DatabaseCluster, table: str, explain: str, params: tuple) -> tuple[str, int]:
    """EXPLAIN ``explain`` (chunk id first parameter) on the fullest chunk of ``table``, seq scans off."""
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        chunk_id, node = conn.execute(
            "SELECT p.chunk_id, n.name FROM dms.chunk_row_count c JOIN dms.chunk_placement p USING (chunk_id) "
            "JOIN dms.node n USING (node_id) WHERE c.table_name = %s ORDER BY c.row_count DESC LIMIT 1",
            (table,),
        ).fetchone()
    dsn = next(w.dsn for w in cluster.topology.workers if w.name == node)
    with psycopg.connect(dsn) as conn:
        conn.execute("SET enable_seqscan = off")
        return "\n".join(r[0] for r in conn.execute(explain, (chunk_id, *params))), chunk_id


def test_a_load_into_existing_partitions_keeps_them_and_their_indexes(
    make_cluster: Callable[..., DatabaseCluster], survey: dict[str, pd.DataFrame]
) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, SCHEMA, chunk_order=CHUNK_ORDER)
    load_inputs(cluster.topology, "apdb.DiaObject", [survey["apdb.DiaObject"]])
    sources = survey["apdb.DiaSource"]
    half = len(sources) // 2
    load_inputs(cluster.topology, "apdb.DiaSource", [sources.iloc[:half]])
    before = relation_ids(cluster)
    load_inputs(cluster.topology, "apdb.DiaSource", [sources.iloc[half:]])
    after = relation_ids(cluster)
    # the partitions the first load made are the ones the second one wrote to: same tables, same indexes
    assert {k: v for k, v in after.items() if k in before} == before
    assert_partitions_are_complete(cluster)
    total = 0
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            conn.execute("SET enable_seqscan = off")  # counted through the indexes
            total += conn.execute('SELECT count(*) FROM apdb."DiaSource" WHERE "diaSourceId" > 0').fetchone()[0]
    assert total == len(sources)


def test_attaching_a_staged_partition_skips_the_validation_scan(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    cluster = make_cluster(1)
    deploy_schema_file(cluster.config, SCHEMA, chunk_order=CHUNK_ORDER)
    catalog = load_catalog_schema(shipped_schema_path(SCHEMA), name=SCHEMA)
    table = catalog.table("DiaSource")
    notices: list[str] = []
    with psycopg.connect(cluster.topology.workers[0].dsn) as conn:
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary or ""))
        assert stage_chunk_partitions(conn, SCHEMA, table, [42, 42]) == [(42, False)]
        assert partitions(conn) == {}  # not attached yet
        staged = sql.Identifier(SCHEMA, chunk_partition_name("DiaSource", 42))
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute(
                sql.SQL(
                    'INSERT INTO {} ("diaSourceId", visit, detector, "diaObjectId", "midpointMjdTai", band, '
                    "ra, dec, chunk_id, healpix_index) VALUES (1, 1, 1, 1, 60000, 'g', 1, 1, 43, 0)"
                ).format(staged)
            )
        conn.execute("SET client_min_messages = debug1")
        attach_staged_partition(conn, catalog, table, 42, False)
        conn.execute("RESET client_min_messages")
        assert partitions(conn) == {chunk_partition_name("DiaSource", 42): "DiaSource"}
        conn.commit()
        assert stage_chunk_partitions(conn, SCHEMA, table, [42]) == []  # it exists now
        conn.rollback()
    assert any("is implied by existing constraints" in n for n in notices), notices


def test_a_failure_in_a_writer_thread_rolls_everything_back(
    make_cluster: Callable[..., DatabaseCluster], survey: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = make_cluster(4)
    deploy_schema_file(cluster.config, SCHEMA, chunk_order=CHUNK_ORDER)
    load_inputs(cluster.topology, "apdb.DiaObject", [survey["apdb.DiaObject"]])
    calls = []
    real_copy = writer.copy_encoded_into

    def failing_copy(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("worker went away")
        real_copy(*args, **kwargs)

    monkeypatch.setattr(writer, "copy_encoded_into", failing_copy)
    with pytest.raises(RuntimeError, match="worker went away"):
        load_inputs(cluster.topology, "apdb.DiaSource", [survey["apdb.DiaSource"]], batch_rows=300)
    assert chunk_tables(cluster, "DiaSource") == []
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        states = [r[0] for r in conn.execute("SELECT state FROM dms.load_ledger WHERE table_name = 'DiaSource'")]
        counted = conn.execute("SELECT count(*) FROM dms.chunk_row_count WHERE table_name = 'DiaSource'").fetchone()
    assert states == ["aborted"] and counted[0] == 0
    monkeypatch.undo()
    report = load_inputs(cluster.topology, "apdb.DiaSource", [survey["apdb.DiaSource"]], batch_rows=300)
    assert report.rows == len(survey["apdb.DiaSource"])
    assert_partitions_are_complete(cluster)


def test_a_rejected_load_leaves_no_staged_partition(
    make_cluster: Callable[..., DatabaseCluster], survey: dict[str, pd.DataFrame]
) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, SCHEMA, chunk_order=CHUNK_ORDER)
    load_inputs(cluster.topology, "apdb.DiaObject", [survey["apdb.DiaObject"]])
    sources = survey["apdb.DiaSource"].copy()
    sources.loc[sources.index[-1], "diaObjectId"] = 999_999_999  # the last batch refers to no DiaObject
    with pytest.raises(LoadValidationError, match="not loaded"):
        load_inputs(cluster.topology, "apdb.DiaSource", [sources], batch_rows=200)
    assert chunk_tables(cluster, "DiaSource") == []


def test_key_runs_find_every_key_of_earlier_batches() -> None:
    rng = np.random.default_rng(5)
    runs, added = KeyRuns(), []
    for size in (1000, 10, 3000, 1, 700, 2000, 50):
        batch = rng.integers(0, 50_000, size)
        expected = np.isin(batch, np.concatenate(added)) if added else np.zeros(size, bool)
        assert (runs.contains(batch) == expected).all()
        unique, repeated = repeated_in_batch(batch)
        assert (unique == np.unique(batch)).all()
        first_seen = np.zeros(size, bool)
        first_seen[np.unique(batch, return_index=True)[1]] = True
        assert (repeated == ~first_seen).all()
        runs.add(unique)
        added.append(unique)
    assert runs.contains(np.array([], np.int64)).size == 0


def test_encoded_chunks_hold_each_chunk_sorted_by_healpix_index() -> None:
    """Overlap copies carry a neighbour's chunk: the rows are ordered by chunk first, then index."""
    rng = np.random.default_rng(9)
    healpix = rng.integers(0, 1 << 40, 2000)
    chunk = np.where(rng.random(2000) < 0.7, healpix >> 36, rng.integers(0, 16, 2000))
    rows = pa.table({"key": np.arange(2000), "chunk_id": chunk, "healpix_index": healpix})
    encoded = EncodedChunks.of(rows)
    assert sum(n for _, n in encoded.spans.values()) == 2000
    for chunk_id, (_, count) in encoded.spans.items():
        mine = rows.filter(pa.array(chunk == chunk_id))
        ordered = mine.take(np.argsort(mine["healpix_index"].to_numpy(), kind="stable"))
        alone = EncodedChunks.of(ordered)
        assert count == ordered.num_rows
        assert bytes(encoded.of_chunk(chunk_id)) == bytes(alone.of_chunk(chunk_id)), chunk_id
    assert encoded.of_chunk(99) is None
    assert [c.name for c in encoded.columns] == [c.name for c in copy_columns(rows.schema)]
    # a buffer large enough is reused (the writer hands back the buffers of batches already sent)
    again = EncodedChunks.of(rows, buffer=encoded.buffer)
    assert again.buffer is encoded.buffer
    assert EncodedChunks.of(rows, buffer=np.empty(10, np.uint8)).buffer.size >= len(again.encoded.payload)
