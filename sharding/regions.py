"""Sky regions and their HEALPix coverage: which rows a spatial constraint can touch.

A region answers two questions.  :meth:`Region.contains` says exactly which
positions lie inside (geometry on the unit sphere; the truth the tests and the
loader use).  :meth:`Region.pixels`, :meth:`Region.chunks` and
:meth:`Region.index_ranges` say which pixels, chunks and order-29 index ranges
cover it; those are always supersets, so restricting a query to them can never
lose a row.  :func:`overlap_chunks` (defined in :mod:`sharding.healpix`, which it
belongs with) is re-exported here next to the regions that use the same idea.

Examples
--------
>>> circle = Circle(10.0, 20.0, 0.5)
>>> circle.contains([10.0, 10.0], [20.4, 20.6]).tolist()
[True, False]
>>> circle.chunks(3).tolist()
[310, 311]
>>> len(circle.index_ranges(max_ranges=2))
2
>>> c_shape = Polygon(((0, 0), (3, 0), (3, 1), (1, 1), (1, 2), (3, 2), (3, 3), (0, 3)))
>>> c_shape.contains([2, 2], [0.5, 1.5]).tolist()
[True, False]
>>> RaDecRange(350.0, 10.0, -1.0, 1.0).contains([355.0, 20.0], [0.0, 0.0]).tolist()
[True, False]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import healpy as hp
import numpy as np
import numpy.typing as npt

from dms_db.errors import ConfigError, RegionError
from sharding.healpix import (
    FINE_ORDER,
    PixelRange,
    limit_ranges,
    merge_bounds,
    merge_ranges,
    normalized_positions,
    overlap_chunks,
    ranges_at_order,
    validate_chunk_order,
    validate_order,
)
from sharding.spherical import (
    COLLINEAR_SINE,
    DEG,
    angle_between,
    find_crossing_edges,
    gnomonic,
    inverse_gnomonic,
    order_for_resolution,
    pixel_radius,
    points_in_polygon,
    radec_of,
    signed_area,
    tangent_frame,
    triangulate,
    turn_sines,
    unit_vector,
    unit_vectors,
)

MIN_VERTEX_SEPARATION_DEG = 1e-9
"""Polygon vertices closer than this (3.6 micro-arcseconds) count as repeated."""

__all__ = ["Box", "Circle", "Polygon", "RaDecRange", "Region", "Union", "overlap_chunks"]

_QUERY_PAD = 1e-12
"""Radians added to healpy query radii so that rounding can never drop a pixel."""

_HEALPY_MIN_CORNER = 1e-9
"""healpy's ``query_polygon`` refuses corners flatter than 1e-10; keep clear of that."""


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RegionError(f"{what} must be a number of degrees, got {value!r}") from None
    if not math.isfinite(number):
        raise RegionError(f"{what} must be finite, got {number}", hint="give a value in degrees")
    return number


def _position(ra: Any, dec: Any, what: str) -> tuple[float, float]:
    ra_deg, dec_deg = _number(ra, f"{what} RA"), _number(dec, f"{what} Dec")
    if not -90.0 <= dec_deg <= 90.0:
        raise RegionError(f"{what} Dec must be in [-90, 90] degrees, got {dec_deg}")
    return ra_deg % 360.0, dec_deg


def _expand(bounds: np.ndarray) -> np.ndarray:
    """Sorted unique ids of a set of half-open id ranges, without a Python loop."""
    bounds = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
    starts, stops = merge_bounds(bounds[:, 0], bounds[:, 1])
    lengths = stops - starts
    ends = np.cumsum(lengths)
    # Merged ranges are disjoint and sorted, so the expansion needs no np.unique.
    offsets = np.arange(ends[-1] if ends.size else 0, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return np.repeat(starts, lengths) + offsets


COVERAGE_BOUNDARY_PIXELS = 64
"""Fewest pixels along a region's boundary when it is covered for chunks or index ranges."""


CHUNK_TEST_FACT = 256
"""Oversampling when a region's chunks are covered at the chunk order itself (test at order + 8)."""


def _fact(order: int, oversampling: int = 4) -> int:
    """healpy's oversampling for inclusive queries: test pixels ``oversampling`` times finer (at most order 29)."""
    return min(oversampling, 2 ** (FINE_ORDER - order))


class Region(ABC):
    """A region of the sky with exact membership and a conservative HEALPix coverage."""

    @abstractmethod
    def contains(self, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
        """Boolean mask of the positions (degrees) inside the region, boundary included.

        Raises
        ------
        RegionError
            If a position is non-finite or has ``|dec| > 90``.
        """

    @abstractmethod
    def _pixel_ranges(self, order: int) -> np.ndarray:
        """Nested pixel ranges ``[start, stop)`` at ``order`` covering the region, shape ``(k, 2)``."""

    @abstractmethod
    def _boundary_length(self) -> float:
        """Perimeter in radians; it sets how fine a coverage must be to be tight."""

    def _chunk_order_cover(self, chunk_order: int) -> np.ndarray | None:
        """Pixel ranges at the chunk order covering the region, tight enough to tell one inside a chunk.

        None where no such cover is cheap (only a circle has one): the finer cover decides.
        """
        return None

    def _coverage_order(self, max_ranges: int) -> int:
        # About 4 pixels of boundary per wanted range, and at least 64 along the
        # boundary: the cover then exceeds the region by a few per cent of its area
        # (finer orders gain under 8 % for a cone), and healpy's cost grows with the
        # square of this number, which every query pays while planning.
        target = max(COVERAGE_BOUNDARY_PIXELS, 4 * max_ranges)
        return order_for_resolution(self._boundary_length() / target)

    def pixels(self, order: int) -> np.ndarray:
        """Sorted nested pixel ids at ``order`` that together cover the region.

        A superset: every pixel that intersects the region is included, with a
        thin fringe of pixels that only come close.  The result has one entry
        per pixel, so ask for a coarse order for large regions.
        """
        return _expand(self._pixel_ranges(validate_order(order)))

    def chunks(self, chunk_order: int) -> np.ndarray:
        """Sorted unique chunk ids at ``chunk_order`` that can hold a row inside the region."""
        chunk_order = validate_chunk_order(chunk_order)
        # Most searches (cones of arcminutes) lie inside one chunk, which the chunk
        # order's own cover, tested at a fine resolution, tells in microseconds: planning
        # pays this for every query.
        cover = self._chunk_order_cover(chunk_order)
        coarse = None
        if cover is not None:
            coarse = np.asarray(cover, dtype=np.int64).reshape(-1, 2)
            if coarse.shape[0] == 1 and coarse[0, 1] - coarse[0, 0] == 1:
                return coarse[0, :1].copy()
        # Covering at a finer order keeps larger regions from pulling in neighbouring
        # chunks that they only approach.
        order = max(chunk_order, self._coverage_order(1))
        bounds = np.asarray(self._pixel_ranges(order), dtype=np.int64).reshape(-1, 2)
        shift = 2 * (order - chunk_order)
        chunks = _expand(np.stack([bounds[:, 0] >> shift, ((bounds[:, 1] - 1) >> shift) + 1], axis=1))
        # Both covers hold every chunk the region touches, so their common chunks do too,
        # and the chunk order's own is often the tighter one near chunk corners.
        return chunks if coarse is None else np.intersect1d(chunks, _expand(coarse), assume_unique=True)

    def index_ranges(self, max_ranges: int = 64) -> list[PixelRange]:
        """At most ``max_ranges`` merged order-29 ranges covering every row in the region.

        The region is first covered at an order chosen from its perimeter, then
        the smallest gaps between ranges are filled until few enough remain, so
        a B-tree query needs only a handful of range scans.
        """
        if isinstance(max_ranges, bool) or not isinstance(max_ranges, int | np.integer) or max_ranges < 1:
            raise ConfigError(f"max_ranges must be a positive integer, got {max_ranges!r}")
        return limit_ranges(self._fine_ranges(int(max_ranges)), int(max_ranges))

    def _fine_ranges(self, max_ranges: int) -> list[PixelRange]:
        order = self._coverage_order(max_ranges)
        return ranges_at_order(self._pixel_ranges(order), order)


@dataclass(frozen=True)
class Circle(Region):
    """A cap: all positions within ``radius`` degrees of the centre (ADQL CIRCLE).

    The radius must be in (0, 90] degrees.  RA of the centre is stored modulo 360.
    """

    ra: float
    dec: float
    radius: float
    _centre: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ra, dec = _position(self.ra, self.dec, "circle centre")
        radius = _number(self.radius, "circle radius")
        if not 0.0 < radius <= 90.0:
            raise RegionError(
                f"circle radius must be in (0, 90] degrees, got {radius}",
                hint="use a positive radius of at most 90 degrees; cover larger areas with a union",
            )
        object.__setattr__(self, "ra", ra)
        object.__setattr__(self, "dec", dec)
        object.__setattr__(self, "radius", radius)
        object.__setattr__(self, "_centre", unit_vector(ra, dec))

    def contains(self, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
        ra, dec = normalized_positions(ra_deg, dec_deg)
        # Comparing chord lengths stays accurate for tiny radii, unlike 1 - cos; the
        # few-ulp allowance keeps points exactly on the circle (such as the equator
        # for a 90-degree cap at a pole) inside despite rounding.
        diff = unit_vectors(ra, dec) - self._centre
        chord = 2.0 * math.sin(self.radius * DEG / 2.0)
        return np.einsum("...k,...k->...", diff, diff) <= chord * chord * (1.0 + 1e-15)

    def _pixel_ranges(self, order: int, oversampling: int = 4) -> np.ndarray:
        radius = self.radius * DEG * (1.0 + _QUERY_PAD) + _QUERY_PAD
        fact = _fact(order, oversampling)
        return hp.query_disc(2**order, self._centre, radius, inclusive=True, fact=fact, nest=True, return_ranges=True)

    def _chunk_order_cover(self, chunk_order: int) -> np.ndarray | None:
        # Testing at order + 8 costs a few microseconds more than at order + 2 and leaves
        # out the chunks that a small cone's cover would only graze at order + 2.
        return self._pixel_ranges(chunk_order, CHUNK_TEST_FACT)

    def _boundary_length(self) -> float:
        return 2.0 * math.pi * math.sin(self.radius * DEG)


def _checked_vertices(vertices: Any) -> tuple[tuple[float, float], ...]:
    try:
        pairs = [tuple(vertex) for vertex in vertices]
    except TypeError:
        raise RegionError(f"polygon vertices must be (ra, dec) pairs, got {vertices!r}") from None
    if len(pairs) < 3:
        raise RegionError(
            f"a polygon needs at least 3 vertices, got {len(pairs)}", hint="give 3 or more (ra, dec) pairs"
        )
    for k, pair in enumerate(pairs):
        if len(pair) != 2:
            raise RegionError(f"polygon vertex {k} must be an (ra, dec) pair, got {pair!r}")
    return tuple(_position(ra, dec, f"polygon vertex {k}") for k, (ra, dec) in enumerate(pairs))


def _cap_ranges(vectors: np.ndarray, order: int) -> np.ndarray:
    """Coverage of the smallest-ish cap around some vertices (fallback for awkward pieces)."""
    centre = vectors.sum(axis=0)
    centre /= np.linalg.norm(centre)
    radius = float(angle_between(vectors, centre).max()) * (1.0 + _QUERY_PAD) + _QUERY_PAD
    return hp.query_disc(2**order, centre, radius, inclusive=True, fact=_fact(order), nest=True, return_ranges=True)


def _healpy_convex(vectors: np.ndarray) -> bool:
    """True if healpy's ``query_polygon`` accepts these vertices (strictly convex, clear corners)."""
    normals = np.cross(vectors, np.roll(vectors, -1, axis=0))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    turns = np.sum(normals * np.roll(vectors, -2, axis=0), axis=1)
    return bool(np.all(turns > _HEALPY_MIN_CORNER) or np.all(turns < -_HEALPY_MIN_CORNER))


@dataclass(frozen=True)
class Polygon(Region):
    """A spherical polygon with great-circle edges (ADQL POLYGON), convex or concave.

    Vertices are ``(ra, dec)`` degrees in either order: ADQL does not fix the
    orientation, so the polygon is the smaller of the two areas its boundary
    separates.  To make that unambiguous and the geometry exact, every vertex
    must lie within 90 degrees of the vertices' mean direction (the polygon
    fits in a hemisphere); split larger areas into a :class:`Union`.  Edges
    may not cross or touch each other, and consecutive vertices may not
    coincide or fold back on an edge.
    """

    vertices: tuple[tuple[float, float], ...]
    _vectors: np.ndarray = field(init=False, repr=False, compare=False)
    _frame: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False, repr=False, compare=False)
    _plane: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False, compare=False)
    _pieces: tuple[np.ndarray, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        vertices = _checked_vertices(self.vertices)
        vectors = unit_vectors([v[0] for v in vertices], [v[1] for v in vertices])
        n = len(vertices)
        gaps = angle_between(vectors, np.roll(vectors, -1, axis=0))
        repeated = np.flatnonzero(gaps < MIN_VERTEX_SEPARATION_DEG * DEG)
        if repeated.size:
            k = int(repeated[0])
            raise RegionError(
                f"polygon vertices {k} and {(k + 1) % n} coincide",
                hint="remove repeated vertices; do not repeat the first vertex at the end",
            )
        centre = vectors.sum(axis=0)
        norm = float(np.linalg.norm(centre))
        if norm < 1e-9 or float(np.min(vectors @ (centre / norm))) <= 1e-9:
            raise RegionError(
                "polygon is too large: every vertex must lie within 90 degrees of the vertices' mean direction",
                hint="split it into smaller polygons combined with OR",
            )
        centre /= norm
        east, north = tangent_frame(centre)
        px, py, _ = gnomonic(vectors, centre, east, north)
        sines, cosines = turn_sines(px, py)
        flat = np.abs(sines) <= COLLINEAR_SINE
        folds = np.flatnonzero(flat & (cosines < 0.0))
        if folds.size:
            raise RegionError(
                f"polygon is degenerate: its boundary folds back on itself at vertex {int(folds[0])}",
                hint="remove that vertex",
            )
        crossing = find_crossing_edges(px, py)
        if crossing is not None:
            i, j = crossing
            raise RegionError(
                f"polygon edges {i} and {j} intersect (edge k joins vertex k to vertex k + 1)",
                hint="list the vertices in order along the boundary without crossing it",
            )
        corners = np.flatnonzero(~flat)  # vertices in the middle of a straight edge change nothing
        if corners.size < 3:
            raise RegionError("polygon is degenerate: all its vertices lie on one great circle")
        if signed_area(px[corners], py[corners]) < 0.0:
            corners = corners[::-1]
        pieces = [corners] if _healpy_convex(vectors[corners]) else self._convex_pieces(corners, px, py)
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "_vectors", vectors)
        object.__setattr__(self, "_frame", (centre, east, north))
        object.__setattr__(self, "_plane", (px, py))
        object.__setattr__(self, "_pieces", tuple(vectors[piece] for piece in pieces))

    @staticmethod
    def _convex_pieces(corners: np.ndarray, px: np.ndarray, py: np.ndarray) -> list[np.ndarray]:
        # healpy only queries convex polygons; ear clipping in the gnomonic plane
        # yields triangles whose union is exactly the polygon.
        return [corners[list(piece)] for piece in triangulate(px[corners], py[corners])]

    def contains(self, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
        ra, dec = normalized_positions(ra_deg, dec_deg)
        x, y, front = gnomonic(unit_vectors(ra, dec), *self._frame)
        # The polygon lies in the hemisphere in front of the tangent plane, where
        # its edges are straight lines: a planar crossing test is exact there.
        return front & points_in_polygon(x, y, *self._plane)

    def _pixel_ranges(self, order: int) -> np.ndarray:
        parts = [
            hp.query_polygon(2**order, piece, inclusive=True, fact=_fact(order), nest=True, return_ranges=True)
            if len(piece) >= 3 and _healpy_convex(piece)
            else _cap_ranges(piece, order)
            for piece in self._pieces
        ]
        return np.concatenate([np.reshape(part, (-1, 2)) for part in parts])

    def _boundary_length(self) -> float:
        return float(angle_between(self._vectors, np.roll(self._vectors, -1, axis=0)).sum())


@dataclass(frozen=True)
class Box(Region):
    """ADQL BOX: centre, full ``width`` along RA and ``height`` along Dec, great-circle edges.

    Seen in the tangent plane at the centre (east along increasing RA, north
    towards the pole), the box is the rectangle ``|x| <= tan(width / 2)``,
    ``|y| <= tan(height / 2)``: the sides are great circles at angular distance
    ``width / 2`` (``height / 2``) from the centre, perpendicular to the
    centre's parallel (meridian).  Width and height must be in (0, 180)
    degrees.  At a pole, the centre's RA fixes which way is east.
    """

    ra: float
    dec: float
    width: float
    height: float
    _polygon: Polygon = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ra, dec = _position(self.ra, self.dec, "box centre")
        sizes = []
        for name in ("width", "height"):
            size = _number(getattr(self, name), f"box {name}")
            if not 0.0 < size < 180.0:
                raise RegionError(f"box {name} must be in (0, 180) degrees, got {size}")
            sizes.append(size)
        for name, value in (("ra", ra), ("dec", dec), ("width", sizes[0]), ("height", sizes[1])):
            object.__setattr__(self, name, value)
        centre = unit_vectors(ra, dec)
        east, north = tangent_frame(centre)
        half_x, half_y = math.tan(sizes[0] * DEG / 2.0), math.tan(sizes[1] * DEG / 2.0)
        corners = inverse_gnomonic(
            np.array([-half_x, half_x, half_x, -half_x]), np.array([-half_y, -half_y, half_y, half_y]),
            centre, east, north,
        )  # fmt: skip
        corner_ra, corner_dec = radec_of(corners)
        vertices = tuple(zip(corner_ra.tolist(), corner_dec.tolist(), strict=True))
        object.__setattr__(self, "_polygon", Polygon(vertices))

    def contains(self, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
        return self._polygon.contains(ra_deg, dec_deg)

    def _pixel_ranges(self, order: int) -> np.ndarray:
        return self._polygon._pixel_ranges(order)

    def _boundary_length(self) -> float:
        return self._polygon._boundary_length()


@dataclass(frozen=True)
class RaDecRange(Region):
    """``ra BETWEEN ra_min AND ra_max AND dec BETWEEN dec_min AND dec_max`` (degrees).

    Edges are meridians and parallels.  RA bounds lie in [0, 360]; ``ra_min >
    ra_max`` means the range wraps through RA 0 (``350, 10`` is 20 degrees
    wide) and ``0, 360`` is the full circle.  Membership is decided on the
    given RA and Dec, like the SQL predicate (so a row exactly at a pole is
    inside only if its stored RA is in range).
    """

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float
    _width: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = {name: _number(getattr(self, name), name) for name in ("ra_min", "ra_max", "dec_min", "dec_max")}
        for name in ("ra_min", "ra_max"):
            if not 0.0 <= values[name] <= 360.0:
                raise RegionError(
                    f"{name} must be in [0, 360] degrees, got {values[name]}",
                    hint="for a range through RA 0 give ra_min > ra_max, e.g. 350 and 10",
                )
        for name in ("dec_min", "dec_max"):
            if not -90.0 <= values[name] <= 90.0:
                raise RegionError(f"{name} must be in [-90, 90] degrees, got {values[name]}")
        if values["dec_min"] > values["dec_max"]:
            raise RegionError(
                f"dec_min ({values['dec_min']}) is greater than dec_max ({values['dec_max']})",
                hint="swap them",
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)
        ra_min, ra_max = values["ra_min"], values["ra_max"]
        # The same expression as the offset in contains(), so the bounds round alike.
        width = ra_max - ra_min if ra_min <= ra_max else float(np.mod(ra_max - ra_min, 360.0))
        object.__setattr__(self, "_width", width)

    def _ra_offsets(self, ra: np.ndarray) -> np.ndarray:
        """Eastward distance of RA from ``ra_min`` in [0, 360)."""
        return np.mod(ra - self.ra_min, 360.0)

    def contains(self, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
        ra, dec = normalized_positions(ra_deg, dec_deg)
        in_dec = (dec >= self.dec_min) & (dec <= self.dec_max)
        if self._width >= 360.0:
            return in_dec
        return in_dec & (self._ra_offsets(ra) <= self._width)

    def _cap_relation(self, ra: np.ndarray, dec: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Which caps (centre, radius in degrees) may touch the region, and which lie inside it.

        Both tests are conservative in their direction: "touch" errs towards
        True, "inside" towards False.
        """
        touch = (dec - radius <= self.dec_max) & (dec + radius >= self.dec_min)
        inside = (dec - radius >= self.dec_min) & (dec + radius <= self.dec_max)
        if self._width >= 360.0:
            return touch, inside
        has_pole = np.abs(dec) + radius >= 90.0
        # Half the RA extent of a cap that avoids the poles: sin(half) = sin(r) / cos(dec).
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = math.sin(radius * DEG) / np.cos(dec * DEG)
        half = np.degrees(np.arcsin(np.clip(np.where(has_pole, 1.0, ratio), 0.0, 1.0)))
        offset = self._ra_offsets(ra)
        outside_by = np.where(offset <= self._width, 0.0, np.minimum(offset - self._width, 360.0 - offset))
        touch &= has_pole | (outside_by <= half)
        inside &= ~has_pole & (self._ra_offsets(ra - half) + 2.0 * half <= self._width)
        return touch, inside

    def _pixel_ranges(self, order: int) -> np.ndarray:
        # Seed with the Dec strip at a coarse order, then refine only the pixels on
        # the boundary: pixels whose bounding cap lies inside are kept whole, so the
        # work follows the perimeter, not the area, even for very narrow RA ranges.
        start = min(order, 4)
        theta_top = max(0.0, (90.0 - self.dec_max) * DEG - _QUERY_PAD)
        theta_bottom = min(math.pi, (90.0 - self.dec_min) * DEG + _QUERY_PAD)
        candidates = hp.query_strip(2**start, theta_top, theta_bottom, inclusive=True, nest=True)
        parts = []
        for level in range(start, order + 1):
            if level > start:
                candidates = (candidates[:, None] * 4 + np.arange(4)).ravel()
            ra, dec = hp.pix2ang(2**level, candidates, nest=True, lonlat=True)
            touch, inside = self._cap_relation(ra, dec, pixel_radius(level) / DEG)
            whole = candidates[inside]
            shift = 2 * (order - level)
            parts.append(np.stack([whole << shift, (whole + 1) << shift], axis=1))
            candidates = candidates[touch & ~inside]
        parts.append(np.stack([candidates, candidates + 1], axis=1))
        return np.concatenate(parts)

    def _boundary_length(self) -> float:
        parallels = min(self._width, 360.0) * DEG * (math.cos(self.dec_min * DEG) + math.cos(self.dec_max * DEG))
        meridians = 0.0 if self._width >= 360.0 else 2.0 * (self.dec_max - self.dec_min) * DEG
        return parallels + meridians


@dataclass(frozen=True)
class Union(Region):
    """Positions inside any of several regions (an OR of spatial constraints)."""

    regions: tuple[Region, ...]

    def __post_init__(self) -> None:
        regions = tuple(self.regions)
        if not regions:
            raise RegionError("a union needs at least one region")
        for k, region in enumerate(regions):
            if not isinstance(region, Region):
                raise RegionError(f"union member {k} is not a region: {region!r}")
        object.__setattr__(self, "regions", regions)

    def contains(self, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
        inside = self.regions[0].contains(ra_deg, dec_deg)
        for region in self.regions[1:]:
            inside = inside | region.contains(ra_deg, dec_deg)
        return inside

    def _pixel_ranges(self, order: int) -> np.ndarray:
        return np.concatenate([np.reshape(r._pixel_ranges(order), (-1, 2)) for r in self.regions])

    def _boundary_length(self) -> float:
        return sum(region._boundary_length() for region in self.regions)

    def chunks(self, chunk_order: int) -> np.ndarray:
        # Each member at its own coverage order: one tiny member must not force a
        # fine (huge) coverage of a large one.
        ids = np.concatenate([region.chunks(chunk_order) for region in self.regions])
        return _expand(np.stack([ids, ids + 1], axis=1))

    def _fine_ranges(self, max_ranges: int) -> list[PixelRange]:
        return merge_ranges(r for region in self.regions for r in region._fine_ranges(max_ranges))
