"""Photometry of one visit: what the science image and the difference image measure for each object on it.

The noise model: background noise from the visit's per-detector depth, Poisson
noise of the source from the zero point, the template's own error, and an
image-subtraction residual proportional to the template flux. Every draw comes
from a stream keyed by the visit, so measuring a visit twice gives the same
numbers (the forced-photometry pass relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loaders.simulation.config import BANDS, SimulationConfig, Stream, random_stream
from loaders.simulation.focal_plane import FocalPlane, Landing
from loaders.simulation.truth import TrueSky, flux_njy
from loaders.simulation.visits import Visits

SATURATION_BELOW_M5 = 8.3
"""A point source saturates this many magnitudes above the 5-sigma depth (about r=16 for LSST)."""


@dataclass(frozen=True)
class Photometry:
    """Measured fluxes (nJy) of sources on one visit, aligned with a :class:`Landing`."""

    landing: Landing
    true_flux: np.ndarray
    template_flux: np.ndarray
    science_flux: np.ndarray
    science_err: np.ndarray
    diff_flux: np.ndarray
    diff_err: np.ndarray
    residual: np.ndarray
    """The subtraction-artifact part of ``diff_flux``."""
    saturated: np.ndarray

    @property
    def science_snr(self) -> np.ndarray:
        """Signal-to-noise ratio on the direct image."""
        return self.science_flux / self.science_err

    @property
    def diff_snr(self) -> np.ndarray:
        """Absolute signal-to-noise ratio on the difference image (DiaSources can be negative)."""
        return np.abs(self.diff_flux) / self.diff_err


def template_sigma(config: SimulationConfig, band: int) -> float:
    """Noise in nJy of a PSF flux on the template of a band."""
    return float(flux_njy(BANDS[config.bands[band]].m5_nominal)) / 5.0 / np.sqrt(config.template_visits)


def photometry(
    config: SimulationConfig,
    visits: Visits,
    v: int,
    landing: Landing,
    true_flux: np.ndarray,
    template_flux: np.ndarray,
    template_noise: np.ndarray,
    normals: np.ndarray,
) -> Photometry:
    """Add noise to true fluxes on visit ``v``.

    Parameters
    ----------
    config, visits, v
        The survey and the visit.
    landing
        Where the sources fall on the visit's detectors.
    true_flux, template_flux
        Noiseless flux now and in the template.
    template_noise
        The template's measurement error at each source.
    normals
        Two standard normal draws per source, ``(2, n)``: the science-image noise and
        the subtraction residual. The caller keys them by source so that measuring
        a source again, alone or among others, gives the same numbers.
    """
    sky = visits.sky_sigma(v, landing.detector)
    per_electron = visits.njy_per_electron(v)
    noise = normals[0] * np.sqrt(sky**2 + np.maximum(true_flux, 0.0) * per_electron)
    science = true_flux + noise
    science_err = np.sqrt(sky**2 + np.maximum(science, 0.0) * per_electron)
    residual = config.subtraction_residual * template_flux * normals[1]
    diff = science - (template_flux + template_noise) + residual
    diff_err = np.hypot(science_err, template_sigma(config, int(visits.band[v])))
    saturation = flux_njy(visits.m5[v, landing.detector] - SATURATION_BELOW_M5)
    return Photometry(
        landing=landing,
        true_flux=true_flux,
        template_flux=template_flux,
        science_flux=science,
        science_err=science_err,
        diff_flux=diff,
        diff_err=diff_err,
        residual=residual,
        saturated=true_flux > saturation,
    )


@dataclass(frozen=True)
class Targets:
    """A fixed subset of the true objects (sorted indices), with their vectors gathered once for all visits."""

    index: np.ndarray
    vectors: np.ndarray

    @classmethod
    def of(cls, sky: TrueSky, index: np.ndarray) -> Targets:
        """The objects ``index`` of ``sky``."""
        index = np.unique(index)
        return cls(index=index, vectors=sky.vectors[index])


def measure_visit(
    config: SimulationConfig,
    sky: TrueSky,
    visits: Visits,
    plane: FocalPlane,
    v: int,
    targets: Targets | None = None,
) -> Photometry:
    """Photometry of the true objects that fall on a detector of visit ``v``.

    Parameters
    ----------
    config, sky, visits, plane, v
        The survey and the visit.
    targets
        The objects to consider (default: all). An object gets the same numbers
        whichever subset it is measured with: the noise of the visit is drawn for
        every object and then picked by index, which costs far less than placing
        objects on the focal plane.
    """
    if targets is None:
        landing = plane.land(sky.vectors, visits.vectors[v], float(visits.rotation[v]))
    else:
        landing = plane.land(targets.vectors, visits.vectors[v], float(visits.rotation[v]))
        landing = Landing(targets.index[landing.index], landing.detector, landing.x, landing.y)
    band = int(visits.band[v])
    true_flux = sky.flux(landing.index, band, float(visits.mjd[v]))
    normals = random_stream(config.seed, Stream.MEASURE, v).standard_normal((2, sky.size), dtype=np.float32)
    return photometry(
        config,
        visits,
        v,
        landing,
        true_flux,
        sky.template_flux[landing.index, band],
        sky.template_noise[landing.index, band].astype(np.float64),
        normals[:, landing.index],
    )


def subset(phot: Photometry, rows: np.ndarray) -> Photometry:
    """The measurements of some rows (a boolean mask or indices)."""
    landing = phot.landing
    return Photometry(
        landing=Landing(landing.index[rows], landing.detector[rows], landing.x[rows], landing.y[rows]),
        true_flux=phot.true_flux[rows],
        template_flux=phot.template_flux[rows],
        science_flux=phot.science_flux[rows],
        science_err=phot.science_err[rows],
        diff_flux=phot.diff_flux[rows],
        diff_err=phot.diff_err[rows],
        residual=phot.residual[rows],
        saturated=phot.saturated[rows],
    )
