"""One connection pool per node, failing fast when a node is down.

``psycopg_pool`` makes new connections in the background and lets a waiting
client wait until its timeout even when every attempt is refused; a query
would then stall for the whole pool timeout before failing over.  Here each
pool's connection class reports failed connection attempts, and a client
waiting for that node is told at once.  A node that failed is probed with a
direct connection before the next use, and gets a fresh pool when it is back
(the old pool would wait out its reconnection back-off).

A connection taken from the pool is checked with an empty query only when it
has been idle for a while: one given back moments ago is alive unless its
server went away just now, and the execution layer retries a connection that
breaks before its first answer once on a fresh pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool

from dms_db.topology import NodeSpec, Topology
from sharding.coordinator.failures import RetryableNodeError, one_line

APPLICATION_NAME = "dms-db dispatch"
#: Connections of the coordinator's look-up pool (metadata epoch, director index), told apart in pg_stat_activity.
LOOKUP_APPLICATION_NAME = "dms-db lookups"
#: A connection given back less than this long ago is lent again without a check.
RECENTLY_USED_S = 2.0


def _reporting_connection_class(report: Callable[[BaseException], None]) -> type[psycopg.AsyncConnection]:
    """An AsyncConnection class whose failed ``connect`` calls ``report`` (one class per node)."""

    class ReportingConnection(psycopg.AsyncConnection):  # type: ignore[type-arg]
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            try:
                return await super().connect(conninfo, **kwargs)
            except Exception as exc:
                report(exc)
                raise

    return ReportingConnection


async def _discard_session_state(conn: psycopg.AsyncConnection) -> None:
    """Pool reset: temporary tables and settings of one user must not reach the next."""
    await conn.execute("DISCARD ALL")


class NodePool:
    """The lazily opened pool of one node, with fast failure detection."""

    def __init__(
        self,
        node: NodeSpec,
        *,
        max_size: int,
        connect_timeout_s: float,
        acquire_timeout_s: float,
        reset_sessions: bool = True,
        application_name: str = APPLICATION_NAME,
    ) -> None:
        self.node = node
        self.reset_sessions = reset_sessions
        self.application_name = application_name
        self.max_size = max_size
        self.connect_timeout_s = connect_timeout_s
        self.acquire_timeout_s = acquire_timeout_s
        self._pool: AsyncConnectionPool | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        self._suspect = False
        self._lock = asyncio.Lock()
        self._lent: dict[int, AsyncConnectionPool] = {}  # connection id -> the pool it came from
        self._given_back: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = weakref.WeakKeyDictionary()

    @property
    def address(self) -> str:
        """host:port/dbname, safe for messages."""
        return self.node.safe_address

    def mark_suspect(self) -> None:
        """The node failed a statement: probe it before trusting its pool again."""
        self._suspect = True

    async def acquire(self) -> psycopg.AsyncConnection:
        """A connection in autocommit mode; :class:`RetryableNodeError` if the node cannot be reached."""
        pool = await self._usable_pool()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        getconn = asyncio.ensure_future(pool.getconn(timeout=self.acquire_timeout_s))
        try:
            await asyncio.wait({getconn, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await self._abandon(pool, getconn)
            raise
        finally:
            self._waiters.discard(waiter)
        if getconn.done():
            try:
                conn = getconn.result()
            except psycopg.Error as exc:  # PoolTimeout and friends
                self._suspect = True
                raise RetryableNodeError(one_line(exc)) from exc
            self._lent[id(conn)] = pool
            return conn
        await self._abandon(pool, getconn)
        raise RetryableNodeError(f"cannot connect: {waiter.exception()}")

    async def release(self, conn: psycopg.AsyncConnection) -> None:
        """Give ``conn`` back; the pool rolls back an open transaction and discards a broken connection."""
        pool = self._lent.pop(id(conn), None)  # the pool may have been replaced since
        if pool is None or pool.closed:
            await conn.close()
            return
        self._given_back[conn] = time.monotonic()
        await pool.putconn(conn)

    async def close(self) -> None:
        """Close the pool and its connections."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _usable_pool(self) -> AsyncConnectionPool:
        async with self._lock:
            if self._suspect:
                await self._probe()
                # Back again: a fresh pool, as the old one may sit in its reconnection back-off.
                await self.close()
                self._suspect = False
            if self._pool is None:
                self._pool = self._new_pool()
                await self._pool.open(wait=False)
            return self._pool

    async def _probe(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.node.dsn,
                connect_timeout=max(1, round(self.connect_timeout_s)),
                application_name=self.application_name,
            )
        except (psycopg.Error, OSError) as exc:
            raise RetryableNodeError(f"cannot connect: {one_line(exc)}") from exc
        await conn.close()

    def _new_pool(self) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            self.node.dsn,
            min_size=0,
            max_size=self.max_size,
            open=False,
            name=self.node.name,
            timeout=self.acquire_timeout_s,
            connection_class=_reporting_connection_class(self._connect_failed),
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(self.connect_timeout_s)),
                "application_name": self.application_name,
                # The pool resets sessions with DISCARD ALL, which drops prepared
                # statements behind psycopg's back: never prepare automatically.
                "prepare_threshold": None,
            },
            check=self._check_if_idle,
            reset=_discard_session_state if self.reset_sessions else None,
        )

    async def _check_if_idle(self, conn: psycopg.AsyncConnection) -> None:
        """The pool's check on lending: an empty query, skipped for a connection given back just now."""
        given_back = self._given_back.pop(conn, None)
        if given_back is not None and time.monotonic() - given_back < RECENTLY_USED_S:
            return
        await AsyncConnectionPool.check_connection(conn)

    def _connect_failed(self, exc: BaseException) -> None:
        self._suspect = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RetryableNodeError(one_line(exc)))

    async def _abandon(self, pool: AsyncConnectionPool, getconn: asyncio.Future[Any]) -> None:
        """Stop waiting for a connection; one that arrived anyway goes back to the pool."""
        getconn.cancel()
        with contextlib.suppress(BaseException):
            conn = await getconn
            await pool.putconn(conn)


class NodePools:
    """The pools of every node of a topology, opened on first use."""

    def __init__(
        self, topology: Topology, *, max_size: int, connect_timeout_s: float = 10.0, acquire_timeout_s: float = 30.0
    ) -> None:
        self.topology = topology
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._acquire_timeout_s = acquire_timeout_s
        # Worker sessions only ever run BEGIN READ ONLY ... ROLLBACK with SET LOCAL
        # (execution.py), so they keep no state to discard, and psycopg_pool rolls
        # back or drops a connection returned inside a transaction.  The
        # coordinator's sessions hold temp tables and settings: they are reset.
        self._pools = {
            node.name: self._new_pool(node, reset_sessions=node.name == topology.coordinator.name)
            for node in topology.nodes
        }
        # Single read-only statements on the coordinator (director index look-ups) leave no
        # session state, so their connections skip the reset query sessions need.
        self._coordinator_lookups = self._new_pool(
            topology.coordinator, reset_sessions=False, application_name=LOOKUP_APPLICATION_NAME
        )

    def _new_pool(self, node: NodeSpec, *, reset_sessions: bool, application_name: str = APPLICATION_NAME) -> NodePool:
        return NodePool(
            node,
            max_size=self._max_size,
            connect_timeout_s=self._connect_timeout_s,
            acquire_timeout_s=self._acquire_timeout_s,
            reset_sessions=reset_sessions,
            application_name=application_name,
        )

    def add_workers(self, workers: Sequence[NodeSpec]) -> Topology:
        """Pools for workers registered after this object was made (opened on first use); the new topology."""
        added = tuple(w for w in workers if w.name not in self._pools)
        for worker in added:
            self._pools[worker.name] = self._new_pool(worker, reset_sessions=False)
        self.topology = self.topology.with_workers(added)
        return self.topology

    def __getitem__(self, name: str) -> NodePool:
        return self._pools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._pools

    @property
    def coordinator(self) -> NodePool:
        """The coordinator's pool."""
        return self._pools[self.topology.coordinator.name]

    @property
    def coordinator_lookups(self) -> NodePool:
        """A second coordinator pool, without session reset, for single read-only statements."""
        return self._coordinator_lookups

    def address(self, name: str) -> str:
        """Safe address of a node (its name if unknown)."""
        return self._pools[name].address if name in self._pools else name

    async def close(self) -> None:
        """Close every pool."""
        for pool in (*self._pools.values(), self._coordinator_lookups):
            await pool.close()


def is_mid_statement(conn: psycopg.AsyncConnection) -> bool:
    """Whether ``conn`` was interrupted in the middle of a statement (it cannot be reused as is)."""
    return conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE
