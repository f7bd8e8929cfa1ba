"""The true sky: positions, kinds, magnitudes and light curves of the simulated objects.

Observations only ever see this truth through :meth:`TrueSky.flux` (the
noiseless flux of objects at a time in a band) and :attr:`TrueSky.template_flux`
(the time-averaged flux a difference-imaging template holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from loaders.simulation.config import AB_NJY_ZERO_POINT, BANDS, SimulationConfig, Stream, random_stream
from loaders.simulation.sky import sample_cap
from sharding.spherical import radec_of

LN10_04 = 0.4 * np.log(10.0)
"""``10**(-0.4 m) == exp(-LN10_04 * m)``."""

TRANSIENT_VISIBLE_MAG = 12.0
"""A transient fainter than its peak by this much has faded to nothing (it appears once)."""


class ObjectKind(IntEnum):
    """What a true object is."""

    STAR = 0
    GALAXY = 1
    VARIABLE = 2
    TRANSIENT = 3


class VariableShape(IntEnum):
    """Light-curve shape of a periodic variable."""

    SINE = 0
    SAWTOOTH = 1
    """Fast rise and slow decline, like an RR Lyrae star."""


def flux_njy(mag: np.ndarray | float) -> np.ndarray:
    """Flux in nJy of an AB magnitude."""
    return 10.0 ** ((AB_NJY_ZERO_POINT - np.asarray(mag, dtype=np.float64)) / 2.5)


def power_law_magnitudes(rng: np.random.Generator, n: int, bright: float, faint: float, slope: float) -> np.ndarray:
    """Magnitudes with cumulative counts ``N(<m) ~ 10**(slope * m)`` between ``bright`` and ``faint``.

    Inverse-transform sampling of the truncated power law; most objects are
    faint, as in real star and galaxy counts.
    """
    span = 10.0 ** (slope * (faint - bright)) - 1.0
    return bright + np.log10(1.0 + rng.random(n) * span) / slope


@dataclass(frozen=True)
class TrueSky:
    """Truth for ``n`` objects; per-band arrays have one column per configured band.

    Light-curve parameters are NaN for objects of the other kinds.
    """

    vectors: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    kind: np.ndarray
    mag: np.ndarray
    """Static, mean (variables) or peak (transients) magnitude, ``(n, bands)``."""
    template_flux: np.ndarray
    """Flux in the template: the time average for variables, zero for transients, ``(n, bands)``."""
    template_noise: np.ndarray
    """Measurement error of the template at each object, fixed for the survey, ``(n, bands)``."""
    period: np.ndarray
    phase: np.ndarray
    amplitude: np.ndarray
    """Semi-amplitude in r, in magnitudes."""
    shape: np.ndarray
    peak_mjd: np.ndarray
    rise_rate: np.ndarray
    """Magnitudes per day before the peak."""
    decline_rate: np.ndarray
    """Magnitudes per day after the peak."""
    amplitude_scale: np.ndarray
    """Per-band amplitude relative to r, ``(bands,)``."""

    @property
    def size(self) -> int:
        """Number of true objects."""
        return len(self.ra)

    def flux(self, index: np.ndarray, band: int, mjd: float) -> np.ndarray:
        """Noiseless flux in nJy of objects ``index`` in band column ``band`` at time ``mjd``."""
        flux = flux_njy(self.mag[index, band])
        kind = self.kind[index]
        var = np.flatnonzero(kind == ObjectKind.VARIABLE)
        if var.size:
            obj = index[var]
            cycle = mjd / self.period[obj] + self.phase[obj]
            amplitude = self.amplitude[obj] * self.amplitude_scale[band]
            delta = np.where(
                self.shape[obj] == VariableShape.SINE,
                amplitude * np.sin(2.0 * np.pi * cycle),
                amplitude * (2.0 * (cycle - np.floor(cycle)) - 1.0),
            )
            flux[var] *= np.exp(-LN10_04 * delta)
        tra = np.flatnonzero(kind == ObjectKind.TRANSIENT)
        if tra.size:
            obj = index[tra]
            before = mjd < self.peak_mjd[obj]
            delta = np.where(
                before,
                self.rise_rate[obj] * (self.peak_mjd[obj] - mjd),
                self.decline_rate[obj] * (mjd - self.peak_mjd[obj]),
            )
            flux[tra] = np.where(delta < TRANSIENT_VISIBLE_MAG, flux[tra] * np.exp(-LN10_04 * delta), 0.0)
        return flux


def _kinds(rng: np.random.Generator, config: SimulationConfig) -> np.ndarray:
    n = config.n_objects
    counts = [round(n * f) for f in (config.variable_fraction, config.transient_fraction, config.galaxy_fraction)]
    n_var, n_tra, n_gal = counts
    n_gal = min(n_gal, n - n_var - n_tra)  # rounding must not exceed n
    kinds = np.full(n, ObjectKind.STAR, dtype=np.int8)
    kinds[:n_var] = ObjectKind.VARIABLE
    kinds[n_var : n_var + n_tra] = ObjectKind.TRANSIENT
    kinds[n_var + n_tra : n_var + n_tra + n_gal] = ObjectKind.GALAXY
    return rng.permutation(kinds)


def simulate_true_sky(config: SimulationConfig) -> TrueSky:
    """Draw the true objects of a survey.

    Parameters
    ----------
    config
        Survey settings; only the area, the object counts and fractions, the
        magnitude law, the bands, the template depth and the seed matter here.
    """
    rng = random_stream(config.seed, Stream.OBJECTS)
    n = config.n_objects
    vectors = sample_cap(rng, config.ra_center, config.dec_center, config.radius_deg, n)
    ra, dec = radec_of(vectors)
    kind = _kinds(rng, config)
    is_var, is_tra = kind == ObjectKind.VARIABLE, kind == ObjectKind.TRANSIENT

    mag_r = power_law_magnitudes(rng, n, config.bright_mag, config.faint_mag, config.count_slope)
    bright, faint = config.bright_mag + 1.0, config.faint_mag - 1.5
    if bright >= faint:
        bright, faint = config.bright_mag, config.faint_mag
    # Euclidean counts (slope 0.6) for explosive transients seen out to large distances.
    mag_r[is_tra] = power_law_magnitudes(rng, int(is_tra.sum()), bright, faint, 0.6)
    colour = np.where(kind == ObjectKind.GALAXY, rng.normal(0.6, 0.25, n), rng.normal(0.7, 0.35, n))
    colour = np.where(is_tra, rng.normal(0.1, 0.2, n), np.clip(colour, -0.3, 2.0))
    slopes = np.array([BANDS[b].colour_slope for b in config.bands])
    mag = mag_r[:, None] + colour[:, None] * slopes[None, :]

    def only(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.where(mask, values, np.nan)

    period = only(is_var, 10.0 ** rng.uniform(np.log10(0.1), np.log10(500.0), n))
    phase = only(is_var, rng.random(n))
    amplitude = only(is_var, 10.0 ** rng.uniform(np.log10(0.05), np.log10(1.5), n))
    shape = np.where(is_var & (rng.random(n) < 0.3), VariableShape.SAWTOOTH, VariableShape.SINE).astype(np.int8)
    peak_mjd = only(is_tra, rng.uniform(config.mjd_start - 30.0, config.mjd_start + config.days, n))
    rise_rate = only(is_tra, rng.uniform(0.1, 0.5, n))
    decline_rate = only(is_tra, rng.uniform(0.02, 0.1, n))
    scale = np.array([BANDS[b].variability_scale for b in config.bands])

    # The template is a long coadd: it holds the time average of the flux.
    k = LN10_04 * np.nan_to_num(amplitude)[:, None] * scale[None, :]
    safe_k = np.where(k > 0.0, k, 1.0)
    mean_factor = np.where(shape[:, None] == VariableShape.SINE, np.i0(k), np.where(k > 0.0, np.sinh(k) / safe_k, 1.0))
    template_flux = flux_njy(mag) * np.where(is_var[:, None], mean_factor, 1.0)
    template_flux[is_tra] = 0.0
    sigma = np.array([flux_njy(BANDS[b].m5_nominal) / 5.0 for b in config.bands]) / np.sqrt(config.template_visits)
    template_noise = (rng.standard_normal((n, len(config.bands))) * sigma[None, :]).astype(np.float32)
    return TrueSky(
        vectors=vectors,
        ra=ra,
        dec=dec,
        kind=kind,
        mag=mag,
        template_flux=template_flux,
        template_noise=template_noise,
        period=period,
        phase=phase,
        amplitude=amplitude,
        shape=shape,
        peak_mjd=peak_mjd,
        rise_rate=rise_rate,
        decline_rate=decline_rate,
        amplitude_scale=scale,
    )
