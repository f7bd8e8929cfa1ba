"""Placement: deterministic, balanced, replicas on distinct workers, stored on the coordinator."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import psycopg
import pytest

from dms_db.errors import ConfigError
from sharding.placement import BoundedRendezvousPlacement, place_chunks, read_placement
from tests.harness import DatabaseCluster


def test_policy_is_deterministic_and_uses_distinct_workers() -> None:
    policy = BoundedRendezvousPlacement()
    loads = {f"w{i}": 0 for i in range(5)}
    for chunk in range(200):
        first = policy.choose(7, chunk, loads, 3)
        assert first == policy.choose(7, chunk, dict(loads), 3)
        assert len(set(first)) == 3


def test_policy_refuses_more_replicas_than_workers() -> None:
    with pytest.raises(ConfigError, match="replication 3 needs"):
        BoundedRendezvousPlacement().choose(5, 1, {"a": 0, "b": 0}, 3)


def test_adding_a_worker_moves_few_chunks() -> None:
    policy = BoundedRendezvousPlacement(slack_fraction=10.0)  # pure rendezvous, no load bound
    before = {c: policy.choose(6, c, {f"w{i}": 0 for i in range(4)}, 1) for c in range(4000)}
    after = {c: policy.choose(6, c, {f"w{i}": 0 for i in range(5)}, 1) for c in range(4000)}
    moved = sum(before[c] != after[c] for c in before)
    assert moved < 4000 * 0.3  # ideal is 1/5 = 20 %
    assert all(after[c] == ("w4",) for c in before if before[c] != after[c])


@pytest.mark.parametrize("replication", [1, 2])
def test_placement_is_balanced_and_stored(make_cluster: Callable[..., DatabaseCluster], replication: int) -> None:
    cluster = make_cluster(4, replication)
    chunks = list(range(1000, 1060))  # a small footprint: 60 chunks
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        placed = place_chunks(conn, 7, chunks, replication)
    assert set(placed) == set(chunks)
    per_node = Counter(name for r in placed.values() for name in r.nodes)
    assert sum(per_node.values()) == 60 * replication
    assert max(per_node.values()) - min(per_node.values()) <= 2
    assert all(len(set(r.nodes)) == replication for r in placed.values())

    with psycopg.connect(cluster.coordinator_dsn) as conn:
        stored = read_placement(conn, 7)
        again = place_chunks(conn, 7, [*chunks[:10], 5000], replication)
    assert stored == placed
    assert {c: again[c] for c in chunks[:10]} == {c: placed[c] for c in chunks[:10]}
    assert 5000 in again
