"""Errors of the write path: bad input files and rows, unknown targets."""

from __future__ import annotations

from dataclasses import dataclass

from dms_db.errors import UserError

MAX_REPORTED_PROBLEMS = 20


class LoadInputError(UserError):
    """An input file cannot be read: missing, empty, truncated, corrupt or mislabelled."""

    error_type = "LoadInputError"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (file, row, column), what value, and why."""

    source: str
    row: int | None
    column: str | None
    value: str | None
    message: str

    def __str__(self) -> str:
        where = [self.source]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        shown = f" (value {self.value!r})" if self.value is not None else ""
        return f"{', '.join(where)}: {self.message}{shown}"


class LoadValidationError(UserError):
    """The input breaks the schema; the whole load was rejected and nothing is visible."""

    error_type = "LoadValidationError"

    def __init__(self, problems: list[Problem], total: int) -> None:
        listed = "\n  ".join(str(p) for p in problems)
        more = f"\n  ... and {total - len(problems)} more" if total > len(problems) else ""
        super().__init__(
            f"load rejected, nothing was written: {total} problem(s) in the input:\n  {listed}{more}",
            hint="fix the rows listed (row numbers count data rows from 1) and run the load again",
        )
        self.problems = problems
        self.total = total
