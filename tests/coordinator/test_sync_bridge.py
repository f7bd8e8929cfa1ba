"""The sync bridge: results, iteration with backpressure, errors, early close and cancellation."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import psycopg
import pytest

from sharding.coordinator.dispatch import Dispatcher
from sharding.coordinator.node_pools import APPLICATION_NAME
from sharding.coordinator.sync_bridge import SyncBridge
from tests.harness import DatabaseCluster, TestServer


@pytest.fixture
def bridge() -> Iterator[SyncBridge]:
    with SyncBridge() as bridge:
        yield bridge


class Source:
    """An async generator of numbers that records how far it got and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.produced = 0
        self.closed = threading.Event()

    async def items(self) -> AsyncIterator[int]:
        try:
            for i in range(self.count):
                if i == self.fail_at:
                    raise ValueError(f"broken at {i}")
                self.produced += 1
                yield i
                await asyncio.sleep(0)
        finally:
            self.closed.set()


def test_run_returns_the_result_and_raises_the_exception(bridge: SyncBridge) -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        raise KeyError("missing")

    assert bridge.run(answer()) == 42
    with pytest.raises(KeyError, match="missing"):
        bridge.run(fail())


def test_iteration_yields_everything_in_order(bridge: SyncBridge) -> None:
    source = Source(1000)
    assert list(bridge.iterate(source.items())) == list(range(1000))
    assert source.closed.wait(10)


def test_an_exception_reaches_the_reader_after_the_items_before_it(bridge: SyncBridge) -> None:
    source = Source(100, fail_at=7)
    received = []
    with pytest.raises(ValueError, match="broken at 7"):
        for item in bridge.iterate(source.items()):
            received.append(item)
    assert received == list(range(7))


def test_the_producer_stays_a_bounded_number_of_items_ahead(bridge: SyncBridge) -> None:
    source = Source(10_000)
    iterator = bridge.iterate(source.items(), max_queued=4)
    assert next(iterator) == 0
    for _ in range(20):  # give the producer every chance to run ahead
        bridge.run(asyncio.sleep(0.01))
    assert source.produced <= 1 + 4 + 1  # taken, queued, and one waiting for a slot
    iterator.close()
    assert source.closed.wait(10)


def test_closing_early_cancels_the_async_side(bridge: SyncBridge) -> None:
    source = Source(10_000)
    with bridge.iterate(source.items()) as iterator:
        assert [next(iterator) for _ in range(3)] == [0, 1, 2]
    assert source.closed.is_set()  # close() waits for the async side's cleanup
    assert source.produced < 10_000


def test_an_abandoned_iterator_is_cancelled_when_collected(bridge: SyncBridge) -> None:
    source = Source(10_000)
    iterator = bridge.iterate(source.items())
    next(iterator)
    del iterator
    gc.collect()
    assert source.closed.wait(10)
    assert source.produced < 10_000


def test_using_the_bridge_from_its_own_loop_is_refused(bridge: SyncBridge) -> None:
    async def nested() -> None:
        bridge.run(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="own event loop"):
        bridge.run(nested())


def test_closing_a_row_stream_iterator_cancels_the_worker_statement(
    bridge: SyncBridge, make_cluster: Callable[..., DatabaseCluster], pg_server: TestServer
) -> None:
    cluster = make_cluster(1)
    worker_db = psycopg.conninfo.conninfo_to_dict(cluster.topology.workers[0].dsn)["dbname"]
    query = "SELECT g, pg_sleep(CASE WHEN g > 3 THEN 600 ELSE 0 END) FROM generate_series(1, 10) g"
    dispatcher = Dispatcher(cluster.topology, batch_rows=2)

    def sleeping() -> int:
        with psycopg.connect(pg_server.admin_dsn) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s "
                "AND state = 'active' AND wait_event = 'PgSleep'",
                (worker_db, APPLICATION_NAME),
            ).fetchone()[0]

    try:
        rows = bridge.iterate(dispatcher.single(query))
        assert [next(rows)[0], next(rows)[0]] == [1, 2]
        _wait_until(lambda: sleeping() == 1)
        rows.close()
        assert sleeping() == 0
    finally:
        bridge.run(dispatcher.close())


def _wait_until(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(600):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError("condition never held")
