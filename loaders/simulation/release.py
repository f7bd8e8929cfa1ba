"""The data release (Level 2) catalog: Objects from the coadd, Sources per visit, ForcedSources per Object.

The coadd of a band is the inverse-variance weighted mean of the visit
measurements; an Object is every true object detected in the coadds (its
combined signal-to-noise ratio reaches ``detection_snr``) or on any single
visit, so that every Source has an Object. Object ids pack a HEALPix stand-in
for the Rubin skymap: tract (order 5, about 1.8 deg), patch (64 per tract), and
a counter.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
import pandas as pd

from loaders.simulation.config import ALL_BANDS, SimulationConfig, Stream, random_stream
from loaders.simulation.detections import BatchBuffer, astrometry, packed_ids, pixel_flags, visit_columns
from loaders.simulation.frames import compact, conform, masked, shipped_table
from loaders.simulation.measure import Photometry, subset
from loaders.simulation.sky import ARCSEC, gnomonic_deg, scatter
from loaders.simulation.truth import ObjectKind, TrueSky
from loaders.simulation.visits import MEDIAN_SEEING_ARCSEC, Visits
from sharding.spherical import DEG, radec_of

TRACT_NSIDE = 32
PATCH_NSIDE = 256
TRACT_HALF_WIDTH_DEG = 2.0
"""Beyond the farthest corner of an order-5 pixel from its centre (1.9 deg): pixel coordinates stay positive."""


class ReleaseCatalog:
    """Builds Object, Source and ForcedSource from two passes over the visits.

    Call :meth:`add_detections` for every visit, then :meth:`select_objects`, then
    :meth:`add_forced` for every visit in time order, then :meth:`frames`.
    """

    def __init__(self, config: SimulationConfig, sky: TrueSky, visits: Visits) -> None:
        self.config, self.sky, self.visits = config, sky, visits
        n_bands = len(config.bands)
        self.weight = np.zeros((n_bands, sky.size))
        self.weighted_flux = np.zeros((n_bands, sky.size))
        self.n_cover = np.zeros(sky.size, dtype=np.int64)
        self._sources = BatchBuffer()
        self._forced = BatchBuffer()
        self._has_source = np.zeros(sky.size, dtype=bool)

    def add_detections(self, v: int, phot: Photometry) -> None:
        """Add visit ``v`` to the coadds and record its direct-image detections as Sources."""
        config = self.config
        idx, band = phot.landing.index, int(self.visits.band[v])
        weight = 1.0 / phot.science_err**2
        self.weight[band, idx] += weight  # an object lands at most once per visit: no repeated indices
        self.weighted_flux[band, idx] += weight * phot.science_flux
        self.n_cover[idx] += 1

        found = subset(phot, phot.science_snr >= config.detection_snr)
        obj = found.landing.index
        n = len(obj)
        rng = random_stream(config.seed, Stream.SOURCE, v)
        snr = found.science_snr
        galaxy = self.sky.kind[obj] == ObjectKind.GALAXY
        resolved = snr > 10.0
        flags = pixel_flags(rng, found, config.detector_pixels)
        pixel_scale, fwhm = config.pixel_scale_arcsec, float(self.visits.fwhm[v])
        batch = {
            "sourceId": packed_ids(v, found.landing.detector),
            "_object": obj.astype(np.int32),
            "_rank": np.full(n, v, dtype=np.int32),
            "_detector": found.landing.detector,
            **astrometry(rng, self.sky.vectors[obj], found, snr, fwhm, pixel_scale, config.detector_pixels),
            "psfFlux": found.science_flux,
            "psfFluxErr": found.science_err,
            "psfFlux_flag": found.saturated | flags["pixelFlags_edge"],
            "calibFlux": found.science_flux + 0.6 * found.science_err * rng.standard_normal(n),
            "calibFluxErr": 1.17 * found.science_err,
            "extendedness": np.where(resolved, galaxy, rng.random(n) < np.where(galaxy, 0.7, 0.2)).astype(float),
            "sizeExtendedness": np.clip(
                np.where(galaxy, 0.8, 0.1) + rng.normal(0.0, 0.1, n) * (1.0 + 10.0 / snr), 0.0, 1.0
            ),
            "sky_source": np.zeros(n, dtype=bool),
            "centroid_flag": found.saturated | (rng.random(n) < 0.002),
            **flags,
        }
        compact(batch, shipped_table("dr", "Source"))
        self._has_source[obj] = True
        self._sources.append(batch)

    def select_objects(self) -> None:
        """Decide which true objects are Objects and measure them on the coadds."""
        config, sky = self.config, self.sky
        with np.errstate(invalid="ignore", divide="ignore"):
            coadd_flux = self.weighted_flux / self.weight
            coadd_err = 1.0 / np.sqrt(self.weight)
        snr = np.where(self.weight > 0.0, coadd_flux / coadd_err, 0.0)
        total_snr = np.sqrt(np.sum(np.maximum(snr, 0.0) ** 2, axis=0))
        index = np.flatnonzero((total_snr >= config.detection_snr) | self._has_source)
        rng = random_stream(config.seed, Stream.DR_OBJECT)
        n = len(index)
        sigma = np.hypot(0.6 * MEDIAN_SEEING_ARCSEC / np.maximum(total_snr[index], 1.0), 0.005) * ARCSEC / DEG
        vectors = scatter(sky.vectors[index], sigma, rng)
        ra, dec = radec_of(vectors)
        fine = hp.ang2pix(PATCH_NSIDE, ra, dec, nest=True, lonlat=True).astype(np.int64)
        per_tract = (PATCH_NSIDE // TRACT_NSIDE) ** 2
        tract, patch = fine // per_tract, fine % per_tract
        order = np.lexsort((index, fine))
        sorted_fine = fine[order]
        counter = np.empty(n, dtype=np.int64)
        counter[order] = np.arange(n) - np.searchsorted(sorted_fine, sorted_fine, side="left")
        object_id = (tract << 40) | (patch << 32) | counter
        x, y = self._tract_pixels(vectors, tract)
        galaxy = sky.kind[index] == ObjectKind.GALAXY
        clear = total_snr[index] > 8.0
        band_snr = snr[:, index]
        footprint = np.pi * (2.0 * MEDIAN_SEEING_ARCSEC / config.pixel_scale_arcsec) ** 2
        footprint *= (1.0 + np.log10(np.maximum(total_snr[index], 5.0) / 5.0)) * np.where(galaxy, 2.5, 1.0)
        self.object_row = np.full(sky.size, -1, dtype=np.int64)
        self.object_row[index] = np.arange(n)
        self.object_id, self.object_ra, self.object_dec = object_id, ra, dec
        no_nulls = np.zeros(n, dtype=bool)
        self.objects = {
            "objectId": object_id,
            "parentObjectId": None,
            "tract": masked(tract, no_nulls),
            "patch": masked(patch, no_nulls),
            "ra": ra,
            "raErr": sigma,
            "dec": dec,
            "decErr": sigma,
            "ra_dec_Cov": rng.uniform(-0.2, 0.2, n) * sigma**2,
            "x": x,
            "y": y,
            "refBand": np.array(list(config.bands), dtype=object)[np.argmax(band_snr, axis=0)],
            "refExtendedness": np.where(
                clear, np.where(galaxy, rng.uniform(0.9, 1.0, n), rng.uniform(0.0, 0.1, n)), rng.random(n)
            ),
            "detect_isPrimary": masked(np.ones(n, dtype=bool), no_nulls),
            "footprintArea": masked(np.round(footprint).astype(np.int64), no_nulls),
        }
        for band in ALL_BANDS:
            if band in config.bands:
                b = config.band_index(band)
                flux, err = coadd_flux[b, index], coadd_err[b, index]
                no_data = self.weight[b, index] == 0.0
            else:
                flux = err = np.full(n, np.nan)
                no_data = np.ones(n, dtype=bool)
            self.objects |= {f"{band}_psfFlux": flux, f"{band}_psfFluxErr": err, f"{band}_psfFlux_flag": no_data}
        self.ordinal = np.zeros(sky.size, dtype=np.int64)

    def forced_targets(self) -> np.ndarray:
        """Sorted indices of the true objects that are Objects."""
        return np.flatnonzero(self.object_row >= 0)

    def _tract_pixels(self, vectors: np.ndarray, tract: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates in each tract's tangent plane, with the origin beyond its lower-left corner."""
        x, y = np.empty(len(vectors)), np.empty(len(vectors))
        per_degree = 3600.0 / self.config.pixel_scale_arcsec
        origin = TRACT_HALF_WIDTH_DEG * per_degree
        for t in np.unique(tract):
            rows = np.flatnonzero(tract == t)
            centre = np.array(hp.pix2vec(TRACT_NSIDE, int(t), nest=True))
            gx, gy, _ = gnomonic_deg(vectors[rows], centre)
            x[rows], y[rows] = gx * per_degree + origin, gy * per_degree + origin
        return x, y

    def add_forced(self, v: int, phot: Photometry) -> None:
        """Forced photometry of the Objects on visit ``v``, at most ``max_forced_sources_per_object`` each.

        The ``k``-th of an object's ``n`` covering visits is kept when
        ``floor((k + 1) * cap / n) > floor(k * cap / n)``: exactly ``min(cap, n)`` visits,
        spread evenly along the light curve.
        """
        config = self.config
        idx = phot.landing.index
        row = self.object_row[idx]
        cap = config.max_forced_sources_per_object
        keep = row >= 0
        if cap is not None:
            k, n = self.ordinal[idx], np.maximum(self.n_cover[idx], 1)
            keep &= ((k + 1) * cap) // n > (k * cap) // n
        self.ordinal[idx] += 1
        measured = subset(phot, keep)
        row = row[keep]
        n_rows = len(row)
        rng = random_stream(config.seed, Stream.FORCED, v)
        edge = pixel_flags(rng, measured, config.detector_pixels)
        bad_fit = measured.saturated | edge["pixelFlags_edge"]
        batch = {
            "forcedSourceId": packed_ids(v, measured.landing.detector),
            "_row": row.astype(np.int32),
            "_rank": np.full(n_rows, v, dtype=np.int32),
            "_detector": measured.landing.detector,
            "psfFlux": measured.science_flux,
            "psfFluxErr": measured.science_err,
            "psfFlux_flag": bad_fit,
            "psfDiffFlux": measured.diff_flux,
            "psfDiffFluxErr": measured.diff_err,
            "psfDiffFlux_flag": bad_fit,
            "pixelFlags_bad": edge["pixelFlags_bad"],
            "pixelFlags_saturated": measured.saturated,
            "invalidPsfFlag": rng.random(n_rows) < 0.001,
        }
        compact(batch, shipped_table("dr", "ForcedSource"))
        self._forced.append(batch)

    def frames(self) -> dict[str, pd.DataFrame]:
        """The Object, Source and ForcedSource tables (Objects sorted by id).

        Batches hold compact indices (object, visit rank, detector); the columns
        they stand for are expanded here, one table at a time.
        """
        bands, visits = self.config.bands, self.visits
        objects = conform(shipped_table("dr", "Object"), self.objects).sort_values("objectId", ignore_index=True)
        sources = self._sources.concat()
        sources |= visit_columns(bands, visits, sources.pop("_rank"))
        sources["detector"] = sources.pop("_detector").astype(np.int64)
        sources["objectId"] = self.object_id[self.object_row[sources.pop("_object")]]
        sources["parentSourceId"] = None
        source_frame = conform(shipped_table("dr", "Source"), sources)
        del sources
        forced = self._forced.concat()
        forced |= visit_columns(bands, visits, forced.pop("_rank"))
        forced["detector"] = forced.pop("_detector").astype(np.int64)
        row = forced.pop("_row")
        forced |= {"objectId": self.object_id[row], "ra": self.object_ra[row], "dec": self.object_dec[row]}
        return {
            "Object": objects,
            "Source": source_frame,
            "ForcedSource": conform(shipped_table("dr", "ForcedSource"), forced),
        }
