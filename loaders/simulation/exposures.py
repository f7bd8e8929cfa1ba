"""The Visit and CcdVisit tables: one row per visit and one per detector of each visit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loaders.simulation.config import BANDS, SimulationConfig, Stream, random_stream
from loaders.simulation.focal_plane import FocalPlane
from loaders.simulation.frames import conform, shipped_table
from loaders.simulation.visits import Visits, mjd_to_utc


def ccd_visit_ids(visit: np.ndarray, detector: np.ndarray) -> np.ndarray:
    """``visit * 1000 + detector``, the packing of Rubin's data previews."""
    return np.asarray(visit, dtype=np.int64) * 1000 + np.asarray(detector, dtype=np.int64)


def exposure_frames(config: SimulationConfig, visits: Visits, plane: FocalPlane) -> dict[str, pd.DataFrame]:
    """Visit and CcdVisit frames of the schedule."""
    n = len(visits)
    bands = np.array(list(config.bands), dtype=object)[visits.band]
    filters = np.array([BANDS[b].physical_filter for b in config.bands], dtype=object)[visits.band]
    half_exposure = config.exposure_time_s / 2.0 / 86400.0
    visit = {
        "visit": visits.visit,
        "physical_filter": filters,
        "band": bands,
        "ra": visits.ra,
        "dec": visits.dec,
        "skyRotation": visits.rotation,
        "azimuth": visits.azimuth,
        "altitude": visits.altitude,
        "zenithDistance": 90.0 - visits.altitude,
        "airmass": visits.airmass,
        "expTime": np.full(n, config.exposure_time_s),
        "expMidpt": mjd_to_utc(visits.mjd),
        "expMidptMJD": visits.mjd,
        "obsStartMJD": visits.mjd - half_exposure,
    }
    n_det = plane.n_detectors
    centres = [plane.detector_centres(visits.vectors[v], float(visits.rotation[v])) for v in range(n)]
    rng = random_stream(config.seed, Stream.VISITS, 1)
    sky_bg = np.repeat(visits.sky_bg, n_det) * rng.normal(1.0, 0.01, n * n_det)
    detector = np.tile(np.arange(n_det), n)
    ccd = {
        "ccdVisitId": ccd_visit_ids(np.repeat(visits.visit, n_det), detector),
        "visitId": np.repeat(visits.visit, n_det),
        "detector": detector,
        "band": np.repeat(bands, n_det),
        "physical_filter": np.repeat(filters, n_det),
        "ra": np.concatenate([c[0] for c in centres]),
        "dec": np.concatenate([c[1] for c in centres]),
        "expMidptMJD": np.repeat(visits.mjd, n_det),
        "expTime": np.full(n * n_det, config.exposure_time_s),
        "seeing": np.repeat(visits.fwhm, n_det),
        "zeroPoint": np.repeat(visits.zero_point, n_det),
        "skyBg": sky_bg,
        "skyNoise": np.sqrt(sky_bg),
        "psfSigma": np.repeat(visits.fwhm / 2.355 / config.pixel_scale_arcsec, n_det),
        "magLim": visits.m5.reshape(-1),
    }
    return {
        "Visit": conform(shipped_table("dr", "Visit"), visit),
        "CcdVisit": conform(shipped_table("dr", "CcdVisit"), ccd),
    }
