"""The rows every configuration of the correctness suite holds: a simulated survey plus two real catalogs.

One :class:`QueryDataset` is built per test session (a second or two for the
simulation, a few seconds to read the real catalogs) and loaded into every
cluster configuration and into the unsharded reference, so that both sides
hold exactly the same rows.

* ``apdb`` and ``dr``: a seeded simulated survey of a 2.5 degree radius field
  centred on RA 0.5, Dec -62, so it crosses RA 0/360 (chunk order 7).
* ``hip``: Hipparcos (the ``dr`` schema deployed as ``hip``; 117,955 stars
  all over the sky, both poles, chunk order 3) in ``hip.Object``.
* ``ogle``: OGLE-III variables (the ``apdb`` schema deployed as ``ogle``;
  399,679 stars in very crowded fields, chunk order 6) in ``ogle.DiaObject``.

The real catalogs live in ``../shared/data/`` next to the project; where that
folder is absent they are left out and the queries that need them skip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dms_db.catalog_schema import CatalogSchema, load_catalog_schema, shipped_schema_path
from dms_db.catalog_service import deploy_schema_file
from loaders.bulk_load import load_inputs
from loaders.simulate import SimulationConfig, simulate_survey
from loaders.survey_load import LOAD_ORDER
from tests.harness import DatabaseCluster

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
HIPPARCOS = DATA_DIR / "hipparcos2_hip2.csv.gz"
OGLE = DATA_DIR / "ogle3_variables.csv.gz"

SURVEY = SimulationConfig(
    seed=11,
    ra_center=0.5,
    dec_center=-62.0,
    radius_deg=2.5,
    n_objects=12_000,
    n_visits=30,
    variable_fraction=0.3,
    transient_fraction=0.05,
    bright_mag=16.0,
    faint_mag=24.0,
    max_forced_sources_per_object=6,
)
"""About 1,900 DiaObjects, 7,000 DiaSources, 12,000 Objects and 70,000 Sources around RA 0."""

SURVEY_CHUNK_ORDER = 7  # ~0.21 deg2 chunks: about 100 chunks over the field
HIP_CHUNK_ORDER = 3  # 768 chunks of ~54 deg2 over the whole sky
OGLE_CHUNK_ORDER = 6  # ~0.84 deg2 chunks: a few hundred crowded chunks
NJY_ZERO_POINT = 31.4  # AB magnitude of 1 nJy


@dataclass(frozen=True)
class CatalogData:
    """One deployed catalog: its shipped schema, the name it is deployed as, and its tables' rows."""

    source: str
    name: str
    chunk_order: int
    tables: dict[str, pd.DataFrame] = field(repr=False)

    @property
    def schema(self) -> CatalogSchema:
        """The Felis schema as deployed (renamed to :attr:`name`)."""
        return load_catalog_schema(shipped_schema_path(self.source), name=self.name)


@dataclass(frozen=True)
class QueryDataset:
    """Every catalog of the suite, in load order (directors before their children)."""

    catalogs: tuple[CatalogData, ...]
    missing: tuple[str, ...] = ()
    """Real catalogs that could not be read, with the reason."""

    @property
    def schema_names(self) -> frozenset[str]:
        """Names of the catalogs present."""
        return frozenset(c.name for c in self.catalogs)

    def row_count(self) -> int:
        """Rows over all tables (one copy each)."""
        return sum(len(frame) for c in self.catalogs for frame in c.tables.values())


def _flux(magnitude: pd.Series) -> np.ndarray:
    """nJy flux of an AB-like magnitude (missing stays missing)."""
    return (10.0 ** ((NJY_ZERO_POINT - magnitude.to_numpy(np.float64)) / 2.5)).astype(np.float32)


def hipparcos_objects(path: Path) -> pd.DataFrame:
    """Hipparcos as ``dr.Object`` rows: id, position and its errors, Hp flux, transits, single stars."""
    raw = pd.read_csv(path, usecols=["HIP", "Nc", "ra_deg", "dec_deg", "e_RArad", "e_DErad", "Ntr", "Hpmag", "e_Hpmag"])
    flux = _flux(raw["Hpmag"])
    mas_to_deg = 1.0 / 3.6e6
    return pd.DataFrame(
        {
            "objectId": raw["HIP"].astype(np.int64),
            "ra": raw["ra_deg"].astype(np.float64),
            "raErr": (raw["e_RArad"] * mas_to_deg).astype(np.float32),
            "dec": raw["dec_deg"].astype(np.float64),
            "decErr": (raw["e_DErad"] * mas_to_deg).astype(np.float32),
            "refBand": "g",
            "detect_isPrimary": (raw["Nc"] == 1).to_numpy(),
            "footprintArea": raw["Ntr"].astype(np.int32),
            "g_psfFlux": flux,
            "g_psfFluxErr": (flux * raw["e_Hpmag"].to_numpy(np.float64) * np.log(10.0) / 2.5).astype(np.float32),
        }
    )


def ogle_objects(path: Path) -> pd.DataFrame:
    """OGLE-III as ``apdb.DiaObject`` rows.

    ``diaObjectId`` is the row number (from 1); ``i_psfFluxMean`` and
    ``g_psfFluxMean`` are the nJy fluxes of the I and V magnitudes (V is often
    missing, which gives NULLs to aggregate); ``nDiaSources`` holds the number
    of periods the catalogue lists (1 to 3), an integer to group by.
    """
    raw = pd.read_csv(path, usecols=["ra_deg", "dec_deg", "I", "V", "P_1", "P_2", "P_3"])
    n = len(raw)
    frame = pd.DataFrame(
        {
            "diaObjectId": np.arange(1, n + 1, dtype=np.int64),
            "ra": raw["ra_deg"].to_numpy(np.float64),
            "dec": raw["dec_deg"].to_numpy(np.float64),
            "nDiaSources": raw[["P_1", "P_2", "P_3"]].notna().sum(axis=1).to_numpy(np.int32),
            "i_psfFluxMean": _flux(raw["I"]),
            "g_psfFluxMean": _flux(raw["V"]),
        }
    )
    for band in "ugrizy":
        frame[f"{band}_psfFluxNdata"] = np.zeros(n, dtype=np.int32)
    return frame


def build_dataset() -> QueryDataset:
    """Simulate the survey and read the real catalogs that are present."""
    survey = simulate_survey(SURVEY).tables
    catalogs = [
        CatalogData(
            family,
            family,
            SURVEY_CHUNK_ORDER,
            {key.split(".")[1]: survey[key] for key in LOAD_ORDER if key.startswith(family + ".")},
        )
        for family in ("apdb", "dr")
    ]
    missing = []
    if HIPPARCOS.is_file():
        catalogs.append(CatalogData("dr", "hip", HIP_CHUNK_ORDER, {"Object": hipparcos_objects(HIPPARCOS)}))
    else:
        missing.append(f"hip: {HIPPARCOS.name} not found in the shared data folder {DATA_DIR}")
    if OGLE.is_file():
        catalogs.append(CatalogData("apdb", "ogle", OGLE_CHUNK_ORDER, {"DiaObject": ogle_objects(OGLE)}))
    else:
        missing.append(f"ogle: {OGLE.name} not found in the shared data folder {DATA_DIR}")
    return QueryDataset(tuple(catalogs), tuple(missing))


def load_cluster(cluster: DatabaseCluster, dataset: QueryDataset, replication: int) -> None:
    """Deploy every catalog of ``dataset`` on ``cluster`` and load its rows, directors first."""
    for data in dataset.catalogs:
        deploy_schema_file(cluster.config, data.source, name=data.name, chunk_order=data.chunk_order)
        for table_name, frame in data.tables.items():
            if frame.empty:
                continue
            report = load_inputs(
                cluster.topology, f"{data.name}.{table_name}", [frame], replication=replication, batch_rows=200_000
            )
            if report.rows != len(frame):
                raise AssertionError(f"{data.name}.{table_name}: loaded {report.rows} rows of {len(frame)}")
