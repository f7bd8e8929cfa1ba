"""Find free TCP ports on the loopback address for servers that dms-db starts itself.

Throwaway clusters (the test suite, benchmarks) must not collide with each
other or with a running local default, so they ask for a block of
consecutive free ports: a coordinator and its workers listen on base + i.
"""

from __future__ import annotations

import os
import socket
from contextlib import closing


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port_block(count: int, start: int = 26000, stop: int = 60000) -> int:
    """First port p such that p .. p+count-1 are all free on 127.0.0.1.

    The search starts at an offset derived from the process id, so that
    processes started together rarely race for the same block.
    """
    for base in range(start + (os.getpid() % 500) * 16, stop, count + 1):
        if all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports between {start} and {stop}")
