"""Per-row columns shared by DiaSource, Source and the forced tables, and the batches that hold them.

Astrometry (position scattered by an error that shrinks with signal-to-noise),
pixel positions, pixel flags, the Rubin-like packing of per-visit ids, and the
per-visit batches, which carry a visit rank instead of the visit's repeated
columns until the end.
"""

from __future__ import annotations

import numpy as np

from dms_db.errors import InternalError
from loaders.simulation.focal_plane import EDGE_PIXELS
from loaders.simulation.measure import Photometry
from loaders.simulation.sky import scatter
from loaders.simulation.visits import Visits, mjd_to_utc
from sharding.spherical import radec_of

ASTROMETRIC_FLOOR_ARCSEC = 0.01
"""Systematic astrometric error that no signal-to-noise beats."""

PROCESSING_DELAY_DAYS = 90.0 / 86400.0
DETECTOR_BITS = 12
COUNTER_BITS = 20


def concat_batches(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-visit column batches, emptying ``batches`` column by column.

    Freeing each column's parts as soon as they are joined keeps the peak memory
    near the size of the result instead of twice it.
    """
    names = list(batches[0]) if batches else []
    merged = {}
    for name in names:
        merged[name] = np.concatenate([batch.pop(name) for batch in batches])
    batches.clear()
    return merged


class BatchBuffer:
    """Collects per-visit column batches and merges them into large chunks as it goes.

    Thousands of small per-visit arrays fragment the heap, so that memory they
    free at the final concatenation is hard to reuse; merging every
    ``chunk_rows`` rows into large arrays lowers the peak.
    """

    def __init__(self, chunk_rows: int = 1_000_000) -> None:
        self.chunk_rows = chunk_rows
        self._pending: list[dict[str, np.ndarray]] = []
        self._chunks: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0

    def append(self, batch: dict[str, np.ndarray]) -> None:
        """Add a batch (all columns of equal length); the buffer takes ownership of its arrays."""
        self._pending.append(batch)
        self._pending_rows += len(next(iter(batch.values()), ()))
        if self._pending_rows >= self.chunk_rows:
            self._chunks.append(concat_batches(self._pending))
            self._pending_rows = 0

    def concat(self) -> dict[str, np.ndarray]:
        """All rows so far, as one array per column; the buffer is left empty."""
        if self._pending:
            self._chunks.append(concat_batches(self._pending))
            self._pending_rows = 0
        return concat_batches(self._chunks)


def packed_ids(visit_rank: int, detector: np.ndarray) -> np.ndarray:
    """Ids unique per table: ``(visit_rank + 1) << 32 | detector << 20 | n``.

    ``n`` numbers the rows of one detector in one visit in their given order, the
    way Rubin packs a source id from its exposure and a per-image counter.
    """
    detector = np.asarray(detector, dtype=np.int64)
    order = np.argsort(detector, kind="stable")
    sorted_detector = detector[order]
    counter = np.empty_like(detector)
    counter[order] = np.arange(len(detector)) - np.searchsorted(sorted_detector, sorted_detector, side="left")
    if len(detector) and (counter.max() >= 1 << COUNTER_BITS or detector.max() >= 1 << DETECTOR_BITS):
        raise InternalError("too many rows on one detector of one visit to pack their ids into 64 bits")
    return ((visit_rank + 1) << 32) | (detector << COUNTER_BITS) | counter


def astrometry(
    rng: np.random.Generator,
    vectors: np.ndarray,
    phot: Photometry,
    snr: np.ndarray,
    fwhm_arcsec: float,
    pixel_scale_arcsec: float,
    pixels: int,
) -> dict[str, np.ndarray]:
    """Measured positions, their errors and pixel coordinates.

    Parameters
    ----------
    rng
        Source of the scatter.
    vectors
        True positions of the sources.
    phot
        Their photometry on this visit (for the pixel positions).
    snr
        Signal-to-noise ratio of each source; the centroid error is about
        ``0.6 * FWHM / snr``.
    fwhm_arcsec, pixel_scale_arcsec, pixels
        Seeing of the visit and the detector geometry.
    """
    sigma_arcsec = np.hypot(0.6 * fwhm_arcsec / np.maximum(snr, 1.0), ASTROMETRIC_FLOOR_ARCSEC)
    sigma_deg = sigma_arcsec / 3600.0
    ra, dec = radec_of(scatter(vectors, sigma_deg, rng))
    sigma_pixels = sigma_arcsec / pixel_scale_arcsec
    limit = np.nextafter(float(pixels), 0.0)
    x = np.clip(phot.landing.x + rng.standard_normal(len(snr)) * sigma_pixels, 0.0, limit)
    y = np.clip(phot.landing.y + rng.standard_normal(len(snr)) * sigma_pixels, 0.0, limit)
    correlation = rng.uniform(-0.2, 0.2, len(snr))
    return {
        "ra": ra,
        "dec": dec,
        "raErr": sigma_deg,
        "decErr": sigma_deg,
        "ra_dec_Cov": correlation * sigma_deg**2,
        "x": x,
        "y": y,
        "xErr": sigma_pixels,
        "yErr": sigma_pixels,
    }


def pixel_flags(rng: np.random.Generator, phot: Photometry, pixels: int) -> dict[str, np.ndarray]:
    """Pixel flags: edge and saturation from the geometry and the flux, bad pixels and cosmic rays at random."""
    n = len(phot.landing)
    x, y = phot.landing.x, phot.landing.y
    edge = (np.minimum(x, y) < EDGE_PIXELS) | (np.maximum(x, y) > pixels - EDGE_PIXELS)
    return {
        "pixelFlags_bad": rng.random(n) < 0.003,
        "pixelFlags_cr": rng.random(n) < 0.001,
        "pixelFlags_edge": edge,
        "pixelFlags_saturated": phot.saturated,
    }


def visit_columns(bands: str, visits: Visits, rank: np.ndarray, *, processed: bool = False) -> dict[str, np.ndarray]:
    """Columns that repeat each row's visit (given by its rank in time order): id, midpoint, band.

    Batches carry only the rank while the visits are processed and the columns
    are expanded once at the end, which keeps the batches small.

    Parameters
    ----------
    bands, visits
        The configured bands and the visits.
    rank
        Visit rank of each row.
    processed
        Also give ``time_processed``: prompt processing wrote the rows about a
        minute and a half after the exposure.
    """
    letters = np.array(list(bands), dtype=object)
    columns = {"visit": visits.visit[rank], "midpointMjdTai": visits.mjd[rank], "band": letters[visits.band[rank]]}
    if processed:
        columns["time_processed"] = mjd_to_utc(visits.mjd + PROCESSING_DELAY_DAYS)[rank]
    return columns
