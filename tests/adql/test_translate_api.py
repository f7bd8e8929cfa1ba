"""The public contract of adql.translate and the published capabilities."""

from __future__ import annotations

import dataclasses

import pytest
from sqlglot import exp

from adql import AdqlUnsupportedError, ResultColumn, TableCatalog, TranslatedQuery, translate
from adql.capabilities import ADQL_LANGUAGE, language_features
from adql.functions import ADQL_GEO, ADQL_OFFSET, ADQL_SETS, ALL_FEATURES, FUNCTIONS


def test_translated_query_fields(catalog: TableCatalog) -> None:
    result = translate("SELECT TOP 3 ra, dec FROM apdb.DiaObject ORDER BY ra", catalog)
    assert isinstance(result, TranslatedQuery)
    assert dataclasses.is_dataclass(result) and result.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert isinstance(result.tree, exp.Query)
    assert result.tree.sql(dialect="postgres") == result.sql
    assert result.columns == (
        ResultColumn("ra", "double", None, None, "deg", "pos.eq.ra;meta.main", "RA"),
        ResultColumn("dec", "double", None, None, "deg", "pos.eq.dec;meta.main", "Dec"),
    )


def test_tree_is_independent_of_later_rewrites(catalog: TableCatalog) -> None:
    result = translate("SELECT ra FROM apdb.DiaObject", catalog)
    copy = result.tree.copy()
    copy.set("limit", exp.Limit(expression=exp.Literal.number(1)))
    assert "LIMIT" not in result.sql
    assert copy.sql(dialect="postgres").endswith("LIMIT 1")


def test_the_pipeline_steps_copy_their_input_unless_told_to_work_in_place(catalog: TableCatalog) -> None:
    """translate() owns its intermediate trees and skips the copies; other callers keep their trees intact."""
    from adql.dialect import parse_adql
    from adql.grammar import balance_connectors
    from adql.resolve import resolve
    from adql.translate import apply_row_limit, finalize

    text = "SELECT ra FROM apdb.DiaObject WHERE ra = 1 OR ra = 2 OR ra = 3 OR ra = 4 OR ra = 5"
    parsed = parse_adql(text)
    before = parsed.sql()
    steps = [
        lambda tree, **kw: balance_connectors(tree, **kw),
        lambda tree, **kw: resolve(tree, catalog, text, **kw).tree,
        lambda tree, **kw: apply_row_limit(tree, 10, **kw),
        lambda tree, **kw: finalize(tree, **kw),
    ]
    for step in steps:
        assert step(parsed) is not parsed
        assert parsed.sql() == before
    owned = parse_adql(text)
    for step in steps:
        assert step(owned, in_place=True) is owned
    assert owned.sql(dialect="postgres") == translate(text, catalog, max_rows=10).sql


def test_every_identifier_is_quoted_and_no_comment_survives(catalog: TableCatalog) -> None:
    result = translate("SELECT ra /* */ FROM apdb.DiaObject AS o -- x */ DROP\nWHERE o.dec > 0", catalog)
    assert all(identifier.quoted for identifier in result.tree.find_all(exp.Identifier))
    assert "/*" not in result.sql and "DROP" not in result.sql


@pytest.mark.parametrize(
    ("adql", "max_rows", "limit"),
    [
        ("SELECT ra FROM apdb.DiaObject", 101, "LIMIT 101"),
        ("SELECT TOP 5 ra FROM apdb.DiaObject", 101, "LIMIT 5"),
        ("SELECT TOP 500 ra FROM apdb.DiaObject", 101, "LIMIT 101"),
        ("SELECT TOP 5 ra FROM apdb.DiaObject", None, "LIMIT 5"),
        ("SELECT ra FROM apdb.DiaObject UNION SELECT dec FROM apdb.DiaObject", 3, "LIMIT 3"),
    ],
)
def test_max_rows(adql: str, max_rows: int | None, limit: str, catalog: TableCatalog) -> None:
    sql = translate(adql, catalog, max_rows=max_rows).sql
    assert sql.endswith(limit)
    assert sql.count("LIMIT") == 1


def test_max_rows_must_not_be_negative(catalog: TableCatalog) -> None:
    with pytest.raises(ValueError):
        translate("SELECT ra FROM apdb.DiaObject", catalog, max_rows=-1)


def test_geometry_columns_are_dali_arrays(catalog: TableCatalog) -> None:
    result = translate(
        "SELECT POINT(ra, dec) AS p, CIRCLE(ra, dec, 1) AS c, POLYGON(1, 2, 3, 4, 5, 6) AS g, "
        "BOX(10, 20, 1, 1) AS b FROM apdb.DiaObject",
        catalog,
    )
    metadata = {c.name: (c.datatype, c.arraysize, c.xtype) for c in result.columns}
    assert metadata == {
        "p": ("double", "2", "point"),
        "c": ("double", "3", "circle"),
        "g": ("double", "*", "polygon"),
        "b": ("double", "*", "polygon"),
    }
    assert all(isinstance(p.this, exp.Array) for p in result.tree.expressions)


def test_features_used_are_reported(catalog: TableCatalog) -> None:
    result = translate(
        "SELECT id FROM doc.alpha_source WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 3)) "
        "UNION SELECT visit FROM apdb.Visit ORDER BY 1 OFFSET 2",
        catalog,
    )
    assert {(f.type, f.form) for f in result.features} == {
        (ADQL_GEO, "CONTAINS"),
        (ADQL_GEO, "POINT"),
        (ADQL_GEO, "CIRCLE"),
        (ADQL_SETS, "UNION"),
        (ADQL_OFFSET, "OFFSET"),
    }


@pytest.mark.parametrize(
    ("form", "adql"),
    [
        ("UNION", "SELECT id FROM doc.alpha_source UNION SELECT id FROM doc.alpha_source"),
        ("OFFSET", "SELECT id FROM doc.alpha_source OFFSET 1"),
        ("CONTAINS", "SELECT id FROM doc.alpha_source WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 3))"),
        ("WITH", "WITH w AS (SELECT id FROM doc.alpha_source) SELECT id FROM w"),
        ("LOWER", "SELECT LOWER(name) FROM doc.alpha_source"),
        ("ILIKE", "SELECT id FROM doc.alpha_source WHERE name ILIKE 'a%'"),
        ("CAST", "SELECT CAST(id AS REAL) FROM doc.alpha_source"),
        ("COALESCE", "SELECT COALESCE(name, 'x') FROM doc.alpha_source"),
        ("IN_UNIT", "SELECT IN_UNIT(ra, 'rad') FROM doc.alpha_source"),
        ("BIT_AND", "SELECT id & 1 FROM doc.alpha_source"),
    ],
)
def test_undeclared_features_are_unsupported(form: str, adql: str, catalog: TableCatalog) -> None:
    enabled = [feature for feature in ALL_FEATURES if feature.form != form]
    translate(adql, catalog)  # supported when enabled
    with pytest.raises(AdqlUnsupportedError) as caught:
        translate(adql, catalog, features=enabled)
    assert form in caught.value.message
    assert caught.value.feature is not None and form in caught.value.feature


def test_capabilities_are_derived_from_the_implementation() -> None:
    groups = {group.type: [feature.form for feature in group.features] for group in language_features()}
    geometry = {name for name, spec in FUNCTIONS.items() if spec.feature is not None and spec.feature.type == ADQL_GEO}
    assert set(groups[ADQL_GEO]) == geometry == {
        "AREA", "BOX", "CENTROID", "CIRCLE", "CONTAINS", "COORD1", "COORD2", "COORDSYS", "DISTANCE",
        "INTERSECTS", "POINT", "POLYGON", "REGION",
    }  # fmt: skip
    assert groups["ivo://ivoa.net/std/TAPRegExt#features-adql-string"] == ["ILIKE", "LOWER", "UPPER"]
    assert groups["ivo://ivoa.net/std/TAPRegExt#features-adql-bitwise"] == ["BIT_AND", "BIT_NOT", "BIT_OR", "BIT_XOR"]
    for key in ("common-table", "type", "conditional", "unit", "offset", "sets"):
        assert f"ivo://ivoa.net/std/TAPRegExt#features-adql-{key}" in groups
    assert "ivo://ivoa.net/std/TAPRegExt#features-udf" not in groups
    assert ADQL_LANGUAGE.ivo_id == "ivo://ivoa.net/std/ADQL#v2.1"


def test_capabilities_respect_a_restricted_feature_set() -> None:
    enabled = [f for f in ALL_FEATURES if f.type != ADQL_SETS]
    assert ADQL_SETS not in {group.type for group in language_features(enabled)}
