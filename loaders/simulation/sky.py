"""Spherical geometry of the simulator: sampling a cap, local frames, offsets, mean positions.

Everything works on unit vectors, never on RA/Dec differences, so that areas
containing a pole or crossing RA 0/360 need no special case.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sharding.spherical import DEG, radec_of, unit_vectors

ARCSEC = DEG / 3600.0


def local_frame(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """East and north unit vectors at each position.

    At a pole east is taken along RA 90 deg (any direction is as good), so the
    frame is defined everywhere.
    """
    x, y = vectors[..., 0], vectors[..., 1]
    ra = np.arctan2(y, x)
    east = np.stack([-np.sin(ra), np.cos(ra), np.zeros_like(ra)], axis=-1)
    north = np.cross(vectors, east)
    return east, north / np.linalg.norm(north, axis=-1, keepdims=True)


def move(vectors: np.ndarray, distance_deg: npt.ArrayLike, position_angle_deg: npt.ArrayLike) -> np.ndarray:
    """Move positions along great circles by a distance toward a position angle (east of north).

    Exact for any distance, which the moving solar-system objects need; for the
    tiny astrometric scatter it is the same as an offset in the tangent plane.
    """
    east, north = local_frame(vectors)
    d = np.asarray(distance_deg, dtype=np.float64)[..., None] * DEG
    pa = np.asarray(position_angle_deg, dtype=np.float64)[..., None] * DEG
    direction = np.cos(pa) * north + np.sin(pa) * east
    return np.cos(d) * vectors + np.sin(d) * direction


def scatter(vectors: np.ndarray, sigma_deg: npt.ArrayLike, rng: np.random.Generator) -> np.ndarray:
    """Positions displaced by an isotropic Gaussian error of ``sigma_deg`` per axis."""
    sigma = np.broadcast_to(np.asarray(sigma_deg, dtype=np.float64), vectors.shape[:-1])
    d_east = rng.standard_normal(sigma.shape) * sigma
    d_north = rng.standard_normal(sigma.shape) * sigma
    return move(vectors, np.hypot(d_east, d_north), np.degrees(np.arctan2(d_east, d_north)))


def sample_cap(rng: np.random.Generator, ra_deg: float, dec_deg: float, radius_deg: float, n: int) -> np.ndarray:
    """``n`` unit vectors uniformly distributed (per unit solid angle) in a spherical cap.

    The cosine of the distance to the centre is uniform in ``[cos(radius), 1]``,
    which is what equal area per unit solid angle means on a sphere.
    """
    centre = unit_vectors(ra_deg, dec_deg)
    cos_r = np.cos(radius_deg * DEG)
    cos_theta = 1.0 - rng.random(n) * (1.0 - cos_r)
    theta = np.degrees(np.arccos(np.clip(cos_theta, -1.0, 1.0)))
    position_angle = rng.random(n) * 360.0
    return move(np.broadcast_to(centre, (n, 3)), theta, position_angle)


def dot(vectors: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Dot products of ``(n, 3)`` vectors with one direction.

    Column arithmetic is several times faster than ``vectors @ direction`` for
    this shape, and this is the inner loop of every visit.
    """
    return vectors[:, 0] * direction[0] + vectors[:, 1] * direction[1] + vectors[:, 2] * direction[2]


def gnomonic_deg(vectors: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangent-plane coordinates in degrees around ``centre`` and the mask of the front hemisphere.

    Points behind the plane get NaN coordinates.
    """
    east, north = local_frame(centre)
    depth = dot(vectors, centre)
    front = depth > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(front, dot(vectors, east) / depth, np.nan) / DEG
        y = np.where(front, dot(vectors, north) / depth, np.nan) / DEG
    return x, y, front


def group_mean_positions(vectors: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean RA/Dec per group, as the direction of the summed unit vectors (right across RA 0)."""
    summed = np.stack([np.bincount(groups, weights=vectors[:, k], minlength=n_groups) for k in range(3)], axis=-1)
    return radec_of(summed)
