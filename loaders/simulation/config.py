"""The knobs of a simulated survey and the fixed properties of the LSST-like bands.

Everything a simulation depends on is in :class:`SimulationConfig`, so that one
config value (and its seed) reproduces a survey exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from numbers import Integral

import numpy as np

from dms_db.errors import ConfigError

ALL_BANDS = "ugrizy"
"""Bands the simulator knows, in wavelength order (the column order of per-band arrays)."""

AB_NJY_ZERO_POINT = 31.4
"""``flux_nJy = 10**((31.4 - mag) / 2.5)``: the AB magnitude of 1 nJy."""


@dataclass(frozen=True)
class BandProperties:
    """Fixed properties of one band, close to the LSST system (SMTN-002 and the LSST overview paper)."""

    physical_filter: str
    wavelength_nm: float
    m5_nominal: float
    """Point-source 5-sigma depth of a 30 s visit at zenith in median seeing and a dark sky."""
    zero_point_1s: float
    """AB magnitude giving one photo-electron per second."""
    sky_mag: float
    """Dark-sky brightness in mag / arcsec**2."""
    extinction: float
    """Atmospheric extinction in mag per airmass."""
    colour_slope: float
    """``mag_band - mag_r`` per unit of an object's ``g - r`` colour."""
    variability_scale: float
    """Pulsating stars vary more in blue bands; amplitude relative to r."""
    visit_weight: float
    """Share of the visits in this band (LSST baseline cadence)."""


BANDS: dict[str, BandProperties] = {
    "u": BandProperties("u_24", 367.0, 23.8, 26.52, 23.05, 0.47, 2.6, 1.40, 0.065),
    "g": BandProperties("g_6", 482.0, 24.8, 28.51, 22.25, 0.21, 1.0, 1.20, 0.09),
    "r": BandProperties("r_57", 622.0, 24.4, 28.36, 21.20, 0.13, 0.0, 1.00, 0.22),
    "i": BandProperties("i_39", 754.0, 24.0, 28.17, 20.46, 0.10, -0.45, 0.85, 0.22),
    "z": BandProperties("z_20", 869.0, 23.4, 27.78, 19.61, 0.07, -0.65, 0.75, 0.20),
    "y": BandProperties("y_10", 971.0, 22.4, 26.82, 18.60, 0.17, -0.75, 0.70, 0.20),
}


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulated survey; the same config gives the same survey.

    Sizes scale with ``n_objects * n_visits`` (the object-visit pairs measured):
    Source is about 10% of the pairs, DiaSource about 4% of the variable ones.
    The defaults give about 435 000 rows in about a second; see
    :mod:`loaders.simulate` for a setting with about 5 million DiaSources.

    Attributes
    ----------
    seed
        Seed of every random draw (a non-negative integer).
    ra_center, dec_center, radius_deg
        The circular survey area in degrees. It may contain a pole or cross RA 0.
    n_objects
        True objects in the area (stars, galaxies, variables, transients).
    n_visits
        Visits, each in one band, pointed inside the area.
    mjd_start, days
        Time span of the survey (MJD, TAI).
    variable_fraction, transient_fraction, galaxy_fraction
        Shares of the true objects that are periodic variables, one-off transients and
        (static, extended) galaxies; the rest are static stars.
    bands
        Bands used, a subset of ``ugrizy``.
    n_ss_objects
        Solar-system objects crossing the area (rows of ``SSObject``).
    fov_radius_deg
        Radius of the focal plane; detectors whose centre lies inside it exist.
    detector_pixels, pixel_scale_arcsec
        Size of a square detector in pixels and of a pixel on the sky.
    exposure_time_s
        Exposure time of a visit.
    visits_per_night
        Visits of the area on one observing night (LSST takes pairs).
    observatory_latitude_deg, observatory_longitude_deg
        Site, for hour angle, altitude and airmass (default: Cerro Pachon).
    min_altitude_deg
        Visits are scheduled while the area is above this altitude.
    bright_mag, faint_mag, count_slope
        r-band magnitudes of true objects follow ``dN/dm ~ 10**(count_slope * m)`` in this range.
    detection_snr
        Detection threshold, on direct and difference images and in the coadd.
    template_visits
        Depth of the difference-imaging template, in visits; sets its noise.
    subtraction_residual
        RMS of image-subtraction residuals as a fraction of the template flux; makes
        bright static stars leave (dipole) DiaSources, as real pipelines do.
    max_forced_sources_per_object
        At most this many ``ForcedSource`` rows per Object, on visits spread evenly
        through its light curve; ``None`` keeps every visit covering it.
    dia_forced_days
        A DiaObject gets forced photometry on a visit when it had a DiaSource within
        this many days before it (Rubin: 12 months).
    include_data_release
        Build Object, Source and ForcedSource (``False`` leaves them empty, which saves
        most of the time and memory of a large prompt-only survey).
    """

    seed: int = 42
    ra_center: float = 60.0
    dec_center: float = -30.0
    radius_deg: float = 1.5
    n_objects: int = 20_000
    n_visits: int = 60
    mjd_start: float = 60_000.0
    days: float = 365.0
    variable_fraction: float = 0.1
    transient_fraction: float = 0.01
    bands: str = "ugrizy"
    galaxy_fraction: float = 0.3
    n_ss_objects: int = 20
    fov_radius_deg: float = 1.75
    detector_pixels: int = 4000
    pixel_scale_arcsec: float = 0.2
    exposure_time_s: float = 30.0
    visits_per_night: int = 2
    observatory_latitude_deg: float = -30.2446
    observatory_longitude_deg: float = -70.7494
    min_altitude_deg: float = 20.0
    bright_mag: float = 16.0
    faint_mag: float = 26.5
    count_slope: float = 0.3
    detection_snr: float = 5.0
    template_visits: int = 20
    subtraction_residual: float = 0.002
    max_forced_sources_per_object: int | None = 20
    dia_forced_days: float = 365.0
    include_data_release: bool = True

    def __post_init__(self) -> None:
        problems = [message for ok, message in self._checks() if not ok]
        if problems:
            raise ConfigError(
                "invalid simulation settings: " + "; ".join(problems),
                hint="fix the named settings of SimulationConfig (or the matching 'dms-db simulate' options)",
            )

    def _checks(self) -> list[tuple[bool, str]]:
        fractions = (self.variable_fraction, self.transient_fraction, self.galaxy_fraction)
        cap = self.max_forced_sources_per_object
        return [
            (
                isinstance(self.seed, Integral) and not isinstance(self.seed, bool) and self.seed >= 0,
                f"seed must be a non-negative integer, got {self.seed!r}",
            ),
            (math.isfinite(self.ra_center), f"ra_center must be finite, got {self.ra_center}"),
            (-90.0 <= self.dec_center <= 90.0, f"dec_center must be in [-90, 90], got {self.dec_center}"),
            (0.0 < self.radius_deg <= 30.0, f"radius_deg must be in (0, 30], got {self.radius_deg}"),
            (self.n_objects >= 1, f"n_objects must be at least 1, got {self.n_objects}"),
            (self.n_visits >= 1, f"n_visits must be at least 1, got {self.n_visits}"),
            (self.days > 0.0, f"days must be positive, got {self.days}"),
            (all(0.0 <= f <= 1.0 for f in fractions), "object fractions must each be in [0, 1]"),
            (sum(fractions) <= 1.0, f"variable, transient and galaxy fractions add up to {sum(fractions)} > 1"),
            (
                len(self.bands) > 0 and set(self.bands) <= set(ALL_BANDS) and len(set(self.bands)) == len(self.bands),
                f"bands must be distinct letters of {ALL_BANDS!r}, got {self.bands!r}",
            ),
            (self.n_ss_objects >= 0, f"n_ss_objects must be >= 0, got {self.n_ss_objects}"),
            (0.0 < self.fov_radius_deg <= 10.0, f"fov_radius_deg must be in (0, 10], got {self.fov_radius_deg}"),
            (self.detector_pixels >= 64, f"detector_pixels must be >= 64, got {self.detector_pixels}"),
            (self.pixel_scale_arcsec > 0.0, f"pixel_scale_arcsec must be positive, got {self.pixel_scale_arcsec}"),
            (
                self.detector_size_deg <= 2.0 * self.fov_radius_deg,
                "a detector is larger than the focal plane: lower detector_pixels or pixel_scale_arcsec",
            ),
            (self.exposure_time_s > 0.0, f"exposure_time_s must be positive, got {self.exposure_time_s}"),
            (self.visits_per_night >= 1, f"visits_per_night must be >= 1, got {self.visits_per_night}"),
            (-90.0 <= self.observatory_latitude_deg <= 90.0, "observatory_latitude_deg must be in [-90, 90]"),
            (0.0 <= self.min_altitude_deg < 90.0, "min_altitude_deg must be in [0, 90)"),
            (self.bright_mag < self.faint_mag, "bright_mag must be smaller (brighter) than faint_mag"),
            (self.count_slope > 0.0, f"count_slope must be positive, got {self.count_slope}"),
            (self.detection_snr > 0.0, f"detection_snr must be positive, got {self.detection_snr}"),
            (self.template_visits >= 1, f"template_visits must be >= 1, got {self.template_visits}"),
            (self.subtraction_residual >= 0.0, "subtraction_residual must be >= 0"),
            (cap is None or cap >= 1, f"max_forced_sources_per_object must be >= 1 or None, got {cap}"),
            (self.dia_forced_days >= 0.0, "dia_forced_days must be >= 0"),
        ]

    @property
    def detector_size_deg(self) -> float:
        """Side of a square detector on the sky."""
        return self.detector_pixels * self.pixel_scale_arcsec / 3600.0

    def band_index(self, band: str) -> int:
        """Position of ``band`` in :attr:`bands` (the column of per-band arrays)."""
        return self.bands.index(band)


class Stream(IntEnum):
    """Independent random streams, so that changing one part of the simulation leaves the others alone."""

    OBJECTS = 1
    VISITS = 2
    MEASURE = 3
    DIA_SOURCE = 4
    SOURCE = 5
    SS_OBJECTS = 6
    SS_MEASURE = 7
    DR_OBJECT = 8
    FORCED = 9


def random_stream(seed: int, stream: Stream, *indices: int) -> np.random.Generator:
    """A generator determined by the seed, the stream and e.g. a visit number.

    Keyed streams make every visit's draws independent of the order in which
    visits are processed, so a second pass over the visits sees the same noise.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), *map(int, indices)]))
