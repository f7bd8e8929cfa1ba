"""HEALPix indexing of positions: the order-29 row index, chunks, index ranges, overlap.

Every partitioned row stores the nested HEALPix index of its director's position
at :data:`FINE_ORDER` (a signed 64-bit integer).  Because the nested scheme is a
space-filling curve, the order-29 indexes under any coarser pixel form one
contiguous interval; a chunk is one pixel at the catalog's chunk order, and a
sky region becomes a short list of :class:`PixelRange` that a B-tree answers.
:func:`overlap_chunks` finds the neighbouring chunks whose overlap partitions
receive a copy of a director row.

Examples
--------
>>> [int(c) for c in chunk_for_position([45.0, 0.0, 180.0], [60.0, 0.0, -60.0], 0)]
[0, 4, 10]
>>> int(healpix_index(360.0, 10.0)) == int(healpix_index(0.0, 10.0))
True
>>> index_range_of_chunk(1, 0)
PixelRange(start=288230376151711744, stop=576460752303423488)
>>> merge_ranges([PixelRange(10, 20), PixelRange(0, 5), PixelRange(5, 8)])
[PixelRange(start=0, stop=8), PixelRange(start=10, stop=20)]
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass

import healpy as hp
import numpy as np
import numpy.typing as npt

from dms_db.errors import ConfigError, InternalError, NotFoundError, RegionError
from sharding.spherical import DEG, pixel_radius

FINE_ORDER = 29
"""Order of the per-row nested index: the finest that fits a signed 64-bit integer."""

MAX_CHUNK_ORDER = 12
"""Finest allowed chunk order (201 million chunks of about 0.0002 square degrees)."""

_FINE_PIXELS = 12 * 4**FINE_ORDER

ArrayLike = npt.ArrayLike


@dataclass(frozen=True)
class PixelRange:
    """A half-open range ``[start, stop)`` of order-29 nested HEALPix indexes.

    In SQL it becomes ``index >= start AND index < stop`` (a B-tree range scan).
    Both fields are plain Python ``int`` so that they bind to SQL without numpy
    types leaking out of this module.
    """

    start: int
    stop: int

    def __post_init__(self) -> None:
        try:
            start, stop = operator.index(self.start), operator.index(self.stop)
        except TypeError as exc:
            raise InternalError(f"PixelRange bounds must be integers, got {self!r}") from exc
        if not 0 <= start < stop <= _FINE_PIXELS:
            raise InternalError(f"PixelRange needs 0 <= start < stop <= 12 * 4**29, got {self!r}")
        object.__setattr__(self, "start", int(start))
        object.__setattr__(self, "stop", int(stop))


def validate_order(order: int, *, max_order: int = FINE_ORDER, what: str = "HEALPix order") -> int:
    """Return ``order`` as an ``int`` after checking it lies in ``0..max_order``.

    Raises
    ------
    ConfigError
        If ``order`` is not an integer in the allowed range.
    """
    if isinstance(order, bool) or not isinstance(order, int | np.integer):
        raise ConfigError(f"{what} must be an integer, got {order!r}", hint=f"use a whole number from 0 to {max_order}")
    if not 0 <= order <= max_order:
        raise ConfigError(f"{what} must be in 0..{max_order}, got {order}", hint="pick a value in range")
    return int(order)


def validate_chunk_order(order: int) -> int:
    """Check a catalog's chunk order (0..12) and return it as an ``int``.

    Order 12 already means 201 million chunks; anything finer would make chunks
    far smaller than the ~10^5 rows a chunk is meant to hold.

    Raises
    ------
    ConfigError
        If ``order`` is not an integer in 0..12.
    """
    return validate_order(order, max_order=MAX_CHUNK_ORDER, what="chunk order")


def chunk_count(chunk_order: int) -> int:
    """Number of chunks (HEALPix pixels) on the whole sky at ``chunk_order``."""
    return 12 * 4 ** validate_chunk_order(chunk_order)


def normalized_positions(ra_deg: ArrayLike, dec_deg: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast positions to float arrays with RA in [0, 360), or raise on bad values.

    Raises
    ------
    RegionError
        Naming how many positions are bad and the first one, so a loader can
        point at the offending row.
    """
    ra, dec = np.broadcast_arrays(np.asarray(ra_deg, dtype=np.float64), np.asarray(dec_deg, dtype=np.float64))
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0))
    if bad.any():
        flat = np.flatnonzero(bad.ravel())
        first = int(flat[0])
        raise RegionError(
            f"{flat.size} position(s) are invalid (non-finite, or Dec outside [-90, 90] degrees); "
            f"the first is at index {first}: ra={ra.ravel()[first]!r}, dec={dec.ravel()[first]!r}",
            hint="positions must be finite degrees with -90 <= dec <= 90",
        )
    # np.mod maps -0.0 and 360.0 to 0.0, so equal directions get equal indexes; a
    # tiny negative RA would round up to 360.0, which is folded back to 0.0 too.
    ra = np.mod(ra, 360.0)
    return np.where(ra >= 360.0, 0.0, ra), dec


def healpix_index(ra_deg: ArrayLike, dec_deg: ArrayLike) -> np.ndarray:
    """Order-29 nested HEALPix index of positions, as ``int64`` (the per-row index).

    Parameters
    ----------
    ra_deg, dec_deg
        ICRS right ascension and declination in degrees, scalars or arrays that
        broadcast together.  RA is taken modulo 360.

    Returns
    -------
    numpy.ndarray
        ``int64`` indexes with the broadcast shape (0-d for scalar input).

    Raises
    ------
    RegionError
        If any coordinate is non-finite or a declination is outside [-90, 90].
    """
    ra, dec = normalized_positions(ra_deg, dec_deg)
    return np.asarray(hp.ang2pix(2**FINE_ORDER, ra, dec, nest=True, lonlat=True), dtype=np.int64)


def chunk_of_index(index: ArrayLike, chunk_order: int) -> np.ndarray:
    """Chunk id (pixel at ``chunk_order``) of order-29 indexes: a right shift in the nested scheme."""
    order = validate_chunk_order(chunk_order)
    return np.right_shift(np.asarray(index, dtype=np.int64), 2 * (FINE_ORDER - order))


def chunk_for_position(ra_deg: ArrayLike, dec_deg: ArrayLike, chunk_order: int) -> np.ndarray:
    """Chunk id of positions at ``chunk_order`` (``int64``), consistent with :func:`healpix_index`."""
    order = validate_chunk_order(chunk_order)
    return chunk_of_index(healpix_index(ra_deg, dec_deg), order)


def index_range_of_chunk(chunk_id: int, chunk_order: int) -> PixelRange:
    """The order-29 indexes of all rows of one chunk.

    Raises
    ------
    NotFoundError
        If ``chunk_id`` does not exist at ``chunk_order``.
    """
    order = validate_chunk_order(chunk_order)
    chunk = operator.index(chunk_id)
    if not 0 <= chunk < 12 * 4**order:
        raise NotFoundError(
            f"chunk {chunk} does not exist at chunk order {order}",
            hint=f"chunk ids at order {order} run from 0 to {12 * 4**order - 1}",
        )
    shift = 2 * (FINE_ORDER - order)
    return PixelRange(chunk << shift, (chunk + 1) << shift)


def merge_bounds(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort half-open ranges given as start and stop arrays; join those that overlap or touch.

    The array form of :func:`merge_ranges`, without a Python loop.
    """
    if starts.size == 0:
        return starts, stops
    order = np.argsort(starts, kind="stable")
    starts, stops = starts[order], stops[order]
    reach = np.maximum.accumulate(stops)
    # A range opens a new merged range when it starts beyond everything before it.
    opens = np.ones(starts.size, dtype=bool)
    opens[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(opens)
    last = np.append(first[1:] - 1, starts.size - 1)
    return starts[first], reach[last]


def ranges_at_order(bounds: ArrayLike, order: int) -> list[PixelRange]:
    """Merged order-29 ranges of nested pixel ranges ``[start, stop)`` given at ``order``.

    ``bounds`` has shape ``(k, 2)``, as returned by healpy queries with
    ``return_ranges=True``; overlapping or unsorted input is fine.
    """
    order = validate_order(order)
    pairs = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
    shift = 2 * (FINE_ORDER - order)
    return _to_ranges(*merge_bounds(pairs[:, 0] << shift, pairs[:, 1] << shift))


def _to_ranges(starts: np.ndarray, stops: np.ndarray) -> list[PixelRange]:
    return [PixelRange(int(a), int(b)) for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]


def merge_ranges(ranges: Iterable[PixelRange]) -> list[PixelRange]:
    """Sort ranges and join the ones that overlap or are adjacent."""
    ranges = list(ranges)
    starts = np.array([r.start for r in ranges], dtype=np.int64)
    stops = np.array([r.stop for r in ranges], dtype=np.int64)
    return _to_ranges(*merge_bounds(starts, stops))


def ranges_of_pixels(pixels: ArrayLike, order: int) -> list[PixelRange]:
    """Merged order-29 ranges covering exactly the given nested pixels at ``order``.

    Neighbouring ids in the nested scheme are neighbouring areas, so a coverage of
    thousands of pixels typically collapses to far fewer ranges.
    """
    order = validate_order(order)
    pix = np.asarray(pixels, dtype=np.int64).ravel()  # merge_bounds sorts and drops repeats
    shift = 2 * (FINE_ORDER - order)
    return _to_ranges(*merge_bounds(pix << shift, (pix + 1) << shift))


def intersect_ranges(first: Iterable[PixelRange], second: Iterable[PixelRange]) -> list[PixelRange]:
    """The indexes in both range lists, as merged ranges.

    >>> intersect_ranges([PixelRange(0, 10), PixelRange(20, 30)], [PixelRange(5, 25)])
    [PixelRange(start=5, stop=10), PixelRange(start=20, stop=25)]
    """
    a, b = merge_ranges(first), merge_ranges(second)
    found: list[PixelRange] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, stop = max(a[i].start, b[j].start), min(a[i].stop, b[j].stop)
        if start < stop:
            found.append(PixelRange(start, stop))
        if a[i].stop <= b[j].stop:
            i += 1
        else:
            j += 1
    return found


def limit_ranges(ranges: Iterable[PixelRange], max_ranges: int) -> list[PixelRange]:
    """Merge ranges, then fill the smallest gaps until at most ``max_ranges`` remain.

    Filling a gap only adds indexes, so the result still covers everything the
    input covered; choosing the smallest gaps adds the fewest indexes, i.e. it
    coarsens the coverage only where coarsening is cheapest.
    """
    if isinstance(max_ranges, bool) or not isinstance(max_ranges, int | np.integer) or max_ranges < 1:
        raise ConfigError(f"max_ranges must be a positive integer, got {max_ranges!r}")
    merged = merge_ranges(ranges)
    if len(merged) <= max_ranges:
        return merged
    starts = np.array([r.start for r in merged], dtype=np.int64)
    stops = np.array([r.stop for r in merged], dtype=np.int64)
    gaps = starts[1:] - stops[:-1]
    # Keep the largest max_ranges - 1 gaps as the breaks between output ranges.
    keep = np.sort(np.argsort(gaps, kind="stable")[gaps.size - (int(max_ranges) - 1) :])
    new_starts = np.concatenate(([starts[0]], starts[keep + 1]))
    new_stops = np.concatenate((stops[keep], [stops[-1]]))
    return _to_ranges(new_starts, new_stops)


# In the HEALPix projection a base face is a square of side pi / (2 sqrt 2) with a
# square pixel grid, and any path on a face is at least 0.59 times as long on the
# sky as in the projection plane (0.745 in the equatorial zone, 0.59 in the polar
# caps: the smallest singular value of the map from plane to sphere; dense
# sampling of chunk boundaries finds no violation below 0.65).  A path from a row
# to any other chunk leaves its own chunk's square, so 0.5 * side * (whole grid
# steps to the square's edge) bounds the row's distance to other chunks from below.
_FACE_SIDE = math.pi / (2.0 * math.sqrt(2.0))
_PROJECTION_SCALE = 0.5


def overlap_chunks(
    ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike, chunk_order: int, margin_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Chunks, other than its own, that lie within ``margin_deg`` of each director row.

    Rows are copied into those chunks' overlap partitions so that near-neighbour
    joins with a distance up to the margin stay chunk-local.  The answer is a
    superset of the exact one (it can include chunks up to two margins away)
    and never misses one.  Rows near a chunk edge cost one healpy disc query
    per distinct small pixel (of radius at most a quarter margin) holding them.

    Parameters
    ----------
    ra_deg, dec_deg
        Positions of the rows in degrees (flattened after broadcasting).
    chunk_order
        The catalog's chunk order.
    margin_deg
        Overlap margin in degrees, in [0, 90]; 0 means no overlap.

    Returns
    -------
    rows, chunks
        Parallel ``int64`` arrays: row positions in the input and chunk ids,
        sorted by row then chunk.
    """
    order = validate_chunk_order(chunk_order)
    try:
        margin = float(margin_deg)
    except (TypeError, ValueError):
        raise RegionError(f"overlap margin must be a number of degrees, got {margin_deg!r}") from None
    if not 0.0 <= margin <= 90.0:  # also rejects NaN
        raise RegionError(f"overlap margin must be in [0, 90] degrees, got {margin}")
    ra, dec = normalized_positions(ra_deg, dec_deg)
    index = healpix_index(ra.ravel(), dec.ravel())
    empty = np.empty(0, dtype=np.int64)
    if margin == 0.0 or index.size == 0:
        return empty, empty.copy()
    margin_rad = margin * DEG
    own = index >> 2 * (FINE_ORDER - order)

    # Rows far from every edge of their chunk produce nothing: skip them cheaply.
    x, y, _ = hp.pix2xyf(2**FINE_ORDER, index, nest=True)
    side = np.int64(1) << (FINE_ORDER - order)
    x_in, y_in = np.asarray(x, np.int64) & (side - 1), np.asarray(y, np.int64) & (side - 1)
    steps = np.minimum(np.minimum(x_in, y_in), np.minimum(side - 1 - x_in, side - 1 - y_in)) - 1
    clearance = _PROJECTION_SCALE * _FACE_SIDE * np.maximum(steps, 0) / 2.0**FINE_ORDER
    near = np.flatnonzero(clearance <= margin_rad)
    if near.size == 0:
        return empty, empty.copy()

    # One disc query per small pixel holding near rows, not per row.
    group_order = next((o for o in range(FINE_ORDER + 1) if pixel_radius(o) <= margin_rad / 4), FINE_ORDER)
    groups, group_of_row = np.unique(index[near] >> 2 * (FINE_ORDER - group_order), return_inverse=True)
    centres = np.stack(hp.pix2vec(2**group_order, groups, nest=True), axis=-1)
    radius = margin_rad + pixel_radius(group_order) + 1e-12
    fact = 2 ** min(max(group_order - order, 0), FINE_ORDER - order)
    found = [hp.query_disc(2**order, centre, radius, inclusive=True, fact=fact, nest=True) for centre in centres]
    found_group = np.repeat(np.arange(groups.size), [f.size for f in found])
    found_chunk = np.concatenate(found).astype(np.int64)

    # Pair every found (group, chunk) with every near row of the group.
    rows_by_group = near[np.argsort(group_of_row, kind="stable")]
    members = np.bincount(group_of_row, minlength=groups.size)
    first_member = np.cumsum(members) - members
    per_pair = members[found_group]
    pair_ends = np.cumsum(per_pair)
    within = np.arange(pair_ends[-1] if pair_ends.size else 0) - np.repeat(pair_ends - per_pair, per_pair)
    rows = rows_by_group[np.repeat(first_member[found_group], per_pair) + within]
    chunks = np.repeat(found_chunk, per_pair)
    keep = chunks != own[rows]
    rows, chunks = rows[keep], chunks[keep]
    ordering = np.lexsort((chunks, rows))
    return rows[ordering].astype(np.int64), chunks[ordering]
