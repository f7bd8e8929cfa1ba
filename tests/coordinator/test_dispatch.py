"""The dispatcher against real PostgreSQL: chunk lists, failover, errors, gather, cancellation.

Each worker database gets a plain table ``t`` holding the rows of the chunks
placed on it (a copy per replica), and ``dms.chunk_placement`` says where each
chunk is, so the dispatcher sees exactly what it sees in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence

import psycopg
import pytest
from psycopg import sql

from dms_db import cluster as cluster_service
from dms_db.errors import NodeUnavailableError, UserError
from dms_db.local_cluster import LocalCluster
from dms_db.topology import Topology
from sharding.coordinator.chunk_map import ChunkMap
from sharding.coordinator.dispatch import (
    Dispatcher,
    QueryExecutionError,
    QueryTimeoutError,
    ScatterRequest,
    SingleRequest,
)
from sharding.coordinator.node_pools import APPLICATION_NAME
from tests.harness import DatabaseCluster, TestServer

CHUNK_ORDER = 5
ROWS_PER_CHUNK = 50


def _seed(
    cluster: DatabaseCluster | Topology, placement: dict[int, tuple[str, ...]], rows_per_chunk: int = ROWS_PER_CHUNK
) -> ChunkMap:
    """Place ``placement`` on the coordinator and write every chunk's rows on its replicas."""
    topology = cluster if isinstance(cluster, Topology) else cluster.topology
    with psycopg.connect(topology.coordinator.dsn) as conn:
        node_ids = dict(conn.execute("SELECT name, node_id FROM dms.node").fetchall())
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dms.chunk_placement (chunk_order, chunk_id, replica, node_id) VALUES (%s, %s, %s, %s)",
                [
                    (CHUNK_ORDER, chunk, replica, node_ids[node])
                    for chunk, nodes in placement.items()
                    for replica, node in enumerate(nodes)
                ],
            )
    for worker in topology.workers:
        chunks = [chunk for chunk, nodes in placement.items() if worker.name in nodes]
        with psycopg.connect(worker.dsn) as conn:
            conn.execute("CREATE TABLE t (chunk_id integer, id bigint, x double precision, node text)")
            conn.execute(
                "INSERT INTO t SELECT c, c::bigint * 1000000 + g, g * 0.1, %s "
                "FROM unnest(%s::integer[]) AS c, generate_series(1, %s) AS g",
                (worker.name, chunks, rows_per_chunk),
            )
            conn.execute("CREATE FUNCTION delay(chunk integer) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
    with psycopg.connect(topology.coordinator.dsn) as conn:
        return ChunkMap.read(conn, CHUNK_ORDER)


def _expected_ids(chunks: Sequence[int], rows_per_chunk: int = ROWS_PER_CHUNK) -> list[int]:
    return sorted(c * 1_000_000 + g for c in chunks for g in range(1, rows_per_chunk + 1))


class Recorder:
    """A ``sql_for`` that remembers the chunk list of every statement it made."""

    def __init__(self, select: str = "chunk_id, id, x, node", where: str = "delay(chunk_id)") -> None:
        self.calls: list[list[int]] = []
        self.select = select
        self.where = where

    def __call__(self, chunk_ids: Sequence[int]) -> sql.Composable:
        self.calls.append(list(chunk_ids))
        return sql.SQL("SELECT {} FROM t WHERE chunk_id = ANY({}) AND {}").format(
            sql.SQL(self.select), sql.Literal(list(chunk_ids)), sql.SQL(self.where)
        )


def _run(coro_factory: Callable[[], object]) -> object:
    return asyncio.run(coro_factory())  # type: ignore[arg-type]


async def _collect(dispatcher: Dispatcher, request: ScatterRequest | SingleRequest) -> list[tuple]:
    async with dispatcher.stream(request) as stream:
        return [row async for row in stream]


def _with_worker_dsn(topology: Topology, name: str, dsn: str) -> Topology:
    workers = tuple(dataclasses.replace(w, dsn=dsn) if w.name == name else w for w in topology.workers)
    return Topology(topology.coordinator, workers)


def _unreachable_dsn(dsn: str) -> str:
    """The same server, a database that does not exist: connections are refused at once."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["dbname"] = "dms_no_such_database"
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def _set_delay(dsn: str, seconds: float, chunks: str = "true") -> None:
    """Make ``delay(chunk_id)`` sleep ``seconds`` per row on a worker, for the chunks ``chunks`` says."""
    body = f"SELECT CASE WHEN {chunks} THEN pg_sleep({seconds}) IS NOT NULL ELSE true END"
    with psycopg.connect(dsn) as conn:
        conn.execute(
            sql.SQL("CREATE OR REPLACE FUNCTION delay(chunk integer) RETURNS boolean LANGUAGE sql AS {}").format(
                sql.Literal(body)
            )
        )


# -- chunk lists and balancing ------------------------------------------------


def test_one_statement_per_worker_covers_its_chunks(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(3)
    placement = {c: (f"worker-{c % 3 + 1}",) for c in range(10, 22)}
    chunk_map = _seed(cluster, placement)
    recorder = Recorder()
    wanted = [10, 11, 12, 13, 14, 15, 999]  # 999 is not placed: it holds no rows

    async def main() -> list[tuple]:
        async with Dispatcher(cluster.topology) as dispatcher:
            return await _collect(dispatcher, ScatterRequest(recorder, chunk_map, tuple(wanted)))

    rows = _run(main)
    assert sorted(recorder.calls) == [[10, 13], [11, 14], [12, 15]]
    assert sorted(r[1] for r in rows) == _expected_ids(wanted[:-1])
    assert all(placement[chunk][0] == node for chunk, _, _, node in rows)


def test_replicas_are_balanced_and_every_chunk_read_once(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(3, replication=2)
    # worker-1 is the first replica of every chunk: a naive choice would load only it.
    placement = {c: ("worker-1", f"worker-{2 + c % 2}") for c in range(12)}
    chunk_map = _seed(cluster, placement)
    recorder = Recorder()

    async def main() -> list[tuple]:
        async with Dispatcher(cluster.topology) as dispatcher:
            return await _collect(dispatcher, ScatterRequest(recorder, chunk_map))

    rows = _run(main)
    assert sorted(len(call) for call in recorder.calls) == [4, 4, 4]
    assert sorted(c for call in recorder.calls for c in call) == list(range(12))
    assert sorted(r[1] for r in rows) == _expected_ids(range(12))


def test_no_chunk_gives_an_empty_stream_with_columns(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2)
    chunk_map = _seed(cluster, {1: ("worker-1",)})

    async def main() -> tuple[list[tuple], list[str]]:
        async with Dispatcher(cluster.topology) as dispatcher, dispatcher.scatter(Recorder(), [7, 8], chunk_map) as s:
            await s.start()
            return [row async for row in s], [c.type_sql for c in s.columns]

    rows, types = _run(main)
    assert rows == []
    assert types == ["integer", "bigint", "double precision", "text"]


# -- failover -----------------------------------------------------------------


def test_unreachable_worker_fails_over_to_replicas(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(3, replication=2)
    placement = {c: (f"worker-{c % 3 + 1}", f"worker-{(c + 1) % 3 + 1}") for c in range(9)}
    chunk_map = _seed(cluster, placement)
    topology = _with_worker_dsn(cluster.topology, "worker-2", _unreachable_dsn(cluster.topology.worker("worker-2").dsn))
    recorder = Recorder()

    async def main() -> list[tuple]:
        async with Dispatcher(topology) as dispatcher:
            return await _collect(dispatcher, ScatterRequest(recorder, chunk_map))

    rows = _run(main)
    assert sorted(r[1] for r in rows) == _expected_ids(range(9))
    assert {r[3] for r in rows} == {"worker-1", "worker-3"}
    # sql_for runs once connected: worker-2's chunks appear only in the retries, each chunk read once.
    assert sorted(c for call in recorder.calls for c in call) == list(range(9))
    assert len(recorder.calls) > 2


def test_without_replicas_an_unreachable_worker_names_its_chunks(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2)
    placement = {c: (f"worker-{c % 2 + 1}",) for c in range(30)}
    chunk_map = _seed(cluster, placement)
    bad_dsn = _unreachable_dsn(cluster.topology.worker("worker-1").dsn)
    topology = _with_worker_dsn(cluster.topology, "worker-1", bad_dsn)

    async def main() -> None:
        async with Dispatcher(topology) as dispatcher:
            await _collect(dispatcher, ScatterRequest(Recorder(), chunk_map))

    with pytest.raises(NodeUnavailableError) as caught:
        _run(main)
    message = str(caught.value)
    lost = [c for c, nodes in placement.items() if nodes == ("worker-1",)]
    assert f"chunks {', '.join(map(str, lost[:10]))}" in message
    assert "and 0 more" not in message and "worker-1" in message and "dms_no_such_database" in message
    assert "cluster status" in message
    assert "password" not in message and "passfile" not in message


def test_single_on_any_worker_skips_a_dead_one(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2)
    _seed(cluster, {})
    topology = _with_worker_dsn(cluster.topology, "worker-1", _unreachable_dsn(cluster.topology.worker("worker-1").dsn))

    async def main() -> list[list[tuple]]:
        async with Dispatcher(topology) as dispatcher:
            return [await _collect(dispatcher, SingleRequest("SELECT current_database()")) for _ in range(8)]

    results = _run(main)
    alive = psycopg.conninfo.conninfo_to_dict(cluster.topology.worker("worker-2").dsn)["dbname"]
    assert results == [[(alive,)]] * 8  # pooled connections reused (and reset) many times


def test_statement_timeout_is_retried_on_a_replica(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2, replication=2)
    placement = {c: ("worker-1", "worker-2") for c in range(6)}
    chunk_map = _seed(cluster, placement)
    _set_delay(cluster.topology.worker("worker-1").dsn, 30)
    recorder = Recorder()

    async def main() -> list[tuple]:
        async with Dispatcher(cluster.topology, statement_timeout_s=1.0) as dispatcher:
            return await _collect(dispatcher, ScatterRequest(recorder, chunk_map))

    rows = _run(main)
    assert sorted(r[1] for r in rows) == _expected_ids(range(6))
    assert {r[3] for r in rows} == {"worker-2"}
    assert len(recorder.calls) == 3  # one per worker, then worker-1's chunks again


def test_statement_timeout_everywhere_is_an_error(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2, replication=2)
    chunk_map = _seed(cluster, {c: ("worker-1", "worker-2") for c in range(4)})
    # Balanced: worker-1 gets chunks 0 and 2, worker-2 chunks 1 and 3.  Worker-1 is slow for all of
    # them, worker-2 only for 0 and 2: its first statement succeeds and the retry times out.
    _set_delay(cluster.topology.worker("worker-1").dsn, 30)
    _set_delay(cluster.topology.worker("worker-2").dsn, 30, chunks="chunk % 2 = 0")
    recorder = Recorder()

    async def main() -> None:
        async with Dispatcher(cluster.topology, statement_timeout_s=0.5) as dispatcher:
            await _collect(dispatcher, ScatterRequest(recorder, chunk_map))

    with pytest.raises(QueryTimeoutError) as caught:
        _run(main)
    assert isinstance(caught.value, NodeUnavailableError)
    message = str(caught.value)
    assert message.startswith("no replica could run chunks 0, 2:")
    assert "statement timeout of 0.5 s exceeded" in message
    assert recorder.calls == [[0, 2], [1, 3], [0, 2]] or sorted(recorder.calls) == [[0, 2], [0, 2], [1, 3]]


def test_failure_after_rows_were_sent_aborts_the_query(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2, replication=2)
    chunk_map = _seed(cluster, {c: ("worker-1", "worker-2") for c in range(2)}, rows_per_chunk=2000)
    _install_crash_after(cluster.topology.worker("worker-1").dsn, 1500)
    _install_crash_after(cluster.topology.worker("worker-2").dsn, 10_000)  # never
    recorder = Recorder(where="crash_after(id)")

    async def main() -> int:
        seen = 0
        async with (
            Dispatcher(cluster.topology, batch_rows=100) as dispatcher,
            dispatcher.stream(ScatterRequest(recorder, chunk_map)) as stream,
        ):
            async for _row in stream:
                seen += 1
        return seen

    with pytest.raises(NodeUnavailableError, match="after part of its rows were sent"):
        _run(main)


def _install_crash_after(dsn: str, row: int) -> None:
    """``crash_after(id)`` fails like a server shutdown once ``row`` rows of a chunk went by."""
    body = sql.SQL(
        "BEGIN IF id % 1000000 > {} THEN RAISE EXCEPTION 'simulated crash' USING ERRCODE = '57P01'; END IF; "
        "RETURN true; END"
    ).format(sql.Literal(row))
    with psycopg.connect(dsn) as conn:
        conn.execute(
            sql.SQL("CREATE FUNCTION crash_after(id bigint) RETURNS boolean LANGUAGE plpgsql AS {}").format(
                sql.Literal(body.as_string(conn))
            )
        )


# -- query errors -------------------------------------------------------------


def test_sql_error_is_a_user_error_and_not_retried(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2, replication=2)
    chunk_map = _seed(cluster, {c: ("worker-1", "worker-2") for c in range(4)})
    recorder = Recorder(select="chunk_id, 1 / (id - id)")

    async def main() -> None:
        async with Dispatcher(cluster.topology) as dispatcher:
            await _collect(dispatcher, ScatterRequest(recorder, chunk_map))

    with pytest.raises(QueryExecutionError) as caught:
        _run(main)
    assert isinstance(caught.value, UserError)
    assert caught.value.sqlstate == "22012"
    assert str(caught.value) == "division by zero"
    # Not retried: no chunk went out twice. The second worker's statement may never have been
    # made, when the first worker's error ended the query before that attempt was admitted.
    sent = [chunk for call in recorder.calls for chunk in call]
    assert 1 <= len(recorder.calls) <= 2
    assert len(sent) == len(set(sent))


# -- gather -------------------------------------------------------------------


def test_gather_200k_rows_into_a_temp_table(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(4)
    placement = {c: (f"worker-{c % 4 + 1}",) for c in range(20)}
    chunk_map = _seed(cluster, placement, rows_per_chunk=10_000)

    async def main() -> tuple[int, list[str], tuple]:
        async with Dispatcher(cluster.topology) as dispatcher, dispatcher.coordinator_session() as session:
            request = ScatterRequest(Recorder(select="id, x"), chunk_map)
            result = await dispatcher.gather(request, into=session, table="part", column_names=["pid", "px"])
            cur = await session.execute("SELECT count(*), count(DISTINCT pid), sum(pid), sum(px) FROM part")
            return result.row_count, [f"{c.name} {c.type_sql}" for c in result.columns], await cur.fetchone()

    row_count, columns, (count, distinct, id_sum, x_sum) = _run(main)
    ids = _expected_ids(range(20), 10_000)
    assert row_count == count == distinct == 200_000
    assert id_sum == sum(ids)
    assert x_sum == pytest.approx(20 * sum(g * 0.1 for g in range(1, 10_001)))
    assert columns == ["pid bigint", "px double precision"]


def test_gather_keeps_floats_exact_and_pgsphere_points(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(1)
    query = "SELECT g, g / 7.0::float8 AS x, spoint(radians(g), radians(g / 3.0)) AS pos FROM generate_series(1, 500) g"

    async def main() -> tuple[list[str], list[tuple]]:
        async with Dispatcher(cluster.topology) as dispatcher, dispatcher.coordinator_session() as session:
            result = await dispatcher.gather(SingleRequest(query), into=session, table="sphere")
            # pgSphere prints 15 significant digits (its maximum): positions come back within 1e-14 rad.
            cur = await session.execute(
                "SELECT g, x, pos <-> spoint(radians(g), radians(g / 3.0)) FROM sphere ORDER BY g"
            )
            return [c.type_sql for c in result.columns], await cur.fetchall()

    types, rows = _run(main)
    assert types == ["integer", "double precision", "spoint"]
    assert [g for g, _, _ in rows] == list(range(1, 501))
    assert all(x == g / 7.0 for g, x, _ in rows)  # exact: text output of float8 round-trips
    assert max(distance for _, _, distance in rows) < 1e-13


def test_gather_failover_after_partial_copy_leaves_no_duplicates(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    cluster = make_cluster(2, replication=2)
    chunk_map = _seed(cluster, {c: ("worker-1", "worker-2") for c in range(2)}, rows_per_chunk=80_000)
    _install_crash_after(cluster.topology.worker("worker-1").dsn, 70_000)
    _install_crash_after(cluster.topology.worker("worker-2").dsn, 100_000)  # never
    recorder = Recorder(select="id, x", where="crash_after(id)")

    async def main() -> tuple[int, tuple]:
        async with Dispatcher(cluster.topology) as dispatcher, dispatcher.coordinator_session() as session:
            result = await dispatcher.gather(ScatterRequest(recorder, chunk_map), into=session, table="part")
            cur = await session.execute("SELECT count(*), count(DISTINCT id) FROM part")
            return result.row_count, await cur.fetchone()

    row_count, (count, distinct) = _run(main)
    assert row_count == count == distinct == 160_000
    assert len(recorder.calls) == 3


# -- cancellation -------------------------------------------------------------


def _active_sleeps(server: TestServer | None, dsn: str) -> int:
    """Dispatcher statements sleeping in a worker database (seen through the server's admin DSN or ``dsn``)."""
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(server.admin_dsn if server is not None else dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
            "AND application_name = %s AND wait_event = 'PgSleep'",
            (dbname, APPLICATION_NAME),
        ).fetchone()[0]


async def _wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(600):
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


def test_early_close_cancels_the_running_worker_statement(
    make_cluster: Callable[..., DatabaseCluster], pg_server: TestServer
) -> None:
    cluster = make_cluster(1)
    dsn = cluster.topology.workers[0].dsn
    query = "SELECT g, pg_sleep(CASE WHEN g > 3 THEN 600 ELSE 0 END) FROM generate_series(1, 10) g"

    async def main() -> tuple[list[tuple], int, list[tuple]]:
        async with Dispatcher(cluster.topology, batch_rows=2) as dispatcher:
            stream = dispatcher.single(query)
            first = [await anext(stream), await anext(stream)]
            await _wait_for(lambda: _active_sleeps(pg_server, dsn) == 1)
            await stream.aclose()
            left = await asyncio.to_thread(_active_sleeps, pg_server, dsn)
            again = await _collect(dispatcher, SingleRequest("SELECT 42"))  # the pool still works
            return first, left, again

    first, left, again = _run(main)
    assert [row[0] for row in first] == [1, 2]
    assert left == 0
    assert again == [(42,)]


def test_cancelling_the_task_cancels_worker_statements(
    make_cluster: Callable[..., DatabaseCluster], pg_server: TestServer
) -> None:
    cluster = make_cluster(2)
    chunk_map = _seed(cluster, {1: ("worker-1",), 2: ("worker-2",)})
    for worker in cluster.topology.workers:
        _set_delay(worker.dsn, 600)

    async def main() -> list[int]:
        async with Dispatcher(cluster.topology) as dispatcher:
            task = asyncio.create_task(_collect(dispatcher, ScatterRequest(Recorder(), chunk_map)))
            for worker in cluster.topology.workers:
                await _wait_for(lambda dsn=worker.dsn: _active_sleeps(pg_server, dsn) == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return [await asyncio.to_thread(_active_sleeps, pg_server, w.dsn) for w in cluster.topology.workers]

    assert _run(main) == [0, 0]


# -- a real server going away -------------------------------------------------


@pytest.mark.slow
def test_a_worker_server_stopping_mid_query_fails_over_and_comes_back(local_cluster: LocalCluster) -> None:
    topology = cluster_service.bring_up(local_cluster.config)
    placement = {c: (f"worker-{c % 4 + 1}", f"worker-{(c + 1) % 4 + 1}") for c in range(16)}
    chunk_map = _seed(topology, placement)
    victim = local_cluster.server("worker-3")
    victim_dsn = topology.worker("worker-3").dsn
    _set_delay(victim_dsn, 600)

    async def main() -> tuple[list[tuple], list[tuple]]:
        async with Dispatcher(topology, connect_timeout_s=3) as dispatcher:
            running = asyncio.create_task(_collect(dispatcher, ScatterRequest(Recorder(), chunk_map)))
            await _wait_for(lambda: _active_sleeps(None, victim_dsn) == 1)
            await asyncio.to_thread(victim.stop)  # fast shutdown: the statement ends with admin_shutdown
            during = await running
            await asyncio.to_thread(victim.start)
            await asyncio.to_thread(_set_delay, victim_dsn, 0)
            after = await _collect(dispatcher, ScatterRequest(Recorder(), chunk_map))
            return during, after

    try:
        during, after = _run(main)
    finally:
        victim.start()
    assert sorted(r[1] for r in during) == sorted(r[1] for r in after) == _expected_ids(range(16))
    assert "worker-3" not in {r[3] for r in during}
    assert "worker-3" in {r[3] for r in after}  # back in use once it answers again
