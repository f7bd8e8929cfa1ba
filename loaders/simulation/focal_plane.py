"""The camera: a grid of square detectors inside a circular field of view, and where objects land on it.

The layout mimics LSSTCam (a 15x15-like grid of 4k x 4k detectors with the
corners cut off by the round field); with the default settings it has 193
detectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loaders.simulation.config import SimulationConfig
from loaders.simulation.sky import dot, local_frame
from sharding.spherical import DEG, radec_of

EDGE_PIXELS = 16
"""Sources closer than this to a detector edge get ``pixelFlags_edge``."""


@dataclass(frozen=True)
class Landing:
    """Objects that fall on a detector in one visit: their indices and pixel positions."""

    index: np.ndarray
    detector: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True)
class FocalPlane:
    """Detector layout: ``cells[j, i]`` is the detector at grid cell (i, j), or -1 where there is none."""

    cells: np.ndarray
    cell_deg: float
    pixels: int
    fov_radius_deg: float

    @classmethod
    def from_config(cls, config: SimulationConfig) -> FocalPlane:
        """Keep the grid cells whose centre lies inside the field of view, numbered row by row."""
        size = config.detector_size_deg
        half = max(math.ceil(config.fov_radius_deg / size - 0.5), 0)
        offsets = (np.arange(2 * half + 1) - half) * size
        cx, cy = np.meshgrid(offsets, offsets)
        inside = np.hypot(cx, cy) <= config.fov_radius_deg
        if not inside.any():  # a field smaller than half a detector still has the central one
            inside[half, half] = True
        cells = np.full(inside.shape, -1, dtype=np.int16)
        cells[inside] = np.arange(int(inside.sum()), dtype=np.int16)
        return cls(cells=cells, cell_deg=size, pixels=config.detector_pixels, fov_radius_deg=config.fov_radius_deg)

    @property
    def n_detectors(self) -> int:
        """Number of detectors."""
        return int((self.cells >= 0).sum())

    def _rotated(self, x: np.ndarray, y: np.ndarray, rotation_deg: float) -> tuple[np.ndarray, np.ndarray]:
        c, s = math.cos(rotation_deg * DEG), math.sin(rotation_deg * DEG)
        return x * c + y * s, -x * s + y * c

    def land(self, vectors: np.ndarray, centre: np.ndarray, rotation_deg: float) -> Landing:
        """Which of ``vectors`` fall on a detector of a visit pointed at ``centre``, and where.

        Parameters
        ----------
        vectors
            Unit vectors of candidate positions, ``(n, 3)``.
        centre
            Unit vector of the boresight.
        rotation_deg
            Sky rotation of the focal plane.
        """
        half_extent = self.cells.shape[0] * self.cell_deg / 2.0
        reach = min(math.hypot(half_extent, half_extent) * 1.01 * DEG, np.pi / 2.0)
        east, north = local_frame(centre)
        depth = dot(vectors, centre)
        near = np.flatnonzero(depth > math.cos(reach))
        depth = depth[near]
        gx = dot(vectors, east)[near] / depth / DEG
        gy = dot(vectors, north)[near] / depth / DEG
        u, w = self._rotated(gx, gy, rotation_deg)
        fu, fw = u / self.cell_deg + self.cells.shape[1] / 2.0, w / self.cell_deg + self.cells.shape[0] / 2.0
        i, j = np.floor(fu).astype(np.int64), np.floor(fw).astype(np.int64)
        on_grid = (i >= 0) & (i < self.cells.shape[1]) & (j >= 0) & (j < self.cells.shape[0])
        detector = np.full(near.shape, -1, dtype=np.int16)
        detector[on_grid] = self.cells[j[on_grid], i[on_grid]]
        hit = detector >= 0
        return Landing(
            index=near[hit],
            detector=detector[hit],
            x=(fu[hit] - i[hit]) * self.pixels,
            y=(fw[hit] - j[hit]) * self.pixels,
        )

    def detector_centres(self, centre: np.ndarray, rotation_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """RA/Dec of every detector's centre for a visit, in detector order."""
        j, i = np.nonzero(self.cells >= 0)
        order = np.argsort(self.cells[j, i])
        u = (i[order] + 0.5 - self.cells.shape[1] / 2.0) * self.cell_deg
        w = (j[order] + 0.5 - self.cells.shape[0] / 2.0) * self.cell_deg
        gx, gy = self._rotated(u, w, -rotation_deg)
        east, north = local_frame(centre)
        v = centre + np.multiply.outer(gx * DEG, east) + np.multiply.outer(gy * DEG, north)
        return radec_of(v)
