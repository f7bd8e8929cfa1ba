"""Simulate a seeded, realistic LSST-like survey as DataFrames matching the shipped Felis schemas.

This is what ``dms-db simulate`` calls. Usage::

    from loaders.simulate import SimulationConfig, simulate_survey

    survey = simulate_survey(SimulationConfig(seed=1, n_objects=20_000, n_visits=60))
    survey.tables["apdb.DiaSource"]          # a pandas DataFrame
    survey.write_parquet(Path("sim"))        # sim/apdb.DiaSource.parquet ...

The implementation lives in the :mod:`loaders.simulation` package (one module
per part); this module is its stable public face.

Sizes and times (one core, defaults: 20 000 objects, 60 visits over a year on a
1.5 deg radius area): see ``docs`` of :class:`SimulationConfig` and the report
in the tests. Roughly 5 million DiaSources come from
``SimulationConfig(n_objects=400_000, n_visits=600, variable_fraction=0.3)``.
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
