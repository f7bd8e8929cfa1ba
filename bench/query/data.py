"""Seeded, vectorised DiaObject and DiaSource tables for the query benchmark.

``loaders.simulate`` (used by ``bench.ingest``) makes about 0.08 DiaObjects per DiaSource; the
query benchmark wants 1 DiaObject per 5 DiaSources at millions of rows, in seconds and without
a Python loop per row, so the rows are drawn here directly with numpy:

* DiaObjects are uniform on the sphere inside an RA/Dec box of about 300 square degrees
  (:data:`AREA`): the density of a few months of a deep field, so that a 1 arcmin cone holds
  a handful of rows and a 1 degree cone tens of thousands;
* every DiaObject has at least one DiaSource; the rest are spread over the objects with
  log-normal weights, so light curves range from one point to dozens;
* a DiaSource lies 0.1 arcsec (rms) from its DiaObject, at the epoch and band of one of
  :data:`VISITS` visits, with a flux around the object's mean flux in that band;
* DiaObject's per-band means, sigmas and counts and first/last epochs are computed from its
  DiaSources (``np.bincount``), so the two tables agree with each other.

Columns carry the types a worker stores (``dms_db.physical.column_type``: Felis ``float`` is
``real``), so the same Arrow tables feed both the loader and the baseline's binary COPY.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

BANDS = np.array(list("ugrizy"))
VISITS = 1_000
FIRST_MJD = 60_800.0
SURVEY_DAYS = 3 * 365.25
SCATTER_ARCSEC = 0.1
NULL_FRACTION = 0.05  # of the nullable measurement columns that are not used in the queries
FIRST_DIA_OBJECT_ID = 1_000_000_000_000
FIRST_DIA_SOURCE_ID = 5_000_000_000_000


@dataclass(frozen=True)
class SkyBox:
    """An RA/Dec box in degrees (RA not wrapping through 0)."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    @property
    def area_sq_deg(self) -> float:
        """Solid angle of the box in square degrees."""
        ra_span = np.radians(self.ra_max - self.ra_min)
        sin_span = np.sin(np.radians(self.dec_max)) - np.sin(np.radians(self.dec_min))
        return float(ra_span * sin_span * (180.0 / np.pi) ** 2)

    def uniform(self, rng: np.random.Generator, size: int, margin_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Positions uniform on the sphere inside the box shrunk by ``margin_deg`` on every side."""
        ra = rng.uniform(self.ra_min + margin_deg, self.ra_max - margin_deg, size)
        sin_lo = np.sin(np.radians(self.dec_min + margin_deg))
        sin_hi = np.sin(np.radians(self.dec_max - margin_deg))
        dec = np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi, size)))
        return ra, dec


AREA = SkyBox(ra_min=30.0, ra_max=50.0, dec_min=-10.0, dec_max=5.0)  # 298.8 square degrees


@dataclass(frozen=True)
class BenchData:
    """The generated tables and the few facts the queries are drawn from."""

    dia_objects: pa.Table
    dia_sources: pa.Table
    area: SkyBox
    sources_per_object: np.ndarray  # nDiaSources, aligned with dia_objects


def _nullable(rng: np.random.Generator, values: np.ndarray) -> pa.Array:
    """An Arrow array of ``values`` with :data:`NULL_FRACTION` of them NULL."""
    return pa.array(values, mask=rng.random(values.size) < NULL_FRACTION)


def _real(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32)


def generate(n_objects: int, n_sources: int, seed: int = 42, area: SkyBox = AREA) -> BenchData:
    """Draw ``n_objects`` DiaObjects and ``n_sources`` DiaSources (``n_sources >= n_objects``)."""
    if n_sources < n_objects:
        raise ValueError(f"need at least one DiaSource per DiaObject ({n_sources} < {n_objects})")
    rng = np.random.default_rng(seed)

    # -------- objects: position and a mean flux per band
    obj_ra, obj_dec = area.uniform(rng, n_objects)
    obj_flux = rng.lognormal(mean=7.0, sigma=1.0, size=(n_objects, 1)) * rng.uniform(0.5, 1.5, (1, BANDS.size))

    # -------- which object each source belongs to: one each, then log-normal weights
    weights = rng.lognormal(0.0, 1.0, n_objects)
    cumulative = np.cumsum(weights)
    # sorted draws: searchsorted then walks the cumulative weights once instead of jumping about
    draws = np.sort(rng.random(n_sources - n_objects)) * cumulative[-1]
    extra = np.minimum(np.searchsorted(cumulative, draws, side="right"), n_objects - 1)
    owner = np.sort(np.concatenate([np.arange(n_objects), extra]))
    counts = np.bincount(owner, minlength=n_objects)

    # -------- visits: epoch, band
    visit_mjd = np.sort(rng.uniform(FIRST_MJD, FIRST_MJD + SURVEY_DAYS, VISITS))
    visit_band = rng.integers(0, BANDS.size, VISITS)
    visit_of = rng.integers(0, VISITS, n_sources)
    band_of = visit_band[visit_of]

    # -------- sources
    scatter = SCATTER_ARCSEC / 3600.0
    src_dec = obj_dec[owner] + rng.normal(0.0, scatter, n_sources)
    src_ra = obj_ra[owner] + rng.normal(0.0, scatter, n_sources) / np.cos(np.radians(src_dec))
    flux_err = _real(rng.uniform(20.0, 200.0, n_sources))
    psf_flux = _real(obj_flux[owner, band_of] + rng.normal(0.0, 1.0, n_sources) * flux_err)
    mjd = visit_mjd[visit_of] + rng.uniform(0.0, 30.0 / 86400.0, n_sources)
    elapsed_us = ((mjd - FIRST_MJD) * 86_400_000_000).astype(np.int64).astype("timedelta64[us]")
    processed = np.datetime64("2025-06-01T00:00:00", "us") + elapsed_us
    dia_sources = pa.table(
        {
            "diaSourceId": np.arange(n_sources, dtype=np.int64) + FIRST_DIA_SOURCE_ID,
            "visit": (visit_of + 2025_000_000).astype(np.int64),
            "detector": rng.integers(0, 189, n_sources).astype(np.int16),
            "diaObjectId": owner.astype(np.int64) + FIRST_DIA_OBJECT_ID,
            "ssObjectId": pa.nulls(n_sources, pa.int64()),
            "parentDiaSourceId": pa.nulls(n_sources, pa.int64()),
            "midpointMjdTai": mjd,
            "band": pa.array(BANDS.tolist(), pa.string()).take(pa.array(band_of)),
            "ra": src_ra,
            "raErr": _real(np.full(n_sources, scatter)),
            "dec": src_dec,
            "decErr": _real(np.full(n_sources, scatter)),
            "ra_dec_Cov": _real(rng.normal(0.0, 1e-12, n_sources)),
            "x": _real(rng.uniform(0.0, 4096.0, n_sources)),
            "xErr": _real(rng.uniform(0.01, 0.5, n_sources)),
            "y": _real(rng.uniform(0.0, 4096.0, n_sources)),
            "yErr": _real(rng.uniform(0.01, 0.5, n_sources)),
            "apFlux": _nullable(rng, _real(psf_flux * rng.uniform(0.9, 1.1, n_sources))),
            "apFluxErr": _nullable(rng, _real(flux_err * 1.2)),
            "snr": _real(np.abs(psf_flux) / flux_err),
            "psfFlux": psf_flux,
            "psfFluxErr": flux_err,
            "psfChi2": _nullable(rng, _real(rng.chisquare(20.0, n_sources))),
            "psfNdata": pa.array(rng.integers(100, 400, n_sources).astype(np.int32)),
            "scienceFlux": _nullable(rng, _real(psf_flux + rng.normal(0.0, 50.0, n_sources))),
            "scienceFluxErr": _nullable(rng, flux_err),
            "extendedness": _nullable(rng, _real(rng.random(n_sources))),
            "reliability": _nullable(rng, _real(rng.random(n_sources))),
            "isDipole": rng.random(n_sources) < 0.02,
            "centroid_flag": rng.random(n_sources) < 0.01,
            "psfFlux_flag": rng.random(n_sources) < 0.01,
            "pixelFlags_bad": rng.random(n_sources) < 0.01,
            "pixelFlags_cr": rng.random(n_sources) < 0.01,
            "pixelFlags_edge": rng.random(n_sources) < 0.01,
            "pixelFlags_saturated": rng.random(n_sources) < 0.01,
            "time_processed": processed,
        }
    )

    # -------- object summaries from their sources
    first_mjd = np.minimum.reduceat(mjd, np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]))
    last_mjd = np.maximum.reduceat(mjd, np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]))
    cell = owner * BANDS.size + band_of
    cells = n_objects * BANDS.size
    n_band = np.bincount(cell, minlength=cells).reshape(n_objects, BANDS.size)
    flux64 = psf_flux.astype(np.float64)
    total = np.bincount(cell, weights=flux64, minlength=cells).reshape(n_objects, BANDS.size)
    squares = np.bincount(cell, weights=flux64**2, minlength=cells).reshape(n_objects, BANDS.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_band
        sigma = np.sqrt(np.maximum(squares / n_band - mean**2, 0.0))
        mean_err = sigma / np.sqrt(n_band)
    columns: dict[str, object] = {
        "diaObjectId": np.arange(n_objects, dtype=np.int64) + FIRST_DIA_OBJECT_ID,
        "ra": obj_ra,
        "raErr": _real(np.full(n_objects, scatter / 3)),
        "dec": obj_dec,
        "decErr": _real(np.full(n_objects, scatter / 3)),
        "ra_dec_Cov": _real(rng.normal(0.0, 1e-13, n_objects)),
        "radecMjdTai": (first_mjd + last_mjd) / 2,
        "firstDiaSourceMjdTai": first_mjd,
        "lastDiaSourceMjdTai": last_mjd,
        "nDiaSources": counts.astype(np.int32),
    }
    for index, band in enumerate(BANDS):
        empty = n_band[:, index] == 0
        columns[f"{band}_psfFluxMean"] = pa.array(_real(mean[:, index]), mask=empty)
        columns[f"{band}_psfFluxMeanErr"] = pa.array(_real(mean_err[:, index]), mask=empty)
        columns[f"{band}_psfFluxSigma"] = pa.array(_real(sigma[:, index]), mask=empty)
        columns[f"{band}_psfFluxNdata"] = n_band[:, index].astype(np.int32)
    return BenchData(pa.table(columns), dia_sources, area, counts)
