"""Geometry helpers for sky regions: unit vectors, the gnomonic plane, planar polygons.

The gnomonic (tangent-plane) projection maps great circles to straight lines, so
a spherical polygon that lies in the open hemisphere around the tangent point
becomes a planar polygon with the same edges.  Orientation, convexity,
self-intersection, point-in-polygon and triangulation are then ordinary, exact
planar tests; :mod:`sharding.regions` relies on that.
"""

from __future__ import annotations

import math

import healpy as hp
import numpy as np
import numpy.typing as npt

DEG = math.pi / 180.0

COLLINEAR_SINE = 1e-12
"""Turns whose sine is below this are treated as straight (or as a spike)."""


def unit_vectors(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
    """Unit vectors with shape ``(..., 3)`` of positions in degrees."""
    ra = np.asarray(ra_deg, dtype=np.float64) * DEG
    dec = np.asarray(dec_deg, dtype=np.float64) * DEG
    cos_dec = np.cos(dec)
    return np.stack(np.broadcast_arrays(cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)), axis=-1)


def unit_vector(ra_deg: float, dec_deg: float) -> np.ndarray:
    """The unit vector, shape ``(3,)``, of one position in degrees (a region's centre, say).

    :func:`unit_vectors` gives the same numbers; for one position plain ``math``
    is several times faster than numpy's array set-up, which planning pays per query.
    """
    ra, dec = ra_deg * DEG, dec_deg * DEG
    cos_dec = math.cos(dec)
    return np.array([cos_dec * math.cos(ra), cos_dec * math.sin(ra), math.sin(dec)])


def radec_of(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RA in [0, 360) and Dec in [-90, 90] of (not necessarily normalised) vectors, in degrees."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    ra = np.mod(np.degrees(np.arctan2(y, x)), 360.0)
    ra = np.where(ra >= 360.0, 0.0, ra)  # mod of a tiny negative angle rounds up to 360.0
    dec = np.clip(np.degrees(np.arctan2(z, np.hypot(x, y))), -90.0, 90.0)
    return ra, dec


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians between vectors; atan2 keeps tiny and near-180 angles accurate."""
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def tangent_frame(centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """East and north unit vectors at ``centre`` (at a pole, east follows RA 90 deg)."""
    ra = math.atan2(centre[1], centre[0])
    east = np.array([-math.sin(ra), math.cos(ra), 0.0])
    north = np.cross(centre, east)
    return east, north / np.linalg.norm(north)


def gnomonic(
    vectors: np.ndarray, centre: np.ndarray, east: np.ndarray, north: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangent-plane coordinates ``(x, y)`` and the mask of vectors in front of the plane.

    Points with ``vectors . centre <= 0`` have no image; their ``x, y`` are NaN.
    """
    depth = vectors @ centre
    front = depth > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(front, (vectors @ east) / depth, np.nan)
        y = np.where(front, (vectors @ north) / depth, np.nan)
    return x, y, front


def inverse_gnomonic(
    x: np.ndarray, y: np.ndarray, centre: np.ndarray, east: np.ndarray, north: np.ndarray
) -> np.ndarray:
    """Unit vectors of tangent-plane points."""
    v = centre + np.multiply.outer(x, east) + np.multiply.outer(y, north)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def pixel_radius(order: int) -> float:
    """Radius in radians of a cap around a pixel centre that contains the whole pixel.

    ``healpy.max_pixrad`` is attained at the corners (checked against densely
    sampled boundaries); the relative pad absorbs rounding.
    """
    return float(hp.max_pixrad(2**order)) * (1.0 + 1e-9) + 1e-15


def order_for_resolution(size_rad: float, max_order: int = 29) -> int:
    """Coarsest order whose pixel size (square root of pixel area) is at most ``size_rad``."""
    ratio = math.sqrt(math.pi / 3.0) / size_rad if size_rad > 0.0 else math.inf
    if ratio >= 2.0**max_order:  # also zero and subnormal sizes, whose ratio overflows
        return max_order
    return math.ceil(math.log2(ratio)) if ratio > 1.0 else 0


def turn_sines(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sine and cosine of the turn at every vertex of a closed planar polygon."""
    dx_in, dy_in = px - np.roll(px, 1), py - np.roll(py, 1)
    dx_out, dy_out = np.roll(px, -1) - px, np.roll(py, -1) - py
    norm = np.hypot(dx_in, dy_in) * np.hypot(dx_out, dy_out)
    return (dx_in * dy_out - dy_in * dx_out) / norm, (dx_in * dx_out + dy_in * dy_out) / norm


def signed_area(px: np.ndarray, py: np.ndarray) -> float:
    """Planar signed area (positive for counter-clockwise vertices)."""
    return 0.5 * float(np.sum(px * np.roll(py, -1) - np.roll(px, -1) * py))


def points_in_polygon(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd crossing test of planar points against a polygon, vectorised over points.

    NaN points (no gnomonic image) come out False.
    """
    inside = np.zeros(np.shape(x), dtype=bool)
    for x1, y1, x2, y2 in zip(px, py, np.roll(px, -1), np.roll(py, -1), strict=True):
        straddles = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= straddles & (x < x_cross)
    return inside


def _orientation(ax, ay, bx, by, cx, cy) -> np.ndarray:
    """Sign (-1, 0, 1) of the turn a -> b -> c, zero when nearly collinear."""
    ux, uy, vx, vy = bx - ax, by - ay, cx - ax, cy - ay
    cross = ux * vy - uy * vx
    scale = np.hypot(ux, uy) * np.hypot(vx, vy)
    return np.where(np.abs(cross) <= COLLINEAR_SINE * scale, 0, np.sign(cross))


def find_crossing_edges(px: np.ndarray, py: np.ndarray) -> tuple[int, int] | None:
    """First pair of non-adjacent edges that touch or cross, or None for a simple polygon.

    Edge ``i`` runs from vertex ``i`` to vertex ``i + 1`` (cyclically).
    """
    n = px.size
    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))  # the last edge is adjacent to the first
    i, j = i[keep], j[keep]
    ax, ay, bx, by = px[i], py[i], px[(i + 1) % n], py[(i + 1) % n]
    cx, cy, dx, dy = px[j], py[j], px[(j + 1) % n], py[(j + 1) % n]
    o1 = _orientation(ax, ay, bx, by, cx, cy)
    o2 = _orientation(ax, ay, bx, by, dx, dy)
    o3 = _orientation(cx, cy, dx, dy, ax, ay)
    o4 = _orientation(cx, cy, dx, dy, bx, by)
    meet = (o1 * o2 <= 0) & (o3 * o4 <= 0)
    # Collinear edges only meet if their extents overlap.
    collinear = (o1 == 0) & (o2 == 0)
    extents_overlap = (
        (np.minimum(ax, bx) <= np.maximum(cx, dx))
        & (np.minimum(cx, dx) <= np.maximum(ax, bx))
        & (np.minimum(ay, by) <= np.maximum(cy, dy))
        & (np.minimum(cy, dy) <= np.maximum(ay, by))
    )
    bad = np.flatnonzero(meet & (~collinear | extents_overlap))
    if bad.size == 0:
        return None
    return int(i[bad[0]]), int(j[bad[0]])


def triangulate(px: np.ndarray, py: np.ndarray) -> list[tuple[int, ...]]:
    """Ear-clip a simple counter-clockwise planar polygon into triangles (vertex indexes).

    If rounding leaves no clean ear, the remaining vertices are returned as one
    last piece of more than three vertices; callers cover such a piece by its
    enclosing circle.
    """
    remaining = list(range(px.size))
    pieces: list[tuple[int, ...]] = []
    while len(remaining) > 3:
        for k in range(len(remaining)):
            a, b, c = remaining[k - 1], remaining[k], remaining[(k + 1) % len(remaining)]
            if _orientation(px[a], py[a], px[b], py[b], px[c], py[c]) <= 0:
                continue  # reflex or flat corner: not an ear
            others = np.array([v for v in remaining if v not in (a, b, c)])
            ox, oy = px[others], py[others]
            in_ear = (
                (_orientation(px[a], py[a], px[b], py[b], ox, oy) >= 0)
                & (_orientation(px[b], py[b], px[c], py[c], ox, oy) >= 0)
                & (_orientation(px[c], py[c], px[a], py[a], ox, oy) >= 0)
            )
            if not in_ear.any():
                pieces.append((a, b, c))
                del remaining[k]
                break
        else:
            break
    pieces.append(tuple(remaining))
    return pieces
