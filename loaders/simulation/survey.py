"""Run a whole simulated survey and hand back its tables: the one entry point of the simulator.

Two passes over the visits, in time order. The first measures every object on
every visit it lands on, keeps the detections (DiaSources, Sources) and builds
the coadds; then DiaObjects and Objects are known. The second measures again
(the keyed random streams give the same numbers) and keeps the forced
photometry of those objects. Only one visit's measurements are in memory at a
time, so memory grows with the output, not with objects x visits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loaders.simulation.config import SimulationConfig
from loaders.simulation.exposures import exposure_frames
from loaders.simulation.focal_plane import FocalPlane
from loaders.simulation.frames import empty_frame, shipped_table
from loaders.simulation.measure import Targets, measure_visit
from loaders.simulation.prompt import PromptCatalog
from loaders.simulation.release import ReleaseCatalog
from loaders.simulation.solar_system import measure_solar_system, simulate_solar_system
from loaders.simulation.truth import simulate_true_sky
from loaders.simulation.visits import simulate_visits

TABLE_NAMES = (
    "apdb.DiaObject",
    "apdb.DiaSource",
    "apdb.DiaForcedSource",
    "apdb.SSObject",
    "dr.Visit",
    "dr.CcdVisit",
    "dr.Object",
    "dr.Source",
    "dr.ForcedSource",
)
"""Keys of :attr:`SimulatedSurvey.tables`: ``<shipped schema>.<table>``."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called after each visit of each pass."""


@dataclass(frozen=True)
class SimulatedSurvey:
    """The tables of a simulated survey, keyed ``"apdb.DiaSource"``, ``"dr.Object"`` ...

    Each frame has exactly the columns of its table in the shipped Felis schema
    (see :mod:`loaders.simulation.frames` for the dtypes).
    """

    tables: dict[str, pd.DataFrame]
    config: SimulationConfig | None = field(default=None, compare=False)

    @property
    def row_counts(self) -> dict[str, int]:
        """Rows per table."""
        return {name: len(frame) for name, frame in self.tables.items()}

    def write_parquet(self, directory: Path) -> list[Path]:
        """Write one Parquet file per table, ``<directory>/apdb.DiaSource.parquet`` ...

        Each file is written under a temporary name and renamed, so a file that
        exists is complete. Returns the paths in :data:`TABLE_NAMES` order.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, frame in self.tables.items():
            path = directory / f"{name}.parquet"
            partial = directory / f".{name}.parquet.partial"
            frame.to_parquet(partial, engine="pyarrow", index=False)
            os.replace(partial, path)
            paths.append(path)
        return paths


def simulate_survey(config: SimulationConfig, *, progress: Progress | None = None) -> SimulatedSurvey:
    """Simulate a survey: true sky, schedule, both catalogs.

    Parameters
    ----------
    config
        Every setting, including the seed: the same config gives identical frames.
    progress
        Optional callback for a progress bar; see :data:`Progress`.

    Raises
    ------
    dms_db.errors.ConfigError
        If the area cannot be observed from the site within the time span.
    """
    plane = FocalPlane.from_config(config)
    sky = simulate_true_sky(config)
    visits = simulate_visits(config, plane)
    ss = simulate_solar_system(config, visits)
    prompt = PromptCatalog(config, sky, ss, visits, plane)
    release = ReleaseCatalog(config, sky, visits) if config.include_data_release else None
    n = len(visits)

    for v in range(n):
        phot = measure_visit(config, sky, visits, plane, v)
        prompt.add_detections(v, phot, *measure_solar_system(config, ss, visits, plane, v))
        if release is not None:
            release.add_detections(v, phot)
        if progress is not None:
            progress("detect", v + 1, n)
    prompt.associate()
    if release is not None:
        release.select_objects()
    # Forced photometry only needs the DiaObjects and Objects; their noise is the same as in the first pass.
    wanted = prompt.forced_targets()
    if release is not None:
        wanted = np.union1d(wanted, release.forced_targets())
    targets = Targets.of(sky, wanted)
    for v in range(n):
        phot = measure_visit(config, sky, visits, plane, v, targets)
        prompt.add_forced(v, phot)
        if release is not None:
            release.add_forced(v, phot)
        if progress is not None:
            progress("forced photometry", v + 1, n)

    frames = {f"apdb.{name}": frame for name, frame in prompt.frames().items()}
    frames |= {f"dr.{name}": frame for name, frame in exposure_frames(config, visits, plane).items()}
    if release is not None:
        frames |= {f"dr.{name}": frame for name, frame in release.frames().items()}
    else:
        frames |= {
            f"dr.{name}": empty_frame(shipped_table("dr", name)) for name in ("Object", "Source", "ForcedSource")
        }
    return SimulatedSurvey(tables={name: frames[name] for name in TABLE_NAMES}, config=config)
