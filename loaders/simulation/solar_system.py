"""Asteroids crossing the area: their DiaSources (with ``ssObjectId``) and the ``SSObject`` rows.

Each asteroid moves along a great circle at a fixed rate and passes through the
area around the time of some visit, so most are detected a few times. Moving
tens of arcseconds between visits, they are never associated with each other:
every detection makes a DiaObject of its own, as a nearest-neighbour associator
with a 1 arcsec radius would do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dms_db.catalog_schema import CatalogTable
from loaders.simulation.config import BANDS, SimulationConfig, Stream, random_stream
from loaders.simulation.focal_plane import FocalPlane
from loaders.simulation.frames import conform, masked
from loaders.simulation.measure import Photometry, photometry, template_sigma
from loaders.simulation.sky import move, sample_cap
from loaders.simulation.truth import flux_njy
from loaders.simulation.visits import Visits

ASTEROID_COLOUR = 0.55
"""g - r of an S-type asteroid."""
SS_COLUMN_BANDS = "gri"
"""Bands with phase-curve columns in SSObject."""


@dataclass(frozen=True)
class SolarSystem:
    """Orbits (straight great-circle tracks, fine for days) and photometry of the asteroids."""

    ss_object_id: np.ndarray
    start: np.ndarray
    """Position at ``reference_mjd``, unit vectors ``(n, 3)``."""
    reference_mjd: np.ndarray
    rate: np.ndarray
    """Apparent motion in degrees per day."""
    position_angle: np.ndarray
    mag: np.ndarray
    """Apparent magnitude per configured band, ``(n, bands)``."""
    absolute_mag: np.ndarray
    """H in r."""
    g12: np.ndarray
    moid: np.ndarray

    def __len__(self) -> int:
        return len(self.ss_object_id)

    def positions(self, mjd: float) -> np.ndarray:
        """Unit vectors of every asteroid at ``mjd``."""
        return move(self.start, self.rate * (mjd - self.reference_mjd), self.position_angle)


def _unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    ids = np.unique(rng.integers(1, 2**62, n))
    while len(ids) < n:  # practically never: a collision among n draws from 2**62
        ids = np.unique(np.concatenate([ids, rng.integers(1, 2**62, n - len(ids))]))
    return rng.permutation(ids)


def simulate_solar_system(config: SimulationConfig, visits: Visits) -> SolarSystem:
    """Draw ``config.n_ss_objects`` asteroids that pass through the area while it is observed."""
    rng = random_stream(config.seed, Stream.SS_OBJECTS)
    n = config.n_ss_objects
    reference = visits.mjd[rng.integers(0, len(visits), n)] + rng.uniform(-1.0, 1.0, n)
    mag_r = rng.uniform(19.5, 23.5, n)
    distance_factor = rng.uniform(2.0, 6.0, n)  # r * delta in au
    slopes = np.array([BANDS[b].colour_slope for b in config.bands])
    return SolarSystem(
        ss_object_id=_unique_ids(rng, n),
        start=sample_cap(rng, config.ra_center, config.dec_center, config.radius_deg, n),
        reference_mjd=reference,
        rate=10.0 ** rng.uniform(np.log10(0.05), 0.0, n),
        position_angle=rng.random(n) * 360.0,
        mag=mag_r[:, None] + ASTEROID_COLOUR * slopes[None, :],
        absolute_mag=mag_r - 5.0 * np.log10(distance_factor),
        g12=np.clip(rng.normal(0.5, 0.15, n), 0.0, 1.0),
        moid=rng.uniform(0.05, 2.5, n),
    )


def measure_solar_system(
    config: SimulationConfig, ss: SolarSystem, visits: Visits, plane: FocalPlane, v: int
) -> tuple[Photometry, np.ndarray]:
    """Photometry of the asteroids on visit ``v`` and their true positions (``landing.index`` is the asteroid).

    The template was taken when the asteroid was elsewhere, so it holds no flux there.
    """
    positions = ss.positions(float(visits.mjd[v]))
    landing = plane.land(positions, visits.vectors[v], float(visits.rotation[v]))
    band = int(visits.band[v])
    rng = random_stream(config.seed, Stream.SS_MEASURE, v)
    n = len(landing)
    template_noise = rng.standard_normal(n) * template_sigma(config, band)
    phot = photometry(
        config,
        visits,
        v,
        landing,
        flux_njy(ss.mag[landing.index, band]),
        np.zeros(n),
        template_noise,
        rng.standard_normal((2, n)),
    )
    return phot, positions[landing.index]


def ss_object_frame(
    config: SimulationConfig, table: CatalogTable, ss: SolarSystem, detected: np.ndarray, mjd: np.ndarray
) -> pd.DataFrame:
    """The SSObject table: one row per asteroid, with the statistics of its DiaSources.

    Parameters
    ----------
    config, table
        Survey settings and the SSObject schema.
    ss
        The asteroids.
    detected, mjd
        Asteroid index and time of each asteroid DiaSource.
    """
    rng = random_stream(config.seed, Stream.SS_OBJECTS, 1)
    n = len(ss)
    count = np.bincount(detected, minlength=n)
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, detected, mjd)
    np.maximum.at(last, detected, mjd)
    seen = count > 0
    first, last = np.where(seen, first, np.nan), np.where(seen, last, np.nan)
    shrink = 1.0 / np.sqrt(1.0 + count)
    columns = {
        "ssObjectId": ss.ss_object_id,
        "discoverySubmissionDate": first + rng.uniform(0.5, 5.0, n),
        "firstObservationDate": first,
        "arc": last - first,
        "numObs": masked(count, np.zeros(n, dtype=bool)),
        "MOID": ss.moid,
    }
    for band in SS_COLUMN_BANDS:
        h = ss.absolute_mag + ASTEROID_COLOUR * BANDS[band].colour_slope
        h_err = rng.uniform(0.1, 0.4, n) * shrink
        g12_err = rng.uniform(0.1, 0.3, n) * shrink
        columns |= {
            f"{band}_H": h + rng.standard_normal(n) * h_err,
            f"{band}_HErr": h_err,
            f"{band}_G12": np.clip(ss.g12 + rng.standard_normal(n) * g12_err, 0.0, 1.0),
            f"{band}_G12Err": g12_err,
        }
    return conform(table, columns)
