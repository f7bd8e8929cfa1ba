"""Which keys of a load could already be in a table: the key range of every partition, read once.

A child table has no global index on its key: a key could be in any chunk's
partition, so asking the workers about a batch's keys probes every partition
for every key.  A nightly append into a table of 5 M rows spent 27 of its 30 s
on those probes for 1 M new keys.  New keys are usually larger than every key
loaded before (ids grow with time), so the loader first reads the smallest and
largest key of every partition (two index-end look-ups each) and asks the
workers only about keys that fall inside one of those ranges.

Only rows committed before the load's first batch are covered: the load's own
earlier batches are checked in memory (:class:`loaders.bulk_load.KeyRuns`), and
rows another load commits into the same table while this one runs are not seen
(the check was never safe against that: loads of one table are not serialised).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import psycopg
from psycopg import sql

from sharding.healpix import merge_bounds


class KeyRanges:
    """The union of [smallest, largest] key of each partition, as sorted disjoint intervals.

    >>> ranges = KeyRanges([(10, 20), (15, 30), (50, 60)])
    >>> ranges.might_hold(np.array([5, 10, 25, 31, 55, 61])).tolist()
    [False, True, True, False, True, False]
    >>> KeyRanges([]).might_hold(np.array([1])).tolist()
    [False]
    """

    def __init__(self, intervals: Iterable[tuple[int, int]]) -> None:
        pairs = np.array(list(intervals), dtype=np.int64).reshape(-1, 2)
        # Joining ranges that overlap keeps the union of closed intervals as it is.
        self._lows, self._highs = merge_bounds(pairs[:, 0], pairs[:, 1])

    def might_hold(self, values: np.ndarray) -> np.ndarray:
        """Which ``values`` lie inside some partition's key range (only those can be present)."""
        if self._lows.size == 0:
            return np.zeros(values.size, bool)
        slot = np.searchsorted(self._lows, values, side="right") - 1
        inside = slot >= 0
        return inside & (values <= self._highs[np.maximum(slot, 0)])


def partition_key_ranges(
    conn: psycopg.Connection, schema_name: str, table_name: str, key: str, *, partitioned: bool
) -> list[tuple[int, int]]:
    """(smallest, largest) ``key`` of every non-empty partition of a table (of the table itself if not ``partitioned``).

    Partitions attached later, such as the ones a running load stages, are not
    seen: they hold only that load's rows.
    """
    leaves: list[tuple[str, str]] = [(schema_name, table_name)]
    if partitioned:
        table = sql.Identifier(schema_name, table_name).as_string(conn)
        leaves = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = %s::regclass",
            (table,),
        ).fetchall()
    if not leaves:
        return []  # a worker holding no chunk of the table
    column = sql.Identifier(key)
    bounds = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT min({k}), max({k}) FROM ONLY {t}").format(k=column, t=sql.Identifier(namespace, name))
        for namespace, name in leaves
    )
    return [(int(low), int(high)) for low, high in conn.execute(bounds) if low is not None]
