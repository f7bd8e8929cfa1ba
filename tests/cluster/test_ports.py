"""Port search for throwaway servers: below the ephemeral range, skipping ports in use."""

from __future__ import annotations

import socket

from dms_db.ports import ephemeral_port_floor, free_port_block, port_is_free


def test_blocks_stay_below_the_ephemeral_range() -> None:
    base = free_port_block(5)
    assert base + 5 <= ephemeral_port_floor()
    assert all(port_is_free(base + i) for i in range(5))


def test_the_search_tries_every_block_and_skips_a_port_in_use() -> None:
    base = free_port_block(4)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        assert not port_is_free(base + 1)
        # Of the blocks of two within base .. base+3, only base+2, base+3 avoids the taken port.
        assert free_port_block(2, start=base, stop=base + 4) == base + 2
