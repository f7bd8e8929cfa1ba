"""The local cluster: real servers run as an unprivileged user, idempotent, status never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from typer.testing import CliRunner

from api.cli import app
from dms_db import cluster as cluster_service
from dms_db.local_cluster import LocalCluster
from dms_db.postgres_server import ServerState


def _cli_env(cluster: LocalCluster) -> dict[str, str]:
    local = cluster.config.local
    return {
        "DMS_LOCAL__DATA_DIR": str(local.data_dir),
        "DMS_LOCAL__BASE_PORT": str(local.base_port),
        "DMS_LOCAL__WORKERS": str(local.workers),
        "DMS_LOCAL__FSYNC": "false",
        "DMS_LOCAL__SHARED_BUFFERS_MB": "32",
    }


def test_init_is_idempotent_and_servers_are_configured(local_cluster: LocalCluster) -> None:
    cluster_service.bring_up(local_cluster.config)
    assert LocalCluster(local_cluster.config).init() == []  # second init creates nothing
    assert local_cluster.start() == []  # start when started is fine
    for _name, role, server in local_cluster.servers():
        with psycopg.connect(server.dsn(local_cluster.config.database)) as conn:
            prepared = conn.execute("SHOW max_prepared_transactions").fetchone()[0]
            sphere = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_sphere'").fetchone()
        assert int(prepared) > 0, role
        assert sphere is not None
        postmaster_pid = int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])
        status_lines = Path(f"/proc/{postmaster_pid}/status").read_text().splitlines()
        uid_line = next(ln for ln in status_lines if ln.startswith("Uid:"))
        if os.geteuid() == 0:
            assert int(uid_line.split()[1]) != 0, "the server must not run as root"
            assert os.stat(server.pgdata).st_uid != 0, "server data must not belong to root"


def test_status_reports_a_killed_worker_as_down(local_cluster: LocalCluster) -> None:
    cluster_service.bring_up(local_cluster.config)
    victim = local_cluster.server("worker-3")
    victim.kill()
    try:
        report = {n.name: n for n in cluster_service.cluster_status(local_cluster.config)}
        assert report["worker-3"].state == "down"
        assert "cannot be reached" in report["worker-3"].detail
        assert all(n.is_up for name, n in report.items() if name != "worker-3")
        assert victim.state() is ServerState.STOPPED

        result = CliRunner().invoke(app, ["cluster", "status"], env=_cli_env(local_cluster))
        assert result.exit_code == 3, result.output
        assert "down" in result.output
        assert "Traceback" not in result.output
    finally:
        victim.start()
    result = CliRunner().invoke(app, ["cluster", "status"], env=_cli_env(local_cluster))
    assert result.exit_code == 0, result.output


def test_stop_then_start(local_cluster: LocalCluster) -> None:
    cluster_service.bring_up(local_cluster.config)
    stopped = local_cluster.stop()
    assert "coordinator" in stopped and len(stopped) == local_cluster.config.local.workers + 1
    assert all(s.state is ServerState.STOPPED for s in local_cluster.status())
    assert len(local_cluster.start()) == len(stopped)
    assert all(s.state is ServerState.RUNNING for s in local_cluster.status())


def test_up_brings_up_the_embedded_default_twice_without_harm(local_cluster: LocalCluster) -> None:
    env = _cli_env(local_cluster)
    first = CliRunner().invoke(app, ["up", "--no-serve", "--objects", "400"], env=env)
    assert first.exit_code == 0, first.output
    assert "schema apdb" in first.output and "schema dr" in first.output
    again = CliRunner().invoke(app, ["up", "--no-serve"], env=env)
    assert again.exit_code == 0, again.output
    assert "sample survey loaded" in first.output
    assert "apdb already deployed" in again.output.replace("[bold]", "").replace("[/]", "")
    assert "sample survey already loaded" in again.output
    assert "Traceback" not in first.output + again.output
