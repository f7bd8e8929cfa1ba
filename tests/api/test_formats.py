"""The TAP result writers: every format is read back by astropy, pyarrow, pandas or json and compared.

No database: the rows are what psycopg returns (ints, floats with NaN and
infinities, Decimals, text, aware and naive datetimes, lists for geometries,
None), and the expected values are written out by hand, so a writer that
loses or alters a value fails here.  Each reader's known blind spots (astropy
masks NaN and does not mask strings in VOTable, TSV cannot tell NULL from an
empty string...) are applied to the expectation explicitly.
"""

from __future__ import annotations

import base64
import csv
import datetime
import doctest
import importlib
import io
import json
import math
import pkgutil
import re
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import pyvo
from astropy.io import fits
from astropy.io.votable import parse
from astropy.io.votable.exceptions import W33
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

import api.tap.formats
from adql import ResultColumn
from api.tap.formats import (
    DEFAULT_FORMAT,
    FORMATS,
    ResultFormat,
    ResultInfo,
    UnknownFormatError,
    resolve_format,
    votable_error_document,
    vouched_text_columns,
)
from api.tap.formats.parquet import ParquetWriter
from dms_db.errors import UserError

NAN = "<NaN>"
"""Stands for NaN in expectations, since NaN equals nothing."""

COLUMNS = (
    ResultColumn("id", "long", ucd="meta.id;meta.main", description="Object identifier"),
    ResultColumn("flags", "int"),
    ResultColumn("band", "short"),
    ResultColumn("ok", "boolean"),
    ResultColumn("mag", "float", unit="mag"),
    ResultColumn("ra", "double", unit="deg", ucd="pos.eq.ra", description='Right ascension <ICRS> & "J2000"'),
    ResultColumn("name", "char", arraysize="*"),
    ResultColumn("label", "unicodeChar", arraysize="*"),
    ResultColumn("obs_time", "char", arraysize="*", xtype="timestamp"),
    ResultColumn("pos", "double", arraysize="2", xtype="point", unit="deg"),
    ResultColumn("circ", "double", arraysize="3", xtype="circle", unit="deg"),
    ResultColumn("poly", "double", arraysize="*", xtype="polygon", unit="deg"),
    ResultColumn("ra", "double"),
    ResultColumn("code", "char"),
    ResultColumn("amount", "double"),
)
NAMES = [column.name for column in COLUMNS]
TEXT = {"name", "label", "code"}
FIXED_ARRAYS = {"pos", "circ"}
ARRAYS = {"pos", "circ", "poly"}
BOOLEANS = {"ok"}
INTEGERS = {"id", "flags", "band"}

_PLUS_TWO = datetime.timezone(datetime.timedelta(hours=2))
ROWS = [
    (1, 7, 2, True, 21.5, 10.25, "Ω Cen", "Béla", datetime.datetime(2024, 5, 6, 7, 8, 9, 120000),
     [10.5, -20.25], [1.0, 2.0, 0.5], [0.0, 0.0, 1.0, 0.0, 1.0, 1.0], 1e-300, "x", Decimal("1.25")),
    (None,) * 15,
    (2**62, -(2**31) + 1, -32767, False, math.nan, math.inf, 'a<b & "c", d\te\nf', "",
     datetime.datetime(2024, 5, 6, 9, 8, 9, tzinfo=_PLUS_TWO), [359.5, 89.5], [3.0, 4.0, 0.25],
     [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], -math.inf, "", Decimal("3")),
    (-5, None, 0, True, -math.inf, math.nan, "plain, text", "🌌 M31",
     datetime.datetime(1999, 12, 31, 23, 59, 59, 999999), [0.0, -90.0], None,
     [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.2, 0.8], 0.0, "q", Decimal("-0.5")),
]  # fmt: skip
IDEAL = [
    [1, 7, 2, True, 21.5, 10.25, "Ω Cen", "Béla", "2024-05-06T07:08:09.120",
     [10.5, -20.25], [1.0, 2.0, 0.5], [0.0, 0.0, 1.0, 0.0, 1.0, 1.0], 1e-300, "x", 1.25],
    [None] * 15,
    [2**62, -(2**31) + 1, -32767, False, NAN, math.inf, 'a<b & "c", d\te\nf', "", "2024-05-06T07:08:09.000",
     [359.5, 89.5], [3.0, 4.0, 0.25], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], -math.inf, "", 3.0],
    [-5, None, 0, True, -math.inf, NAN, "plain, text", "🌌 M31", "1999-12-31T23:59:59.999999",
     [0.0, -90.0], None, [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.2, 0.8], 0.0, "q", -0.5],
]  # fmt: skip
"""ROWS as every format should ideally give them back: UTC timestamps in ISO 8601, Decimals as floats."""

INFO = ResultInfo(query="SELECT *\nFROM dr.Object WHERE name = 'Ω' AND ra < 3", infos=(("request_id", "r-42"),))


def encode(
    name: str,
    rows: Sequence[tuple[Any, ...]] = ROWS,
    columns: Sequence[ResultColumn] = COLUMNS,
    *,
    batch: int | None = None,
    overflow: bool = False,
) -> bytes:
    """The whole output of a format, the rows given in batches of ``batch`` (all at once by default).

    The columns are declared as the service declares them for a result it holds whole: ``char`` text stays
    ``char`` only if it is all ASCII.
    """
    writer = resolve_format(name).writer(vouched_text_columns(columns, rows, complete=True), INFO)
    try:
        size = batch or max(len(rows), 1)
        parts = [writer.begin()]
        parts += [writer.write_rows(rows[start : start + size]) for start in range(0, len(rows), size)]
        parts += list(writer.finish(overflow=overflow))
    finally:
        writer.close()
    return b"".join(parts)


def plain(value: Any) -> Any:
    """A value read back as a plain Python value: None for masked, NAN for NaN, lists for arrays."""
    if value is None or value is np.ma.masked:
        return None
    if isinstance(value, np.ma.MaskedArray):
        return [plain(element) for element in value.tolist()]
    if isinstance(value, np.ndarray):
        return [plain(element) for element in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, float) and math.isnan(value):
        return NAN
    if isinstance(value, list):
        return [plain(element) for element in value]
    return value


def expect(change: Callable[[str, Any], Any]) -> list[list[Any]]:
    """IDEAL with ``change(column name, value)`` applied to every value."""
    return [[change(name, value) for name, value in zip(NAMES, row, strict=True)] for row in IDEAL]


def table_rows(table: Table) -> list[list[Any]]:
    return [[plain(table[name][index]) for name in table.colnames] for index in range(len(table))]


# --- VOTable ---------------------------------------------------------------------------------------------------------


def astropy_votable(name: str, value: Any) -> Any:
    """What astropy makes of a value: NaN masked, NULL text empty, NULL or empty arrays alike."""
    if value is NAN:
        return None
    if name in TEXT or name == "obs_time":
        return "" if value is None else value
    if name in ARRAYS and value in (None, []):
        return None
    return value


def votable_rows(document: bytes) -> tuple[Any, list[list[Any]]]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy's VOTable warnings (W..) mean a malformed document
        warnings.filterwarnings("ignore", category=W33)  # astropy renames repeated names, which VOTable allows
        votable = parse(io.BytesIO(document), verify="warn")

    def masked_array_as_null(value: Any) -> Any:
        return None if isinstance(value, list) and all(e is None for e in value) else value

    rows = table_rows(votable.get_first_table().to_table())
    return votable, [[masked_array_as_null(v) for v in row] for row in rows]


@pytest.mark.parametrize("name", ["votable", "votable-binary2"])
def test_votable_values_and_metadata(name: str) -> None:
    votable, rows = votable_rows(encode(name))
    assert rows == expect(astropy_votable)
    resource = votable.resources[0]
    assert resource.type == "results"
    infos = {info.name: info.value for info in resource.infos}
    assert infos == {"QUERY_STATUS": "OK", "QUERY": INFO.query, "request_id": "r-42"}
    fields = votable.get_first_table().fields
    assert [f.name for f in fields] == NAMES
    assert len({f.ID for f in fields}) == len(fields)
    ra = fields[5]
    assert (ra.datatype, ra.unit.to_string(), ra.ucd, ra.description) == (
        "double",
        "deg",
        "pos.eq.ra",
        COLUMNS[5].description,
    )
    assert [(f.datatype, f.arraysize, f.xtype) for f in fields[8:12]] == [
        ("char", "*", "timestamp"),
        ("double", "2", "point"),
        ("double", "3", "circle"),
        ("double", "*", "polygon"),
    ]
    assert (fields[6].datatype, fields[6].arraysize) == ("unicodeChar", "*"), "char in VOTable 1.4 is ASCII only"
    assert (fields[13].datatype, fields[13].arraysize) == ("char", "*"), "ASCII text keeps its declared char"
    assert fields[13].arraysize == "*", "a char column without arraysize must not be cut to one character"


@pytest.mark.parametrize("name", ["votable", "votable-binary2"])
def test_votable_overflow_comes_after_the_table(name: str) -> None:
    document = encode(name, overflow=True).decode()
    assert re.search(r'</TABLE>\s*<INFO name="QUERY_STATUS" value="OVERFLOW"/>\s*</RESOURCE>', document)
    votable, _ = votable_rows(document.encode())
    assert [i.value for i in votable.resources[0].infos if i.name == "QUERY_STATUS"] == ["OK", "OVERFLOW"]
    results = pyvo.dal.TAPResults(votable, url="http://example.org/tap/sync")
    assert (results.query_status, len(results), results["label", 3]) == ("OVERFLOW", len(ROWS), "🌌 M31")
    assert b"OVERFLOW" not in encode(name)


def test_binary2_keeps_whitespace_and_characters_outside_the_basic_plane() -> None:
    columns = (ResultColumn("s", "char", arraysize="*"),)
    values = ["  padded  ", "🌌🌌", "\x1b escape"]
    _, rows = votable_rows(encode("votable-binary2", [(v,) for v in values], columns))
    assert rows == [[v] for v in values]


def test_tabledata_drops_characters_xml_forbids() -> None:
    columns = (ResultColumn("s", "char", arraysize="*"),)
    _, rows = votable_rows(encode("votable", [("nul\x00 and \x1b esc\rape",)], columns))
    assert rows == [["nul and  esc\rape"]]


def test_binary2_null_flags_and_counts_decoded_by_hand() -> None:
    """An independent reading of the stream: bitmap, 4-byte counts, UTF-16 text, big-endian int."""
    columns = (ResultColumn("name", "char", arraysize="*"), ResultColumn("n", "int"))
    document = encode("votable-binary2", [("", 1), (None, None), ("Ω", -2)], columns).decode()
    stream = base64.b64decode(re.search(r'<STREAM encoding="base64">(.*)</STREAM>', document, re.S).group(1))
    decoded, offset = [], 0
    for _ in range(3):
        flags = stream[offset]
        (count,) = struct.unpack_from(">i", stream, offset + 1)
        text = stream[offset + 5 : offset + 5 + 2 * count].decode("utf_16_be")
        offset += 5 + 2 * count
        (number,) = struct.unpack_from(">i", stream, offset)
        offset += 4
        decoded.append((flags, text, number if not flags & 0x40 else None))
    assert offset == len(stream)
    assert decoded == [(0x00, "", 1), (0xC0, "", None), (0x00, "Ω", -2)]


@pytest.mark.parametrize("name", ["votable", "votable-binary2"])
def test_char_text_stays_char_only_when_known_to_be_ascii(name: str) -> None:
    """TAP_SCHEMA declares catalog text char; a result keeps that type unless a value (or the unknown rest) forbids."""
    columns = (ResultColumn("band", "char", arraysize="*"), ResultColumn("n", "int"))
    ascii_rows = [("g", 1), (None, 2), ("", 3)]
    votable, rows = votable_rows(encode(name, ascii_rows, columns))
    assert [f.datatype for f in votable.get_first_table().fields] == ["char", "int"]
    assert rows == [["g", 1], ["", 2], ["", 3]]
    streamed = vouched_text_columns(columns, ascii_rows, complete=False)
    assert [c.datatype for c in streamed] == ["unicodeChar", "int"], "the rest of a stream is unknown"
    votable, rows = votable_rows(encode(name, [("Ω", 1)], columns))
    assert [f.datatype for f in votable.get_first_table().fields] == ["unicodeChar", "int"]
    assert rows == [["Ω", 1]]


def test_binary2_char_is_one_byte_per_character() -> None:
    writer = resolve_format("votable-binary2").writer([ResultColumn("band", "char", arraysize="*")], INFO)
    assert writer.encode_rows([("gr",)]) == b"\x00" + struct.pack(">i", 2) + b"gr"  # type: ignore[attr-defined]


def test_field_ids_are_unique_xml_names() -> None:
    columns = [ResultColumn(n, "int") for n in ("ra", "ra", "2mass id", "é", "a:b", "1")]
    votable, _ = votable_rows(encode("votable", [(1, 2, 3, 4, 5, 6)], columns))
    ids = [f.ID for f in votable.get_first_table().fields]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z_][\w.\-]*", i) for i in ids), ids
    assert [f.name for f in votable.get_first_table().fields] == ["ra", "ra", "2mass id", "é", "a:b", "1"]


def test_error_document_parses_with_astropy_and_pyvo() -> None:
    message = 'Table "dr.Nope" does not exist & never <did>\nline 2'
    document = votable_error_document(message, infos=[("request_id", "r-1")])
    votable = parse(io.BytesIO(document))
    infos = {info.name: info for info in votable.resources[0].infos}
    assert infos["QUERY_STATUS"].value == "ERROR"
    assert infos["QUERY_STATUS"].content == message
    assert infos["request_id"].value == "r-1"
    with pytest.raises(pyvo.dal.DALQueryError, match="never <did>"):
        pyvo.dal.DALResults(votable, url="http://example.org/tap/sync")


# --- CSV and TSV -----------------------------------------------------------------------------------------------------


def parse_dali_array(text: str | None) -> list[float] | None:
    return None if text is None else [float(x) for x in text.split()]


def test_csv_read_by_pyarrow_keeps_null_apart_from_empty_text() -> None:
    options = pa_csv.ConvertOptions(
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        column_types={"obs_time": pa.string(), "code": pa.string(), "pos": pa.string()},
    )
    table = pa_csv.read_csv(io.BytesIO(encode("csv")), convert_options=options)
    assert table.column_names == NAMES
    assert table.schema.field("ok").type == pa.bool_()
    assert table.schema.field("id").type == pa.int64()
    rows = [[plain(v) for v in row] for row in zip(*(c.to_pylist() for c in table.columns), strict=True)]
    rows = [[parse_dali_array(v) if n in ARRAYS else v for n, v in zip(NAMES, row, strict=True)] for row in rows]
    assert rows == IDEAL


def test_csv_read_by_pandas_and_astropy() -> None:
    document = encode("csv")
    frame = pd.read_csv(io.BytesIO(document))
    ok = frame["ok"].tolist()
    assert (ok[0], pd.isna(ok[1]), ok[2], ok[3]) == (True, True, False, True)
    assert pd.to_datetime(frame["obs_time"]).tolist()[3] == pd.Timestamp("1999-12-31T23:59:59.999999")
    assert frame["ra"].tolist()[2] == math.inf and math.isnan(frame["ra"].tolist()[3])
    assert frame["name"].tolist()[2] == 'a<b & "c", d\te\nf'
    assert frame["amount"].tolist()[0] == 1.25
    table = Table.read(io.BytesIO(document), format="csv")
    assert table.colnames[:12] == NAMES[:12]
    assert plain(table["id"][2]) == 2**62 and plain(table["id"][1]) is None
    assert plain(table["label"][3]) == "🌌 M31"
    assert table["mag"][3] == -math.inf


def test_tsv_escapes_and_reads_back() -> None:
    document = encode("tsv").decode()
    lines = document.split("\n")
    assert lines[-1] == "" and len(lines) == len(ROWS) + 2
    assert lines[0].split("\t") == NAMES
    unescape = {"\\t": "\t", "\\n": "\n", "\\r": "\r", "\\\\": "\\"}

    def value(name: str, text: str) -> Any:
        if name in TEXT:
            return re.sub(r"\\[tnr\\]", lambda m: unescape[m.group(0)], text)
        if text == "":
            return None
        if name in ARRAYS:
            return parse_dali_array(text)
        if name in INTEGERS:
            return int(text)
        if name in BOOLEANS:
            return {"true": True, "false": False}[text]
        return text if name == "obs_time" else plain(float(text))

    rows = [[value(n, t) for n, t in zip(NAMES, line.split("\t"), strict=True)] for line in lines[1:-1]]
    assert rows == expect(lambda name, v: "" if v is None and name in TEXT else v)
    frame = pd.read_csv(io.StringIO(document), sep="\t", quoting=csv.QUOTE_NONE)
    assert frame.shape == (len(ROWS), len(COLUMNS))
    assert frame["id"].tolist()[2] == 2**62


# --- JSON, Parquet, FITS ---------------------------------------------------------------------------------------------


def test_json_is_valid_and_complete() -> None:
    document = json.loads(encode("json", overflow=True))
    assert [m["name"] for m in document["metadata"]] == NAMES
    assert document["metadata"][9] == {
        "name": "pos",
        "datatype": "double",
        "arraysize": "2",
        "xtype": "point",
        "unit": "deg",
        "ucd": None,
        "description": None,
    }
    assert document["query"] == INFO.query
    assert document["info"] == [{"name": "request_id", "value": "r-42"}]
    assert document["query_status"] == "OVERFLOW"
    finite = expect(lambda _name, v: None if v is NAN or v in (math.inf, -math.inf) else v)
    assert document["data"] == finite
    assert json.loads(encode("json"))["query_status"] == "OK"


def test_parquet_values_and_metadata() -> None:
    data = encode("parquet", overflow=True)
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == [*NAMES[:12], "ra_2", *NAMES[13:]]
    times = table.column("obs_time").to_pylist()
    assert times == [
        datetime.datetime(2024, 5, 6, 7, 8, 9, 120000),
        None,
        datetime.datetime(2024, 5, 6, 7, 8, 9),
        datetime.datetime(1999, 12, 31, 23, 59, 59, 999999),
    ]
    rows = [[plain(v) for v in row] for row in zip(*(c.to_pylist() for c in table.columns), strict=True)]
    assert [r[:8] + r[9:] for r in rows] == [r[:8] + r[9:] for r in IDEAL]
    ra = table.schema.field("ra")
    assert ra.metadata == {b"unit": b"deg", b"ucd": b"pos.eq.ra", b"description": COLUMNS[5].description.encode()}
    assert table.schema.metadata[b"QUERY"] == INFO.query.encode()
    assert table.schema.metadata[b"request_id"] == b"r-42"
    assert pq.read_metadata(io.BytesIO(data)).metadata[b"QUERY_STATUS"] == b"OVERFLOW"
    assert pq.read_metadata(io.BytesIO(encode("parquet"))).metadata[b"QUERY_STATUS"] == b"OK"
    assert pd.read_parquet(io.BytesIO(data))["label"].tolist()[3] == "🌌 M31"


def test_parquet_writes_a_row_group_when_enough_rows_wait() -> None:
    writer = ParquetWriter(COLUMNS, INFO, row_group_rows=2)
    chunks = [writer.begin(), writer.write_rows(ROWS[:1]), writer.write_rows(ROWS[1:3]), writer.write_rows(ROWS[3:])]
    chunks += list(writer.finish(overflow=False))
    writer.close()
    assert chunks[1] == b"" and len(chunks[2]) > 0, "the first row group goes out once two rows wait"
    assert pq.ParquetFile(io.BytesIO(b"".join(chunks))).metadata.num_row_groups == 2


def fits_expectation(name: str, value: Any) -> Any:
    """What astropy makes of a FITS value: NaN (NULL points too) and empty text masked, NULL booleans False."""
    if value is NAN or (value == "" and (name in TEXT or name == "obs_time")):
        return None
    if name in BOOLEANS and value is None:
        return False
    if name in FIXED_ARRAYS and value is None:
        return [None] * (2 if name == "pos" else 3)
    if name == "poly" and value is None:
        return []
    return value


def test_fits_values_and_header() -> None:
    data = encode("fits", overflow=True)
    assert len(data) % 2880 == 0
    with fits.open(io.BytesIO(data)) as hdus:
        hdus.verify("exception")
        header = hdus[1].header
        assert header["NAXIS2"] == len(ROWS)
        assert header["QUERY_STATUS"] == "OVERFLOW"
        assert header["request_id"] == "r-42"
        assert header["QUERY"] == "SELECT * FROM dr.Object WHERE name = '\\u03a9' AND ra < 3"
        assert header["TUNIT6"] == "deg" and header["TCOMM6"] == COLUMNS[5].description
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Column 'ok' contains NULL", AstropyUserWarning)
        table = Table.read(io.BytesIO(data), format="fits")
    assert table.colnames == [*NAMES[:12], "ra_2", *NAMES[13:]]
    assert table_rows(table) == expect(fits_expectation)
    assert table.meta["QUERY_STATUS"] == "OVERFLOW"
    assert str(table["ra"].unit) == "deg"


def test_fits_writer_removes_its_spool_and_closes_twice() -> None:
    writer = resolve_format("fits").writer(COLUMNS, INFO)
    writer.begin()
    writer.write_rows(ROWS)
    spool = writer._spool  # type: ignore[attr-defined]
    assert spool is not None and not spool.closed
    writer.close()
    writer.close()
    assert spool.closed
    never_used = resolve_format("fits").writer(COLUMNS, INFO)
    never_used.close()


# --- every format ----------------------------------------------------------------------------------------------------

STREAMED = [f.name for f in FORMATS if f.name != "parquet"]


@pytest.mark.parametrize("name", STREAMED)
def test_batches_do_not_change_the_output(name: str) -> None:
    assert encode(name, batch=1) == encode(name, batch=3) == encode(name)


def test_parquet_batches_do_not_change_the_values() -> None:
    one = pq.read_table(io.BytesIO(encode("parquet"))).to_pylist()
    many = pq.read_table(io.BytesIO(encode("parquet", batch=1))).to_pylist()
    assert [[plain(v) for v in row.values()] for row in one] == [[plain(v) for v in row.values()] for row in many]


@pytest.mark.parametrize("name", [f.name for f in FORMATS])
def test_empty_results_keep_their_columns(name: str) -> None:
    data = encode(name, rows=[])
    if name.startswith("votable"):
        table = parse(io.BytesIO(data)).get_first_table().to_table()
        assert (table.colnames[:2], len(table)) == (["id", "flags"], 0)
    elif name in ("csv", "tsv"):
        assert data.decode().splitlines() == [("," if name == "csv" else "\t").join(NAMES)]
    elif name == "json":
        document = json.loads(data)
        assert (len(document["metadata"]), document["data"]) == (len(COLUMNS), [])
    elif name == "parquet":
        table = pq.read_table(io.BytesIO(data))
        assert (table.num_columns, table.num_rows) == (len(COLUMNS), 0)
    else:
        table = Table.read(io.BytesIO(data), format="fits")
        assert (len(table.colnames), len(table)) == (len(COLUMNS), 0)


def _memory_rows(start: int, count: int) -> list[tuple[Any, ...]]:
    stamp = datetime.datetime(2024, 1, 1)
    return [
        (i, i * 1e-3, -i * 1e-3, 17.5, i % 1000, f"object {i}", stamp, [1.0, 2.0]) for i in range(start, start + count)
    ]


MEMORY_COLUMNS = (
    ResultColumn("id", "long"),
    ResultColumn("ra", "double"),
    ResultColumn("dec", "double"),
    ResultColumn("mag", "float"),
    ResultColumn("flags", "int"),
    ResultColumn("name", "char", arraysize="*"),
    ResultColumn("t", "char", arraysize="*", xtype="timestamp"),
    ResultColumn("pos", "double", arraysize="2", xtype="point"),
)


@pytest.mark.slow
@pytest.mark.parametrize("name", [f.name for f in FORMATS])
def test_a_million_rows_stream_in_bounded_memory(name: str) -> None:
    process = psutil.Process()
    batch = 5000
    writer = resolve_format(name).writer(MEMORY_COLUMNS, INFO)
    before = process.memory_info().rss
    peak, written = before, 0
    try:
        written += len(writer.begin())
        for start in range(0, 1_000_000, batch):
            written += len(writer.write_rows(_memory_rows(start, batch)))
            if start % 100_000 == 0:
                peak = max(peak, process.memory_info().rss)
        for chunk in writer.finish(overflow=False):
            written += len(chunk)
            peak = max(peak, process.memory_info().rss)
    finally:
        writer.close()
    assert written > 8_000_000
    assert peak - before < 50 * 2**20, f"{name}: RSS grew by {(peak - before) / 2**20:.0f} MiB"


# --- format names ----------------------------------------------------------------------------------------------------

ALIASES = {
    "votable": [
        "votable",
        "VOTABLE",
        "application/x-votable+xml",
        "text/xml",
        "application/xml",
        "votable/td",
        "votable_td",
        "application/x-votable+xml;serialization=tabledata",
        'application/x-votable+xml; serialization="TABLEDATA"',
        "application/x-votable+xml;serialization=TABLEDATA;charset=UTF-8",
    ],
    "votable-binary2": [
        "votable-binary2",
        "votable/b2",
        "votable_b2",
        "binary2",
        "BINARY2",
        "application/x-votable+xml;serialization=binary2",
        'application/x-votable+xml; serialization="BINARY2"',
        "application/x-votable+xml ; serialization = 'binary2'",
        "text/xml;serialization=BINARY2",
        ";serialization=binary2",
    ],
    "csv": ["csv", "CSV", "text/csv", "text/csv;header=present", "text/csv; header=present; charset=utf-8"],
    "tsv": ["tsv", "text/tab-separated-values"],
    "fits": ["fits", "application/fits"],
    "parquet": ["parquet", "application/vnd.apache.parquet", "application/x-parquet"],
    "json": ["json", "application/json", " JSON "],
}


@pytest.mark.parametrize(("expected", "value"), [(name, v) for name, values in ALIASES.items() for v in values])
def test_resolve_format_accepts_aliases(expected: str, value: str) -> None:
    assert resolve_format(value).name == expected


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_format_means_binary2(value: str | None) -> None:
    assert resolve_format(value) is DEFAULT_FORMAT
    assert DEFAULT_FORMAT.media_type == "application/x-votable+xml;serialization=BINARY2"


@pytest.mark.parametrize(
    "value",
    ["html", "image/fits", "application/x-votable+xml;serialization=BINARY", "text/csv;header=absent", "csv;x", ";"],
)
def test_unknown_format_names_the_accepted_ones(value: str) -> None:
    with pytest.raises(UnknownFormatError) as caught:
        resolve_format(value)
    error = caught.value
    assert isinstance(error, UserError) and error.http_status == 400 and error.error_type == "UnknownFormat"
    assert repr(value) in str(error)
    assert all(f.name in str(error) for f in FORMATS)


@pytest.mark.parametrize("result_format", FORMATS, ids=lambda f: f.name)
def test_every_format_resolves_by_its_name_media_type_and_aliases(result_format: ResultFormat) -> None:
    for value in (result_format.name, result_format.media_type, *result_format.aliases):
        assert resolve_format(value) is result_format
    assert result_format.extension.startswith(".")


# --- examples in docstrings ------------------------------------------------------------------------------------------


def _modules() -> Iterator[str]:
    yield from (info.name for info in pkgutil.iter_modules(api.tap.formats.__path__, "api.tap.formats."))


@pytest.mark.parametrize("module", sorted(_modules()))
def test_module_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
