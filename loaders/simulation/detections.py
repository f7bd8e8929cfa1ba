"""Per-row measurement columns shared by DiaSource, Source and the forced tables.

Astrometry (position scattered by an error that shrinks with signal-to-noise),
pixel positions, pixel flags and the Rubin-like packing of per-visit ids.
"""

from __future__ import annotations

import numpy as np

from dms_db.errors import InternalError
from loaders.simulation.focal_plane import EDGE_PIXELS
from loaders.simulation.measure import Photometry
from loaders.simulation.sky import radec_of, scatter
from loaders.simulation.visits import Visits, mjd_to_utc

ASTROMETRIC_FLOOR_ARCSEC = 0.01
"""Systematic astrometric error that no signal-to-noise beats."""

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


def visit_columns(config_bands: str, visits: Visits, v: int, n: int) -> dict[str, np.ndarray]:
    """Columns that repeat the visit's identity on each of ``n`` rows."""
    return {
        "visit": np.full(n, visits.visit[v], dtype=np.int64),
        "midpointMjdTai": np.full(n, visits.mjd[v]),
        "band": np.full(n, config_bands[int(visits.band[v])], dtype=object),
    }


def processing_time(visits: Visits, v: int, n: int) -> np.ndarray:
    """When prompt processing wrote the rows of visit ``v``: about a minute and a half after the exposure."""
    return np.full(n, mjd_to_utc(np.array([visits.mjd[v] + 90.0 / 86400.0]))[0])
