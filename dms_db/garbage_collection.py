"""Garbage-collector settings for a long-running process that translates many queries.

Python's defaults suit programs that allocate little; a service whose every
request builds and drops thousands of linked parse-tree nodes pays for them
with long full collections.  The TAP service's process applies these settings
(:func:`api.tap.server.serve`); other long-running callers of the library may.
"""

from __future__ import annotations

import gc

__all__ = ["SERVICE_GC_YOUNG_THRESHOLD", "tune_garbage_collection"]

#: Allocations between collections of the youngest generation in the service process (Python's
#: default is 700).  Translating and planning one ADQL query makes about 10^4 linked tree nodes
#: that die with the request; at 700, collections run dozens of times per query and promote
#: trees still in use to the oldest generation, whose full collections then stall a query for
#: 100-200 ms every few hundred queries.
SERVICE_GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collection() -> None:
    """Collect less often, and never scan again what was loaded at start-up.

    The modules loaded by then (some 2 x 10^5 objects) live as long as the process, so
    they are frozen out of the collections.  Process-wide, so only the service's own
    process does this (``api.tap.server.serve``), not the library.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(SERVICE_GC_YOUNG_THRESHOLD, middle, oldest)
