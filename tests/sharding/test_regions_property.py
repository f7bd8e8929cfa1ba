"""Property tests: region coverage never misses a point inside, and membership is exact.

Each example draws a region and a few hundred points biased to lie inside it,
near its boundary (down to 1e-12 relative offsets) and near its vertices, then
checks every point that :meth:`Region.contains` accepts against the region's
order-29 index ranges, pixels and chunks.  Membership itself is compared with an
independent computation (haversine distance, half-spaces of the edges, the
tangent-plane rectangle of a box, plain RA/Dec comparisons).
"""

from __future__ import annotations

import healpy as hp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharding.healpix import FINE_ORDER, PixelRange, chunk_for_position, healpix_index, overlap_chunks
from sharding.regions import Box, Circle, Polygon, RaDecRange, Region, Union

SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
POINTS = 300

# --- geometry written independently of sharding.spherical ---------------------------------------------------


def to_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def to_radec(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    ra = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    return ra, np.degrees(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))


def frame(ra: float, dec: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, east and north unit vectors (east follows the RA of the centre at a pole)."""
    a, d = np.radians(ra), np.radians(dec)
    centre = np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    east = np.array([-np.sin(a), np.cos(a), 0.0])
    north = np.array([-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)])
    return centre, east, north


def from_plane(x: np.ndarray, y: np.ndarray, ra: float, dec: float) -> tuple[np.ndarray, np.ndarray]:
    centre, east, north = frame(ra, dec)
    return to_radec(centre + np.multiply.outer(x, east) + np.multiply.outer(y, north))


def haversine_deg(ra1: np.ndarray, dec1: np.ndarray, ra2: float, dec2: float) -> np.ndarray:
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec1 - dec2) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra1 - ra2) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def offset_points(
    rng: np.random.Generator, ra: float, dec: float, distance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points at the given angular distances (degrees) from a centre, in random directions."""
    bearing = rng.uniform(0.0, 2 * np.pi, distance.size)
    t = np.tan(np.radians(np.minimum(distance, 89.999999)))
    return from_plane(t * np.cos(bearing), t * np.sin(bearing), ra, dec)


# --- what every region must satisfy --------------------------------------------------------------------------


def in_ranges(index: np.ndarray, ranges: list[PixelRange]) -> np.ndarray:
    starts = np.array([r.start for r in ranges], dtype=np.int64)
    stops = np.array([r.stop for r in ranges], dtype=np.int64)
    slot = np.searchsorted(starts, index, side="right") - 1
    return (slot >= 0) & (index < stops[np.maximum(slot, 0)])


def in_sorted(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Membership in a sorted array (np.isin is slow on millions of ids)."""
    if sorted_ids.size == 0:
        return np.zeros(values.shape, dtype=bool)
    slot = np.minimum(np.searchsorted(sorted_ids, values), sorted_ids.size - 1)
    return sorted_ids[slot] == values


def assert_covers(region: Region, ra: np.ndarray, dec: np.ndarray, chunk_orders: list[int], order: int) -> None:
    inside = region.contains(ra, dec)
    ra, dec = ra[inside], dec[inside]
    index = healpix_index(ra, dec)
    ranges = region.index_ranges()
    assert len(ranges) <= 64
    missed = ~in_ranges(index, ranges)
    assert not missed.any(), f"{region} index_ranges miss ({ra[missed][0]!r}, {dec[missed][0]!r})"
    for chunk_order in chunk_orders:
        chunks = region.chunks(chunk_order)
        assert np.all(np.diff(chunks) > 0)
        missed = ~in_sorted(chunk_for_position(ra, dec, chunk_order), chunks)
        assert not missed.any(), f"{region} chunks({chunk_order}) miss ({ra[missed][0]!r}, {dec[missed][0]!r})"
    pixels = region.pixels(order)
    assert np.all(np.diff(pixels) > 0)
    missed = ~in_sorted(index >> 2 * (FINE_ORDER - order), pixels)
    assert not missed.any(), f"{region} pixels({order}) miss ({ra[missed][0]!r}, {dec[missed][0]!r})"


def assert_same_membership(got: np.ndarray, truth: np.ndarray, ambiguous: np.ndarray) -> None:
    """Exact agreement except where the truth is within rounding of the boundary."""
    differ = (got != truth) & ~ambiguous
    assert not differ.any(), f"membership differs at {np.flatnonzero(differ)[:5]}"


# --- strategies ---------------------------------------------------------------------------------------------

seeds = st.integers(0, 2**32 - 1)
chunk_orders = st.lists(st.integers(0, 9), min_size=1, max_size=3, unique=True)
special_ra = st.sampled_from([0.0, 1e-9, 359.9999999, 360.0 - 1e-12, 180.0, 90.0])
any_ra = st.one_of(st.floats(0.0, 360.0), special_ra)
special_dec = st.sampled_from([90.0, -90.0, 89.9999, -89.9999, 89.0, 0.0])
any_dec = st.one_of(st.floats(-90.0, 90.0), special_dec)
log_size = st.floats(-4.0, np.log10(90.0)).map(lambda e: min(float(10.0**e), 90.0))


def coarse_order(size_deg: float) -> int:
    """An order at which the pixel count of a region this size stays small."""
    return int(np.clip(np.floor(np.log2(58.6 / max(size_deg, 1e-9))) - 1, 0, 20))


@settings(max_examples=600, **SETTINGS)
@given(any_ra, any_dec, st.one_of(log_size, st.just(90.0)), seeds, chunk_orders)
def test_circle(ra: float, dec: float, radius: float, seed: int, orders: list[int]) -> None:
    rng = np.random.default_rng(seed)
    circle = Circle(ra, dec, radius)
    near_edge = radius * (1.0 + rng.choice([-1, 1], POINTS // 2) * 10.0 ** rng.uniform(-12, -1, POINTS // 2))
    distance = np.concatenate([radius * rng.uniform(0.0, 1.2, POINTS // 2), near_edge])
    pra, pdec = offset_points(rng, ra, dec, distance)
    truth = haversine_deg(pra, pdec, ra, dec)
    got = circle.contains(pra, pdec)
    assert_same_membership(got, truth <= radius, np.abs(truth - radius) <= 1e-9 * max(radius, 1e-2))
    assert_covers(circle, pra, pdec, orders, coarse_order(radius))


def star_polygon(
    rng: np.random.Generator, ra: float, dec: float, size: float, convex: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices in the tangent plane at (ra, dec), sorted by angle: star-shaped about the origin."""
    n = int(rng.integers(3, 13))
    gaps = rng.uniform(1.0, 1.8, n)  # every angular gap < 180 deg keeps the origin inside
    angle = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(gaps) / gaps.sum()
    radius = np.tan(np.radians(size)) * (np.ones(n) if convex else rng.uniform(0.2, 1.0, n))
    return radius * np.cos(angle), radius * np.sin(angle), angle, radius


def star_membership(x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inside test by sector + half-plane (not a crossing count), and a near-boundary mask."""
    n = vx.size
    inside = np.zeros(x.size, dtype=bool)
    margin = np.full(x.size, np.inf)
    for i in range(n):
        ax, ay, bx, by = vx[i], vy[i], vx[(i + 1) % n], vy[(i + 1) % n]
        in_sector = (ax * y - ay * x >= 0) & (x * by - y * bx >= 0)
        side = ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) / np.hypot(bx - ax, by - ay)
        inside |= in_sector & (side >= 0)
        margin = np.minimum(margin, np.where(in_sector, np.abs(side), np.inf))
    return inside, margin


def polygon_points(
    rng: np.random.Generator, vx: np.ndarray, vy: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Plane points: a spread around the polygon, on its edges, and next to its vertices."""
    k = POINTS // 3
    spread = rng.uniform(-1.2 * scale, 1.2 * scale, (2, k))
    edge = rng.integers(0, vx.size, k)
    t = rng.uniform(0, 1, k)
    nx, ny = np.roll(vx, -1)[edge] - vx[edge], np.roll(vy, -1)[edge] - vy[edge]
    wiggle = rng.choice([-1, 1], k) * 10.0 ** rng.uniform(-12, -2, k)
    on_edge = np.stack([vx[edge] + t * nx - wiggle * ny, vy[edge] + t * ny + wiggle * nx])
    corner = rng.integers(0, vx.size, k)
    at_vertex = np.stack([vx[corner], vy[corner]]) + scale * 10.0 ** rng.uniform(-9, -2, k) * rng.normal(size=(2, k))
    points = np.concatenate([spread, on_edge, at_vertex], axis=1)
    return points[0], points[1]


@settings(max_examples=500, **SETTINGS)
@given(any_ra, any_dec, st.floats(-4.0, np.log10(40.0)), st.booleans(), st.booleans(), seeds, chunk_orders)
def test_polygon(
    ra: float, dec: float, log_size_: float, convex: bool, reverse: bool, seed: int, orders: list[int]
) -> None:
    rng = np.random.default_rng(seed)
    size = 10.0**log_size_
    vx, vy, _, _ = star_polygon(rng, ra, dec, size, convex)
    vra, vdec = from_plane(vx, vy, ra, dec)
    vertices = tuple(zip(vra.tolist(), vdec.tolist(), strict=True))
    polygon = Polygon(vertices[::-1] if reverse else vertices)
    px, py = polygon_points(rng, vx, vy, np.tan(np.radians(size)))
    pra, pdec = from_plane(px, py, ra, dec)
    # Re-project the points as stored (degrees), so truth and code see the same positions.
    centre, east, north = frame(ra, dec)
    v = to_vectors(pra, pdec)
    depth = v @ centre
    truth, margin = star_membership((v @ east) / depth, (v @ north) / depth, vx, vy)
    got = polygon.contains(pra, pdec)
    assert_same_membership(got, truth, margin <= 1e-9 * np.tan(np.radians(size)))
    assert_covers(polygon, pra, pdec, orders, coarse_order(size))


@settings(max_examples=400, **SETTINGS)
@given(any_ra, any_dec, log_size, log_size, seeds, chunk_orders)
def test_box(ra: float, dec: float, width: float, height: float, seed: int, orders: list[int]) -> None:
    rng = np.random.default_rng(seed)
    box = Box(ra, dec, width, height)
    hx, hy = np.tan(np.radians(width / 2)), np.tan(np.radians(height / 2))
    k = POINTS // 2
    u, w = rng.uniform(-1.2, 1.2, (2, k))
    side = rng.choice([-1.0, 1.0], (2, k)) * (1.0 + rng.choice([-1, 1], (2, k)) * 10.0 ** rng.uniform(-12, -1, (2, k)))
    along = rng.uniform(-1.05, 1.05, k)
    vertical = rng.random(k) < 0.5
    bx = np.concatenate([u, np.where(vertical, side[0], along)]) * hx
    by = np.concatenate([w, np.where(vertical, along, side[1])]) * hy
    pra, pdec = from_plane(bx, by, ra, dec)
    centre, east, north = frame(ra, dec)
    v = to_vectors(pra, pdec)
    x, y = (v @ east) / (v @ centre), (v @ north) / (v @ centre)
    truth = (np.abs(x) <= hx) & (np.abs(y) <= hy)
    ambiguous = (np.abs(np.abs(x) - hx) <= 1e-9 * hx) | (np.abs(np.abs(y) - hy) <= 1e-9 * hy)
    assert_same_membership(box.contains(pra, pdec), truth, ambiguous)
    assert_covers(box, pra, pdec, orders, coarse_order(min(width, height)))


def ra_distance(ra: np.ndarray, bound: float) -> np.ndarray:
    d = np.abs(ra - bound) % 360.0
    return np.minimum(d, 360.0 - d)


ra_bound = st.one_of(st.floats(0.0, 360.0), st.sampled_from([0.0, 360.0, 359.99, 0.01]))
dec_bound = st.one_of(st.floats(-90.0, 90.0), st.sampled_from([-90.0, 90.0, 89.999, -89.999]))


@settings(max_examples=400, **SETTINGS)
@given(ra_bound, ra_bound, dec_bound, dec_bound, st.floats(-4.0, 2.0), seeds, chunk_orders)
def test_ra_dec_range(
    ra_a: float, ra_b: float, dec_a: float, dec_b: float, log_dec_span: float, seed: int, orders: list[int]
) -> None:
    rng = np.random.default_rng(seed)
    if rng.random() < 0.5:  # many narrow ranges, not only the wide ones two uniform draws give
        ra_b = (ra_a + 10.0 ** rng.uniform(-4, 2)) % 360.0
        dec_b = float(np.clip(dec_a + 10.0**log_dec_span, -90.0, 90.0))
    dec_min, dec_max = min(dec_a, dec_b), max(dec_a, dec_b)
    region = RaDecRange(ra_a, ra_b, dec_min, dec_max)
    width = ra_b - ra_a if ra_a <= ra_b else ra_b + 360.0 - ra_a
    k = POINTS // 3
    pad_ra, pad_dec = 0.1 * width + 1e-6, 0.1 * (dec_max - dec_min) + 1e-6
    spread_ra = ra_a + rng.uniform(-pad_ra, width + pad_ra, k)
    spread_dec = rng.uniform(dec_min - pad_dec, dec_max + pad_dec, k)
    edge_ra = rng.choice([ra_a, ra_b], k) + rng.choice([-1, 0, 1], k) * 10.0 ** rng.uniform(-12, -3, k)
    edge_dec = rng.choice([dec_min, dec_max], k) + rng.choice([-1, 0, 1], k) * 10.0 ** rng.uniform(-12, -3, k)
    pra = np.concatenate([spread_ra, edge_ra, ra_a + rng.uniform(0, width, k)]) % 360.0
    pdec = np.clip(np.concatenate([spread_dec, rng.uniform(dec_min, dec_max, k), edge_dec]), -90.0, 90.0)
    in_ra = (pra >= ra_a) & (pra <= ra_b) if ra_a <= ra_b else (pra >= ra_a) | (pra <= ra_b)
    if ra_b == 360.0:
        in_ra |= pra == 0.0
    truth = in_ra & (pdec >= dec_min) & (pdec <= dec_max)
    ambiguous = (np.minimum(ra_distance(pra, ra_a), ra_distance(pra, ra_b)) <= 1e-9) | (
        np.minimum(np.abs(pdec - dec_min), np.abs(pdec - dec_max)) <= 1e-9
    )
    assert_same_membership(region.contains(pra, pdec), truth, ambiguous)
    size = min(width * np.cos(np.radians(max(abs(dec_min), abs(dec_max)))) + 1e-9, dec_max - dec_min + 1e-9)
    assert_covers(region, pra, pdec, orders, coarse_order(max(size, 0.01)))


@settings(max_examples=200, **SETTINGS)
@given(
    st.lists(
        st.tuples(any_ra, any_dec, log_size, st.sampled_from(["circle", "box", "polygon"])), min_size=1, max_size=4
    ),
    seeds,
    chunk_orders,
)
def test_union(members: list[tuple[float, float, float, str]], seed: int, orders: list[int]) -> None:
    rng = np.random.default_rng(seed)
    regions: list[Region] = []
    pra, pdec = [], []
    for ra, dec, size, kind in members:
        size = min(size, 40.0)
        if kind == "circle":
            regions.append(Circle(ra, dec, size))
        elif kind == "box":
            regions.append(Box(ra, dec, size, size / 2))
        else:
            vx, vy, _, _ = star_polygon(rng, ra, dec, size, convex=False)
            vra, vdec = from_plane(vx, vy, ra, dec)
            regions.append(Polygon(tuple(zip(vra.tolist(), vdec.tolist(), strict=True))))
        a, d = offset_points(rng, ra, dec, size * rng.uniform(0, 1.3, 100))
        pra.append(a)
        pdec.append(d)
    union = Union(tuple(regions))
    ra_all, dec_all = np.concatenate(pra), np.concatenate(pdec)
    expected = np.zeros(ra_all.size, dtype=bool)
    for region in regions:
        expected |= region.contains(ra_all, dec_all)
    np.testing.assert_array_equal(union.contains(ra_all, dec_all), expected)
    assert_covers(union, ra_all, dec_all, orders, coarse_order(max(m[2] for m in members)))


# --- overlap chunks ---------------------------------------------------------------------------------------


def chunks_within(ra: float, dec: float, margin: float, chunk_order: int) -> set[int]:
    """Brute force: chunks hit by dense samples of the disc, plus chunks whose centre is inside."""
    nside = 2**chunk_order
    chunk_size = np.degrees(hp.nside2resol(nside))
    samples = int(np.clip(40 * margin / chunk_size * 2 * np.pi, 64, 4000))
    bearing = np.linspace(0.0, 2 * np.pi, samples, endpoint=False)
    found: set[int] = set()
    for fraction in (1.0, 0.999999, 0.75, 0.5, 0.25):
        t = np.tan(np.radians(margin * fraction))
        a, d = from_plane(t * np.cos(bearing), t * np.sin(bearing), ra, dec)
        found.update(hp.ang2pix(nside, a, d, nest=True, lonlat=True).tolist())
    centre = to_vectors(np.array(ra), np.array(dec))
    found.update(hp.query_disc(nside, centre, np.radians(margin), inclusive=False, nest=True).tolist())
    return found


@settings(max_examples=250, **SETTINGS)
@given(st.integers(0, 9), st.floats(-4.0, 0.5), seeds)
def test_overlap_chunks_never_misses(chunk_order: int, log_margin: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    margin = 10.0**log_margin
    nside = 2**chunk_order
    # Points near chunk corners and edges (where overlap happens), and anywhere.
    chunk = rng.integers(0, 12 * nside**2, 12)
    boundary = hp.boundaries(nside, chunk, step=4, nest=True)  # (12, 3, 16)
    picks = boundary[np.arange(12), :, rng.integers(0, 16, 12)]
    cra, cdec = hp.vec2ang(picks, lonlat=True)
    near_ra, near_dec = [], []
    for a, d in zip(cra, cdec, strict=True):
        na, nd = offset_points(rng, a, d, margin * rng.uniform(0.0, 2.0, 2))
        near_ra.append(na)
        near_dec.append(nd)
    ra = np.concatenate([*near_ra, rng.uniform(0, 360, 6)])
    dec = np.concatenate([*near_dec, np.degrees(np.arcsin(rng.uniform(-1, 1, 6)))])
    rows, chunks = overlap_chunks(ra, dec, chunk_order, margin)
    assert np.all(np.diff(rows) >= 0)
    own = chunk_for_position(ra, dec, chunk_order)
    assert not np.any(chunks == own[rows])
    for row in range(ra.size):
        truth = chunks_within(ra[row], dec[row], margin, chunk_order) - {int(own[row])}
        got = set(chunks[rows == row].tolist())
        assert truth <= got, f"row ({ra[row]!r}, {dec[row]!r}) margin {margin}: missing {truth - got}"


def test_overlap_of_rows_far_from_edges_is_empty_and_not_loose() -> None:
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 20000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 20000)))
    margin = 0.05
    rows, chunks = overlap_chunks(ra, dec, 6, margin)
    # Every reported chunk is genuinely near: within 2 margins of the row.
    for row, chunk in zip(rows[:500].tolist(), chunks[:500].tolist(), strict=True):
        near = hp.query_disc(2**6, to_vectors(ra[row], dec[row]), np.radians(2 * margin), inclusive=True, nest=True)
        assert chunk in near.tolist()
    # About (perimeter * 2 * margin) / chunk area of the rows are near an edge; far
    # fewer than all rows, far more than none.
    assert 0.05 * ra.size < np.unique(rows).size < 0.6 * ra.size
