"""Round trips of the binary COPY encoder through a real PostgreSQL server.

Batches are encoded, loaded with ``COPY ... FROM STDIN (FORMAT BINARY)`` and read back; what
the server stores must equal the input value for value (NaN, -0.0 and the sign of zero
included).  Rows are read back in binary, timestamps as exact microseconds since 1970, so
values outside Python's ``datetime`` range (4714 BC, year 294276) are compared too; one test
checks the server's own reading of known instants.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader

from dms_db.errors import InternalError, UserError
from loaders import copy_binary
from loaders.copy_binary import (
    COPY_HEADER,
    COPY_TRAILER,
    CopyColumn,
    CopyEncodingError,
    copy_binary_into,
    copy_encoded_into,
    encode_copy_rows,
)
from loaders.copy_binary import encode_copy_binary as encode

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's zero
MIN_UNIX_US = -210_866_803_200_000_000  # 4714-11-24 00:00 BC, PostgreSQL's first timestamp
INT64_MAX = 2**63 - 1
UTF8 = st.characters(codec="utf-8", exclude_characters="\x00")  # any character text can hold

# name, PostgreSQL type, Arrow type, strategy of non-null values (timestamps as raw integers)
SPEC = [
    ("rn", "bigint", pa.int64(), None),  # row number, to read rows back in order
    ("i8", "bigint", pa.int64(), st.integers(-(2**63), INT64_MAX)),
    ("i4", "integer", pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    ("i2", "smallint", pa.int16(), st.integers(-(2**15), 2**15 - 1)),
    ("f8", "double precision", pa.float64(), st.floats()),
    ("f4", "real", pa.float32(), st.floats(width=32)),
    ("b", "boolean", pa.bool_(), st.booleans()),
    ("t", "text", pa.string(), st.text(UTF8, max_size=60)),
    ("vc", "varchar(8)", pa.large_string(), st.text(UTF8, max_size=8)),
    ("ch", "char(3)", pa.string(), st.text(UTF8, max_size=3)),
    ("ts_us", "timestamp", pa.timestamp("us"), st.integers(MIN_UNIX_US, INT64_MAX)),
    ("ts_s", "timestamp", pa.timestamp("s"), st.integers(-(-MIN_UNIX_US // 10**6), INT64_MAX // 10**6)),
    (
        "tstz_ms",
        "timestamptz",
        pa.timestamp("ms", tz="Europe/Paris"),
        st.integers(-(-MIN_UNIX_US // 1000), INT64_MAX // 1000),
    ),
    ("tstz_ns", "timestamptz", pa.timestamp("ns", tz="UTC"), st.integers(-(2**63), INT64_MAX)),
]
COLUMNS = [CopyColumn(name, pg_type) for name, pg_type, _, _ in SPEC]
TIMESTAMP_UNITS = {name: arrow.unit for name, _, arrow, _ in SPEC if pa.types.is_timestamp(arrow)}


def create_table(conn: psycopg.Connection, name: str, columns: Sequence[CopyColumn]) -> sql.Identifier:
    """A fresh table with the given columns."""
    table = sql.Identifier(name)
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in columns
    )
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, definition))
    return table


@pytest.fixture
def conn(fresh_dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a fresh database holding an empty table ``t`` of all types."""
    with psycopg.connect(fresh_dsn, autocommit=True) as connection:
        create_table(connection, "t", COLUMNS)
        yield connection


def canonical(value: object) -> object:
    """A comparable form: NaN equals NaN, and -0.0 differs from 0.0."""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else (value, math.copysign(1.0, value))
    return value


def to_micros(raw: int, unit: str) -> int:
    """Microseconds as the encoder stores them: nanoseconds rounded to nearest, halves up."""
    if unit == "ns":
        return (raw + 500) // 1000
    return raw * {"s": 10**6, "ms": 10**3, "us": 1}[unit]


def expected_rows(table: pa.Table) -> list[tuple]:
    """What the server must hold for ``table`` (timestamps as microseconds since 1970)."""
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if name in TIMESTAMP_UNITS:
            raw = column.cast(pa.timestamp(TIMESTAMP_UNITS[name])).cast(pa.int64()).to_pylist()
            values = [None if v is None else to_micros(v, TIMESTAMP_UNITS[name]) for v in raw]
        elif name == "ch":
            values = [None if v is None else v.ljust(3) for v in column.to_pylist()]  # char(n) pads
        else:
            values = column.to_pylist()
        columns.append([canonical(v) for v in values])
    return list(zip(*columns, strict=True))


class MicrosecondsLoader(Loader):
    """Loads a binary timestamp as its exact microseconds since 1970, even outside ``datetime``'s years."""

    format = psycopg.pq.Format.BINARY

    def load(self, data: Buffer) -> int:
        return int.from_bytes(data, "big", signed=True) + PG_EPOCH_US


def stored_rows(conn: psycopg.Connection, table: str = "t", columns: Sequence[CopyColumn] = COLUMNS) -> list[tuple]:
    """The table's rows ordered by ``rn``, read in binary (exact floats and timestamps)."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    with conn.cursor(binary=True) as cursor:
        for pg_type in ("timestamp", "timestamptz"):
            cursor.adapters.register_loader(pg_type, MicrosecondsLoader)
        cursor.execute(sql.SQL("SELECT {} FROM {} ORDER BY rn").format(names, sql.Identifier(table)))
        return [tuple(canonical(v) for v in row) for row in cursor]


def copy_payloads(conn: psycopg.Connection, payloads: Sequence[memoryview], table: str = "t") -> None:
    """COPY raw payloads into ``table`` with psycopg's plain ``Copy.write``."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in COLUMNS)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table), names)
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for payload in payloads:
            copy.write(payload)


def arrow_table(rows: Sequence[tuple], start: int = 0) -> pa.Table:
    """An Arrow table of ``rows`` (values in SPEC order after ``rn``), numbered from ``start``."""
    arrays = {"rn": pa.array(range(start, start + len(rows)), pa.int64())}
    for i, (name, _, arrow_type, _) in enumerate(SPEC[1:]):
        arrays[name] = pa.array([row[i] for row in rows], arrow_type)
    return pa.table(arrays)


ROWS = st.lists(st.tuples(*(st.none() | strategy for _, _, _, strategy in SPEC[1:])), max_size=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=ROWS, tail=ROWS, skip=st.integers(0, 5), reverse=st.booleans())
def test_round_trip_of_every_type_with_nulls_and_extremes(
    conn: psycopg.Connection, head: list[tuple], tail: list[tuple], skip: int, reverse: bool
) -> None:
    # Two chunks, sliced: exercises Arrow offsets of values, validity bitmaps and string offsets.
    table = pa.concat_tables([arrow_table(head), arrow_table(tail, start=len(head))]).slice(skip)
    if reverse:  # the COPY column order need not be the table's
        table = table.select(table.column_names[::-1])
    conn.execute("TRUNCATE t")
    copy_payloads(conn, [encode(table, COLUMNS)])
    assert stored_rows(conn) == expected_rows(table.select([c.name for c in COLUMNS]))


def seeded_table(rows: int, seed: int, start: int = 0) -> pa.Table:
    """Many rows of every type, ~10% NULL, with a text column of very uneven lengths."""
    rng = np.random.default_rng(seed)
    words = np.array(["", "a", "é", "日本", "x" * 300, "ünïcödé " * 40, "\U0001f680"], dtype=object)
    values = {
        "rn": np.arange(start, start + rows),
        "i8": rng.integers(-(2**63), INT64_MAX, rows, endpoint=True),
        "i4": rng.integers(-(2**31), 2**31 - 1, rows, dtype=np.int32),
        "i2": rng.integers(-(2**15), 2**15 - 1, rows, dtype=np.int16),
        "f8": rng.choice([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-310, 1.5], rows),
        "f4": rng.normal(size=rows).astype(np.float32),
        "b": rng.random(rows) < 0.5,
        "t": rng.choice(words, rows),
        "vc": rng.choice(np.array(["", "abc", "ÄÖÜ", "12345678"], dtype=object), rows),
        "ch": rng.choice(np.array(["u", "g", "r", "i", "z", "y"], dtype=object), rows),
        "ts_us": rng.integers(MIN_UNIX_US, INT64_MAX, rows),
        "ts_s": rng.integers(-(10**11), 10**11, rows),
        "tstz_ms": rng.integers(-(10**14), 10**14, rows),
        "tstz_ns": rng.integers(-(2**63), INT64_MAX, rows),
    }
    arrays = {}
    for name, _, arrow_type, _ in SPEC:
        nulls = None if name == "rn" else rng.random(rows) < 0.1
        arrays[name] = pa.array(values[name], arrow_type, mask=nulls)
    return pa.table(arrays)


def test_large_batch_with_uneven_strings_crosses_slices(conn: psycopg.Connection) -> None:
    table = seeded_table(70_000, seed=1)  # more rows than one slice and than one streamed sub-batch
    fields = [copy_binary._prepare(c, table.column(c.name).combine_chunks(), 0) for c in COLUMNS]
    assert len(copy_binary._layout(fields)) == 2, "the text column should be scattered, not padded"
    assert copy_binary_into(conn, sql.Identifier("t"), COLUMNS, [table]) == 70_000
    assert stored_rows(conn) == expected_rows(table)


def test_rows_without_nulls_or_uneven_strings_are_written_in_place(conn: psycopg.Connection) -> None:
    table = seeded_table(20_000, seed=4).select(["rn", "i8", "i2", "f8", "b", "ch", "tstz_ns"])
    table = pa.table({name: table.column(name).fill_null(table.column(name)[0]) for name in table.column_names})
    columns = [c for c in COLUMNS if c.name in table.column_names]
    fields = [copy_binary._prepare(c, table.column(c.name).combine_chunks(), 0) for c in columns]
    assert [segment.masked for segment in copy_binary._layout(fields)] == [False]
    assert copy_binary_into(conn, sql.Identifier("t"), columns, [table]) == 20_000
    assert stored_rows(conn, columns=columns) == expected_rows(table)


def test_batches_of_one_copy_carry_header_first_and_trailer_last(conn: psycopg.Connection) -> None:
    parts = [seeded_table(1000, seed=i, start=1000 * i) for i in range(3)]
    copy_payloads(
        conn,
        [
            encode(parts[0], COLUMNS, trailer=False),
            encode(parts[1], COLUMNS, header=False, trailer=False),
            encode(parts[2], COLUMNS, header=False),
        ],
    )
    assert stored_rows(conn) == expected_rows(pa.concat_tables(parts))


def test_rows_encoded_once_are_sent_as_slices(conn: psycopg.Connection) -> None:
    table = seeded_table(30_000, seed=11)  # NULLs everywhere and scattered text: rows of every size
    encoded = encode_copy_rows(table, COLUMNS)
    assert int(encoded.ends[-1]) == len(encoded.payload)
    spans = [(0, 1), (1, 4999), (5000, 0), (5000, 20_000), (25_000, 5000)]
    for first, count in spans:
        alone = encode(table.slice(first, count), COLUMNS, header=False, trailer=False)
        assert bytes(encoded.rows(first, count)) == bytes(alone), (first, count)
    conn.autocommit = False
    with conn.transaction():  # without savepoint: straight in the caller's transaction
        target = sql.Identifier("t")
        pieces = [encoded.rows(first, count) for first, count in spans]
        copy_encoded_into(conn, target, COLUMNS, pieces, savepoint=False, background_send=False)
    assert stored_rows(conn) == expected_rows(table)


def test_a_copy_without_savepoint_needs_an_open_transaction(conn: psycopg.Connection) -> None:
    encoded = encode_copy_rows(seeded_table(10, seed=12), COLUMNS)
    with pytest.raises(InternalError, match="open transaction"):
        copy_encoded_into(conn, sql.Identifier("t"), COLUMNS, [encoded.payload], savepoint=False)
    copy_encoded_into(conn, sql.Identifier("t"), COLUMNS, [encoded.payload])  # in its own savepoint
    assert len(stored_rows(conn)) == 10


def test_copy_binary_into_streams_arrow_pandas_and_empty_batches(conn: psycopg.Connection) -> None:
    arrow = seeded_table(500, seed=7)
    frame = seeded_table(300, seed=8, start=500).to_pandas(types_mapper=pd.ArrowDtype)
    batches = [arrow, arrow.slice(0, 0), frame, frame.iloc[:0]]
    assert copy_binary_into(conn, sql.Identifier("public", "t"), COLUMNS, batches) == 800
    assert stored_rows(conn) == expected_rows(pa.concat_tables([arrow, seeded_table(300, seed=8, start=500)]))


def test_empty_batch_is_header_and_trailer_only(conn: psycopg.Connection) -> None:
    payload = encode(arrow_table([]), COLUMNS)
    assert bytes(payload) == COPY_HEADER + COPY_TRAILER
    copy_payloads(conn, [payload])
    assert stored_rows(conn) == []


def test_pandas_missing_values_become_null_and_numpy_nan_stays_nan(conn: psycopg.Connection) -> None:
    micros = pd.Timedelta("1us")
    cases = {  # column: (PostgreSQL type, pandas values, what the server holds)
        "rn": ("bigint", [0, 1, 2], [0, 1, 2]),
        "nan": ("double precision", np.array([np.nan, 1.0, -0.0]), ["NaN", (1.0, 1.0), (-0.0, -1.0)]),
        # pandas folds NaN into NA in its nullable Float64; Arrow-backed columns keep them apart.
        "na": ("double precision", pd.array([pd.NA, 2.5, np.nan], dtype="Float64"), [None, (2.5, 1.0), None]),
        "arrow": (
            "real",
            pd.arrays.ArrowExtensionArray(pa.array([np.nan, None, 1.5], pa.float32(), from_pandas=False)),
            ["NaN", None, (1.5, 1.0)],
        ),
        "i": ("bigint", pd.array([None, 2**62, -5], dtype="Int64"), [None, 2**62, -5]),
        "s": ("text", pd.Series(["é", None, ""], dtype="string"), ["é", None, ""]),
        "obj": ("varchar", pd.Series(["x", None, np.nan], dtype=object), ["x", None, None]),
        "cat": ("char(1)", pd.Categorical(["g", "r", None]), ["g", "r", None]),
        "none": ("integer", [None, None, None], [None, None, None]),  # object column of only None
        "ts": (
            "timestamp",
            pd.to_datetime(["1999-12-31 23:59:59.9999995", None, "2262-04-11"], format="ISO8601"),
            [PG_EPOCH_US, None, (pd.Timestamp("2262-04-11") - pd.Timestamp(0)) // micros],
        ),
        "tz": (
            "timestamptz",
            pd.to_datetime(["2000-01-01T00:00:00+01:00", None, "1900-01-01T00:00:00Z"], utc=True),
            [PG_EPOCH_US - 3600 * 10**6, None, (pd.Timestamp("1900-01-01") - pd.Timestamp(0)) // micros],
        ),
        "flag": ("boolean", pd.array([True, None, False], dtype="boolean"), [True, None, False]),
    }
    columns = [CopyColumn(name, pg_type) for name, (pg_type, _, _) in cases.items()]
    frame = pd.DataFrame({name: values for name, (_, values, _) in cases.items()})
    assert copy_binary_into(conn, create_table(conn, "p", columns), columns, [frame]) == 3
    stored = dict(zip(cases, zip(*stored_rows(conn, "p", columns), strict=True), strict=True))
    assert stored == {name: tuple(held) for name, (_, _, held) in cases.items()}


def test_narrower_and_other_arrow_types_are_accepted(conn: psycopg.Connection) -> None:
    cases = {  # column: (PostgreSQL type, Arrow array, what the server holds)
        "rn": ("bigint", pa.array([0, 1], pa.uint8()), [0, 1]),
        "u32": ("bigint", pa.array([2**32 - 1, None], pa.uint32()), [2**32 - 1, None]),
        "i8": ("smallint", pa.array([-128, 127], pa.int8()), [-128, 127]),
        "half": ("real", pa.array([np.float16(0.5), None], pa.float16()), [(0.5, 1.0), None]),
        "int_as_float": ("double precision", pa.array([2**53 + 1, -1]), [(2.0**53, 1.0), (-1.0, -1.0)]),
        "view": ("text", pa.array(["ß", None], pa.string_view()), ["ß", None]),
        "dict": ("varchar", pa.array(["a", "a"]).dictionary_encode(), ["a", "a"]),
        "ms_tz": ("timestamp", pa.array([1, None], pa.timestamp("ms", tz="America/Chile/EasterIsland")), [1000, None]),
    }
    columns = [CopyColumn(name, pg_type) for name, (pg_type, _, _) in cases.items()]
    batch = pa.record_batch([array for _, array, _ in cases.values()], names=list(cases))
    assert copy_binary_into(conn, create_table(conn, "o", columns), columns, [batch]) == 2
    stored = dict(zip(cases, zip(*stored_rows(conn, "o", columns), strict=True), strict=True))
    assert stored == {name: tuple(canonical(v) for v in held) for name, (_, _, held) in cases.items()}


def test_null_slots_are_not_validated() -> None:
    # Arrow leaves the value under a NULL undefined: an out-of-range one there must not fail.
    data = pa.py_buffer(np.array([1, 40_000, -(2**40)], np.int64).tobytes())
    validity = pa.py_buffer(np.packbits([True, False, False], bitorder="little").tobytes())
    array = pa.Array.from_buffers(pa.int64(), 3, [validity, data], null_count=2)
    encode(pa.table({"x": array}), [CopyColumn("x", "smallint")])


@pytest.mark.parametrize(
    ("pg_type", "array", "row"),
    [
        ("smallint", pa.array([1, None, 40_000, -40_000], pa.int64()), 2),
        ("smallint", pa.array([-32_769], pa.int32()), 0),
        ("integer", pa.array([0, 2**31], pa.int64()), 1),
        ("bigint", pa.array([5, 2**63], pa.uint64()), 1),
        ("real", pa.array([1.0, None, 1e300], pa.float64()), 2),
        ("timestamp", pa.array([0, -(10**13)], pa.timestamp("s")), 1),
    ],
)
def test_out_of_range_values_name_column_and_first_bad_row(pg_type: str, array: pa.Array, row: int) -> None:
    with pytest.raises(
        CopyEncodingError, match=rf"column 'x': row {row} \(counting from 0\): value -?[0-9.e+]+ is out of range"
    ):
        encode(pa.table({"x": array}), [CopyColumn("x", pg_type)])


def test_unsupported_postgres_type_names_column() -> None:
    with pytest.raises(CopyEncodingError, match="column 'amount': type 'numeric'") as caught:
        CopyColumn("amount", "numeric")
    assert isinstance(caught.value, UserError)
    assert caught.value.error_type == "CopyEncodingError"


@pytest.mark.parametrize(
    ("pg_type", "array"),
    [
        ("bigint", pa.array([1.0, None])),  # a pandas int column with NaN: use Int64
        ("integer", pa.array(["1", None])),
        ("smallint", pa.array([1], pa.timestamp("s"))),
        ("text", pa.array([1])),
        ("text", pa.array([b"bytes"])),
        ("boolean", pa.array([1])),
        ("double precision", pa.array([True])),
        ("timestamp", pa.array([0], pa.date32())),
    ],
)
def test_arrow_type_that_does_not_fit_names_column(pg_type: str, array: pa.Array) -> None:
    with pytest.raises(CopyEncodingError, match=rf"column 'x': Arrow type .* cannot be stored as {pg_type}"):
        encode(pa.table({"x": array}), [CopyColumn("x", pg_type)])


@pytest.mark.parametrize(
    "names",
    [["a"], ["a", "b", "c"], ["a", "c"], ["a", "a"]],
    ids=["missing", "unexpected", "renamed", "duplicate"],
)
def test_batch_columns_must_be_exactly_the_copy_columns(names: list[str]) -> None:
    table = pa.table({"a": [1], "b": [2]})
    with pytest.raises(CopyEncodingError, match=r"the batch has 2 columns \['a', 'b'\] but COPY expects"):
        encode(table, [CopyColumn(name, "bigint") for name in names])


def test_nul_character_is_rejected_with_its_row() -> None:
    with pytest.raises(CopyEncodingError, match=r"column 's': row 1 \(counting from 0\): text cannot hold its NUL"):
        encode(pa.table({"s": ["ok", "bad\x00", None]}), [CopyColumn("s", "text")])


def test_failed_batch_loads_nothing_and_is_located_in_the_callers_rows(conn: psycopg.Connection) -> None:
    columns = [CopyColumn("rn", "bigint"), CopyColumn("i2", "smallint")]
    good = pa.table({"rn": pa.array(range(10), pa.int64()), "i2": pa.array([1] * 10, pa.int16())})
    too_big = np.zeros(70_000, np.int32)  # encoded in two pieces by copy_binary_into
    too_big[69_999] = 70_000
    bad = pa.table({"rn": np.arange(10, 70_010), "i2": too_big})
    with pytest.raises(CopyEncodingError, match=r"^batch 1 \(counting from 0\): column 'i2': row 69999 \(counting"):
        copy_binary_into(conn, sql.Identifier("t"), columns, [good, bad])
    assert stored_rows(conn) == []  # the first batch went with the failed COPY


def test_values_the_server_refuses_fail_the_whole_copy(conn: psycopg.Connection) -> None:
    columns = [CopyColumn("rn", "bigint"), CopyColumn("ch", "char(3)")]  # the server enforces char's length
    batches = [pa.table({"rn": [0], "ch": ["ok"]}), pa.table({"rn": [1], "ch": ["four"]})]
    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        copy_binary_into(conn, sql.Identifier("t"), columns, batches)
    assert stored_rows(conn) == []


def test_non_utf8_client_encoding_is_refused(fresh_dsn: str) -> None:
    with (
        psycopg.connect(fresh_dsn, client_encoding="LATIN1") as latin1,
        pytest.raises(CopyEncodingError, match="client encoding"),
    ):
        copy_binary_into(latin1, sql.Identifier("t"), COLUMNS, [])


def test_type_spellings_are_canonicalised() -> None:
    spellings = {"INT8": "bigint", "float4": "real", "Character Varying (40)": "varchar", "bpchar": "char"}
    spellings |= {"timestamp with time zone": "timestamptz", "char(1)": "char", "timestamptz(3)": "timestamptz"}
    spellings |= {"numeric(5)": None, "timestamp(3) with time zone": None}
    assert {s: copy_binary.canonical_pg_type(s) for s in spellings} == spellings


def test_timestamps_mean_the_instants_postgres_reads(conn: psycopg.Connection) -> None:
    raw = {
        "us": [0, PG_EPOCH_US, MIN_UNIX_US, INT64_MAX],
        "ns": [999, 499, -500, -501],  # rounded to the nearest microsecond, halves up
    }
    columns = [CopyColumn("rn", "bigint"), CopyColumn("naive", "timestamp"), CopyColumn("paris", "timestamptz")]
    columns += [CopyColumn("nanos", "timestamp")]
    table = pa.table(
        {
            "rn": range(4),
            "naive": pa.array(raw["us"], pa.timestamp("us")),
            "paris": pa.array(raw["us"], pa.timestamp("us", tz="Europe/Paris")),  # a UTC instant, shown in UTC
            "nanos": pa.array(raw["ns"], pa.timestamp("ns")),
        }
    )
    conn.execute("SET TimeZone = 'UTC'")
    copy_binary_into(conn, create_table(conn, "instants", columns), columns, [table])
    texts = conn.execute("SELECT naive::text, paris::text, nanos::text FROM instants ORDER BY rn").fetchall()
    assert texts == [
        ("1970-01-01 00:00:00", "1970-01-01 00:00:00+00", "1970-01-01 00:00:00.000001"),
        ("2000-01-01 00:00:00", "2000-01-01 00:00:00+00", "1970-01-01 00:00:00"),
        ("4714-11-24 00:00:00 BC", "4714-11-24 00:00:00+00 BC", "1970-01-01 00:00:00"),
        ("294247-01-10 04:00:54.775807", "294247-01-10 04:00:54.775807+00", "1969-12-31 23:59:59.999999"),
    ]
