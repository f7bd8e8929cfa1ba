"""A loader killed anywhere leaves all or nothing, and the load can simply be run again.

Each case starts ``dms-db load`` as a separate process with ``DMS_FAULT_POINT``
set, so that it SIGKILLs itself at that point (during COPY, with some or all
workers prepared, after the coordinator's decision).  ``dms-db recover`` must
then leave no prepared transaction behind and either none of the load visible
(no decision was recorded) or all of it (the decision was committed); running
the same load again must end with exact counts and no duplicate keys.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from dms_db.catalog_service import deploy_schema_file
from dms_db.distributed_transaction import GID_PREFIX
from dms_db.fault_points import ENV_VARIABLE
from dms_db.physical import CHUNK_COLUMN
from loaders.bulk_load import load_inputs
from loaders.simulate import SimulationConfig, simulate_survey
from tests.harness import DatabaseCluster, TestServer, build_database_cluster, drop_database_cluster

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
CHUNK_ORDER = 6
BATCH_ROWS = 300
KEY = "diaSourceId"
TIMEOUT = 180


@dataclass(frozen=True)
class Survey:
    """The rows every case loads: DiaObjects in-process, DiaSources from a Parquet file."""

    dia_objects: pd.DataFrame
    dia_sources: pd.DataFrame
    source_file: Path


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> Survey:
    # variable_fraction=0.5 gives ~770 DiaSources: several batches of BATCH_ROWS, so that
    # "copied-batch" kills the loader with part of the input written.
    config = SimulationConfig(n_objects=3000, n_visits=20, variable_fraction=0.5, include_data_release=False)
    tables = simulate_survey(config).tables
    sources = tables["apdb.DiaSource"]
    assert len(sources) > 2 * BATCH_ROWS
    path = tmp_path_factory.mktemp("fault-recovery") / "DiaSource.parquet"
    sources.to_parquet(path)
    return Survey(tables["apdb.DiaObject"], sources, path)


@pytest.fixture(scope="module")
def cluster_for(pg_server: TestServer) -> Iterator[Callable[[int], DatabaseCluster]]:
    """One 4-worker cluster per replication factor, built on first use.

    Chunk placement is per chunk order, not per catalog, so the replication
    factors are kept in separate clusters.
    """
    made: dict[int, DatabaseCluster] = {}

    def get(replication: int) -> DatabaseCluster:
        if replication not in made:
            made[replication] = build_database_cluster(pg_server, WORKERS, replication)
        return made[replication]

    yield get
    for cluster in made.values():
        _roll_back_stray_prepared(cluster)  # a failed case may leave some; they would block DROP DATABASE
        drop_database_cluster(pg_server, cluster)


def _roll_back_stray_prepared(cluster: DatabaseCluster) -> None:
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn, autocommit=True) as conn:
            gids = conn.execute("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()").fetchall()
            for (gid,) in gids:
                conn.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))


def _cli(cluster: DatabaseCluster, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    env["DMS_COORDINATOR_DSN"] = cluster.coordinator_dsn
    env["DMS_WORKER_DSNS"] = json.dumps([w.dsn for w in cluster.topology.workers])
    env["DMS_REPLICATION"] = str(cluster.config.replication)
    env["COLUMNS"] = "200"  # keep rich from wrapping the messages checked below
    if fault is not None:
        env[ENV_VARIABLE] = fault
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _ledger(cluster: DatabaseCluster, schema_name: str) -> list[tuple[int, str, int | None, str]]:
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        return conn.execute(
            "SELECT load_id, state, row_count, transaction_gid FROM dms.load_ledger "
            "WHERE schema_name = %s AND table_name = 'DiaSource' ORDER BY load_id",
            (schema_name,),
        ).fetchall()


def _prepared(cluster: DatabaseCluster, like: str = GID_PREFIX + "%") -> dict[str, list[str]]:
    """dms-db's prepared transactions of each worker database (workers share one server)."""
    found = {}
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            found[worker.name] = [
                r[0]
                for r in conn.execute(
                    "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE %s",
                    (like,),
                )
            ]
    return found


def _copies(
    cluster: DatabaseCluster, schema_name: str, skip: frozenset[str] = frozenset()
) -> dict[str, tuple[int, int]]:
    """(rows, distinct keys) of DiaSource on each worker but ``skip``, replicas included."""
    query = sql.SQL("SELECT count(*), count(DISTINCT {key}) FROM {table}").format(
        key=sql.Identifier(KEY), table=sql.Identifier(schema_name, "DiaSource")
    )
    counts = {}
    for worker in cluster.topology.workers:
        if worker.name in skip:
            continue
        with psycopg.connect(worker.dsn) as conn:
            counts[worker.name] = conn.execute(query).fetchone()
    return counts


def _keys_of_replica(cluster: DatabaseCluster, schema_name: str, replica: int) -> list[int]:
    """DiaSource keys read from replica ``replica`` of every chunk, sorted, duplicates kept."""
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        chunks: dict[str, list[int]] = {}
        for chunk_id, node in conn.execute(
            "SELECT p.chunk_id, n.name FROM dms.chunk_placement p JOIN dms.node n USING (node_id) "
            "WHERE p.chunk_order = %s AND p.replica = %s",
            (CHUNK_ORDER, replica),
        ):
            chunks.setdefault(node, []).append(chunk_id)
    query = sql.SQL("SELECT {key} FROM {table} WHERE {chunk} = ANY(%s)").format(
        key=sql.Identifier(KEY), table=sql.Identifier(schema_name, "DiaSource"), chunk=sql.Identifier(CHUNK_COLUMN)
    )
    keys: list[int] = []
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            keys += [r[0] for r in conn.execute(query, (chunks.get(worker.name, []),))]
    return sorted(keys)


def _counted_rows(cluster: DatabaseCluster, schema_name: str) -> int:
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        return conn.execute(
            "SELECT coalesce(sum(row_count), 0) FROM dms.chunk_row_count "
            "WHERE schema_name = %s AND table_name = 'DiaSource'",
            (schema_name,),
        ).fetchone()[0]


def _assert_nothing_visible(cluster: DatabaseCluster, schema_name: str, in_doubt: frozenset[str] = frozenset()) -> None:
    """No DiaSource row anywhere.  Workers with an in-doubt load are not read: the
    prepared transaction keeps the lock of the partitions it created, and readers wait."""
    assert sum(n for n, _ in _copies(cluster, schema_name, in_doubt).values()) == 0
    assert _counted_rows(cluster, schema_name) == 0


def _assert_all_visible_once(cluster: DatabaseCluster, schema_name: str, survey: Survey) -> None:
    expected = sorted(int(k) for k in survey.dia_sources[KEY])
    replication = cluster.config.replication
    copies = _copies(cluster, schema_name)
    assert sum(n for n, _ in copies.values()) == len(expected) * replication, copies
    for worker, (rows, distinct) in copies.items():
        assert rows == distinct, f"duplicate {KEY} on {worker}"
    for replica in range(replication):
        assert _keys_of_replica(cluster, schema_name, replica) == expected, f"replica {replica}"
    assert _counted_rows(cluster, schema_name) == len(expected)


# (fault point, replication, workers holding a prepared transaction at the kill, decision committed)
CASES = [
    pytest.param("load:copied-batch", 1, 0, False, id="copied-batch"),
    pytest.param("load:copied-batch", 2, 0, False, id="copied-batch-r2"),
    pytest.param("load:written", 1, 0, False, id="written"),
    pytest.param("load:before-prepare", 1, 0, False, id="before-prepare"),
    pytest.param("load:prepared-1", 1, 1, False, id="prepared-1"),
    pytest.param("load:prepared-2", 2, 2, False, id="prepared-2-r2"),
    pytest.param(f"load:prepared-{WORKERS}", 1, WORKERS, False, id="prepared-all"),
    pytest.param("load:decided", 1, WORKERS, True, id="decided"),
    pytest.param("load:decided", 2, WORKERS, True, id="decided-r2"),
]


@pytest.mark.parametrize(("fault", "replication", "prepared", "decided"), CASES)
def test_a_killed_load_is_all_or_nothing_and_can_be_rerun(
    cluster_for: Callable[[int], DatabaseCluster],
    survey: Survey,
    request: pytest.FixtureRequest,
    fault: str,
    replication: int,
    prepared: int,
    decided: bool,
) -> None:
    cluster = cluster_for(replication)
    schema_name = "apdb_" + request.node.callspec.id.replace("-", "_")
    deploy_schema_file(cluster.config, "apdb", name=schema_name, chunk_order=CHUNK_ORDER)
    load_inputs(cluster.topology, f"{schema_name}.DiaObject", [survey.dia_objects], replication=replication)
    load_args = ("load", f"{schema_name}.DiaSource", str(survey.source_file), "--batch-rows", str(BATCH_ROWS))

    killed = _cli(cluster, *load_args, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    # What the kill left: a ledger row, and prepared transactions on the first `prepared` workers.
    [(load_id, state, _, gid)] = _ledger(cluster, schema_name)
    assert state == ("committed" if decided else "started")
    holders = [w for w, gids in _prepared(cluster, gid + "@%").items() if gids]
    assert holders == [w.name for w in cluster.topology.workers[:prepared]]
    if decided:  # the coordinator's bookkeeping was committed with the decision
        assert _counted_rows(cluster, schema_name) == len(survey.dia_sources)
        assert sum(n for n, _ in _copies(cluster, schema_name, frozenset(holders)).values()) == 0
    else:
        _assert_nothing_visible(cluster, schema_name, frozenset(holders))

    recovered = _cli(cluster, "recover")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    done = (prepared, 0) if decided else (0, prepared)
    assert "committed {}, rolled back {} prepared".format(*done) in recovered.stdout, recovered.stdout
    assert _prepared(cluster) == {w.name: [] for w in cluster.topology.workers}
    [(_, state, row_count, _)] = _ledger(cluster, schema_name)
    if decided:
        assert (state, row_count) == ("committed", len(survey.dia_sources))
        _assert_all_visible_once(cluster, schema_name, survey)
    else:
        assert state == "aborted"
        _assert_nothing_visible(cluster, schema_name)

    rerun = _cli(cluster, *load_args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    if decided:
        assert "already loaded" in rerun.stdout and f"load {load_id}" in rerun.stdout, rerun.stdout
    else:
        assert f"loaded {len(survey.dia_sources):,} rows" in rerun.stdout, rerun.stdout
    _assert_all_visible_once(cluster, schema_name, survey)
    states = [s for _, s, _, _ in _ledger(cluster, schema_name)]
    assert states == (["committed"] if decided else ["aborted", "committed"])
    assert _prepared(cluster) == {w.name: [] for w in cluster.topology.workers}
