"""The prompt (Level 1) catalog: DiaSources, the DiaObjects they make, and DiaForcedSources.

Visits are processed in time order, as prompt processing would: a source is a
DiaSource when its difference-image flux is at least ``detection_snr`` sigma
from zero. All DiaSources of one true object belong to one DiaObject, whose id
is the id of its first DiaSource (Rubin's convention) and whose summary columns
are computed from its DiaSources. A DiaObject gets forced photometry on every
later visit covering it while it had a DiaSource within ``dia_forced_days``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from loaders.simulation.config import ALL_BANDS, SimulationConfig, Stream, random_stream
from loaders.simulation.detections import (
    BatchBuffer,
    astrometry,
    concat_batches,
    packed_ids,
    pixel_flags,
    visit_columns,
)
from loaders.simulation.focal_plane import FocalPlane
from loaders.simulation.frames import compact, conform, masked, shipped_table
from loaders.simulation.measure import Photometry, photometry, subset, template_sigma
from loaders.simulation.sky import group_mean_positions
from loaders.simulation.solar_system import SolarSystem, ss_object_frame
from loaders.simulation.truth import ObjectKind, TrueSky
from loaders.simulation.visits import Visits
from sharding.spherical import unit_vectors


class PromptCatalog:
    """Builds the apdb tables from two passes over the visits.

    Call :meth:`add_detections` for every visit in time order, then
    :meth:`associate`, then :meth:`add_forced` for every visit, then :meth:`frames`.
    """

    def __init__(
        self, config: SimulationConfig, sky: TrueSky, ss: SolarSystem, visits: Visits, plane: FocalPlane
    ) -> None:
        self.config, self.sky, self.ss, self.visits, self.plane = config, sky, ss, visits, plane
        self._sources = BatchBuffer()
        self._forced = BatchBuffer()

    def _columns(
        self,
        v: int,
        phot: Photometry,
        vectors: np.ndarray,
        extended: np.ndarray,
        dipole: np.ndarray,
        rng: np.random.Generator,
    ) -> dict[str, np.ndarray]:
        """DiaSource columns of detections on visit ``v`` (true positions ``vectors``), without ids."""
        config, visits = self.config, self.visits
        n = len(phot.landing)
        snr = phot.diff_snr
        fwhm = float(visits.fwhm[v])
        flags = pixel_flags(rng, phot, config.detector_pixels)
        psf_ndata = np.full(n, round(np.pi * (2.0 * fwhm / config.pixel_scale_arcsec) ** 2), dtype=np.int32)
        return {
            "detector": phot.landing.detector,
            **astrometry(rng, vectors, phot, snr, fwhm, config.pixel_scale_arcsec, config.detector_pixels),
            "apFlux": phot.diff_flux + 0.5 * phot.diff_err * rng.standard_normal(n),
            "apFluxErr": 1.12 * phot.diff_err,
            "snr": snr,
            "psfFlux": phot.diff_flux,
            "psfFluxErr": phot.diff_err,
            "psfChi2": rng.chisquare(psf_ndata) * np.where(dipole, 4.0, 1.0),
            "psfNdata": psf_ndata,
            "scienceFlux": phot.science_flux,
            "scienceFluxErr": phot.science_err,
            "extendedness": np.where(extended, rng.uniform(0.6, 1.0, n), np.clip(rng.normal(0.02, 0.03, n), 0, 1)),
            "reliability": np.where(
                dipole,
                rng.uniform(0.0, 0.4, n),
                np.clip(1.0 - np.exp(-(snr - 3.0) / 3.0) - rng.uniform(0, 0.1, n), 0, 1),
            ),
            "isDipole": dipole,
            "centroid_flag": phot.saturated | (rng.random(n) < 0.002),
            "psfFlux_flag": phot.saturated | flags["pixelFlags_edge"],
            **flags,
            "_rank": np.full(n, v, dtype=np.int32),
        }

    def add_detections(self, v: int, phot: Photometry, ss_phot: Photometry, ss_vectors: np.ndarray) -> None:
        """Record the DiaSources of visit ``v``: true objects in ``phot``, asteroids in ``ss_phot``."""
        snr = self.config.detection_snr
        rng = random_stream(self.config.seed, Stream.DIA_SOURCE, v)
        found = subset(phot, phot.diff_snr >= snr)
        obj = found.landing.index
        # A subtraction artifact dominates where the residual outweighs any real change.
        dipole = np.abs(found.residual) > np.abs(found.true_flux - found.template_flux)
        batch = self._columns(v, found, self.sky.vectors[obj], self.sky.kind[obj] == ObjectKind.GALAXY, dipole, rng)
        ss_rows = ss_phot.diff_snr >= snr
        ss_found = subset(ss_phot, ss_rows)
        none = np.zeros(len(ss_found.landing), dtype=bool)
        ss_batch = self._columns(v, ss_found, ss_vectors[ss_rows], none, none, rng)
        batch["_object"], ss_batch["_object"] = obj, np.full(len(ss_found.landing), -1)
        batch["_ss"], ss_batch["_ss"] = np.full(len(obj), -1), ss_found.landing.index
        merged = concat_batches([batch, ss_batch])
        merged["diaSourceId"] = packed_ids(v, merged["detector"])
        compact(merged, shipped_table("apdb", "DiaSource"))
        self._sources.append(merged)

    def associate(self) -> None:
        """Group the DiaSources into DiaObjects and compute their summaries."""
        rows = self._sources.concat()  # one batch per visit, possibly empty, so never without columns
        n_rows = len(rows["diaSourceId"])
        obj = rows["_object"]
        key = np.where(obj >= 0, obj, self.sky.size + np.arange(n_rows))
        _, first, group = np.unique(key, return_index=True, return_inverse=True)
        self.rows, self.group, self.first_row = rows, group.reshape(-1), first
        self.n_groups = len(first)
        self.dia_object_id = rows["diaSourceId"][first]
        self.summary = self._summaries()
        self.group_of_object = np.full(self.sky.size, -1, dtype=np.int64)
        self.group_of_object[obj[obj >= 0]] = self.group[obj >= 0]
        # Sorted (object, visit rank) keys of detections answer "detected within the window before v?".
        real = np.flatnonzero(obj >= 0)
        self.detection_key = np.sort(obj[real] * len(self.visits) + rows["_rank"][real])
        ss_rows = np.flatnonzero(obj < 0)
        self.ss_row, self.ss_group = ss_rows, self.group[ss_rows]

    def forced_targets(self) -> np.ndarray:
        """Sorted indices of the true objects that have a DiaObject (the only ones forced photometry needs)."""
        return np.flatnonzero(self.group_of_object >= 0)

    def _summaries(self) -> dict[str, np.ndarray]:
        rows, group, n = self.rows, self.group, self.n_groups
        count = np.bincount(group, minlength=n)
        mjd = self.visits.mjd[rows["_rank"]]
        last = np.full(n, -np.inf)
        np.maximum.at(last, group, mjd)
        ra, dec = group_mean_positions(unit_vectors(rows["ra"], rows["dec"]), group, n)
        safe = np.maximum(count, 1)
        summary = {
            "diaObjectId": self.dia_object_id,
            "ra": ra,
            "raErr": np.sqrt(np.bincount(group, rows["raErr"] ** 2, n)) / safe,
            "dec": dec,
            "decErr": np.sqrt(np.bincount(group, rows["decErr"] ** 2, n)) / safe,
            "ra_dec_Cov": np.bincount(group, rows["ra_dec_Cov"], n) / safe**2,
            "radecMjdTai": np.bincount(group, mjd, n) / safe,
            "firstDiaSourceMjdTai": mjd[self.first_row],  # rows are in time order
            "lastDiaSourceMjdTai": last,
            "nDiaSources": count.astype(np.int32),
        }
        for band in ALL_BANDS:
            summary |= self._band_summary(band)
        return summary

    def _band_summary(self, band: str) -> dict[str, np.ndarray | None]:
        n = self.n_groups
        names = [f"{band}_psfFlux{s}" for s in ("Mean", "MeanErr", "Sigma", "Ndata")]
        if band not in self.config.bands:
            return dict(zip(names, [None, None, None, np.zeros(n, dtype=np.int32)], strict=True))
        in_band = self.visits.band[self.rows["_rank"]] == self.config.band_index(band)
        group = self.group[in_band]
        flux, err = self.rows["psfFlux"][in_band], self.rows["psfFluxErr"][in_band]
        ndata = np.bincount(group, minlength=n)
        weight = np.bincount(group, 1.0 / err**2, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(group, flux / err**2, n) / weight
            plain_mean = np.bincount(group, flux, n) / ndata
            variance = np.bincount(group, (flux - plain_mean[group]) ** 2, n) / (ndata - 1)
            values = [mean, 1.0 / np.sqrt(weight), np.sqrt(np.where(ndata > 1, variance, np.nan))]
        return dict(zip(names, [*values, ndata.astype(np.int32)], strict=True))

    def add_forced(self, v: int, phot: Photometry) -> None:
        """Forced photometry of the DiaObjects on visit ``v`` (``phot``: the same numbers as the detection pass)."""
        config, visits = self.config, self.visits
        n_visits = len(visits)
        idx = phot.landing.index
        group = self.group_of_object[idx]
        keep = np.flatnonzero(group >= 0)
        at = np.searchsorted(self.detection_key, idx[keep] * n_visits + v, side="right") - 1
        prior = self.detection_key[np.maximum(at, 0)]
        recent = (at >= 0) & (prior // n_visits == idx[keep])
        recent &= visits.mjd[v] - visits.mjd[prior % n_visits] <= config.dia_forced_days
        keep = keep[recent]
        batches = [self._forced_columns(v, subset(phot, keep), group[keep]), self._forced_asteroid_sites(v)]
        for batch in batches:
            compact(batch, shipped_table("apdb", "DiaForcedSource"))
            self._forced.append(batch)

    def _forced_asteroid_sites(self, v: int) -> dict[str, np.ndarray]:
        """Forced photometry where an asteroid was seen: its flux on the visit that found it, sky later on."""
        config, visits = self.config, self.visits
        ranks = self.rows["_rank"][self.ss_row]
        mjd = visits.mjd
        eligible = np.flatnonzero((ranks <= v) & (mjd[v] - mjd[ranks] <= config.dia_forced_days))
        vectors = unit_vectors(
            self.summary["ra"][self.ss_group[eligible]], self.summary["dec"][self.ss_group[eligible]]
        )
        landing = self.plane.land(vectors.reshape(-1, 3), visits.vectors[v], float(visits.rotation[v]))
        rng = random_stream(config.seed, Stream.SS_MEASURE, v, 1)
        n = len(landing)
        sky_only = photometry(
            config,
            visits,
            v,
            landing,
            np.zeros(n),
            np.zeros(n),
            rng.standard_normal(n) * template_sigma(config, int(visits.band[v])),
            rng.standard_normal((2, n)),
        )
        batch = self._forced_columns(v, sky_only, self.ss_group[eligible[landing.index]])
        seen_now = ranks[eligible[landing.index]] == v
        source_row = self.ss_row[eligible[landing.index]]
        for column, source in (
            ("psfFlux", "psfFlux"),
            ("psfFluxErr", "psfFluxErr"),
            ("scienceFlux", "scienceFlux"),
            ("scienceFluxErr", "scienceFluxErr"),
        ):
            batch[column] = np.where(seen_now, self.rows[source][source_row], batch[column])
        return batch

    def _forced_columns(self, v: int, phot: Photometry, group: np.ndarray) -> dict[str, np.ndarray]:
        """DiaForcedSource measurements; ids, positions and visit columns are expanded in :meth:`frames`."""
        return {
            "_group": group,
            "_rank": np.full(len(group), v, dtype=np.int32),
            "detector": phot.landing.detector,
            "psfFlux": phot.diff_flux,
            "psfFluxErr": phot.diff_err,
            "scienceFlux": phot.science_flux,
            "scienceFluxErr": phot.science_err,
        }

    def frames(self) -> dict[str, pd.DataFrame]:
        """The four apdb tables."""
        rows, bands, visits = self.rows, self.config.bands, self.visits
        del self.rows
        ss_index = rows["_ss"]
        is_ss = ss_index >= 0
        ss_object_id = np.zeros(len(ss_index), dtype=np.int64)
        ss_object_id[is_ss] = self.ss.ss_object_id[ss_index[is_ss]]
        ss_frame = ss_object_frame(
            self.config, shipped_table("apdb", "SSObject"), self.ss, ss_index[is_ss], visits.mjd[rows["_rank"][is_ss]]
        )
        sources = {name: values for name, values in rows.items() if not name.startswith("_")}
        sources |= visit_columns(bands, visits, rows.pop("_rank"), processed=True)
        sources["diaObjectId"] = self.dia_object_id[self.group]
        sources["ssObjectId"] = masked(ss_object_id, ~is_ss)
        sources["parentDiaSourceId"] = None
        dia_sources = conform(shipped_table("apdb", "DiaSource"), sources)
        del sources, rows

        forced = self._forced.concat()
        group = forced.pop("_group")
        forced |= visit_columns(bands, visits, forced.pop("_rank"), processed=True)
        forced |= {
            "diaObjectId": self.dia_object_id[group],
            "ra": self.summary["ra"][group],
            "dec": self.summary["dec"][group],
        }
        return {
            "DiaObject": conform(shipped_table("apdb", "DiaObject"), self.summary),
            "DiaSource": dia_sources,
            "DiaForcedSource": conform(shipped_table("apdb", "DiaForcedSource"), forced),
            "SSObject": ss_frame,
        }
