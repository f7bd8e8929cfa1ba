"""HEALPix ranges added to child-table worker queries: they must hold every row the query can return.

The correctness suite compares whole answers; these tests pin what it cannot
see cheaply: that the ranges are present where they help, absent where they
cannot be derived, and that AND/OR combine them without losing a position.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from adql import translate
from adql.description import AndNode, CircleSpec, OrNode, SpatialRestrictor
from adql.refs import TableRef
from sharding.coordinator.index_ranges import MAX_RANGES, occurrence_ranges, restriction_ranges
from sharding.coordinator.locality import analyse_level, chunk_local_select
from sharding.healpix import PixelRange, healpix_index, intersect_ranges
from sharding.regions import Circle
from tests.adql.reference_data import reference_catalog

MARGIN_DEG = 60 / 3600


@pytest.fixture(scope="module")
def catalog():
    return reference_catalog()


def _inside(ranges: list[PixelRange], index: np.ndarray) -> np.ndarray:
    starts = np.array([r.start for r in ranges], dtype=np.int64)
    stops = np.array([r.stop for r in ranges], dtype=np.int64)
    slot = np.searchsorted(starts, index, side="right") - 1
    return (slot >= 0) & (index < stops[np.maximum(slot, 0)])


def _points_in(circle: Circle, rng: np.random.Generator, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Positions inside ``circle``, many of them right at its edge."""
    radius = circle.radius * np.sqrt(rng.uniform(0, 1, n))
    radius[: n // 2] = circle.radius * (1 - rng.uniform(0, 1e-9, n // 2))
    angle = rng.uniform(0, 2 * np.pi, n)
    dec = np.clip(circle.dec + radius * np.sin(angle), -90, 90)
    ra = (circle.ra + radius * np.cos(angle) / max(np.cos(np.radians(circle.dec)), 1e-3)) % 360
    keep = circle.contains(ra, dec)
    return ra[keep], dec[keep]


def _cone(ra: float, dec: float, radius: float, ref: TableRef | None = None) -> SpatialRestrictor:
    return SpatialRestrictor(ref, CircleSpec(ra, dec, radius), "contains")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    ra=st.floats(0, 359.999),
    dec=st.floats(-89.9, 89.9),
    radius=st.floats(1e-4, 2.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_cone_ranges_hold_every_position_inside_and_stay_few(ra, dec, radius, seed) -> None:
    ranges = restriction_ranges(_cone(ra, dec, radius))
    assert ranges is not None and 0 < len(ranges) <= MAX_RANGES
    pra, pdec = _points_in(Circle(ra, dec, radius), np.random.default_rng(seed))
    assert _inside(ranges, healpix_index(pra, pdec)).all()


def test_and_intersects_and_or_unites_without_losing_positions() -> None:
    first, second = Circle(10, 20, 0.5), Circle(10.4, 20, 0.5)
    both = restriction_ranges(AndNode((_cone(10, 20, 0.5), _cone(10.4, 20, 0.5))))
    either = restriction_ranges(OrNode((_cone(10, 20, 0.5), _cone(200, -40, 0.1))))
    assert both is not None and either is not None
    rng = np.random.default_rng(7)
    ra, dec = _points_in(first, rng)
    in_both = second.contains(ra, dec)
    assert in_both.any() and _inside(both, healpix_index(ra[in_both], dec[in_both])).all()
    assert _inside(either, healpix_index(ra, dec)).all()
    ra2, dec2 = _points_in(Circle(200, -40, 0.1), rng)
    assert _inside(either, healpix_index(ra2, dec2)).all()
    # the intersection is smaller than either cone's cover
    width = sum(r.stop - r.start for r in both)
    assert width < sum(r.stop - r.start for r in restriction_ranges(_cone(10, 20, 0.5)) or [])


def test_disjoint_and_gives_no_ranges_and_intersect_is_exact() -> None:
    assert restriction_ranges(AndNode((_cone(10, 20, 0.1), _cone(200, -40, 0.1)))) == []
    a = [PixelRange(0, 10), PixelRange(20, 30)]
    assert intersect_ranges(a, [PixelRange(10, 20)]) == []
    assert intersect_ranges(a, [PixelRange(0, 100)]) == a


def _worker_sql(catalog, adql: str) -> str:
    translated = translate(adql, catalog)
    layout = analyse_level(translated.tree, MARGIN_DEG)
    ranges = occurrence_ranges(translated.description.healpix_targets)
    return chunk_local_select(translated.tree, layout, ranges).sql(dialect="postgres")


def test_a_child_cone_reads_healpix_ranges_a_director_cone_does_not(catalog) -> None:
    cone = "1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.01))"
    child = _worker_sql(catalog, f"SELECT diaSourceId FROM apdb.DiaSource WHERE {cone}")
    assert child.count('"healpix_index" >=') >= 1 and "spoint" in child.lower()  # the exact test still runs
    director = _worker_sql(catalog, f"SELECT diaObjectId FROM apdb.DiaObject WHERE {cone}")
    assert "healpix_index" not in director


def test_no_ranges_where_the_region_does_not_bound_the_rows(catalog) -> None:
    cone = "1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.01))"
    for adql in (
        f"SELECT diaSourceId FROM apdb.DiaSource WHERE {cone} OR psfFlux > 1",
        f"SELECT diaSourceId FROM apdb.DiaSource WHERE NOT ({cone})",
        "SELECT diaSourceId FROM apdb.DiaSource WHERE psfFlux > 1",
    ):
        assert "healpix_index" not in _worker_sql(catalog, adql), adql


def test_ranges_follow_the_occurrence_the_cone_restricts(catalog) -> None:
    sql = _worker_sql(
        catalog,
        "SELECT o.diaObjectId, s.diaSourceId FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s "
        "ON s.diaObjectId = o.diaObjectId WHERE 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(10, 20, 0.01))",
    )
    tree = exp.maybe_parse(sql, dialect="postgres")
    restricted = [sub.alias for sub in tree.find_all(exp.Subquery) if "healpix_index" in sub.sql(dialect="postgres")]
    assert restricted == ["s"]
