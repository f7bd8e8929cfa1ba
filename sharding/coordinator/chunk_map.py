"""Which workers can serve each chunk of a query, and which one each chunk goes to.

The coordinator reads the placement of a chunk order once per query
(:class:`ChunkMap`) and then gives each chunk to one live replica, keeping the
number of chunks per worker even (:func:`assign_chunks`), so that one
statement per worker covers all of its chunks and no worker becomes the
straggler of the query.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import psycopg

from sharding.placement import read_placement


@dataclass(frozen=True)
class ChunkMap:
    """Replica nodes of every placed chunk of one chunk order, in preference order."""

    chunk_order: int
    replicas: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A read-only copy: the map is shared by concurrent queries.
        frozen = {int(chunk): tuple(nodes) for chunk, nodes in self.replicas.items()}
        object.__setattr__(self, "replicas", MappingProxyType(frozen))

    @classmethod
    def read(cls, conn: psycopg.Connection, chunk_order: int) -> ChunkMap:
        """The placement of every chunk of ``chunk_order`` stored on the coordinator."""
        placed = read_placement(conn, chunk_order)
        return cls(chunk_order, {chunk: replicas.nodes for chunk, replicas in placed.items()})

    @cached_property
    def _chunks_by_node(self) -> dict[str, frozenset[int]]:
        held: dict[str, set[int]] = {}
        for chunk, nodes in self.replicas.items():
            for node in nodes:
                held.setdefault(node, set()).add(chunk)
        return {node: frozenset(chunks) for node, chunks in held.items()}

    def is_all_held(self, chunk_ids: Collection[int]) -> bool:
        """Whether every worker holding all of ``chunk_ids`` holds no other chunk.

        Then a statement over those chunks, wherever it runs, may read its
        tables whole instead of filtering every row by chunk: a worker has
        partitions only of chunks placed on it (loads write a chunk to its
        replicas alone).

        >>> chunk_map = ChunkMap(6, {1: ("a",), 2: ("a",), 3: ("b", "a")})
        >>> chunk_map.is_all_held([1, 2, 3]), chunk_map.is_all_held([1, 2]), chunk_map.is_all_held([3])
        (True, False, False)
        """
        wanted = frozenset(int(c) for c in chunk_ids)
        if not wanted:
            return False
        holders = [held for held in self._chunks_by_node.values() if wanted <= held]
        return bool(holders) and all(held == wanted for held in holders)

    def placed(self, chunks: Iterable[int] | None) -> list[int]:
        """The given chunks (all when None) that have replicas, sorted; the others hold no rows."""
        if chunks is None:
            return sorted(self.replicas)
        return sorted({int(c) for c in chunks if int(c) in self.replicas})


def assign_chunks(
    replicas: Mapping[int, tuple[str, ...]],
    chunks: Iterable[int],
    excluded: Collection[str] = (),
    loads: Mapping[str, int] | None = None,
) -> tuple[dict[str, list[int]], list[int]]:
    """Give each chunk to one replica not in ``excluded``, balancing chunks per worker.

    Chunks with fewer choices are placed first (they constrain the balance
    most); each goes to its least loaded replica, ties broken by replica
    order so that the first replica is preferred.  ``loads`` are chunks
    already running per worker (when reassigning after a failure).

    Returns
    -------
    assignment, unassignable
        Chunk ids per worker, sorted, and the chunks that have no usable replica.

    >>> replicas = {1: ("a", "b"), 2: ("a", "b"), 3: ("a", "c"), 4: ("a",)}
    >>> assign_chunks(replicas, [1, 2, 3, 4])
    ({'a': [2, 4], 'b': [1], 'c': [3]}, [])
    >>> assign_chunks(replicas, [1, 2, 3, 4], excluded={"a"})
    ({'b': [1, 2], 'c': [3]}, [4])
    """
    counts: dict[str, int] = dict(loads or {})
    choices = {chunk: [n for n in replicas.get(chunk, ()) if n not in excluded] for chunk in chunks}
    assignment: dict[str, list[int]] = {}
    unassignable: list[int] = []
    for chunk in sorted(choices, key=lambda c: (len(choices[c]), c)):
        nodes = choices[chunk]
        if not nodes:
            unassignable.append(chunk)
            continue
        node = min(nodes, key=lambda n: (counts.get(n, 0), nodes.index(n)))
        counts[node] = counts.get(node, 0) + 1
        assignment.setdefault(node, []).append(chunk)
    return {node: sorted(ids) for node, ids in sorted(assignment.items())}, sorted(unassignable)
