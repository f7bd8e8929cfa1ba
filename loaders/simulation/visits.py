"""The observing schedule: when, where and in which band each visit is taken, and under what conditions.

Visits fall on nights, while the area is above the minimum altitude and the
sky is dark, so light curves show the nightly cadence and the seasonal gaps of
a real survey. Depth follows seeing, airmass and sky brightness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dms_db.errors import ConfigError
from loaders.simulation.config import AB_NJY_ZERO_POINT, BANDS, SimulationConfig, Stream, random_stream
from loaders.simulation.focal_plane import FocalPlane
from loaders.simulation.sky import sample_cap
from sharding.spherical import DEG, radec_of, unit_vectors

SIDEREAL_DEG_PER_DAY = 360.98564736629
HALF_NIGHT_DAYS = 5.0 / 24.0
"""Dark time on each side of local midnight (a Chilean average)."""
MIN_WINDOW_DAYS = 15.0 / 1440.0
SLEW_AND_READOUT_S = 7.0
MERIDIAN_SPREAD_DAYS = 1.5 / 24.0
"""Spread of visit times around the area's transit (when the night allows)."""
TAI_MINUS_UTC_S = 37.0
MJD_EPOCH = np.datetime64("1858-11-17T00:00:00", "ns")
MEDIAN_SEEING_ARCSEC = 0.65
"""Atmospheric FWHM at 500 nm and zenith; the 0.4 arcsec of the system is added in quadrature."""


def local_sidereal_deg(mjd: np.ndarray, longitude_deg: float) -> np.ndarray:
    """Local sidereal time in degrees (the GMST series, good to well under a second here)."""
    return np.mod(280.46061837 + SIDEREAL_DEG_PER_DAY * (mjd - 51544.5) + longitude_deg, 360.0)


def wrap180(angle_deg: np.ndarray) -> np.ndarray:
    """Angles folded into [-180, 180)."""
    return np.mod(angle_deg + 180.0, 360.0) - 180.0


def mjd_to_utc(mjd_tai: np.ndarray) -> np.ndarray:
    """Naive UTC ``datetime64[ns]`` of MJDs on the TAI scale."""
    ns = np.round((np.asarray(mjd_tai, dtype=np.float64) * 86400.0 - TAI_MINUS_UTC_S) * 1e9).astype(np.int64)
    return MJD_EPOCH + ns.astype("timedelta64[ns]")


def airmass_of(altitude_deg: np.ndarray) -> np.ndarray:
    """Kasten and Young (1989) airmass, finite down to the horizon (and held at 1 near zenith, where it dips below)."""
    alt = np.clip(altitude_deg, 0.0, 90.0)
    return np.maximum(1.0 / (np.sin(alt * DEG) + 0.50572 * (alt + 6.07995) ** -1.6364), 1.0)


def psf_fwhm(seeing_500: np.ndarray, wavelength_nm: np.ndarray, airmass: np.ndarray) -> np.ndarray:
    """Delivered PSF FWHM in arcsec: atmosphere scaled by wavelength and airmass, plus the system."""
    atmosphere = seeing_500 * (500.0 / wavelength_nm) ** 0.2 * airmass**0.6
    return np.hypot(atmosphere, 0.4)


@dataclass(frozen=True)
class Visits:
    """All visits in time order; per-detector arrays are ``(visits, detectors)``."""

    visit: np.ndarray
    band: np.ndarray
    """Column of the visit's band in per-band arrays."""
    mjd: np.ndarray
    """Exposure midpoint, MJD TAI."""
    vectors: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    rotation: np.ndarray
    altitude: np.ndarray
    azimuth: np.ndarray
    airmass: np.ndarray
    fwhm: np.ndarray
    zero_point: np.ndarray
    """AB magnitude giving one photo-electron in the exposure."""
    sky_bg: np.ndarray
    """Sky level per pixel, in electrons (gain 1)."""
    m5: np.ndarray
    """Point-source 5-sigma depth per detector."""

    def __len__(self) -> int:
        return len(self.visit)

    def sky_sigma(self, v: int, detector: np.ndarray) -> np.ndarray:
        """Background noise in nJy of a PSF flux on the given detectors of visit ``v``."""
        return 10.0 ** ((AB_NJY_ZERO_POINT - self.m5[v, detector]) / 2.5) / 5.0

    def njy_per_electron(self, v: int) -> float:
        """nJy that one photo-electron represents in visit ``v`` (sets the source's Poisson noise)."""
        return float(10.0 ** (0.4 * (AB_NJY_ZERO_POINT - self.zero_point[v])))


def _hour_angle_limit(config: SimulationConfig, dec_deg: float) -> float:
    """Largest |hour angle| (deg) at which a declination is above the minimum altitude."""
    lat, dec, alt = config.observatory_latitude_deg * DEG, dec_deg * DEG, config.min_altitude_deg * DEG
    denominator = math.cos(dec) * math.cos(lat)
    numerator = math.sin(alt) - math.sin(dec) * math.sin(lat)
    # At the pole of the sky (or from an observatory at a pole) the altitude never changes.
    constant_altitude = -math.inf if numerator <= 0.0 else math.inf
    ratio = numerator / denominator if denominator > 1e-12 else constant_altitude
    if ratio > 1.0:
        raise ConfigError(
            f"the area at dec {dec_deg:g} never rises above {config.min_altitude_deg:g} deg "
            f"as seen from latitude {config.observatory_latitude_deg:g}",
            hint="set observatory_latitude_deg to a site that sees it, or lower min_altitude_deg",
        )
    return 180.0 if ratio <= -1.0 else math.degrees(math.acos(ratio))


def _best_windows(
    config: SimulationConfig, reference: np.ndarray, start: np.ndarray, stop: np.ndarray, ha_limit: float
) -> tuple[np.ndarray, np.ndarray]:
    """Longest interval per row of ``[start, stop]`` during which the area is within the hour-angle limit."""
    if ha_limit >= 180.0:
        return start, stop
    ha_ref = wrap180(local_sidereal_deg(reference, config.observatory_longitude_deg) - config.ra_center)
    best_lo, best_hi = start.copy(), start.copy()
    for turn in (-720.0, -360.0, 0.0, 360.0, 720.0):
        lo = np.maximum(start, reference + (-ha_limit - ha_ref + turn) / SIDEREAL_DEG_PER_DAY)
        hi = np.minimum(stop, reference + (ha_limit - ha_ref + turn) / SIDEREAL_DEG_PER_DAY)
        longer = (hi - lo) > (best_hi - best_lo)
        best_lo, best_hi = np.where(longer, lo, best_lo), np.where(longer, hi, best_hi)
    return best_lo, best_hi


def _observing_windows(config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Usable dark time on each night of the span; daylight is ignored only if no night works."""
    ha_limit = _hour_angle_limit(config, config.dec_center)
    end = config.mjd_start + config.days
    first_midnight = config.mjd_start + np.mod(-config.observatory_longitude_deg / 360.0 - config.mjd_start, 1.0)
    midnight = first_midnight + np.arange(math.ceil(config.days) + 1)
    lo, hi = _best_windows(
        config,
        midnight,
        np.maximum(midnight - HALF_NIGHT_DAYS, config.mjd_start),
        np.minimum(midnight + HALF_NIGHT_DAYS, end),
        ha_limit,
    )
    usable = hi - lo >= MIN_WINDOW_DAYS
    if not usable.any():
        day = config.mjd_start + np.arange(math.ceil(config.days))
        lo, hi = _best_windows(config, day, day, np.minimum(day + 1.0, end), ha_limit)
        usable = hi - lo > 0.0
    if not usable.any():
        raise ConfigError(
            f"the area is never above {config.min_altitude_deg:g} deg between MJD {config.mjd_start:g} and {end:g}",
            hint="lengthen days or move mjd_start",
        )
    return lo[usable], hi[usable]


def _visit_times(config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Sorted visit midpoints: ``visits_per_night`` on randomly chosen usable nights, near the meridian."""
    lo, hi = _observing_windows(config)
    wanted = math.ceil(config.n_visits / config.visits_per_night)
    nights = np.sort(rng.choice(len(lo), size=min(wanted, len(lo)), replace=False))
    per_night = np.full(len(nights), config.n_visits // len(nights))
    per_night[rng.choice(len(nights), size=config.n_visits % len(nights), replace=False)] += 1
    night = np.repeat(nights, per_night)
    start, stop = lo[night], hi[night]
    # Schedulers observe near the meridian, where airmass is lowest: aim at the transit.
    middle = (start + stop) / 2.0
    ha_middle = wrap180(local_sidereal_deg(middle, config.observatory_longitude_deg) - config.ra_center)
    aim = np.clip(middle - ha_middle / SIDEREAL_DEG_PER_DAY, start, stop)
    times = aim + rng.normal(0.0, MERIDIAN_SPREAD_DAYS, config.n_visits)
    outside = (times < start) | (times > stop)
    times[outside] = start[outside] + rng.random(int(outside.sum())) * (stop - start)[outside]
    # Visits cannot overlap: push each one to at least an exposure plus slew and readout after the previous
    # (only a night asked for more visits than its dark time holds spills past its end).
    gap = (config.exposure_time_s + SLEW_AND_READOUT_S) / 86400.0
    steps = np.arange(config.n_visits) * gap
    return np.maximum.accumulate(np.sort(times) - steps) + steps


def _visit_ids(mjd: np.ndarray) -> np.ndarray:
    """Rubin-style ids ``YYYYMMDDNNNNN``: observing day (UTC-12h) and sequence number in it."""
    day_obs = pd.DatetimeIndex(mjd_to_utc(mjd - 0.5))
    day = (day_obs.year * 10000 + day_obs.month * 100 + day_obs.day).to_numpy(dtype=np.int64)
    sequence = np.arange(len(day)) - np.searchsorted(day, day, side="left") + 1  # times, hence days, are sorted
    if sequence.max() >= 100_000:
        raise ConfigError("more than 99999 visits on one day", hint="lengthen days or lower n_visits")
    return day * 100_000 + sequence


def simulate_visits(config: SimulationConfig, plane: FocalPlane) -> Visits:
    """Schedule the visits and draw their observing conditions.

    Parameters
    ----------
    config
        Survey settings.
    plane
        The camera, for per-detector depths.
    """
    rng = random_stream(config.seed, Stream.VISITS)
    mjd = _visit_times(config, rng)
    n = len(mjd)
    weights = np.array([BANDS[b].visit_weight for b in config.bands])
    band = rng.choice(len(config.bands), size=n, p=weights / weights.sum())
    vectors = sample_cap(rng, config.ra_center, config.dec_center, config.radius_deg, n)
    ra, dec = radec_of(vectors)
    rotation = rng.random(n) * 360.0

    lat = config.observatory_latitude_deg * DEG
    ha = wrap180(local_sidereal_deg(mjd, config.observatory_longitude_deg) - ra) * DEG
    sin_alt = np.sin(dec * DEG) * math.sin(lat) + np.cos(dec * DEG) * math.cos(lat) * np.cos(ha)
    altitude = np.degrees(np.arcsin(np.clip(sin_alt, -1.0, 1.0)))
    azimuth = np.mod(
        np.degrees(
            np.arctan2(
                -np.cos(dec * DEG) * np.sin(ha),
                np.sin(dec * DEG) * math.cos(lat) - np.cos(dec * DEG) * math.sin(lat) * np.cos(ha),
            )
        ),
        360.0,
    )
    airmass = airmass_of(altitude)

    props = [BANDS[config.bands[b]] for b in band]
    wavelength = np.array([p.wavelength_nm for p in props])
    extinction = np.array([p.extinction for p in props]) * (airmass - 1.0)
    seeing_500 = MEDIAN_SEEING_ARCSEC * np.exp(rng.normal(0.0, 0.2, n))
    fwhm = psf_fwhm(seeing_500, wavelength, airmass)
    reference_fwhm = psf_fwhm(np.full(n, MEDIAN_SEEING_ARCSEC), wavelength, np.ones(n))
    sky_brightening = np.abs(rng.normal(0.0, 0.4, n))  # moon and twilight only ever brighten the sky
    zero_point = np.array([p.zero_point_1s for p in props]) + 2.5 * np.log10(config.exposure_time_s) - extinction
    sky_bg = 10.0 ** (-0.4 * (np.array([p.sky_mag for p in props]) - sky_brightening - zero_point))
    sky_bg *= config.pixel_scale_arcsec**2
    m5_visit = (
        np.array([p.m5_nominal for p in props])
        + 1.25 * np.log10(config.exposure_time_s / 30.0)
        + 2.5 * np.log10(reference_fwhm / fwhm)
        - extinction
        - 0.5 * sky_brightening
    )
    m5 = m5_visit[:, None] + rng.normal(0.0, 0.03, (n, plane.n_detectors))
    return Visits(
        visit=_visit_ids(mjd),
        band=band,
        mjd=mjd,
        vectors=unit_vectors(ra, dec),
        ra=ra,
        dec=dec,
        rotation=rotation,
        altitude=altitude,
        azimuth=azimuth,
        airmass=airmass,
        fwhm=fwhm,
        zero_point=zero_point,
        sky_bg=sky_bg,
        m5=m5,
    )
