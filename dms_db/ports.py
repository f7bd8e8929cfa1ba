"""Find free TCP ports on the loopback address for servers that dms-db starts itself.

Throwaway clusters (the test suite, benchmarks) must not collide with each
other or with a running local default, so they ask for a block of
consecutive free ports: a coordinator and its workers listen on base + i.

Ports are only searched below the kernel's ephemeral range: a port in that
range that is free now can be handed to any outgoing connection before the
server binds it ("address already in use" at start-up).
"""

from __future__ import annotations

import os
import socket
from contextlib import closing
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_FLOOR = 32768  # Linux's default start of the ephemeral range


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def ephemeral_port_floor() -> int:
    """The lowest port the kernel may give to an outgoing connection."""
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_FLOOR


def free_port_block(count: int, start: int = 20000, stop: int | None = None) -> int:
    """A port p such that p .. p+count-1 are all free on 127.0.0.1, with start <= p and p+count <= stop.

    ``stop`` defaults to the start of the ephemeral range (or 60000 when that range
    starts too low to leave room). The search begins at an offset derived from the
    process id and wraps around, so that processes started together rarely race for
    the same block.
    """
    if stop is None:
        floor = ephemeral_port_floor()
        stop = floor if floor > start + 16 * count else 60000
    stop = min(stop, 65536)
    bases = stop - count + 1 - start  # every p with p + count <= stop
    if bases <= 0:
        raise RuntimeError(f"no room for {count} ports between {start} and {stop}")
    first = (os.getpid() % 500) * 16
    for step in range(bases):
        base = start + (first + step) % bases
        if all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports between {start} and {stop}")
