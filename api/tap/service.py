"""What the TAP service holds while it runs: configuration, the query engine, the coordinator pool.

One :class:`TapService` per application, created and closed by the app's
lifespan (:func:`api.tap.app.create_app`) inside the server's event loop, so
every connection pool belongs to the loop that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from dms_db.config import DmsConfig
from dms_db.query_log import QueryLog
from dms_db.topology import Topology
from sharding.coordinator import QueryEngine

__all__ = ["TapService"]


@dataclass
class TapService:
    """The running service's shared state."""

    config: DmsConfig
    topology: Topology
    engine: QueryEngine
    pool: AsyncConnectionPool
    query_log: QueryLog = field(init=False)

    def __post_init__(self) -> None:
        self.query_log = QueryLog(self.pool)

    @classmethod
    async def open(cls, config: DmsConfig, topology: Topology) -> TapService:
        """Connect to the cluster: an engine for queries and a small pool for jobs, tokens and the log."""
        service = config.service
        engine = QueryEngine(
            topology,
            statement_timeout_s=float(max(service.sync_timeout_s, service.execution_duration_max_s)),
        )
        pool = AsyncConnectionPool(
            topology.coordinator.dsn, min_size=1, max_size=8, open=False, kwargs={"autocommit": True}
        )
        await pool.open(wait=True, timeout=30)
        return cls(config, topology, engine, pool)

    async def close(self) -> None:
        """Close the engine's pools and the coordinator pool."""
        await self.engine.dispatcher.close()
        await self.pool.close()
