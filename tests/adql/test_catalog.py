"""The catalog: ADQL case rules, suggestions, and reading TAP_SCHEMA from PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from adql import AdqlNameError, ColumnInfo, TableCatalog, TableInfo, TableKindInfo, translate
from adql.catalog import Name
from tests.adql.reference_data import reference_catalog, table_kinds


def _table(schema: str, name: str, *columns: str) -> TableInfo:
    return TableInfo(schema, name, tuple(ColumnInfo(c, "double") for c in columns))


def test_regular_names_match_case_insensitively() -> None:
    assert Name("diaobject").matches("DiaObject")
    assert not Name("diaobject", quoted=True).matches("DiaObject")
    assert Name("DiaObject", quoted=True).matches("DiaObject")


def test_exact_case_wins_over_folded() -> None:
    catalog = TableCatalog([_table("s", "T"), _table("s", "t")])
    assert catalog.find_table(Name("s"), Name("T")).table_name == "T"
    assert catalog.find_table(Name("s"), Name("t")).table_name == "t"
    with pytest.raises(AdqlNameError) as caught:
        catalog.find_table(Name("s"), Name("T".lower() + "x"))
    assert caught.value.error_type == "UnknownName"


def test_names_differing_only_in_case_are_ambiguous_when_folded() -> None:
    table = TableInfo("s", "t", (ColumnInfo("Flux", "double"), ColumnInfo("FLUX", "double")))
    with pytest.raises(AdqlNameError) as caught:
        table.find_column(Name("flux"))
    assert caught.value.error_type == "AmbiguousName"
    assert table.find_column(Name("FLUX", quoted=True)).name == "FLUX"  # type: ignore[union-attr]


def test_unqualified_table_in_two_schemas_is_ambiguous() -> None:
    catalog = TableCatalog([_table("dr1", "Object"), _table("dr2", "Object")])
    with pytest.raises(AdqlNameError) as caught:
        catalog.find_table(None, Name("object"))
    assert caught.value.error_type == "AmbiguousName"
    assert "dr1.Object" in caught.value.message


def test_unknown_schema_suggests() -> None:
    catalog = TableCatalog([_table("apdb", "DiaObject")])
    with pytest.raises(AdqlNameError) as caught:
        catalog.find_table(Name("apbd"), Name("DiaObject"))
    assert caught.value.hint == "did you mean apdb?"


def test_system_catalogs_are_named_as_such() -> None:
    catalog = reference_catalog()
    for schema in ("pg_catalog", "information_schema", "pg_toast"):
        with pytest.raises(AdqlNameError) as caught:
            catalog.find_table(Name(schema), Name("pg_class"))
        assert "system catalog" in caught.value.message


def test_duplicate_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        TableCatalog([_table("s", "t"), _table("s", "t")])


def test_with_tables_adds_uploads() -> None:
    upload = TableInfo("TAP_UPLOAD", "mine", (ColumnInfo("ra", "double"),), kind="upload")
    catalog = reference_catalog().with_tables([upload])
    result = translate("SELECT ra FROM TAP_UPLOAD.mine", catalog)
    assert result.sql == 'SELECT "TAP_UPLOAD"."mine"."ra" AS "ra" FROM "TAP_UPLOAD"."mine"'
    assert result.description.tables[0].table.kind == "upload"


def test_from_tap_schema_matches_the_reference(db_catalog: TableCatalog) -> None:
    expected = {t.qualified_name: t for t in reference_catalog().tables}
    actual = {t.qualified_name: t for t in db_catalog.tables}
    assert actual.keys() == expected.keys()
    for name, table in expected.items():
        assert actual[name] == table, name
    director = actual["apdb.DiaObject"]
    assert (director.kind, director.director_key, director.ra_column) == ("director", "diaObjectId", "ra")
    assert actual["TAP_SCHEMA.tables"].kind == "tap_schema"


def test_from_tap_schema_reads_tap_1_0_types(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "TAP_SCHEMA"')
        conn.execute('CREATE TABLE "TAP_SCHEMA".tables (schema_name text, table_name text, description text)')
        conn.execute(
            'CREATE TABLE "TAP_SCHEMA".columns (table_name text, column_name text, datatype text, '
            "unit text, ucd text, description text)"
        )
        conn.execute("INSERT INTO \"TAP_SCHEMA\".tables VALUES ('old', 'old.t', 'A TAP 1.0 table')")
        rows = [
            ("old.t", "name", "adql:VARCHAR", None),
            ("old.t", "pos", "adql:POINT", "deg"),
            ("old.t", "n", "INTEGER", None),
            ("old.t", "when", "adql:TIMESTAMP", None),
        ]
        for row in rows:
            conn.execute('INSERT INTO "TAP_SCHEMA".columns VALUES (%s, %s, %s, %s, NULL, NULL)', row)
        catalog = TableCatalog.from_tap_schema(conn, {"old.t": TableKindInfo("replicated")})
    [table] = catalog.tables
    assert table.qualified_name == "old.t" and table.description == "A TAP 1.0 table"
    by_name = {c.name: c for c in table.columns}
    assert (by_name["name"].datatype, by_name["name"].arraysize) == ("char", "*")
    assert (by_name["pos"].datatype, by_name["pos"].xtype, by_name["pos"].unit) == ("double", "point", "deg")
    assert by_name["n"].datatype == "int"
    assert by_name["when"].xtype == "timestamp"


def test_physical_columns_outside_tap_schema_never_leak(fresh_dsn: str) -> None:
    """The workers' tables carry chunk_id and a HEALPix index; SELECT * must not return them."""
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "TAP_SCHEMA"')
        conn.execute('CREATE TABLE "TAP_SCHEMA".tables (schema_name text, table_name text)')
        conn.execute(
            'CREATE TABLE "TAP_SCHEMA".columns (table_name text, column_name text, datatype text, column_index int)'
        )
        conn.execute("INSERT INTO \"TAP_SCHEMA\".tables VALUES ('dr1', 'dr1.Object')")
        for index, column in enumerate(("objectId", "ra", "dec")):
            conn.execute(
                "INSERT INTO \"TAP_SCHEMA\".columns VALUES ('dr1.Object', %s, %s, %s)",
                (column, "long" if index == 0 else "double", index),
            )
        conn.execute("CREATE SCHEMA dr1")
        conn.execute(
            'CREATE TABLE dr1."Object" ("objectId" bigint, ra float8, dec float8, chunk_id int, healpix bigint)'
        )
        conn.execute('INSERT INTO dr1."Object" VALUES (1, 10, 20, 7, 12345)')
        kinds = {"dr1.Object": TableKindInfo("director", "objectId", None, "ra", "dec")}
        catalog = TableCatalog.from_tap_schema(conn, kinds)
        result = translate("SELECT * FROM dr1.object", catalog)
        assert [c.name for c in result.columns] == ["objectId", "ra", "dec"]
        assert conn.execute(result.sql).fetchall() == [(1, 10.0, 20.0)]
        with pytest.raises(AdqlNameError):
            translate("SELECT chunk_id FROM dr1.Object", catalog)


def test_kinds_keyed_by_qualified_name() -> None:
    assert table_kinds()["apdb.DiaSource"].director_table == "apdb.DiaObject"
