"""Which workers hold each chunk.

Placement is decided once per chunk, when the chunk first receives rows, and
stored in the coordinator's ``dms.chunk_placement`` table; everything else
reads it from there.  The policy is an ABC so that a deployment can plug in
another (rack-aware, capacity-weighted...).

The default, :class:`BoundedRendezvousPlacement`, ranks workers per chunk by
rendezvous (highest-random-weight) hashing, which is deterministic and moves
only about 1/N of the chunks when a worker is added, and skips workers that
already hold noticeably more chunks than the least loaded one, so that the
chunks of a small footprint still spread evenly.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg

from dms_db.errors import ConfigError
from dms_db.metadata import ACTIVE_WORKERS_SQL


@dataclass(frozen=True)
class ChunkReplicas:
    """The workers (by node name, in replica order) that hold one chunk."""

    chunk_id: int
    nodes: tuple[str, ...]


class Placement(ABC):
    """A policy choosing the workers of a new chunk."""

    @abstractmethod
    def choose(self, chunk_order: int, chunk_id: int, loads: Mapping[str, int], replication: int) -> tuple[str, ...]:
        """Pick ``replication`` distinct workers for a chunk.

        Parameters
        ----------
        chunk_order, chunk_id
            The chunk being placed.
        loads
            Number of chunks (of this order) each eligible worker holds now.
        replication
            How many distinct workers must hold the chunk.
        """


class BoundedRendezvousPlacement(Placement):
    """Rendezvous hashing, skipping workers loaded beyond ``slack`` above the minimum.

    >>> policy = BoundedRendezvousPlacement()
    >>> loads = {"w1": 0, "w2": 0, "w3": 0}
    >>> policy.choose(5, 42, loads, 2) == policy.choose(5, 42, dict(loads), 2)
    True
    >>> len(set(policy.choose(5, 42, loads, 3)))
    3
    """

    def __init__(self, slack_fraction: float = 0.05) -> None:
        self.slack_fraction = slack_fraction

    def choose(self, chunk_order: int, chunk_id: int, loads: Mapping[str, int], replication: int) -> tuple[str, ...]:
        if replication > len(loads):
            raise ConfigError(
                f"replication {replication} needs at least that many active workers, found {len(loads)}",
                hint="add workers with 'dms-db cluster add-worker' or lower replication",
            )
        ranked = sorted(loads, key=lambda name: _weight(chunk_order, chunk_id, name), reverse=True)
        lightest = min(loads.values())
        mean = sum(loads.values()) / len(loads)
        ceiling = lightest + max(1, math.ceil(self.slack_fraction * mean))
        eligible = [name for name in ranked if loads[name] < ceiling]
        chosen = eligible[:replication]
        for name in ranked:  # fill up with the best-ranked others if too few are light
            if len(chosen) == replication:
                break
            if name not in chosen:
                chosen.append(name)
        return tuple(chosen)


def _weight(chunk_order: int, chunk_id: int, node_name: str) -> int:
    digest = hashlib.blake2b(f"{chunk_order}/{chunk_id}/{node_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place_chunks(
    conn: psycopg.Connection,
    chunk_order: int,
    chunk_ids: Sequence[int],
    replication: int,
    policy: Placement | None = None,
) -> dict[int, ChunkReplicas]:
    """Return the replicas of ``chunk_ids``, placing the chunks not placed yet.

    Runs in the caller's transaction on the coordinator and locks the
    placement table, so that concurrent loaders agree on one placement.
    """
    policy = policy or BoundedRendezvousPlacement()
    conn.execute("LOCK TABLE dms.chunk_placement IN SHARE ROW EXCLUSIVE MODE")
    wanted = sorted({int(c) for c in chunk_ids})
    placed = read_placement(conn, chunk_order, wanted)
    missing = [c for c in wanted if c not in placed]
    if not missing:
        return placed
    workers = {name: node_id for name, _dsn, node_id in conn.execute(ACTIVE_WORKERS_SQL)}
    loads = {name: 0 for name in workers}
    for name, count in conn.execute(
        "SELECT n.name, count(*) FROM dms.chunk_placement p JOIN dms.node n USING (node_id) "
        "WHERE p.chunk_order = %s AND n.state = 'active' GROUP BY n.name",
        (chunk_order,),
    ):
        loads[name] = count
    rows = []
    for chunk_id in missing:
        nodes = policy.choose(chunk_order, chunk_id, loads, replication)
        for replica, name in enumerate(nodes):
            loads[name] += 1
            rows.append((chunk_order, chunk_id, replica, workers[name]))
        placed[chunk_id] = ChunkReplicas(chunk_id, nodes)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dms.chunk_placement (chunk_order, chunk_id, replica, node_id) VALUES (%s, %s, %s, %s)",
            rows,
        )
    return placed


def read_placement(
    conn: psycopg.Connection, chunk_order: int, chunk_ids: Sequence[int] | None = None
) -> dict[int, ChunkReplicas]:
    """Replicas of the given chunks (all placed chunks of the order when None)."""
    query = (
        "SELECT p.chunk_id, array_agg(n.name ORDER BY p.replica) FROM dms.chunk_placement p "
        "JOIN dms.node n USING (node_id) WHERE p.chunk_order = %s"
    )
    params: list[object] = [chunk_order]
    if chunk_ids is not None:
        query += " AND p.chunk_id = ANY(%s)"
        params.append([int(c) for c in chunk_ids])
    query += " GROUP BY p.chunk_id"
    return {int(chunk): ChunkReplicas(int(chunk), tuple(nodes)) for chunk, nodes in conn.execute(query, params)}
