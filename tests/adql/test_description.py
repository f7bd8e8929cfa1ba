"""The query description handed to the coordinator."""

from __future__ import annotations

from adql import TableCatalog, translate
from adql.description import (
    AndNode,
    BoxSpec,
    CircleSpec,
    NotNode,
    OrNode,
    OtherPredicate,
    PolygonSpec,
    QueryDescription,
    RaDecRangeSpec,
    SpatialRestrictor,
)
from adql.regions import project_restriction


def _describe(text: str, catalog: TableCatalog, max_rows: int | None = None) -> QueryDescription:
    return translate(text, catalog, max_rows=max_rows).description


def test_cone_in_both_orders_and_with_or_without_one(catalog: TableCatalog) -> None:
    for condition in (
        "1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.5))",
        "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 0.5)) = 1",
        "1 = INTERSECTS(CIRCLE(10, 20, 0.5), POINT(ra, dec))",
        "DISTANCE(POINT(ra, dec), POINT(10, 20)) < 0.5",
        "DISTANCE(10, 20, ra, dec) <= 0.5",
        "0.5 > DISTANCE(ra, dec, 10, 20)",
        "1 = CONTAINS(POINT(ra, dec), REGION('Circle ICRS 10 20 0.5'))",
    ):
        d = _describe(f"SELECT diaObjectId FROM apdb.DiaObject WHERE {condition}", catalog)
        [restrictor] = d.spatial_restrictors
        assert restrictor.region == CircleSpec(10.0, 20.0, 0.5), condition
        assert restrictor.in_and_tree_of_root
        assert restrictor.table.table.table_name == "DiaObject"


def test_regions(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaSource WHERE 1 = CONTAINS(POINT(ra, dec), POLYGON(1, 2, 3, 2, 3, 4)) "
        "AND 1 = CONTAINS(POINT(ra, dec), BOX(10, 20, 2, 4))",
        catalog,
    )
    assert [r.region for r in d.spatial_restrictors] == [
        PolygonSpec(((1.0, 2.0), (3.0, 2.0), (3.0, 4.0))),
        BoxSpec(10.0, 20.0, 2.0, 4.0),
    ]


def test_ra_dec_ranges_merge_within_and(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaObject WHERE ra BETWEEN 10 AND 20 AND dec > -5 AND 5 >= dec AND nDiaSources > 1",
        catalog,
    )
    [restrictor] = d.spatial_restrictors
    assert restrictor.region == RaDecRangeSpec(10.0, 20.0, -5.0, 5.0)
    assert restrictor.predicate == "range"


def test_ranges_across_ra_zero_stay_two_regions(catalog: TableCatalog) -> None:
    d = _describe("SELECT * FROM apdb.DiaObject WHERE ra > 350 OR ra < 10", catalog)
    assert isinstance(d.restrictions, OrNode)
    assert [r.region for r in d.spatial_restrictors] == [RaDecRangeSpec(ra_min=350.0), RaDecRangeSpec(ra_max=10.0)]
    assert not any(r.in_and_tree_of_root for r in d.spatial_restrictors)


def test_position_of_the_boolean_tree(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaObject WHERE nDiaSources > 2 AND "
        "(1 = CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 0.1)) OR 1 = CONTAINS(POINT(ra, dec), CIRCLE(5, 6, 0.1))) "
        "AND 0 = CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 0.01))",
        catalog,
    )
    assert isinstance(d.restrictions, AndNode)
    other, either, excluded = d.restrictions.children
    assert isinstance(other, OtherPredicate) and "nDiaSources" in other.sql
    assert isinstance(either, OrNode) and len(either.children) == 2
    assert isinstance(excluded, NotNode)
    assert [r.in_and_tree_of_root for r in d.spatial_restrictors] == [False, False, False]


def test_union_region_becomes_or(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), "
        "REGION('Union ICRS (Circle 1 2 0.5 Polygon 10 10 11 10 11 11)'))",
        catalog,
    )
    assert isinstance(d.restrictions, OrNode)
    assert {type(r.region) for r in d.spatial_restrictors} == {CircleSpec, PolygonSpec}


def test_position_must_be_the_tables_position_columns(catalog: TableCatalog) -> None:
    d = _describe("SELECT * FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(dec, ra), CIRCLE(1, 2, 0.5))", catalog)
    assert d.spatial_restrictors == ()
    d = _describe("SELECT * FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(ra, 2, 0.5))", catalog)
    assert d.spatial_restrictors == ()


def test_director_key_restrictions(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaSource WHERE diaObjectId = 42 OR diaObjectId IN (1, 2, 3) "
        "OR diaObjectId BETWEEN 10 AND 20 OR diaObjectId > 99",
        catalog,
    )
    operators = [(r.operator, r.values, r.low, r.high) for r in d.director_key_restrictors]
    assert operators == [
        ("=", (42,), None, None),
        ("IN", (1, 2, 3), None, None),
        ("BETWEEN", (), 10, 20),
        (">", (), 99, None),
    ]
    assert all(r.column == "diaObjectId" for r in d.director_key_restrictors)


def test_director_key_in_and_tree(catalog: TableCatalog) -> None:
    d = _describe("SELECT * FROM apdb.DiaObject AS o WHERE o.diaObjectId = 1000007 AND o.ra > 3", catalog)
    [key] = d.director_key_restrictors
    assert key.in_and_tree_of_root and key.table.alias == "o" and key.table.sql_qualifier == ("o",)


def test_aggregates_grouping_ordering_limits(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT DISTINCT TOP 10 band, COUNT(*), AVG(psfFlux), COUNT(DISTINCT visit) FROM apdb.DiaSource "
        "GROUP BY band HAVING MAX(psfFlux) > 3 ORDER BY 2 DESC, band OFFSET 5",
        catalog,
        max_rows=4,
    )
    assert [(a.function, a.distinct, a.star) for a in d.aggregates] == [
        ("COUNT", False, True),
        ("AVG", False, False),
        ("COUNT", True, False),
        ("MAX", False, False),
    ]
    assert d.has_aggregates and d.distinct
    assert d.group_by == ('"apdb"."DiaSource"."band"',)
    assert d.having is not None and "MAX" in d.having
    assert [(o.output_column, o.descending) for o in d.order_by] == [("count", True), ("band", False)]
    assert (d.top, d.limit, d.offset) == (10, 4, 5)
    assert d.output_columns == ("band", "count", "avg", "count_2")


def test_joins(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM doc.alpha_source AS a NATURAL JOIN doc.alpha_source AS b, "
        "apdb.DiaObject AS o JOIN apdb.DiaSource AS s USING (diaObjectId) "
        "LEFT JOIN apdb.Visit AS v ON v.visit = s.visit",
        catalog,
    )
    kinds = [(j.kind, j.natural, j.using, j.right_alias) for j in d.joins]
    assert kinds == [
        ("inner", True, ("id", "ra", "dec", "flux", "name"), "b"),
        ("cross", False, (), "o"),
        ("inner", False, ("diaObjectId",), "s"),
        ("left", False, (), "v"),
    ]
    assert d.joins[2].equalities == (("o.diaObjectId", "s.diaObjectId"),)
    assert [t.table.table_name for t in d.tables] == ["alpha_source", "alpha_source", "DiaObject", "DiaSource", "Visit"]


def test_crossmatch_join_is_spatial(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s ON DISTANCE(o.ra, o.dec, s.ra, s.dec) < 0.001",
        catalog,
    )
    assert d.joins[0].spatial


def test_restrictors_in_outer_join_conditions_do_not_bound_the_query(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaObject AS o LEFT JOIN apdb.DiaSource AS s ON s.diaObjectId = o.diaObjectId "
        "AND 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(1, 2, 3))",
        catalog,
    )
    assert d.restrictions is None
    [restrictor] = d.spatial_restrictors
    assert not restrictor.in_and_tree_of_root


def test_inner_join_conditions_bound_the_query(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s ON s.diaObjectId = o.diaObjectId "
        "AND 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(1, 2, 3))",
        catalog,
    )
    [restrictor] = d.spatial_restrictors
    assert restrictor.in_and_tree_of_root and restrictor.table.alias == "s"


def test_healpix_targets(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s ON s.diaObjectId = o.diaObjectId "
        "JOIN apdb.Visit AS v ON v.visit = s.visit WHERE 1 = CONTAINS(POINT(o.ra, o.dec), CIRCLE(1, 2, 3))",
        catalog,
    )
    targets = {t.table.alias: t.restriction for t in d.healpix_targets}
    assert set(targets) == {"o", "s"}  # the replicated Visit needs no HEALPix ranges
    assert isinstance(targets["o"], SpatialRestrictor) and targets["o"].region == CircleSpec(1.0, 2.0, 3.0)
    assert targets["s"] is None


def test_project_restriction_keeps_only_bounding_parts(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT * FROM apdb.DiaObject WHERE (1 = CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 3)) OR ra < 1) "
        "AND NOT (dec > 3)",
        catalog,
    )
    assert d.restrictions is not None
    projected = project_restriction(d.restrictions, d.tables[0])
    assert isinstance(projected, OrNode) and len(projected.children) == 2


def test_set_operations_and_subqueries(catalog: TableCatalog) -> None:
    d = _describe(
        "WITH w AS (SELECT id FROM doc.alpha_source) "
        "SELECT id FROM w UNION ALL SELECT visit FROM apdb.Visit WHERE visit IN (SELECT visit FROM apdb.DiaSource)",
        catalog,
        max_rows=7,
    )
    assert d.set_operation is not None
    assert (d.set_operation.kind, d.set_operation.distinct, d.limit) == ("UNION", False, 7)
    assert [c.name for c in d.ctes] == ["w"]
    right = d.set_operation.right
    [sub] = right.subqueries
    assert sub.role == "where" and not sub.correlated
    assert sub.description.tables[0].table.table_name == "DiaSource"
    assert {t.table.table_name for t in d.all_tables()} == {"alpha_source", "Visit", "DiaSource"}
    assert not d.is_single_node


def test_derived_tables_and_correlation(catalog: TableCatalog) -> None:
    d = _describe(
        "SELECT t.n FROM (SELECT COUNT(*) AS n FROM apdb.DiaSource) AS t WHERE EXISTS "
        "(SELECT 1 FROM apdb.Visit AS v WHERE v.visit = t.n)",
        catalog,
    )
    roles = [(s.role, s.alias, s.correlated) for s in d.subqueries]
    assert roles == [("from", "t", False), ("where", None, True)]
    assert d.subqueries[0].description.aggregates[0].function == "COUNT"


def test_single_node_queries(catalog: TableCatalog) -> None:
    assert _describe("SELECT * FROM TAP_SCHEMA.tables", catalog).is_single_node
    assert _describe("SELECT * FROM apdb.Visit", catalog).is_single_node
    assert not _describe("SELECT * FROM apdb.DiaSource", catalog).is_single_node


def test_description_is_frozen_and_compact(catalog: TableCatalog) -> None:
    d = _describe("SELECT * FROM apdb.DiaObject AS o WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 3))", catalog)
    assert "TableRef(apdb.DiaObject AS o #0)" in repr(d.spatial_restrictors[0])
    try:
        d.limit = 3  # type: ignore[misc]
    except AttributeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("QueryDescription must be frozen")
