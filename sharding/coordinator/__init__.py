"""The distributed query coordinator: plan, dispatch, merge.

An ADQL query is translated (:mod:`adql`), its chunk set found from the
spatial and director-key restrictions (:mod:`sharding.coordinator.pruning`),
split into a worker query and a merge query
(:mod:`sharding.coordinator.split`), sent as one statement per worker
(:mod:`sharding.coordinator.dispatch`) and merged in the coordinator's
PostgreSQL.  :class:`QueryEngine` is the entry point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sharding.coordinator.engine import QueryEngine, QueryResult

__all__ = ["QueryEngine", "QueryResult"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a submodule does not pull in the whole engine.
    if name in __all__:
        from sharding.coordinator import engine

        return getattr(engine, name)
    raise AttributeError(name)
