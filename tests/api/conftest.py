"""Fixtures of the TAP service tests: a loaded cluster and the service running on it under uvicorn.

The cluster (2 workers, the apdb and dr schemas, a small simulated survey)
and the service are built once per session; tests that need other settings
(tokens, tiny limits) start their own service on the same cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from dms_db.catalog_service import deploy_schema_file
from dms_db.config import DmsConfig, ServiceConfig
from loaders.simulate import SimulationConfig, simulate_survey
from loaders.survey_load import load_survey
from tests.api.server import running_service
from tests.harness import DatabaseCluster, TestServer, build_database_cluster, drop_database_cluster, make_scratch_dir

SURVEY = SimulationConfig(seed=21, n_objects=3000, n_visits=8, radius_deg=1.5, ra_center=60.0, dec_center=-30.0)


@dataclass(frozen=True)
class TapCluster:
    """A loaded cluster and the simulated tables it holds."""

    cluster: DatabaseCluster
    tables: dict[str, pd.DataFrame]
    results_dir: Path

    def config(self, **service: object) -> DmsConfig:
        """The cluster's configuration with these TAP service settings."""
        settings = ServiceConfig(results_dir=self.results_dir, **service)  # type: ignore[arg-type]
        return self.cluster.config.model_copy(update={"service": settings})


@pytest.fixture(scope="session")
def tap_cluster(pg_server: TestServer) -> Iterator[TapCluster]:
    """Two workers holding apdb (chunk order 5) and dr, loaded with a small simulated survey."""
    cluster = build_database_cluster(pg_server, 2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=5)
    deploy_schema_file(cluster.config, "dr", chunk_order=5)
    survey = simulate_survey(SURVEY)
    load_survey(cluster.topology, survey, replication=1)
    yield TapCluster(cluster, survey.tables, make_scratch_dir("dms-db-tap-results-"))
    drop_database_cluster(pg_server, cluster)


@pytest.fixture(scope="session")
def tap_url(tap_cluster: TapCluster) -> Iterator[str]:
    """Base URL (``.../tap``) of the service on the loaded cluster, anonymous access, default limits."""
    with running_service(tap_cluster.config(), tap_cluster.cluster.topology) as url:
        yield url


@pytest.fixture
def start_service(tap_cluster: TapCluster) -> Callable[..., AbstractContextManager[str]]:
    """Another service on the loaded cluster with other settings: ``with start_service(maxrec_limit=5) as url``."""

    def start(**service: object) -> AbstractContextManager[str]:
        return running_service(tap_cluster.config(**service), tap_cluster.cluster.topology)

    return start
