"""A progress bar for loads: rows, rows per second and, when the total is known, ETA."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def known_row_count(files: Sequence[Path]) -> int | None:
    """Total rows when every input says so cheaply (Parquet footers), else None."""
    total = 0
    for path in files:
        if Path(path).suffix.lower() not in (".parquet", ".pq"):
            return None
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except Exception:  # unreadable files are reported by the loader itself
            return None
    return total


@contextmanager
def load_progress(console: Console, files: Sequence[Path]) -> Iterator[Callable[[int], None]]:
    """Yield a callback that advances the bar by a number of rows."""
    columns = [
        TextColumn("[bold]loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("load", total=known_row_count(files), rate="")

        def advance(rows: int) -> None:
            progress.advance(task, rows)
            speed = progress.tasks[task].speed
            progress.update(task, rate=f"{speed:,.0f} rows/s" if speed else "")

        yield advance
