"""ADQL errors: stable types, 1-based positions, the offending text, a hint."""

from __future__ import annotations

import pytest

from adql import (
    AdqlError,
    AdqlGeometryError,
    AdqlNameError,
    AdqlSyntaxError,
    AdqlTypeError,
    AdqlUnsupportedError,
    TableCatalog,
    translate,
)
from adql.errors import locate, node_span
from dms_db.errors import UserError


def _error(text: str, catalog: TableCatalog) -> AdqlError:
    with pytest.raises(AdqlError) as caught:
        translate(text, catalog)
    return caught.value


def test_error_types_are_stable() -> None:
    assert AdqlSyntaxError.error_type == "AdqlSyntaxError"
    assert AdqlNameError.error_type == "UnknownName"
    assert AdqlNameError("x", ambiguous=True).error_type == "AmbiguousName"
    assert AdqlUnsupportedError.error_type == "Unsupported"
    assert AdqlTypeError.error_type == "AdqlTypeError"
    assert AdqlGeometryError.error_type == "AdqlGeometryError"
    for cls in (AdqlSyntaxError, AdqlNameError, AdqlUnsupportedError, AdqlTypeError, AdqlGeometryError):
        assert issubclass(cls, UserError)
        assert cls.http_status == 400


def test_locate_counts_lines_and_columns_from_one() -> None:
    assert locate("abc", 0) == (1, 1)
    assert locate("ab\ncd\nef", 4) == (2, 2)
    assert locate("ab\n", 3) == (2, 1)


def test_message_says_what_where_and_how(catalog: TableCatalog) -> None:
    error = _error("SELECT id,\n  fluxx FROM doc.alpha_source", catalog)
    assert isinstance(error, AdqlNameError)
    assert (error.line, error.column, error.text) == (2, 3, "fluxx")
    assert "line 2, column 3" in error.message
    assert error.hint == "did you mean flux?"
    assert str(error).endswith("(did you mean flux?)")


def test_to_dict_is_json_ready(catalog: TableCatalog) -> None:
    error = _error("SELECT * FROM doc.alpha_source LIMIT 3", catalog)
    document = error.to_dict()
    assert document == {
        "error_type": "Unsupported",
        "message": document["message"],
        "line": 1,
        "column": 32,
        "text": "LIMIT 3",
        "hint": "write SELECT TOP n ... instead of LIMIT n",
    }
    assert "LIMIT is not ADQL" in document["message"]


def test_unsupported_names_the_feature(catalog: TableCatalog) -> None:
    error = _error("SELECT id FROM doc.alpha_source CROSS JOIN apdb.Visit", catalog)
    assert isinstance(error, AdqlUnsupportedError)
    assert "CROSS JOIN" in error.message


def test_ambiguous_lists_candidates(catalog: TableCatalog) -> None:
    error = _error("SELECT ra FROM apdb.DiaObject AS o, apdb.DiaSource AS s", catalog)
    assert error.error_type == "AmbiguousName"
    assert "o.ra" in error.message and "s.ra" in error.message


def test_unknown_table_suggests_the_closest(catalog: TableCatalog) -> None:
    error = _error("SELECT * FROM apdb.DiaSorce", catalog)
    assert error.hint is not None and error.hint.startswith("did you mean apdb.DiaSource")


def test_long_fragments_are_shortened(catalog: TableCatalog) -> None:
    error = _error("SELECT x + " + "x" * 200 + " FROM doc.alpha_source", catalog)
    assert error.text == "x"
    long = AdqlSyntaxError("bad", query="z" * 300, span=(0, 300))
    assert long.text == "z" * 300
    assert "..." in long.message and len(long.message) < 120


def test_node_span_covers_descendants() -> None:
    from adql.dialect import parse_adql

    text = "SELECT a + b FROM t"
    tree = parse_adql(text)
    start, end = node_span(tree.expressions[0])  # type: ignore[misc]
    assert text[start:end] == "a + b"


@pytest.mark.parametrize(
    ("text", "error_type"),
    [
        ("SELECT id FROM doc.alpha_source WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(0, 0, 91))", "AdqlGeometryError"),
        ("SELECT SQRT('a') FROM doc.alpha_source", "AdqlTypeError"),
        ("SELECT", "AdqlSyntaxError"),
        ("", "AdqlSyntaxError"),
        ("\x00", "AdqlSyntaxError"),
    ],
)
def test_every_error_has_a_position(text: str, error_type: str, catalog: TableCatalog) -> None:
    error = _error(text, catalog)
    assert error.error_type == error_type
    assert error.line is not None and error.column is not None


def test_very_long_query_is_refused_without_parsing(catalog: TableCatalog) -> None:
    error = _error("SELECT " + ", ".join(["ra"] * 100000) + " FROM doc.alpha_source", catalog)
    assert error.error_type == "AdqlSyntaxError"


def test_deep_nesting_is_refused(catalog: TableCatalog) -> None:
    error = _error("SELECT " + "(" * 500 + "1" + ")" * 500 + " FROM doc.alpha_source", catalog)
    assert "nested" in error.message


def test_long_and_or_chains_translate(catalog: TableCatalog) -> None:
    for operator in ("AND", "OR"):
        text = "SELECT id FROM doc.alpha_source WHERE " + f" {operator} ".join(f"id <> {i}" for i in range(1500))
        assert translate(text, catalog).sql.count("<>") == 1500


def test_too_deep_expressions_are_refused(catalog: TableCatalog) -> None:
    error = _error("SELECT " + " + ".join(["id"] * 400) + " FROM doc.alpha_source", catalog)
    assert error.error_type == "AdqlSyntaxError" and "levels deep" in error.message
