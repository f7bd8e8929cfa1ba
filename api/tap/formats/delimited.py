"""CSV (RFC 4180) and TSV results, a batch of rows at a time.

Values are turned into text a column at a time and joined into lines, which
is faster than the stdlib ``csv`` module row by row and lets each format say
exactly how it spells things:

* CSV has a header line of column names and CRLF line ends.  NULL is an empty
  field, an empty string is ``""`` (pyarrow tells them apart with
  ``quoted_strings_can_be_null=False``); a field is quoted only when it holds
  a comma, a quote, a line break or leading/trailing space.  Floats are
  written the shortest way that reads back exactly, NaN as ``NaN`` and the
  infinities as ``inf``/``-inf`` (what pandas, pyarrow, numpy and astropy all
  read), booleans as ``true``/``false``, timestamps as ISO 8601 and arrays as
  quoted DALI arrays (numbers separated by spaces).
* TSV (``text/tab-separated-values``) forbids tabs and line breaks inside a
  field, so backslash, tab, CR and LF are escaped as ``\\\\``, ``\\t``, ``\\r``
  and ``\\n``; there is no quoting, and NULL and the empty string are both an
  empty field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from adql import ResultColumn

from .base import ResultInfo
from .values import ColumnLayout, Kind, column_layout, plain_text

__all__ = ["CsvWriter", "TsvWriter"]

_CSV_NEEDS_QUOTES = re.compile(r'[",\r\n]|^\s|\s$')
_TSV_NEEDS_ESCAPES = re.compile(r"[\\\t\r\n]")
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\r": "\\r", "\n": "\\n"})


def csv_quote(text: str) -> str:
    """``text`` as one CSV field, quoted only when it must be.

    Examples
    --------
    >>> [csv_quote(t) for t in ("a", "a,b", '5" disk', "")]
    ['a', '"a,b"', '"5"" disk"', '""']
    """
    if not text:
        return '""'
    if _CSV_NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def tsv_escape(text: str) -> str:
    r"""``text`` as one TSV field.

    Examples
    --------
    >>> print(tsv_escape("a\tb\\c\nd"))
    a\tb\\c\nd
    """
    if _TSV_NEEDS_ESCAPES.search(text) is None:
        return text
    return text.translate(_TSV_ESCAPES)


def _csv_field(layout: ColumnLayout) -> Callable[[Any], str]:
    text_of = plain_text(layout, nan="NaN", posinf="inf", neginf="-inf", true="true", false="false")
    if layout.kind is Kind.TEXT:
        return lambda value: "" if value is None else csv_quote(text_of(value))
    if layout.kind in (Kind.FIXED_ARRAY, Kind.VARIABLE_ARRAY):
        return lambda value: "" if value is None else f'"{text_of(value)}"'
    return lambda value: "" if value is None else text_of(value)


def _tsv_field(layout: ColumnLayout) -> Callable[[Any], str]:
    text_of = plain_text(layout, nan="NaN", posinf="inf", neginf="-inf", true="true", false="false")
    if layout.kind is Kind.TEXT:
        return lambda value: "" if value is None else tsv_escape(text_of(value))
    return lambda value: "" if value is None else text_of(value)


class _DelimitedWriter:
    """Lines of fields joined by a separator, a header line of names first."""

    separator = ","
    line_end = "\r\n"

    def __init__(self, columns: Sequence[ResultColumn], info: ResultInfo) -> None:
        self._columns = tuple(columns)
        self._fields = [self._field(column_layout(column)) for column in columns]

    def _field(self, layout: ColumnLayout) -> Callable[[Any], str]:
        raise NotImplementedError

    def _name(self, name: str) -> str:
        raise NotImplementedError

    def begin(self) -> bytes:
        """The header line of column names."""
        return (self.separator.join(self._name(c.name) for c in self._columns) + self.line_end).encode()

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> bytes:
        """One line per row."""
        if not rows:
            return b""
        fields = [list(map(field, values)) for field, values in zip(self._fields, zip(*rows, strict=True), strict=True)]
        if not fields:
            return (self.line_end * len(rows)).encode()
        lines = self.line_end.join(map(self.separator.join, zip(*fields, strict=True)))
        return (lines + self.line_end).encode()

    def finish(self, *, overflow: bool) -> Iterator[bytes]:
        """Nothing: these formats have no room for the query status."""
        yield from ()

    def close(self) -> None:
        """Nothing to release."""


class CsvWriter(_DelimitedWriter):
    """Comma-separated values with a header line (``text/csv;header=present``)."""

    def _field(self, layout: ColumnLayout) -> Callable[[Any], str]:
        return _csv_field(layout)

    def _name(self, name: str) -> str:
        return csv_quote(name)


class TsvWriter(_DelimitedWriter):
    """Tab-separated values with a header line (``text/tab-separated-values``)."""

    separator = "\t"
    line_end = "\n"

    def _field(self, layout: ColumnLayout) -> Callable[[Any], str]:
        return _tsv_field(layout)

    def _name(self, name: str) -> str:
        return tsv_escape(name)
