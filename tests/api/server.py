"""A real uvicorn server running the TAP app in a background thread, for end-to-end tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from api.tap.server import uvicorn_config
from dms_db.config import DmsConfig
from dms_db.topology import Topology


@contextmanager
def running_service(config: DmsConfig, topology: Topology) -> Iterator[str]:
    """Serve the TAP app on a free local port; yields its base URL (``http(s)://127.0.0.1:PORT/tap``).

    The server is configured as ``dms-db serve`` configures it (TLS included), on another address.
    """
    listener = _bound_listener()
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(config, topology=topology, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=f"tap-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the TAP service did not start (see the log above)")
        if time.monotonic() > deadline:
            raise RuntimeError("the TAP service did not start within 60 s")
        time.sleep(0.05)
    try:
        scheme = "https" if config.service.tls_certfile else "http"
        yield f"{scheme}://127.0.0.1:{port}/tap"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def _bound_listener() -> socket.socket:
    """A socket already bound to a free loopback port, handed to uvicorn as is.

    Binding here rather than passing a port number leaves no moment in which another
    process can take the port between finding it free and serving on it.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    return listener
