"""Unit tests of HEALPix indexing, chunk ranges and the sky-region constructors."""

from __future__ import annotations

import doctest

import healpy as hp
import numpy as np
import pytest

import sharding.healpix
import sharding.regions
from dms_db.errors import ConfigError, InternalError, NotFoundError, RegionError
from sharding.healpix import (
    FINE_ORDER,
    PixelRange,
    chunk_count,
    chunk_for_position,
    chunk_of_index,
    healpix_index,
    index_range_of_chunk,
    limit_ranges,
    merge_ranges,
    ranges_at_order,
    ranges_of_pixels,
    validate_chunk_order,
)
from sharding.regions import Box, Circle, Polygon, RaDecRange, Region, Union, overlap_chunks


@pytest.mark.parametrize("module", [sharding.healpix, sharding.regions])
def test_module_examples(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted >= 4
    assert result.failed == 0


def test_index_is_int64_nested_order_29() -> None:
    ra = np.array([0.0, 10.0, 200.0, 359.5])
    dec = np.array([0.0, -45.0, 80.0, -89.9])
    index = healpix_index(ra, dec)
    assert index.dtype == np.int64
    expected = hp.ang2pix(2**29, ra, dec, nest=True, lonlat=True)
    np.testing.assert_array_equal(index, expected)
    assert index.max() < 12 * 4**29 < 2**63


def test_ra_is_taken_modulo_360() -> None:
    same = healpix_index([0.0, 360.0, -0.0, 720.0, -360.0], [12.5] * 5)
    assert len(set(same.tolist())) == 1
    assert int(healpix_index(-10.0, 3.0)) == int(healpix_index(350.0, 3.0))
    assert int(healpix_index(-1e-20, 3.0)) == int(healpix_index(0.0, 3.0))
    assert RaDecRange(0.0, 1.0, 0.0, 5.0).contains(-1e-20, 3.0)  # not 360.0 after the modulo


def test_scalar_input_gives_0d_array() -> None:
    index = healpix_index(10.0, 20.0)
    assert isinstance(index, np.ndarray)
    assert index.shape == ()


def test_poles_are_in_the_polar_base_pixels_at_a_corner() -> None:
    north = healpix_index([0.0, 45.0, 135.0, 225.0, 315.0], 90.0)
    south = healpix_index([0.0, 45.0, 135.0, 225.0, 315.0], -90.0)
    assert set(chunk_of_index(north, 0).tolist()) <= {0, 1, 2, 3}
    assert set(chunk_of_index(south, 0).tolist()) <= {8, 9, 10, 11}
    # The north pole is the last (north) corner of base pixels 0-3: its order-29
    # pixel is the last one of the base pixel; the south pole is the first one.
    for index in north.tolist():
        assert index == index_range_of_chunk(index >> 58, 0).stop - 1
    for index in south.tolist():
        assert index == index_range_of_chunk(index >> 58, 0).start


def test_known_base_pixels() -> None:
    chunks = chunk_for_position([45.0, 0.0, 90.0, 180.0, 225.0], [60.0, 0.0, 0.0, -60.0, -60.0], 0)
    assert chunks.tolist() == [0, 4, 5, 10, 10]


@pytest.mark.parametrize(("ra", "dec"), [(np.nan, 0.0), (0.0, np.inf), (0.0, 90.0001), (0.0, -91.0), (np.inf, 0.0)])
def test_invalid_positions_are_rejected(ra: float, dec: float) -> None:
    with pytest.raises(RegionError, match=r"1 position\(s\) are invalid.*index 0"):
        healpix_index(ra, dec)


def test_invalid_positions_message_counts_and_names_the_first() -> None:
    with pytest.raises(RegionError) as info:
        healpix_index([1.0, 2.0, np.nan, 4.0, 5.0], [0.0, 0.0, 0.0, 95.0, 0.0])
    assert "2 position(s)" in info.value.message
    assert "index 2" in info.value.message
    assert info.value.error_type == "RegionError"


def test_chunk_of_index_is_a_shift_and_matches_chunk_for_position() -> None:
    rng = np.random.default_rng(7)
    ra = rng.uniform(0.0, 360.0, 1000)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 1000)))
    index = healpix_index(ra, dec)
    for order in range(13):
        chunks = chunk_for_position(ra, dec, order)
        np.testing.assert_array_equal(chunks, chunk_of_index(index, order))
        np.testing.assert_array_equal(chunks, hp.ang2pix(2**order, ra, dec, nest=True, lonlat=True))


@pytest.mark.parametrize("order", [0, 3, 7, 12])
def test_index_range_of_chunk_contains_the_rows_of_the_chunk(order: int) -> None:
    rng = np.random.default_rng(order)
    ra = rng.uniform(0.0, 360.0, 2000)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 2000)))
    index = healpix_index(ra, dec)
    for chunk, value in zip(chunk_for_position(ra, dec, order).tolist(), index.tolist(), strict=True):
        pixel_range = index_range_of_chunk(chunk, order)
        assert pixel_range.start <= value < pixel_range.stop
        assert type(pixel_range.start) is int
        assert type(pixel_range.stop) is int
        assert pixel_range.stop - pixel_range.start == 4 ** (FINE_ORDER - order)


def test_chunk_ranges_tile_the_sky() -> None:
    ranges = [index_range_of_chunk(chunk, 2) for chunk in range(chunk_count(2))]
    assert merge_ranges(ranges) == [PixelRange(0, 12 * 4**29)]


def test_chunk_count() -> None:
    assert [chunk_count(order) for order in (0, 1, 5, 12)] == [12, 48, 12288, 12 * 4**12]
    assert type(chunk_count(np.int64(3))) is int


@pytest.mark.parametrize("order", [-1, 13, 2.0, "5", True, None])
def test_chunk_order_outside_0_to_12_is_a_config_error(order: object) -> None:
    with pytest.raises(ConfigError, match="chunk order"):
        validate_chunk_order(order)  # type: ignore[arg-type]


def test_nonexistent_chunk() -> None:
    with pytest.raises(NotFoundError, match=r"chunk 48 does not exist at chunk order 1.*0 to 47"):
        index_range_of_chunk(48, 1)
    with pytest.raises(NotFoundError):
        index_range_of_chunk(-1, 1)


def test_pixel_range_holds_python_ints_and_rejects_nonsense() -> None:
    pixel_range = PixelRange(np.int64(3), np.int32(9))  # type: ignore[arg-type]
    assert type(pixel_range.start) is int
    assert type(pixel_range.stop) is int
    assert pixel_range == PixelRange(3, 9)
    for start, stop in [(5, 5), (6, 5), (-1, 3), (0, 12 * 4**29 + 1), (0.5, 3)]:
        with pytest.raises(InternalError):
            PixelRange(start, stop)  # type: ignore[arg-type]


def test_merge_ranges_joins_overlapping_and_adjacent() -> None:
    merged = merge_ranges([PixelRange(10, 20), PixelRange(0, 5), PixelRange(5, 8), PixelRange(15, 30)])
    assert merged == [PixelRange(0, 8), PixelRange(10, 30)]
    assert merge_ranges([]) == []
    assert merge_ranges([PixelRange(0, 100), PixelRange(10, 20)]) == [PixelRange(0, 100)]


def test_ranges_of_pixels_and_at_order() -> None:
    shift = 4 ** (FINE_ORDER - 1)
    assert ranges_of_pixels([3, 1, 2, 7], 1) == [PixelRange(shift, 4 * shift), PixelRange(7 * shift, 8 * shift)]
    assert ranges_at_order([[5, 7], [0, 1], [1, 2]], 1) == [PixelRange(0, 2 * shift), PixelRange(5 * shift, 7 * shift)]


def test_limit_ranges_fills_the_smallest_gaps() -> None:
    ranges = [PixelRange(0, 1), PixelRange(3, 4), PixelRange(100, 101), PixelRange(102, 103)]
    assert limit_ranges(ranges, 4) == ranges
    assert limit_ranges(ranges, 2) == [PixelRange(0, 4), PixelRange(100, 103)]
    assert limit_ranges(ranges, 1) == [PixelRange(0, 103)]
    with pytest.raises(ConfigError):
        limit_ranges(ranges, 0)


# --- region constructors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0.0, -1.0, 90.0001, 180.0])
def test_circle_radius_must_be_in_0_90(radius: float) -> None:
    with pytest.raises(RegionError, match=r"radius must be in \(0, 90\] degrees"):
        Circle(10.0, 20.0, radius)


@pytest.mark.parametrize(("ra", "dec"), [(np.nan, 0.0), (0.0, 91.0), (np.inf, 0.0), ("x", 0.0)])
def test_circle_centre_must_be_a_position(ra: object, dec: object) -> None:
    with pytest.raises(RegionError, match="circle centre"):
        Circle(ra, dec, 1.0)  # type: ignore[arg-type]


def test_circle_normalises_ra_and_is_a_value() -> None:
    assert Circle(360.0, 10.0, 1.0) == Circle(0.0, 10.0, 1.0)
    assert hash(Circle(720.0, 10.0, 1.0)) == hash(Circle(0.0, 10.0, 1.0))
    assert Circle(0.0, 90.0, 90.0).contains([17.0, 0.0, 5.0], [0.0, 0.0, -0.001]).tolist() == [True, True, False]


def test_polygon_needs_three_vertices() -> None:
    with pytest.raises(RegionError, match="at least 3 vertices, got 2"):
        Polygon(((0.0, 0.0), (1.0, 1.0)))


def test_polygon_rejects_repeated_vertices() -> None:
    with pytest.raises(RegionError, match="vertices 3 and 0 coincide") as info:
        Polygon(((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)))
    assert "do not repeat the first vertex" in str(info.value)
    with pytest.raises(RegionError, match="vertices 1 and 2 coincide"):
        Polygon(((0.0, 0.0), (1.0, 0.0), (361.0, 0.0), (1.0, 1.0)))


def test_polygon_rejects_self_intersection() -> None:
    with pytest.raises(RegionError, match="edges 0 and 2 intersect"):
        Polygon(((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0)))  # a bow tie
    with pytest.raises(RegionError, match="intersect"):
        # Vertex 4 touches edge 1 without crossing it: still not a simple polygon.
        Polygon(((0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (1.0, 2.0), (2.0, 1.0), (0.0, 2.0)))


def test_polygon_rejects_degenerate_shapes() -> None:
    with pytest.raises(RegionError, match="degenerate"):
        Polygon(((0.0, 0.0), (1.0, 0.0), (2.0, 0.0)))  # all on one great circle
    with pytest.raises(RegionError, match="folds back"):
        Polygon(((0.0, 0.0), (2.0, 0.0), (1.0, 0.0), (1.0, 1.0)))
    with pytest.raises(RegionError, match=r"\(ra, dec\) pair"):
        Polygon(((0.0, 0.0, 1.0), (1.0, 0.0), (1.0, 1.0)))  # type: ignore[arg-type]
    with pytest.raises(RegionError, match=r"vertex 1 Dec must be in \[-90, 90\]"):
        Polygon(((0.0, 0.0), (1.0, 95.0), (1.0, 1.0)))


def test_polygon_too_large_for_a_hemisphere() -> None:
    with pytest.raises(RegionError, match="too large") as info:
        Polygon(((0.0, 0.0), (120.0, 0.0), (240.0, 0.0)))
    assert "split it" in str(info.value)


def test_polygon_orientation_does_not_matter() -> None:
    square = ((10.0, -1.0), (12.0, -1.0), (12.0, 1.0), (10.0, 1.0))
    ccw, cw = Polygon(square), Polygon(square[::-1])
    ra = np.array([11.0, 13.0, 11.0, 200.0])
    dec = np.array([0.0, 0.0, 1.5, 0.0])
    assert ccw.contains(ra, dec).tolist() == [True, False, False, False]
    np.testing.assert_array_equal(cw.contains(ra, dec), ccw.contains(ra, dec))
    np.testing.assert_array_equal(cw.chunks(6), ccw.chunks(6))


def test_concave_polygon_contains_and_covers() -> None:
    # A "C" opening to the east: the notch is outside, both arms are inside.
    c_shape = Polygon(((0.0, 0.0), (3.0, 0.0), (3.0, 1.0), (1.0, 1.0), (1.0, 2.0), (3.0, 2.0), (3.0, 3.0), (0.0, 3.0)))
    ra = np.array([2.0, 2.0, 2.0, 0.5, 3.5])
    dec = np.array([0.5, 1.5, 2.5, 1.5, 1.5])
    assert c_shape.contains(ra, dec).tolist() == [True, False, True, True, False]
    notch_pixel = int(healpix_index(2.5, 1.5) >> 2 * (FINE_ORDER - 9))
    assert notch_pixel not in set(c_shape.pixels(9).tolist())
    inside = c_shape.contains(ra, dec)
    assert set(chunk_for_position(ra[inside], dec[inside], 9).tolist()) <= set(c_shape.chunks(9).tolist())


def test_straight_vertices_are_allowed() -> None:
    # A vertex in the middle of an edge changes nothing (healpy would refuse it).
    polygon = Polygon(((0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)))
    assert polygon.contains([1.0, 1.0], [1.0, -0.5]).tolist() == [True, False]
    assert polygon.pixels(5).size > 0


@pytest.mark.parametrize(("width", "height"), [(0.0, 1.0), (1.0, -2.0), (180.0, 1.0), (1.0, np.nan)])
def test_box_size_limits(width: float, height: float) -> None:
    with pytest.raises(RegionError, match="box"):
        Box(10.0, 10.0, width, height)


def test_box_edges_are_great_circles() -> None:
    box = Box(0.0, 0.0, 20.0, 20.0)
    # On the equator the sides are meridians; the top edge is a great circle that
    # bulges towards the pole in the middle, so it lies above Dec 10 between corners.
    assert box.contains([0.0, 9.99, 10.01], [0.0, 0.0, 0.0]).tolist() == [True, True, False]
    assert box.contains([0.0, 0.0], [9.99, 10.01]).tolist() == [True, False]
    corner_dec = float(np.degrees(np.arctan(np.tan(np.radians(10.0)) * np.cos(np.radians(10.0)))))
    assert box.contains([9.999, 9.999], [corner_dec - 0.01, corner_dec + 0.01]).tolist() == [True, False]


def test_ra_dec_range_validation() -> None:
    with pytest.raises(RegionError, match=r"ra_min must be in \[0, 360\]") as info:
        RaDecRange(-10.0, 10.0, 0.0, 1.0)
    assert "ra_min > ra_max" in str(info.value)
    with pytest.raises(RegionError, match=r"dec_min .* greater than dec_max"):
        RaDecRange(0.0, 10.0, 5.0, 1.0)
    with pytest.raises(RegionError, match=r"dec_max must be in \[-90, 90\]"):
        RaDecRange(0.0, 10.0, 5.0, 91.0)


def test_ra_dec_range_wraps_through_zero() -> None:
    wrap = RaDecRange(350.0, 10.0, -5.0, 5.0)
    ra = np.array([355.0, 5.0, 0.0, 360.0, 180.0, 349.9, 10.1])
    assert wrap.contains(ra, np.zeros(ra.size)).tolist() == [True, True, True, True, False, False, False]
    everything = RaDecRange(0.0, 360.0, -90.0, 90.0)
    assert everything.contains([0.0, 123.0, 359.999], [-90.0, 0.0, 90.0]).all()
    assert everything.chunks(1).tolist() == list(range(48))
    narrow = RaDecRange(10.0, 10.5, -60.0, 60.0)
    assert narrow.chunks(6).size < chunk_count(6) // 100  # far tighter than the whole strip


def test_union_validation_and_membership() -> None:
    with pytest.raises(RegionError, match="at least one region"):
        Union(())
    with pytest.raises(RegionError, match="member 1 is not a region"):
        Union((Circle(0.0, 0.0, 1.0), "CIRCLE"))  # type: ignore[arg-type]
    union = Union((Circle(0.0, 0.0, 1.0), Circle(180.0, 0.0, 1.0)))
    assert union.contains([0.5, 180.5, 90.0], [0.0, 0.0, 0.0]).tolist() == [True, True, False]
    assert len(union.index_ranges(max_ranges=2)) <= 2


def test_index_ranges_respects_max_ranges() -> None:
    polygon = Polygon(((0.0, 0.0), (30.0, 5.0), (20.0, 40.0), (15.0, 10.0), (5.0, 35.0)))
    for max_ranges in (1, 3, 10, 64, 500):
        ranges = polygon.index_ranges(max_ranges)
        assert 1 <= len(ranges) <= max_ranges
        assert ranges == merge_ranges(ranges)
    with pytest.raises(ConfigError, match="max_ranges"):
        polygon.index_ranges(0)


SQUARE_DEGREE = np.radians(1.0) ** 2


@pytest.mark.parametrize(
    ("region", "area_sq_deg"),
    [
        (Circle(123.4, -56.7, 1e-4), np.pi * 1e-8),
        (Circle(0.0, 90.0, 2.0), np.pi * 4.0),
        (Box(100.0, 60.0, 1.0, 0.5), 0.5),
        (Polygon(((0, 0), (3, 0), (3, 1), (1, 1), (1, 2), (3, 2), (3, 3), (0, 3))), 7.0),
        (RaDecRange(10.0, 11.0, 20.0, 21.0), np.cos(np.radians(20.5))),
        (RaDecRange(359.5, 0.5, -0.5, 0.5), 1.0),
    ],
)
def test_index_ranges_are_tight(region: Region, area_sq_deg: float) -> None:
    # 64 ranges are enough to cover these shapes within 25 % of their area.
    covered = sum(r.stop - r.start for r in region.index_ranges()) * 4 * np.pi / (12 * 4**FINE_ORDER)
    assert area_sq_deg * SQUARE_DEGREE <= covered < 1.25 * area_sq_deg * SQUARE_DEGREE


def test_overlap_chunks_basics() -> None:
    rows, chunks = overlap_chunks([10.0, 20.0], [10.0, 20.0], 5, 0.0)
    assert rows.size == 0
    assert chunks.size == 0
    # A chunk centre is far from every edge for a small margin.
    centre_ra, centre_dec = hp.pix2ang(2**5, 100, nest=True, lonlat=True)
    rows, chunks = overlap_chunks([centre_ra], [centre_dec], 5, 0.01)
    assert rows.size == 0
    # A corner where four chunks meet: the row goes to the other three.
    corner = hp.boundaries(2**5, 100, step=1, nest=True)[:, 0]
    ra, dec = hp.vec2ang(corner, lonlat=True)
    rows, chunks = overlap_chunks(ra, dec, 5, 0.01)
    own = int(chunk_for_position(ra, dec, 5)[0])
    assert rows.tolist() == [0, 0, 0]
    assert own not in chunks.tolist()
    assert set(chunks.tolist()) <= set(hp.get_all_neighbours(2**5, own, nest=True).tolist())
    with pytest.raises(RegionError, match=r"margin must be in \[0, 90\]"):
        overlap_chunks([0.0], [0.0], 5, -1.0)
    with pytest.raises(ConfigError):
        overlap_chunks([0.0], [0.0], 13, 1.0)


def test_the_unit_vector_of_one_position_equals_the_array_version() -> None:
    """Region centres use the scalar helper; it must give the vectors the array helper gives."""
    from sharding.spherical import unit_vector, unit_vectors

    rng = np.random.default_rng(11)
    ra, dec = rng.uniform(0.0, 360.0, 2000), rng.uniform(-90.0, 90.0, 2000)
    one_by_one = np.array([unit_vector(float(a), float(d)) for a, d in zip(ra, dec, strict=True)])
    np.testing.assert_allclose(one_by_one, unit_vectors(ra, dec), rtol=0.0, atol=1e-15)
    np.testing.assert_allclose(unit_vector(0.0, 90.0), [0.0, 0.0, 1.0], rtol=0.0, atol=1e-15)


def test_a_small_cone_inside_one_chunk_is_one_chunk_and_one_on_a_chunk_corner_is_all_it_touches() -> None:
    """The chunk-order shortcut must not drop a chunk that a cone reaches into."""
    chunk_order = 4
    centre_ra, centre_dec = hp.pix2ang(2**chunk_order, 1000, nest=True, lonlat=True)
    assert Circle(float(centre_ra), float(centre_dec), 1 / 60).chunks(chunk_order).tolist() == [1000]
    corner = hp.boundaries(2**chunk_order, 1000, step=1, nest=True)[:, 0]  # a vertex shared by four chunks
    corner_ra, corner_dec = hp.vec2ang(corner, lonlat=True)
    touched = Circle(float(corner_ra[0]), float(corner_dec[0]), 1 / 60).chunks(chunk_order).tolist()
    rng = np.random.default_rng(3)
    bearing, distance = rng.uniform(0, 2 * np.pi, 20000), np.sqrt(rng.uniform(0, 1, 20000)) * (1 / 60)
    ra = corner_ra[0] + distance * np.sin(bearing) / np.cos(np.radians(corner_dec[0]))
    dec = corner_dec[0] + distance * np.cos(bearing)
    reached = set(hp.ang2pix(2**chunk_order, ra, dec, nest=True, lonlat=True).tolist())
    assert len(reached) >= 3 and reached <= set(touched)


def test_a_cone_over_several_chunks_keeps_only_chunks_both_covers_hold() -> None:
    """The chunk order's own cover and the finer one each hold every chunk touched; the answer is their common part."""
    rng = np.random.default_rng(17)
    for _ in range(300):
        chunk_order = int(rng.integers(3, 7))
        ra, dec, radius = float(rng.uniform(0, 360)), float(rng.uniform(-80, 80)), float(rng.uniform(0.2, 4.0))
        circle = Circle(ra, dec, radius)
        coarse = np.asarray(circle._chunk_order_cover(chunk_order), dtype=np.int64).reshape(-1, 2)
        in_coarse = {int(c) for low, high in coarse for c in range(low, high)}
        chunks = set(circle.chunks(chunk_order).tolist())
        assert chunks <= in_coarse
        # Every chunk a point inside the cone falls in is kept.
        bearing, distance = rng.uniform(0, 2 * np.pi, 500), np.sqrt(rng.uniform(0, 1, 500)) * radius * 0.999
        inside_ra = ra + distance * np.sin(bearing) / np.cos(np.radians(dec))
        inside_dec = np.clip(dec + distance * np.cos(bearing), -90, 90)
        centre = hp.ang2vec(ra, dec, lonlat=True)
        within = hp.ang2vec(inside_ra, inside_dec, lonlat=True) @ centre >= np.cos(np.radians(radius))
        touched = hp.ang2pix(2**chunk_order, inside_ra[within], inside_dec[within], nest=True, lonlat=True)
        assert set(touched.tolist()) <= chunks
