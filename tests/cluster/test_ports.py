"""Port search for throwaway servers: below the ephemeral range, skipping ports in use."""

from __future__ import annotations

import socket

from dms_db.ports import ephemeral_port_floor, free_port_block, port_is_free


def test_blocks_stay_below_the_ephemeral_range() -> None:
    base = free_port_block(5)
    assert base + 5 <= ephemeral_port_floor()
    assert all(port_is_free(base + i) for i in range(5))


def test_a_port_in_use_is_never_part_of_a_block() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", free_port_block(1)))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_is_free(port)
        base = free_port_block(3, start=port - 1, stop=port + 8)
        assert port not in range(base, base + 3)
