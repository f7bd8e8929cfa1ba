"""Tests of the TAP_SCHEMA table definitions and of the rows derived from Felis schemas (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from felis.db.database_context import create_database_context
from felis.tap_schema import DataLoader, TableManager
from sqlalchemy import MetaData, create_engine, event, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from dms_db.catalog_schema import CatalogSchema, load_catalog_schema, shipped_schema_path
from dms_db.tap_schema import (
    TAP_SCHEMA_NAME,
    TapSchemaRows,
    define_tap_schema_tables,
    tap_schema_rows,
    tap_schema_self_rows,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "felis"

# The column lists of TAP 1.1, section 4, in the standard's order.
STANDARD_COLUMNS = {
    "schemas": ["schema_name", "utype", "description", "schema_index"],
    "tables": ["schema_name", "table_name", "table_type", "utype", "description", "table_index"],
    "columns": [
        "table_name",
        "column_name",
        "utype",
        "ucd",
        "unit",
        "description",
        "datatype",
        "arraysize",
        "xtype",
        "size",
        "principal",
        "indexed",
        "std",
        "column_index",
    ],
    "keys": ["key_id", "from_table", "target_table", "utype", "description"],
    "key_columns": ["key_id", "from_column", "target_column"],
}


@pytest.fixture(scope="module")
def apdb() -> CatalogSchema:
    return load_catalog_schema(shipped_schema_path("apdb"))


@pytest.fixture(scope="module")
def dr() -> CatalogSchema:
    return load_catalog_schema(shipped_schema_path("dr"))


def column_row(rows: TapSchemaRows, table: str, column: str) -> dict[str, Any]:
    (row,) = [r for r in rows.columns if r["table_name"] == table and r["column_name"] == column]
    return row


def test_tables_have_exactly_the_standard_columns_and_keys() -> None:
    tap = define_tap_schema_tables(MetaData())
    assert [t.name for t in tap.all()] == list(STANDARD_COLUMNS)
    for table in tap.all():
        assert table.schema == TAP_SCHEMA_NAME == "TAP_SCHEMA"
        assert [c.name for c in table.columns] == STANDARD_COLUMNS[table.name]
    assert [c.name for c in tap.columns.primary_key.columns] == ["table_name", "column_name"]
    assert [c.name for c in tap.schemas.primary_key.columns] == ["schema_name"]
    assert [c.name for c in tap.keys.primary_key.columns] == ["key_id"]
    targets = {(fk.parent.table.name, fk.parent.name, fk.column.table.name) for fk in tap.keys.foreign_keys}
    assert targets == {("keys", "from_table", "tables"), ("keys", "target_table", "tables")}
    assert next(iter(tap.key_columns.foreign_keys)).column.table is tap.keys
    ddl = str(CreateTable(tap.tables).compile(dialect=postgresql.dialect()))
    assert 'CREATE TABLE "TAP_SCHEMA".tables' in ddl and 'REFERENCES "TAP_SCHEMA".schemas' in ddl


def test_rows_use_the_deployed_name(apdb: CatalogSchema) -> None:
    rows = tap_schema_rows(apdb, schema_index=1)
    assert rows.schemas == [{"schema_name": "apdb", "utype": None, "description": apdb.description, "schema_index": 1}]
    assert [r["table_name"] for r in rows.tables] == [
        "apdb.DiaObject",
        "apdb.DiaSource",
        "apdb.DiaForcedSource",
        "apdb.SSObject",
    ]
    assert [r["table_index"] for r in rows.tables] == [10, 20, 30, 40]
    assert all(r["schema_name"] == "apdb" and r["table_type"] == "table" and r["description"] for r in rows.tables)
    renamed = tap_schema_rows(load_catalog_schema(apdb.source_text, name="apdb_test"))
    assert {r["table_name"].split(".")[0] for r in renamed.columns} == {"apdb_test"}
    assert {r["key_id"].split(".")[0] for r in renamed.keys} == {"apdb_test"}


def test_every_row_has_exactly_the_table_columns(apdb: CatalogSchema) -> None:
    for rows in (tap_schema_rows(apdb), tap_schema_self_rows()):
        for name, expected in STANDARD_COLUMNS.items():
            assert all(list(row) == expected for row in getattr(rows, name)), name


def test_column_rows_carry_units_ucds_and_descriptions(apdb: CatalogSchema) -> None:
    rows = tap_schema_rows(apdb)
    assert len([r for r in rows.columns if r["table_name"] == "apdb.DiaSource"]) == len(
        apdb.table("DiaSource").felis.columns
    )
    flux = column_row(rows, "apdb.DiaSource", "psfFlux")
    assert (flux["unit"], flux["ucd"], flux["datatype"], flux["principal"]) == ("nJy", "phot.flux.density", "float", 1)
    assert flux["description"].startswith("Flux for Point Source model")
    error = column_row(rows, "apdb.DiaSource", "psfFluxErr")
    assert (error["unit"], error["ucd"]) == ("nJy", "stat.error;phot.flux.density")
    ra = column_row(rows, "apdb.DiaObject", "ra")
    assert (ra["unit"], ra["ucd"], ra["datatype"], ra["indexed"]) == ("deg", "pos.eq.ra;meta.main", "double", 1)
    mean = column_row(rows, "apdb.DiaObject", "g_psfFluxMean")
    assert (mean["unit"], mean["datatype"], mean["column_index"]) == ("nJy", "float", 150)
    assert all(r["description"] and r["ucd"] for r in rows.columns)


@pytest.mark.parametrize(
    ("table", "column", "datatype", "arraysize", "xtype", "size"),
    [
        ("apdb.DiaSource", "diaSourceId", "long", None, None, None),
        ("apdb.DiaSource", "detector", "short", None, None, None),
        ("apdb.DiaObject", "nDiaSources", "int", None, None, None),
        ("apdb.DiaSource", "midpointMjdTai", "double", None, None, None),
        ("apdb.DiaSource", "isDipole", "boolean", None, None, None),
        ("apdb.DiaSource", "band", "char", None, None, None),  # char(1): VOTable forbids arraysize 1
        ("apdb.DiaSource", "time_processed", "char", "*", "timestamp", None),
    ],
)
def test_datatypes_follow_felis_data_loader(
    apdb: CatalogSchema, table: str, column: str, datatype: str, arraysize: str | None, xtype: str | None, size: None
) -> None:
    row = column_row(tap_schema_rows(apdb), table, column)
    assert (row["datatype"], row["arraysize"], row["xtype"], row["size"]) == (datatype, arraysize, xtype, size)


def test_sized_strings_and_indexed_flags(dr: CatalogSchema) -> None:
    rows = tap_schema_rows(dr)
    physical_filter = column_row(rows, "dr.Visit", "physical_filter")
    assert (physical_filter["datatype"], physical_filter["arraysize"], physical_filter["size"]) == ("char", "32*", 32)
    indexed = {(r["table_name"], r["column_name"]) for r in rows.columns if r["indexed"]}
    assert {
        ("dr.Object", "objectId"),  # primary key and director key
        ("dr.Object", "ra"),  # director position: HEALPix index
        ("dr.Object", "dec"),
        ("dr.Source", "sourceId"),
        ("dr.Source", "objectId"),  # child's director key
        ("dr.Source", "visit"),  # leads IDX_Source_visitDetector
        ("dr.CcdVisit", "visitId"),  # leads the unique constraint
        ("dr.Visit", "visit"),
    } <= indexed
    assert ("dr.Source", "ra") in indexed  # a child's own position has a pgSphere index too
    assert ("dr.Source", "psfFlux") not in indexed and ("dr.Source", "detector") not in indexed
    assert ("dr.Visit", "ra") not in indexed  # boresight, no dms:ra: no spatial index


def test_keys_come_from_foreign_key_constraints(apdb: CatalogSchema, dr: CatalogSchema) -> None:
    rows = tap_schema_rows(apdb)
    keys = {r["key_id"]: (r["from_table"], r["target_table"]) for r in rows.keys}
    assert keys == {
        "apdb.FK_DiaSource_DiaObject": ("apdb.DiaSource", "apdb.DiaObject"),
        "apdb.FK_DiaSource_SSObject": ("apdb.DiaSource", "apdb.SSObject"),
        "apdb.FK_DiaForcedSource_DiaObject": ("apdb.DiaForcedSource", "apdb.DiaObject"),
    }
    assert {"key_id": "apdb.FK_DiaSource_DiaObject", "from_column": "diaObjectId", "target_column": "diaObjectId"} in (
        rows.key_columns
    )
    composite = [r for r in tap_schema_rows(dr).key_columns if r["key_id"] == "dr.FK_Source_CcdVisit"]
    assert [(r["from_column"], r["target_column"]) for r in composite] == [
        ("visit", "visitId"),
        ("detector", "detector"),
    ]


def test_foreign_file_rows_use_fits_units_and_explicit_arraysize() -> None:
    rows = tap_schema_rows(load_catalog_schema(FIXTURES / "dp02_dc2_trimmed.yaml", name="dp02"))
    flux = column_row(rows, "dp02.Object", "g_psfFlux")
    assert (flux["unit"], flux["datatype"], flux["ucd"]) == ("nJy", "double", None)
    ref_band = column_row(rows, "dp02.Object", "refBand")
    assert (ref_band["datatype"], ref_band["arraysize"], ref_band["unit"]) == ("char", "*", None)
    assert column_row(rows, "dp02.Object", "coord_ra")["indexed"] == 1
    assert [r["key_id"] for r in rows.keys] == ["dp02.CcdV_Src", "dp02.FK_ForcedSource_Object", "dp02.CcdV_FSrc"]


def test_self_rows_describe_tap_schema() -> None:
    rows = tap_schema_self_rows()
    assert [r["schema_name"] for r in rows.schemas] == ["TAP_SCHEMA"]
    assert [r["table_name"] for r in rows.tables] == [f"TAP_SCHEMA.{name}" for name in STANDARD_COLUMNS]
    assert len(rows.columns) == sum(len(columns) for columns in STANDARD_COLUMNS.values())
    for name, columns in STANDARD_COLUMNS.items():
        described = [r for r in rows.columns if r["table_name"] == f"TAP_SCHEMA.{name}"]
        assert [r["column_name"] for r in described] == [f'"{c}"' if c == "size" else c for c in columns]
        assert [r["column_index"] for r in described] == list(range(1, len(columns) + 1))
    assert all(r["std"] == 1 and r["principal"] == 1 and r["description"] for r in rows.columns)
    assert column_row(rows, "TAP_SCHEMA.columns", "datatype")["datatype"] == "char"
    assert column_row(rows, "TAP_SCHEMA.columns", "principal")["datatype"] == "int"
    assert column_row(rows, "TAP_SCHEMA.columns", '"size"')["datatype"] == "int"  # a reserved word, delimited
    assert {(r["from_table"], r["target_table"]) for r in rows.keys} == {
        ("TAP_SCHEMA.tables", "TAP_SCHEMA.schemas"),
        ("TAP_SCHEMA.columns", "TAP_SCHEMA.tables"),
        ("TAP_SCHEMA.keys", "TAP_SCHEMA.tables"),
        ("TAP_SCHEMA.key_columns", "TAP_SCHEMA.keys"),
    }
    assert len(rows.keys) == len(rows.key_columns) == 5


def test_rows_insert_into_the_tables(apdb: CatalogSchema, dr: CatalogSchema) -> None:
    """All rows satisfy the primary and foreign keys (SQLite with an attached TAP_SCHEMA database)."""
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def attach(connection: Any, _: Any) -> None:
        connection.execute('ATTACH DATABASE ":memory:" AS "TAP_SCHEMA"')
        connection.execute("PRAGMA foreign_keys = ON")

    tap = define_tap_schema_tables(MetaData())
    rows = tap_schema_self_rows() + tap_schema_rows(apdb) + tap_schema_rows(dr, schema_index=2)
    with engine.begin() as connection:
        for table in tap.all():
            table.create(connection)
            connection.execute(table.insert(), getattr(rows, table.name))
        counts = {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one() for t in tap.all()}
    assert counts == {name: len(getattr(rows, name)) for name in STANDARD_COLUMNS}
    assert counts["schemas"] == 3 and counts["tables"] == 5 + 4 + 5
    engine.dispose()


@pytest.mark.parametrize(
    "source", [shipped_schema_path("apdb"), shipped_schema_path("dr"), FIXTURES / "dp02_dc2_trimmed.yaml"]
)
def test_column_rows_match_felis_data_loader(source: Path) -> None:
    """Felis' own TAP_SCHEMA loader, run dry, gives the same column rows; dms-db only flags more as indexed."""
    catalog = load_catalog_schema(source)
    manager = TableManager()
    loader = DataLoader(catalog.felis, manager, create_database_context("sqlite://", manager.metadata), dry_run=True)
    loader.load()
    felis_rows = {
        (params["table_name"], params["column_name"]): params
        for params in (insert.compile().params for insert in loader.inserts if insert.table.name == "columns")
    }
    ours = {(row["table_name"], row["column_name"]): row for row in tap_schema_rows(catalog).columns}
    assert ours.keys() == felis_rows.keys()
    for key, row in ours.items():
        assert {k: v for k, v in row.items() if k != "indexed"} == {
            k: felis_rows[key][k] for k in row if k != "indexed"
        }, key
        assert row["indexed"] >= felis_rows[key]["indexed"], key
