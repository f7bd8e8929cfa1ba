"""What kind of values a result column holds, and their DALI spellings as text.

Every writer needs the same few facts about a column (number, boolean, text,
timestamp, fixed or variable array?) and the same text forms of values: ISO
8601 timestamps in UTC without an offset, arrays as space-separated numbers,
NaN and the infinities spelled the way the target format's readers expect.
They live here so that the formats agree with each other.

Text is declared as its metadata says when the service can vouch for it:
TAP_SCHEMA declares catalog text ``char`` (ASCII in VOTable 1.4 and 1.5), and
clients compare result FIELDs with TAP_SCHEMA, so a ``char`` column stays
``char`` whenever every one of its values is known to be ASCII.  When they are
not known (the result streams beyond its first batch) or are not ASCII, the
column becomes ``unicodeChar``: astropy, and with it pyvo, decodes ``char`` in
BINARY2 as ASCII and would fail on a whole table for one "Béla".  See
:func:`vouched_text_columns`.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from adql import ResultColumn

__all__ = [
    "NUMERIC_DATATYPES",
    "ColumnLayout",
    "Kind",
    "column_layout",
    "float_text",
    "integer_text",
    "plain_text",
    "timestamp_text",
    "unique_names",
    "vouched_text_columns",
]

NUMERIC_DATATYPES = frozenset({"short", "int", "long", "float", "double", "unsignedByte"})
"""VOTable datatypes whose values are numbers (booleans are not among them)."""

_FLOAT_DATATYPES = frozenset({"float", "double"})


class Kind(enum.Enum):
    """How the values of a column are stored, whatever the output format."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    FLOAT = "float"
    TEXT = "text"
    TIMESTAMP = "timestamp"
    FIXED_ARRAY = "fixed array"
    """A fixed number of numbers per value (a point, a circle)."""
    VARIABLE_ARRAY = "variable array"
    """Any number of numbers per value (a polygon)."""


@dataclass(frozen=True)
class ColumnLayout:
    """A result column with the storage facts the writers need.

    ``datatype`` is the VOTable datatype of one element: ``"double"`` for a
    polygon, ``"char"`` for text whatever the metadata said when it named a
    type no writer knows (such values are written with ``str``).
    """

    column: ResultColumn
    kind: Kind
    datatype: str
    count: int | None = None
    """Number of elements of a fixed array, None otherwise."""

    @property
    def is_float(self) -> bool:
        """Whether the values (or their elements) are floating-point numbers."""
        return self.datatype in _FLOAT_DATATYPES


def column_layout(column: ResultColumn) -> ColumnLayout:
    """Classify a result column from its VOTable metadata.

    Examples
    --------
    >>> column_layout(ResultColumn("pos", "double", arraysize="2", xtype="point")).count
    2
    >>> column_layout(ResultColumn("t", "char", arraysize="*", xtype="timestamp")).kind.name
    'TIMESTAMP'
    """
    datatype = column.datatype
    if column.xtype == "timestamp":
        return ColumnLayout(column, Kind.TIMESTAMP, "char")
    if datatype == "unicodeChar":
        return ColumnLayout(column, Kind.TEXT, "unicodeChar")
    if datatype == "boolean" and column.arraysize in (None, "1"):
        return ColumnLayout(column, Kind.BOOLEAN, datatype)
    if datatype not in NUMERIC_DATATYPES:
        # char, and anything no writer knows (arrays of booleans, bits, complex
        # numbers): written as text so that no value is lost.
        return ColumnLayout(column, Kind.TEXT, "char")
    arraysize = column.arraysize
    if arraysize in (None, "1"):
        kind = Kind.FLOAT if datatype in _FLOAT_DATATYPES else Kind.INTEGER
        return ColumnLayout(column, kind, datatype)
    if arraysize.isdigit():
        return ColumnLayout(column, Kind.FIXED_ARRAY, datatype, int(arraysize))
    return ColumnLayout(column, Kind.VARIABLE_ARRAY, datatype)


def vouched_text_columns(
    columns: Sequence[ResultColumn], rows: Sequence[tuple[Any, ...]], *, complete: bool
) -> tuple[ResultColumn, ...]:
    """The columns as a result declares them: ``char`` text stays ``char`` only if all its values are ASCII.

    ``rows`` are the rows in hand before the first byte is written and
    ``complete`` says whether they are the whole result.  A text column
    declared ``char`` (or of a type written as text) becomes ``unicodeChar``
    unless the result is complete and each of its values is ASCII; every
    other column is returned unchanged.  The declared type then holds for
    every value, in every serialization, and a result that can be checked
    (every small one) keeps the type TAP_SCHEMA declares.

    Examples
    --------
    >>> columns = [ResultColumn("band", "char", arraysize="*"), ResultColumn("n", "int")]
    >>> [c.datatype for c in vouched_text_columns(columns, [("g", 1), (None, 2)], complete=True)]
    ['char', 'int']
    >>> [c.datatype for c in vouched_text_columns(columns, [("Béla", 1)], complete=True)]
    ['unicodeChar', 'int']
    >>> [c.datatype for c in vouched_text_columns(columns, [("g", 1)], complete=False)]
    ['unicodeChar', 'int']
    """
    vouched = []
    for index, column in enumerate(columns):
        layout = column_layout(column)
        if layout.kind is Kind.TEXT and layout.datatype == "char":
            ascii_only = complete and all(
                value is None or (value if type(value) is str else str(value)).isascii()
                for value in (row[index] for row in rows)
            )
            if not ascii_only:
                column = replace(column, datatype="unicodeChar")
        vouched.append(column)
    return tuple(vouched)


def unique_names(names: Iterable[str], *, case_sensitive: bool = True) -> list[str]:
    """The names with repeats made unique by a suffix, for formats whose readers refuse repeats.

    ``SELECT a.ra, b.ra`` gives two columns called ``ra``; pyarrow's dataset
    reader and astropy's FITS reader fail on such a table.

    Examples
    --------
    >>> unique_names(["ra", "ra", "ra_2", "RA"], case_sensitive=False)
    ['ra', 'ra_2', 'ra_2_2', 'RA_3']
    """
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while (candidate if case_sensitive else candidate.lower()) in taken:
            number += 1
            candidate = f"{name}_{number}"
        taken.add(candidate if case_sensitive else candidate.lower())
        unique.append(candidate)
    return unique


def timestamp_text(value: Any) -> str:
    """A DALI timestamp: ISO 8601 in UTC without an offset, at least milliseconds.

    PostgreSQL ``timestamptz`` values arrive as aware datetimes in the session's
    time zone; DALI timestamps carry no offset and mean UTC, so aware values are
    converted first.  Microseconds are kept when they are not a whole number of
    milliseconds.

    Examples
    --------
    >>> timestamp_text(datetime.datetime(2024, 5, 6, 7, 8, 9, 120000))
    '2024-05-06T07:08:09.120'
    >>> tz = datetime.timezone(datetime.timedelta(hours=2))
    >>> timestamp_text(datetime.datetime(2024, 5, 6, 7, 8, 9, 1, tzinfo=tz))
    '2024-05-06T05:08:09.000001'
    """
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def float_text(nan: str, posinf: str, neginf: str) -> Callable[[Any], str]:
    """A function spelling a float (or Decimal) the shortest way that reads back exactly.

    The special values are spelled as given because formats disagree: VOTable
    says ``NaN``/``+Inf``/``-Inf``; CSV readers (pandas, pyarrow, numpy) all
    accept ``inf``.  None (NULL, or a NULL element of an array) becomes ``nan``'s
    spelling only inside arrays; a NULL cell is the caller's business.

    Examples
    --------
    >>> votable = float_text("NaN", "+Inf", "-Inf")
    >>> [votable(v) for v in (0.1, float("nan"), float("-inf"), 1e300)]
    ['0.1', 'NaN', '-Inf', '1e+300']
    """
    special = {"nan": nan, "inf": posinf, "-inf": neginf}

    def text(value: Any) -> str:
        if value is None:
            return nan
        spelled = repr(float(value))
        return special.get(spelled, spelled)

    return text


def integer_text(value: Any) -> str:
    """An integer (or an integral Decimal) in decimal digits."""
    return str(value) if type(value) is int else str(int(value))


def plain_text(
    layout: ColumnLayout, *, nan: str, posinf: str, neginf: str, true: str, false: str
) -> Callable[[Any], str]:
    """A function giving the unescaped text of a non-NULL value of the column.

    Arrays are DALI arrays: elements separated by one space.  Escaping (XML,
    CSV quoting) is left to the writer, which knows which kinds can need it.
    """
    kind = layout.kind
    if kind is Kind.TEXT:
        return lambda value: value if type(value) is str else str(value)
    if kind is Kind.TIMESTAMP:
        return timestamp_text
    if kind is Kind.BOOLEAN:
        return lambda value: true if value else false
    element = float_text(nan, posinf, neginf) if layout.is_float else integer_text
    if kind in (Kind.FLOAT, Kind.INTEGER):
        return element
    return lambda value: " ".join(map(element, value))
