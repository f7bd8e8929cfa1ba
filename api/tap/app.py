"""The TAP 1.1 service as a FastAPI application, built by :func:`create_app`.

The app is built per configuration, never as a module-level global, so
tests and several deployments can run side by side.  Its lifespan connects
to the cluster (refusing to start on a stale database schema, with the
command that fixes it), and closes every pool on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import RedirectResponse

from api.tap.errors import install_error_handlers
from api.tap.handlers import started_now, tap_router
from api.tap.service import TapService
from api.tap.uws import SWEEP_INTERVAL_S, JobManager, uws_router
from dms_db import cluster as cluster_service
from dms_db import migration_support
from dms_db.config import DmsConfig
from dms_db.topology import Topology

__all__ = ["create_app"]


def create_app(config: DmsConfig, *, topology: Topology | None = None) -> FastAPI:
    """Build the TAP service for a deployment.

    Parameters
    ----------
    config
        The deployment's configuration (its ``service`` section sets limits,
        access and TLS).
    topology
        The cluster's nodes; default: resolved from ``config`` at start-up.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nodes = topology or cluster_service.resolve_topology(config)
        migration_support.ensure_schema_current(nodes)
        service = await TapService.open(config, nodes)
        app.state.service = service
        app.state.started_at = started_now()
        jobs = JobManager(service, sweep_interval_s=app.state.job_sweep_interval_s)
        try:
            await jobs.start()
            app.state.jobs = jobs
            yield
        finally:
            await jobs.stop()
            await service.close()

    app = FastAPI(
        title="dms-db TAP service",
        description="ADQL queries on a sharded PostgreSQL sky-survey catalog (IVOA TAP 1.1).",
        version="1.1",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(tap_router(), prefix="/tap")
    app.include_router(uws_router(), prefix="/tap")
    app.state.job_sweep_interval_s = SWEEP_INTERVAL_S  # seconds between sweeps of async jobs; tests shorten it

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/tap")

    return app
