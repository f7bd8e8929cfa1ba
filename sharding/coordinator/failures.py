"""What went wrong with a worker statement, and whose fault it was.

A failed worker statement is either the query's fault (bad input, division
by zero, unknown column: the same on every replica, so never retried and
reported to the user with PostgreSQL's message) or the node's fault (cannot
connect, server gone, statement timeout: retried on another replica).  This
module draws that line and builds the messages, which name nodes by address
only: a DSN may carry a password.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psycopg

from adql.errors import AdqlUnsupportedError
from dms_db.errors import DmsError, NodeUnavailableError, QueryExecutionError, QueryTimeoutError

#: SQLSTATE classes that say the node, not the query, failed: connection
#: exceptions, transaction rollback (serialisation, deadlock), insufficient
#: resources, object in use, operator intervention (statement timeout,
#: shutdown), system and internal errors.
NODE_FAULT_CLASSES = frozenset({"08", "40", "53", "55", "57", "58", "XX", "F0"})

STATEMENT_TIMEOUT_SQLSTATE = "57014"

CLUSTER_STATUS_HINT = "check the workers with 'dms-db cluster status', then run the query again"

_MAX_LISTED_CHUNKS = 20


class RetryableNodeError(Exception):
    """A node could not be used for a statement (internal: always turned into a retry or an error)."""

    def __init__(self, reason: str, *, timeout: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timeout = timeout


def is_node_fault(exc: BaseException) -> bool:
    """Whether ``exc`` from a worker statement is worth retrying on another replica."""
    if isinstance(exc, RetryableNodeError | OSError):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    sqlstate = exc.sqlstate
    if sqlstate is None:  # raised by the client side: connection lost, pool timeout
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return sqlstate[:2] in NODE_FAULT_CLASSES


def node_failure(exc: BaseException, statement_timeout_s: float) -> RetryableNodeError:
    """The retryable failure ``exc`` stands for, with a one-line reason."""
    if isinstance(exc, RetryableNodeError):
        return exc
    if isinstance(exc, psycopg.Error) and exc.sqlstate == STATEMENT_TIMEOUT_SQLSTATE:
        return RetryableNodeError(f"statement timeout of {statement_timeout_s:g} s exceeded", timeout=True)
    return RetryableNodeError(one_line(exc))


def query_error(exc: psycopg.Error) -> QueryExecutionError:
    """The user-facing error for a statement PostgreSQL rejected."""
    diag = exc.diag
    message = diag.message_primary or one_line(exc)
    if diag.message_detail:
        message = f"{message}: {diag.message_detail}"
    return QueryExecutionError(message, sqlstate=exc.sqlstate, hint=diag.message_hint)


def coordinator_error(exc: psycopg.Error) -> DmsError:
    """The error a caller sees for a statement that failed on the coordinator itself.

    A rejected statement is the query's fault (:class:`QueryExecutionError`);
    anything else means the coordinator could not be used.
    """
    if is_node_fault(exc):
        return coordinator_unavailable(f"it failed during the query: {one_line(exc)}")
    return query_error(exc)


def coordinator_unavailable(reason: str) -> NodeUnavailableError:
    """The coordinator database cannot serve the query (``reason``: why, without a DSN)."""
    return NodeUnavailableError(
        f"the coordinator database cannot be used: {reason}",
        hint="check 'dms-db cluster status' and run the query again",
    )


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (psycopg adds context lines), or its class name."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def describe_chunks(chunks: Sequence[int]) -> str:
    """``chunks 1, 2, 3`` or ``chunks 1, 2, ... and 480 more (500 chunks)``.

    >>> describe_chunks([5])
    'chunk 5'
    >>> describe_chunks(list(range(25)))[-33:]
    '17, 18, 19 and 5 more (25 chunks)'
    """
    if len(chunks) == 1:
        return f"chunk {chunks[0]}"
    listed = ", ".join(str(c) for c in chunks[:_MAX_LISTED_CHUNKS])
    if len(chunks) <= _MAX_LISTED_CHUNKS:
        return f"chunks {listed}"
    return f"chunks {listed} and {len(chunks) - _MAX_LISTED_CHUNKS} more ({len(chunks)} chunks)"


def describe_failures(failures: Mapping[str, str], addresses: Mapping[str, str]) -> str:
    """``worker-1 (host:port/db): reason; ...`` for the nodes that failed in this query."""
    return "; ".join(f"{node} ({addresses.get(node, '?')}): {reason}" for node, reason in failures.items())


def unavailable_error(
    chunks: Sequence[int] | None,
    failures: Mapping[str, str],
    addresses: Mapping[str, str],
    *,
    timeouts_only: bool,
) -> NodeUnavailableError:
    """The error for work that no replica could do; ``chunks`` None for a single statement."""
    what = describe_chunks(chunks) if chunks is not None else "the statement"
    tried = describe_failures(failures, addresses) if failures else "no live replica"
    cls = QueryTimeoutError if timeouts_only and failures else NodeUnavailableError
    return cls(f"no replica could run {what}: {tried}", hint=CLUSTER_STATUS_HINT)


def partial_result_error(node: str, address: str, reason: str) -> NodeUnavailableError:
    """A worker failed after some of its rows reached the caller: the query is aborted, not cut short."""
    return NodeUnavailableError(
        f"worker {node} ({address}) failed after part of its rows were sent: {reason}; "
        "the query was aborted rather than return a partial result",
        hint=CLUSTER_STATUS_HINT,
    )


def unsupported_query(reason: str, hint: str) -> AdqlUnsupportedError:
    """The error for a query that cannot be distributed correctly: the reason and what to write instead.

    It names no position: the reason concerns the query as a whole.
    """
    return AdqlUnsupportedError(f"unsupported because {reason}", hint=hint)
