"""Serve the TAP app with uvicorn: plain HTTP locally, HTTPS when the configuration names a certificate."""

from __future__ import annotations

from typing import Any

import uvicorn

from api.tap.app import create_app
from dms_db.config import DmsConfig
from dms_db.garbage_collection import tune_garbage_collection
from dms_db.topology import Topology

__all__ = ["serve", "service_url", "uvicorn_config"]


def service_url(config: DmsConfig) -> str:
    """The URL clients use: the configured public URL, or the local address."""
    settings = config.service
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/tap"
    scheme = "https" if settings.tls_certfile else "http"
    return f"{scheme}://{settings.host}:{settings.port}/tap"


def uvicorn_config(config: DmsConfig, *, topology: Topology | None = None, **overrides: Any) -> uvicorn.Config:
    """The uvicorn settings of the service: address, TLS, shutdown grace; ``overrides`` win (tests)."""
    settings = config.service
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "ssl_certfile": str(settings.tls_certfile) if settings.tls_certfile else None,
        "ssl_keyfile": str(settings.tls_keyfile) if settings.tls_keyfile else None,
        "log_level": "info",
        "proxy_headers": True,
        "timeout_graceful_shutdown": 10,
    }
    options.update(overrides)
    return uvicorn.Config(create_app(config, topology=topology), **options)


def serve(config: DmsConfig, *, topology: Topology | None = None) -> None:
    """Run the service in the foreground until interrupted."""
    tune_garbage_collection()
    uvicorn.Server(uvicorn_config(config, topology=topology)).run()
