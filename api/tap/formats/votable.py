"""VOTable 1.4 results (TABLEDATA serialization) and error documents, written by hand.

astropy's VOTable writer needs the whole table in memory before it writes a
byte, so results are written here instead, a batch of rows at a time: the
document head (RESOURCE, INFOs, FIELDs) goes out first, each batch becomes a
run of ``<TR>`` elements, and the tail closes the table and adds the
``QUERY_STATUS`` OVERFLOW INFO that TAP 1.1 (section 4.2) and DALI ask for
after a truncated table.  The BINARY2 serialization (:mod:`.binary2`) shares
the head and tail.

Every document must parse with astropy and pyvo: text is escaped, characters
that XML 1.0 forbids are dropped, carriage returns and (in attributes) tabs and
newlines are written as character references so that XML's normalisation does
not turn them into other characters.  NULL is an empty ``<TD/>``, which is also
what an empty string looks like: TABLEDATA cannot tell them apart (and
astropy strips the spaces around a cell's text; BINARY2 keeps both).  Text
columns are declared as their metadata says, ``char`` or ``unicodeChar``: the
service keeps ``char`` only for text it knows to be ASCII
(:func:`.values.vouched_text_columns`); timestamps are ASCII and stay ``char``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice, repeat
from typing import Any

from adql import ResultColumn

from .base import ResultInfo, query_status
from .values import ColumnLayout, Kind, column_layout, plain_text

__all__ = [
    "VOTABLE_NAMESPACE",
    "TableDataWriter",
    "field_ids",
    "votable_error_document",
    "votable_head",
    "votable_tail",
    "xml_attribute",
    "xml_text",
]

VOTABLE_NAMESPACE = "http://www.ivoa.net/xml/VOTable/v1.3"
"""VOTable 1.4 kept the 1.3 namespace."""

_DOCUMENT_OPEN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<VOTABLE version="1.4" xmlns="{VOTABLE_NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    '<RESOURCE type="results">\n'
)
_DOCUMENT_CLOSE = "</RESOURCE>\n</VOTABLE>\n"

# Everything outside these ranges needs work: the XML specials, CR (which a
# parser would turn into LF) and the characters XML 1.0 forbids.
_TEXT_NEEDS_WORK = re.compile("[^\t\n\x20-\x25\x27-\x3b\x3d\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NEEDS_WORK = re.compile("[^\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)
_NOT_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_.\-]")


def xml_text(text: str) -> str:
    """``text`` escaped for element content, without characters XML 1.0 forbids.

    Examples
    --------
    >>> xml_text('a<b & "c"\\x00')
    'a&lt;b &amp; "c"'
    """
    if _TEXT_NEEDS_WORK.search(text) is None:
        return text
    return _FORBIDDEN.sub("", text).translate(_TEXT_ESCAPES)


def xml_attribute(text: str) -> str:
    """``text`` escaped for a double-quoted attribute value; tabs and newlines survive."""
    if _ATTRIBUTE_NEEDS_WORK.search(text) is None:
        return text
    return _FORBIDDEN.sub("", text).translate(_ATTRIBUTE_ESCAPES)


def field_ids(names: Iterable[str]) -> list[str]:
    """Unique XML IDs for FIELDs, close to the column names they come from.

    Column names may repeat (``SELECT a.ra, b.ra``) or be no XML name at all
    (delimited identifiers, names starting with a digit).

    Examples
    --------
    >>> field_ids(["ra", "ra", "2mass id", "ra_2"])
    ['ra', 'ra_2', '_2mass_id', 'ra_2_2']
    """
    taken: set[str] = set()
    ids = []
    for name in names:
        base = _NOT_NAME_CHARACTER.sub("_", name)
        if not base or not (base[0].isalpha() or base[0] == "_"):
            base = "_" + base
        candidate, number = base, 1
        while candidate in taken:
            number += 1
            candidate = f"{base}_{number}"
        taken.add(candidate)
        ids.append(candidate)
    return ids


def _info(name: str, value: str, content: str | None = None) -> str:
    head = f'<INFO name="{xml_attribute(name)}" value="{xml_attribute(value)}"'
    return f"{head}/>\n" if content is None else f"{head}>{xml_text(content)}</INFO>\n"


def _field(column: ResultColumn, field_id: str, datatype: str, arraysize: str | None) -> str:
    attributes = [("name", column.name), ("ID", field_id), ("datatype", datatype), ("arraysize", arraysize)]
    attributes += [("xtype", column.xtype), ("unit", column.unit), ("ucd", column.ucd)]
    element = "<FIELD " + " ".join(f'{key}="{xml_attribute(value)}"' for key, value in attributes if value)
    if column.description:
        return f"{element}>\n  <DESCRIPTION>{xml_text(column.description)}</DESCRIPTION>\n</FIELD>\n"
    return f"{element}/>\n"


def votable_head(
    layouts: Sequence[ColumnLayout], info: ResultInfo, field_type: Callable[[ColumnLayout], tuple[str, str | None]]
) -> str:
    """Everything up to the opening of the DATA element: INFOs, then the TABLE's FIELDs.

    ``field_type`` gives the datatype and arraysize each serialization declares.
    """
    parts = [_DOCUMENT_OPEN, _info("QUERY_STATUS", "OK")]
    if info.query is not None:
        parts.append(_info("QUERY", info.query))
    parts += [_info(name, value) for name, value in info.infos]
    parts.append("<TABLE>\n")
    for layout, field_id in zip(layouts, field_ids(layout.column.name for layout in layouts), strict=True):
        parts.append(_field(layout.column, field_id, *field_type(layout)))
    return "".join(parts)


def votable_tail(overflow: bool) -> str:
    """Everything after the DATA element: the TABLE's end and, when truncated, the OVERFLOW status."""
    status = _info("QUERY_STATUS", query_status(True)) if overflow else ""
    return f"</TABLE>\n{status}{_DOCUMENT_CLOSE}"


def votable_error_document(
    message: str, *, query_status: str = "ERROR", infos: Sequence[tuple[str, str]] = ()
) -> bytes:
    """A DALI error document: a results RESOURCE whose QUERY_STATUS INFO carries the message.

    Examples
    --------
    >>> print(votable_error_document("no table <x>").decode().splitlines()[3])
    <INFO name="QUERY_STATUS" value="ERROR">no table &lt;x&gt;</INFO>
    """
    parts = [_DOCUMENT_OPEN, _info("QUERY_STATUS", query_status, message)]
    parts += [_info(name, value) for name, value in infos]
    parts.append(_DOCUMENT_CLOSE)
    return "".join(parts).encode()


def tabledata_field_type(layout: ColumnLayout) -> tuple[str, str | None]:
    """The datatype and arraysize a TABLEDATA FIELD declares.

    Text keeps its declared ``char`` or ``unicodeChar`` (XML carries any
    character either way; a ``char`` column is ASCII by the time it gets here,
    see :func:`.values.vouched_text_columns`).  A text column without an
    arraysize gets ``*`` because the database does not limit it to one
    character.
    """
    arraysize = layout.column.arraysize
    if layout.kind in (Kind.TEXT, Kind.TIMESTAMP) and arraysize is None:
        arraysize = "*"
    return layout.datatype, arraysize


def _cell(layout: ColumnLayout) -> Callable[[Any], str]:
    text_of = plain_text(layout, nan="NaN", posinf="+Inf", neginf="-Inf", true="T", false="F")
    if layout.kind is Kind.TEXT:
        plain = text_of

        def text_of(value: Any) -> str:
            return xml_text(plain(value))

    def cell(value: Any) -> str:
        if value is None:
            return "<TD/>"
        text = text_of(value)
        return f"<TD>{text}</TD>" if text else "<TD/>"

    return cell


class TableDataWriter:
    """A VOTable in the TABLEDATA serialization: rows as XML elements."""

    def __init__(self, columns: Sequence[ResultColumn], info: ResultInfo) -> None:
        self._layouts = [column_layout(column) for column in columns]
        self._info = info
        self._cells = [_cell(layout) for layout in self._layouts]

    def begin(self) -> bytes:
        """The document head, up to the opening of TABLEDATA."""
        return (votable_head(self._layouts, self._info, tabledata_field_type) + "<DATA><TABLEDATA>\n").encode()

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> bytes:
        """One ``<TR>`` per row."""
        if not rows:
            return b""
        cells = [list(map(cell, values)) for cell, values in zip(self._cells, zip(*rows, strict=True), strict=True)]
        opening = islice(repeat("<TR>"), len(rows))
        return "".join(chain.from_iterable(zip(opening, *cells, repeat("</TR>\n")))).encode()

    def finish(self, *, overflow: bool) -> Iterator[bytes]:
        """Close TABLEDATA and the document."""
        yield ("</TABLEDATA></DATA>\n" + votable_tail(overflow)).encode()

    def close(self) -> None:
        """Nothing to release."""
