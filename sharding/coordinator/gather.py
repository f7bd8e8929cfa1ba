"""Worker rows copied into a temporary table of a coordinator session, for a merge query.

Rows travel as COPY text: ``COPY (query) TO STDOUT`` on the worker, blocks of
CopyData passed as they are to ``COPY ... FROM STDIN`` on the coordinator, so
no Python object is made per row and memory stays at a few blocks whatever the
row count (pgSphere types may lack binary I/O; text round-trips floats exactly
with PostgreSQL's default ``extra_float_digits``).

A temporary table belongs to one session, and one session runs one COPY at a
time, so a single writer task feeds the table while the attempts feed the
writer through a bounded queue.  Each row records the attempt that wrote it in
an extra column (filled by a column default that reads a session setting, so
rows are not rewritten): a failed attempt's rows are deleted once every
attempt finished, then the column is dropped.  Failover therefore never leaves
duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from dms_db.errors import InternalError
from sharding.coordinator.execution import Attempt, Execution, ResultColumnType

ATTEMPT_COLUMN = "__dms_attempt"
ATTEMPT_SETTING = "dms.gather_attempt"
BLOCK_BYTES = 1 << 20
QUEUED_BLOCKS = 8


@dataclass(frozen=True)
class GatherResult:
    """What a gather wrote: the number of rows and the columns of the temp table."""

    row_count: int
    columns: list[ResultColumnType] = field(default_factory=list)


class TempTableWriter:
    """The one task that writes into the temporary table of the coordinator session."""

    def __init__(self, into: psycopg.AsyncConnection, table: str, column_names: Sequence[str] | None) -> None:
        self.into = into
        self.table = table
        self.column_names = list(column_names) if column_names is not None else None
        self.columns: list[ResultColumnType] | None = None
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=QUEUED_BLOCKS)
        self.rows_by_attempt: dict[int, int] = {}
        self._create_lock = asyncio.Lock()

    async def ensure_table(self, columns: list[ResultColumnType]) -> None:
        """Create the temp table from the first described result (later attempts find it made)."""
        async with self._create_lock:
            if self.columns is not None:
                return
            names = self.column_names or [c.name for c in columns]
            if len(names) != len(columns):
                raise InternalError(f"gather into {self.table}: {len(names)} column names for {len(columns)} columns")
            if len(set(names)) != len(names):
                raise InternalError(f"gather into {self.table}: duplicate column names {names}; pass column_names")
            definitions = [
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(column.type_sql))
                for name, column in zip(names, columns, strict=True)
            ]
            definitions.append(
                sql.SQL("{} integer DEFAULT current_setting({})::integer").format(
                    sql.Identifier(ATTEMPT_COLUMN), sql.Literal(ATTEMPT_SETTING)
                )
            )
            create = sql.SQL("CREATE TEMPORARY TABLE {} ({})")
            await self.into.execute(create.format(sql.Identifier(self.table), sql.SQL(", ").join(definitions)))
            self.columns = [ResultColumnType(name, c.type_sql) for name, c in zip(names, columns, strict=True)]

    async def run(self) -> None:
        """Copy queued blocks until the end marker; one COPY per run of blocks of the same attempt."""
        item = await self.queue.get()
        while item is not None:
            number = item[0]
            await self.into.execute("SELECT set_config(%s, %s, false)", (ATTEMPT_SETTING, str(number)))
            async with self.into.cursor() as cur:
                async with cur.copy(self._copy_in()) as copy:
                    while item is not None and item[0] == number:
                        await copy.write(item[1])
                        item = await self.queue.get()
                self.rows_by_attempt[number] = self.rows_by_attempt.get(number, 0) + max(cur.rowcount, 0)

    async def finish(self, failed_attempts: Sequence[int]) -> int:
        """Remove rows of failed attempts and the attempt column; the number of rows kept."""
        table = sql.Identifier(self.table)
        dropped = [n for n in failed_attempts if self.rows_by_attempt.get(n)]
        if dropped:
            await self.into.execute(
                sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(table, sql.Identifier(ATTEMPT_COLUMN)), (dropped,)
            )
        await self.into.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(table, sql.Identifier(ATTEMPT_COLUMN)))
        return sum(rows for number, rows in self.rows_by_attempt.items() if number not in failed_attempts)

    async def drop(self) -> None:
        """Remove the table after a failed gather, if the session still works."""
        if self.columns is None or self.into.closed or self.into.broken:
            return
        # A session in a failed transaction cannot: the caller's rollback or the pool's reset removes it then.
        with contextlib.suppress(psycopg.Error):
            await self.into.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table)))

    def _copy_in(self) -> sql.Composed:
        assert self.columns is not None
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in self.columns)
        return sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(self.table), names)


class GatherSink:
    """Describe an attempt's statement, then pipe its COPY output to the writer."""

    def __init__(self, writer: TempTableWriter) -> None:
        self.writer = writer

    async def consume(self, execution: Execution, attempt: Attempt, conn: psycopg.AsyncConnection) -> None:
        """Learn the columns from a declared cursor that fetches nothing, then COPY the statement out."""
        query = execution.query_for(attempt)
        cursor = await execution.open_cursor(conn, attempt, 0, query)  # never fetched; the transaction's end closes it
        columns = await execution.learn_columns(conn, cursor)
        await self.writer.ensure_table(columns)
        if execution.plan.describe_only:
            return
        wrapped = sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(query) if isinstance(query, str) else query)
        block = bytearray()
        async with conn.cursor() as cur, cur.copy(wrapped) as copy:
            async for data in copy:
                block += data
                if len(block) >= BLOCK_BYTES:
                    await self._put(execution, attempt, block)
                    block = bytearray()
        if block:
            await self._put(execution, attempt, block)

    async def _put(self, execution: Execution, attempt: Attempt, block: bytearray) -> None:
        await self.writer.queue.put((attempt.number, bytes(block)))
        execution.notify()
