"""Planning decisions the correctness suite cannot see: which chunks, which split, what is refused.

A planner that asked every chunk, or merged raw rows instead of partial
aggregates, would still give right answers; these tests pin the cheaper plan.
They need no database: the translator's reference catalog describes the tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlglot import exp

from adql import AdqlUnsupportedError, translate
from sharding import regions
from sharding.coordinator.locality import CHUNK_LIST_SENTINEL, analyse_level, chunk_local_select, whole_tables_text
from sharding.coordinator.planner import expression_subqueries
from sharding.coordinator.pruning import chunk_set, grown_chunks
from sharding.coordinator.split import split_level
from tests.adql.reference_data import reference_catalog

ORDER = 7
MARGIN_DEG = 60 / 3600


@pytest.fixture(scope="module")
def catalog():
    return reference_catalog()


def _chunks(catalog, adql: str, director_index=None):
    translated = translate(adql, catalog)
    layout = analyse_level(translated.tree, MARGIN_DEG)
    grown = [ref for ref in layout.partitioned if ref.table.kind == "child"] + layout.overlap_sides()
    return chunk_set(
        translated.description.restrictions,
        chunk_order=ORDER,
        margin_deg=MARGIN_DEG,
        partitioned=layout.partitioned,
        grown=grown,
        director_index=director_index or (lambda _ref, _restrictor: None),
    )


def _cone_chunks(ra: float, dec: float, radius: float) -> frozenset[int]:
    return frozenset(int(c) for c in regions.Circle(ra, dec, radius).chunks(ORDER))


def test_a_cone_anywhere_in_the_and_tree_bounds_the_chunks(catalog) -> None:
    chunks = _chunks(
        catalog,
        "SELECT diaObjectId FROM apdb.DiaObject WHERE nDiaSources > 2 AND "
        "(flags = 0 AND 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.2)))",
    )
    assert chunks == _cone_chunks(10, 20, 0.2)


def test_or_unites_regions_and_not_bounds_nothing(catalog) -> None:
    either = _chunks(
        catalog,
        "SELECT diaObjectId FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.2)) "
        "OR 1 = CONTAINS(POINT(ra, dec), CIRCLE(200, -40, 0.2))",
    )
    assert either == _cone_chunks(10, 20, 0.2) | _cone_chunks(200, -40, 0.2)
    outside = "SELECT diaObjectId FROM apdb.DiaObject WHERE NOT (1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.2)))"
    assert _chunks(catalog, outside) is None
    with_other = (
        "SELECT diaObjectId FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.2)) OR flags = 1"
    )
    assert _chunks(catalog, with_other) is None


def test_a_child_cone_grows_by_the_margin_only(catalog) -> None:
    chunks = _chunks(
        catalog, "SELECT diaSourceId FROM apdb.DiaSource WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.2))"
    )
    assert chunks == _cone_chunks(10, 20, 0.2 + MARGIN_DEG)
    assert chunks != grown_chunks(_cone_chunks(10, 20, 0.2), ORDER, MARGIN_DEG)  # not a whole ring of neighbours


def test_ra_range_across_zero_selects_chunks_on_both_sides(catalog) -> None:
    chunks = _chunks(
        catalog, "SELECT diaObjectId FROM apdb.DiaObject WHERE (ra > 359.5 OR ra < 0.5) AND dec BETWEEN -1 AND 1"
    )
    assert chunks is not None
    expected = regions.Union((regions.RaDecRange(359.5, 360, -1, 1), regions.RaDecRange(0, 0.5, -1, 1))).chunks(ORDER)
    assert set(expected) <= chunks


def test_director_key_restrictions_go_through_the_director_index(catalog) -> None:
    asked = []

    def index(ref, restrictor):
        asked.append((ref.table.table_name, restrictor.operator, restrictor.values))
        return frozenset({42})

    chunks = _chunks(catalog, "SELECT diaSourceId FROM apdb.DiaSource WHERE diaObjectId IN (7, 8)", index)
    assert chunks == frozenset({42})
    assert asked == [("DiaSource", "IN", (7, 8))]


def test_a_cone_inside_a_left_joined_condition_does_not_bound_the_query(catalog) -> None:
    chunks = _chunks(
        catalog,
        "SELECT o.diaObjectId FROM apdb.DiaObject AS o LEFT JOIN apdb.DiaSource AS s "
        "ON o.diaObjectId = s.diaObjectId AND 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(10, 20, 0.2))",
    )
    assert chunks is None


def _split(catalog, adql: str):
    return split_level(translate(adql, catalog).tree)


def test_plain_rows_stream_without_a_merge(catalog) -> None:
    split = _split(catalog, "SELECT ra, dec FROM apdb.DiaObject WHERE flags = 0")
    assert split.strategy == "stream" and split.merge is None


def test_top_n_is_pushed_to_the_workers_with_the_offset(catalog) -> None:
    split = _split(catalog, "SELECT TOP 10 diaObjectId FROM apdb.DiaObject ORDER BY ra DESC, diaObjectId OFFSET 5")
    assert split.strategy == "top-n"
    assert split.worker.args["limit"].expression.this == "15" and split.worker.args.get("offset") is None
    assert split.worker.args.get("order") is not None
    merge = split.merge_sql("g", {})
    assert "LIMIT 10" in merge and "OFFSET 5" in merge


def test_aggregates_are_split_into_partials(catalog) -> None:
    split = _split(
        catalog,
        "SELECT band, COUNT(*) AS n, AVG(psfFlux) AS f, COUNT(DISTINCT visit) AS v FROM apdb.DiaSource GROUP BY band",
    )
    assert split.strategy == "aggregate"
    worker = split.worker.sql(dialect="postgres")
    assert "COUNT(*)" in worker and "SUM(CAST(" in worker and "GROUP BY" in worker
    assert "visit" in split.worker.args["group"].sql(dialect="postgres")  # distinct values survive the workers
    merge = split.merge_sql("g", {name: "bigint" for name in split.partial_columns})
    assert "COUNT(DISTINCT" in merge and "NULLIF(SUM(" in merge


def test_having_and_order_are_rewritten_over_partials(catalog) -> None:
    split = _split(
        catalog,
        "SELECT band, COUNT(*) AS n FROM apdb.DiaSource GROUP BY band HAVING MAX(psfFlux) > 0 ORDER BY n DESC, band",
    )
    assert split.strategy == "aggregate"
    assert "MAX(" in split.worker.sql(dialect="postgres")
    merge = split.merge_sql("g", {name: "double precision" for name in split.partial_columns})
    assert "HAVING MAX(" in merge and 'ORDER BY "n" DESC' in merge


def test_near_neighbour_join_reads_the_overlap_of_one_side(catalog) -> None:
    translated = translate(
        "SELECT a.diaObjectId, b.diaObjectId FROM apdb.DiaObject AS a JOIN apdb.DiaObject AS b "
        "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 0.005",
        catalog,
    )
    layout = analyse_level(translated.tree, MARGIN_DEG)
    (overlap_side,) = layout.overlap_sides()  # either side will do for an inner join, but only one
    anchor = layout.overlap_partner[overlap_side.occurrence]
    worker = chunk_local_select(translated.tree, layout).sql(dialect="postgres")
    assert "DiaObject__overlap" in worker and worker.count(CHUNK_LIST_SENTINEL) == 3
    assert f'"{overlap_side.alias}"."chunk_id" = "{anchor.alias}"."chunk_id"' in worker


def test_the_right_side_of_a_left_near_neighbour_join_reads_the_overlap(catalog) -> None:
    translated = translate(
        "SELECT a.diaObjectId, b.diaObjectId FROM apdb.DiaObject AS a LEFT JOIN apdb.DiaObject AS b "
        "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 0.005",
        catalog,
    )
    assert [ref.alias for ref in analyse_level(translated.tree, MARGIN_DEG).overlap_sides()] == ["b"]


@pytest.mark.parametrize(
    "adql",
    [
        "SELECT a.diaObjectId FROM apdb.DiaObject AS a JOIN apdb.DiaObject AS b "
        "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 1",
        "SELECT s.diaSourceId FROM apdb.DiaSource AS s JOIN apdb.DiaObject AS o ON s.visit = o.flags",
        "SELECT a.diaObjectId FROM apdb.DiaObject AS a JOIN apdb.DiaObject AS b "
        "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 0.005 OR a.flags = b.flags",
    ],
    ids=["beyond-margin", "non-key", "inside-or"],
)
def test_joins_across_chunks_are_refused_with_a_reason(catalog, adql: str) -> None:
    with pytest.raises(AdqlUnsupportedError, match="unsupported because") as raised:
        analyse_level(translate(adql, catalog).tree, MARGIN_DEG)
    assert raised.value.hint and raised.value.line is None


def test_partitioned_tables_are_limited_to_the_chunk_list(catalog) -> None:
    translated = translate("SELECT ra FROM apdb.DiaSource WHERE flags = 1", catalog)
    rewritten = chunk_local_select(translated.tree, analyse_level(translated.tree, MARGIN_DEG))
    subqueries = [s for s in rewritten.find_all(exp.Subquery)]
    assert len(subqueries) == 1 and CHUNK_LIST_SENTINEL in subqueries[0].sql(dialect="postgres")
    assert np.all([c.table == "_dms_t0" for c in rewritten.find_all(exp.Column) if c.name != "chunk_id"])


def test_reading_tables_whole_drops_every_chunk_filter_and_keeps_the_index_ranges(catalog) -> None:
    from sharding.coordinator.index_ranges import occurrence_ranges

    translated = translate(
        "SELECT o.diaObjectId, s.psfFlux FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s "
        "ON s.diaObjectId = o.diaObjectId WHERE 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(10, 20, 0.1))",
        catalog,
    )
    ranges = occurrence_ranges(translated.description.healpix_targets)
    assert ranges  # the DiaSource side is read by HEALPix ranges
    worker_text = chunk_local_select(translated.tree, analyse_level(translated.tree, MARGIN_DEG), ranges).sql(
        dialect="postgres"
    )
    assert worker_text.count(CHUNK_LIST_SENTINEL) == 2
    whole = whole_tables_text(worker_text)
    assert CHUNK_LIST_SENTINEL not in whole and whole.count("TRUE") == 2
    assert whole.count("healpix_index") == worker_text.count("healpix_index") > 0


def test_each_subquery_is_paired_with_its_own_description(catalog) -> None:
    """Subqueries in the select list come after those in WHERE in the description: pairing must follow it."""
    translated = translate(
        "SELECT (SELECT COUNT(*) FROM apdb.Visit) AS visits, o.diaObjectId FROM apdb.DiaObject AS o "
        "JOIN apdb.DiaSource AS s ON s.diaObjectId = o.diaObjectId "
        "AND s.visit IN (SELECT visit FROM apdb.Visit WHERE band = 'r') "
        "WHERE o.diaObjectId IN (SELECT diaObjectId FROM apdb.DiaSource "
        "WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.2)))",
        catalog,
    )
    nested = expression_subqueries(translated.tree)
    described = [s for s in translated.description.subqueries if s.role != "from"]
    assert [s.role for s in described] == ["on", "where", "select"]
    assert len(nested) == len(described)
    for node, sub in zip(nested, described, strict=True):
        in_tree = sorted(t.name for t in node.find_all(exp.Table))
        assert in_tree == sorted(ref.table.table_name for ref in sub.description.tables)
    (cone,) = described[1].description.spatial_restrictors  # the cone bounds the WHERE subquery only
    assert cone.region.radius == 0.2 and nested[1].find(exp.ArrayContainedBy) is not None
