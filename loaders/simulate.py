"""Simulate a seeded, realistic LSST-like survey as DataFrames matching the shipped Felis schemas.

This is the entry point ``dms-db simulate`` calls::

    from pathlib import Path
    from loaders.simulate import SimulationConfig, simulate_survey

    survey = simulate_survey(SimulationConfig(seed=1))
    survey.tables["apdb.DiaSource"]      # a pandas DataFrame with exactly the schema's columns
    survey.write_parquet(Path("sim"))    # sim/apdb.DiaSource.parquet, sim/dr.Object.parquet ...

The work is done by the :mod:`loaders.simulation` package, one module per part
(true sky, schedule, camera, photometry, prompt and release catalogs, asteroids,
schema conformance); this module is its stable public face. Column dtypes are
described in :mod:`loaders.simulation.frames` (timestamps are naive UTC).

Sizes (one core, measured): the defaults (20 000 objects, 60 visits over a year
on a 1.5 deg radius area) give about 435 000 rows in about 1.3 s: 3 400
DiaSources on 310 DiaObjects, 9 400 DiaForcedSources, 14 000 Objects, 117 000
Sources, 279 000 ForcedSources, 11 580 CcdVisits. About 5 million DiaSources
(with 18 million DiaForcedSources) come from::

    SimulationConfig(n_objects=400_000, n_visits=900, variable_fraction=0.5, include_data_release=False)

in about 70 s and 3.5 GB peak memory. Sources grow with objects x visits (about
10% of the pairs), so that setting with the data release would add about 30
million Sources; lowering ``dia_forced_days`` trims DiaForcedSource.
"""

from __future__ import annotations

from loaders.simulation.config import ALL_BANDS, BANDS, SimulationConfig
from loaders.simulation.frames import pandas_dtype
from loaders.simulation.survey import TABLE_NAMES, Progress, SimulatedSurvey, simulate_survey

__all__ = [
    "ALL_BANDS",
    "BANDS",
    "TABLE_NAMES",
    "Progress",
    "SimulatedSurvey",
    "SimulationConfig",
    "pandas_dtype",
    "simulate_survey",
]
