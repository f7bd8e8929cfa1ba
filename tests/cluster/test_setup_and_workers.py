"""Setup problems name the package to install; add-worker; a normal user runs the cluster too."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from multiprocessing import Queue, get_context
from pathlib import Path

import psycopg
import pytest

from dms_db import cluster as cluster_service
from dms_db import migration_support
from dms_db.catalog_schema import load_catalog_schema, shipped_schema_path
from dms_db.catalog_service import deploy_schema_file
from dms_db.config import DmsConfig, LocalClusterConfig
from dms_db.distributed_transaction import distributed_transaction
from dms_db.errors import AlreadyExistsError, ClusterError, SetupError
from dms_db.local_cluster import LocalCluster
from dms_db.ports import free_port_block
from dms_db.postgres_server import PostgresServer, ServerSettings, check_pgsphere_installed, find_server_binaries
from dms_db.service_account import resolve_service_account
from dms_db.worker_catchup import CatchUpReport, catch_up_worker
from loaders.bulk_load import load_inputs
from loaders.simulate import SimulationConfig, simulate_survey
from sharding.coordinator import QueryEngine
from sharding.placement import place_chunks
from tests.harness import DatabaseCluster, TestServer, local_cluster_config


def test_missing_server_binaries_name_the_package(tmp_path: Path) -> None:
    with pytest.raises(SetupError) as info:
        find_server_binaries(tmp_path)
    assert "apt-get install postgresql-15" in str(info.value)

    server = PostgresServer(
        tmp_path / "s",
        ServerSettings(port=free_port_block(1)),
        resolve_service_account(),
        tmp_path / "pgpass",
        tmp_path,
    )
    with pytest.raises(SetupError, match="postgresql-15"):
        server.init()


def test_missing_pgsphere_names_the_package(tmp_path: Path) -> None:
    real_bin = find_server_binaries()
    check_pgsphere_installed(real_bin)  # the real installation has it
    fake_bin = tmp_path / "pg" / "bin"  # a PostgreSQL without pgSphere
    fake_bin.mkdir(parents=True)
    with pytest.raises(SetupError, match="apt-get install postgresql-15-pgsphere"):
        check_pgsphere_installed(fake_bin)


def test_add_worker_registers_migrates_and_receives_chunks(
    make_cluster: Callable[..., DatabaseCluster], pg_server: TestServer
) -> None:
    cluster = make_cluster(2)
    new_dsn = pg_server.create_database()
    worker = cluster_service.add_worker(cluster.config, new_dsn)
    assert worker.name == "worker-3"
    topology = cluster_service.resolve_topology(cluster.config)
    assert [w.name for w in topology.workers] == ["worker-1", "worker-2", "worker-3"]
    migration_support.ensure_schema_current(topology)
    with psycopg.connect(new_dsn) as conn:
        assert conn.execute("SELECT node_name FROM dms_worker.node_identity").fetchone() == ("worker-3",)
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        placed = place_chunks(conn, 5, range(30), 1)
    assert any(r.nodes == ("worker-3",) for r in placed.values())
    with pytest.raises(AlreadyExistsError):
        cluster_service.add_worker(cluster.config, new_dsn)
    pg_server.drop_database(new_dsn)


def test_a_worker_added_after_deploys_and_loads_gets_the_catalogs_and_serves_new_chunks(
    make_cluster: Callable[..., DatabaseCluster], pg_server: TestServer
) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    survey = simulate_survey(SimulationConfig(seed=5, n_objects=200, n_visits=4, radius_deg=0.5)).tables
    for table in ("apdb.DiaObject", "apdb.SSObject"):
        load_inputs(cluster.topology, table, [survey[table]])
    solar_system = sorted(int(i) for i in survey["apdb.SSObject"]["ssObjectId"])
    with QueryEngine(cluster.topology) as engine:  # a service started before the worker is added
        with engine.query("SELECT COUNT(diaObjectId) AS n FROM apdb.DiaObject WHERE dec < 90") as result:
            assert list(result) == [(len(survey["apdb.DiaObject"]),)]
        new_dsn = pg_server.create_database()
        cluster_service.add_worker(cluster.config, new_dsn)
        with psycopg.connect(new_dsn) as conn:
            assert conn.execute("SELECT count(*) FROM dms_worker.deployed_table WHERE schema_name = 'apdb'").fetchone()[
                0
            ] == len(load_catalog_schema(shipped_schema_path("apdb")).tables)
            assert [r[0] for r in conn.execute('SELECT "ssObjectId" FROM apdb."SSObject" ORDER BY 1')] == solar_system
        # A load into new sky places chunks on the new worker too.
        wide = simulate_survey(
            SimulationConfig(seed=6, n_objects=4000, n_visits=4, radius_deg=3.0, ra_center=200.0, variable_fraction=0.6)
        ).tables["apdb.DiaObject"]
        wide["diaObjectId"] += 10**15
        # A load that read the topology before the worker was added is refused, with nothing written.
        with pytest.raises(ClusterError, match=r"workers were added .*worker-3"):
            load_inputs(cluster.topology, "apdb.DiaObject", [wide])
        topology = cluster_service.resolve_topology(cluster.config)
        load_inputs(topology, "apdb.DiaObject", [wide])
        with psycopg.connect(new_dsn) as conn:
            assert conn.execute('SELECT count(*) FROM apdb."DiaObject"').fetchone()[0] > 0
        with engine.query("SELECT COUNT(diaObjectId) AS n FROM apdb.DiaObject WHERE dec < 90") as result:
            assert list(result) == [(len(survey["apdb.DiaObject"]) + len(wide),)]
    pg_server.drop_database(new_dsn)


def test_add_worker_waits_for_no_load_and_no_unfinished_commit(
    make_cluster: Callable[..., DatabaseCluster], pg_server: TestServer
) -> None:
    """While a distributed transaction runs or is still committing, the new worker would miss its rows."""
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    new_dsn = pg_server.create_database()
    with distributed_transaction(cluster.topology, "load"), pytest.raises(ClusterError, match="load or deploy"):
        cluster_service.add_worker(cluster.config, new_dsn)
    source = cluster.topology.workers[0]
    with psycopg.connect(source.dsn, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE public.unfinished (x int)")
        conn.execute("PREPARE TRANSACTION 'dms:load:test-unfinished@worker-1'")
        try:
            with pytest.raises(ClusterError, match="dms-db recover"):
                cluster_service.add_worker(cluster.config, new_dsn)
        finally:
            conn.execute("ROLLBACK PREPARED 'dms:load:test-unfinished@worker-1'")
    assert [w.name for w in cluster_service.resolve_topology(cluster.config).workers] == ["worker-1", "worker-2"]
    with psycopg.connect(new_dsn) as conn:  # the refused catch-up left nothing behind
        assert conn.execute("SELECT count(*) FROM dms_worker.deployed_table").fetchone()[0] == 0
    worker = cluster_service.add_worker(cluster.config, new_dsn)  # nothing left in the way
    assert worker.name == "worker-3"
    # Run again (as after a registration that failed), the catch-up skips what it committed.
    assert catch_up_worker(cluster.topology, worker) == CatchUpReport((), 0)
    pg_server.drop_database(new_dsn)


def _run_cluster_as(account_uid: int, account_gid: int, config: DmsConfig, results: Queue) -> None:
    """Body of a forked child that has dropped root for good: a plain user's session."""
    os.setgroups([])
    os.setgid(account_gid)
    os.setuid(account_uid)
    try:
        cluster = LocalCluster(config)
        created = cluster.init()
        again = cluster.init()
        states = [s.state.value for s in cluster.status()]
        stopped = cluster.stop()
        results.put(("ok", created, again, states, stopped, cluster.account.name))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(("error", repr(exc)))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged account")
def test_a_normal_user_runs_the_local_cluster_as_itself() -> None:
    """Without root no account switch happens: the servers run as the user who asked."""
    account = resolve_service_account()
    config = local_cluster_config(workers=2)
    os.chown(config.local.data_dir, account.uid, account.gid)
    results: Queue = get_context("fork").Queue()
    child = get_context("fork").Process(target=_run_cluster_as, args=(account.uid, account.gid, config, results))
    child.start()
    try:
        outcome = results.get(timeout=300)
    finally:
        child.join(timeout=60)
        shutil.rmtree(config.local.data_dir, ignore_errors=True)
    assert outcome[0] == "ok", outcome
    _, created, again, states, stopped, runner = outcome
    assert created == ["coordinator", "worker-1", "worker-2"]
    assert again == []
    assert states == ["running"] * 3
    assert len(stopped) == 3
    assert runner == account.name


def test_local_servers_run_with_the_configured_wal_level(local_cluster: LocalCluster) -> None:
    """minimal by default, so that a load's new partitions skip the write-ahead log."""
    import psycopg

    from dms_db.cluster import bring_up

    assert local_cluster.config.local.wal_level == "minimal"
    for node in bring_up(local_cluster.config).nodes:
        with psycopg.connect(node.dsn) as conn:
            assert conn.execute("SHOW wal_level").fetchone()[0] == "minimal"
            assert conn.execute("SHOW max_wal_senders").fetchone()[0] == "0"
    replica = ServerSettings(port=1, wal_level="replica").as_conf(Path("/s"))
    assert "wal_level = replica" in replica and "max_wal_senders" not in replica


def test_workers_leave_the_cpus_to_each_other(local_cluster: LocalCluster) -> None:
    """Workers get CPUs // workers - 1 parallel workers per gather; the coordinator PostgreSQL's default."""
    from dms_db.cluster import bring_up

    expected = max(0, (os.cpu_count() or 1) // local_cluster.config.local.workers - 1)
    assert local_cluster.config.local.worker_parallelism() == expected
    topology = bring_up(local_cluster.config)
    for node in topology.workers:
        with psycopg.connect(node.dsn) as conn:
            assert conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0] == str(expected)
    with psycopg.connect(topology.coordinator.dsn) as conn:
        assert conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0] == "2"
    configured = LocalClusterConfig(workers=2, worker_parallel_workers=3)
    assert configured.worker_parallelism() == 3
    assert "max_parallel_workers_per_gather = 3" in ServerSettings(port=1, max_parallel_workers_per_gather=3).as_conf(
        Path("/s")
    )
