"""The dms-db command line against a real cluster: each command's success path, exit codes, no tracebacks."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from api import cli
from api.cli import app
from dms_db.tokens import token_owner
from tests.harness import DatabaseCluster


def _env(cluster: DatabaseCluster) -> dict[str, str]:
    return {
        "DMS_COORDINATOR_DSN": cluster.coordinator_dsn,
        "DMS_WORKER_DSNS": json.dumps([w.dsn for w in cluster.topology.workers]),
        "DMS_CHUNK_ORDER": "6",
    }


def test_deploy_list_migrate_simulate_load_recover(
    make_cluster: Callable[..., DatabaseCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(2)
    runner = CliRunner()
    env = _env(cluster)

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        return result.output

    assert "deployed on 2 workers" in run("schema", "deploy", "dr")
    assert "already deployed, unchanged" in run("schema", "deploy", "dr")
    listing = run("schema", "list")
    assert "dr" in listing and "5" in listing
    assert "3 nodes at" in run("migrate")

    out = tmp_path / "sim"
    run("simulate", "--out", str(out), "--objects", "600", "--visits", "6", "--seed", "5")
    objects = out / "dr.Object.parquet"
    assert objects.is_file() and (out / "apdb.DiaSource.parquet").is_file()

    first = run("load", "dr.Object", str(objects))
    assert "loaded" in first and "rows into" in first
    assert "already loaded" in run("load", "dr.Object", str(objects))
    assert "closed 0 abandoned loads" in run("recover")

    bad = runner.invoke(app, ["load", "dr.Nope", str(objects)], env=env)
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "Object" in bad.output  # the close names are suggested

    loaded = pq.read_table(objects)
    printed = run("query", "SELECT TOP 3 objectId, ra FROM dr.Object ORDER BY objectId")
    smallest = sorted(loaded.column("objectId").to_pylist())[:3]
    assert all(str(object_id) in printed for object_id in smallest) and "3 rows" in printed
    parquet_out, csv_out = tmp_path / "out.parquet", tmp_path / "out.csv"
    run("query", "SELECT objectId, ra, dec FROM dr.Object", "--out", str(parquet_out))
    written = pq.read_table(parquet_out)
    assert sorted(written.column("objectId").to_pylist()) == sorted(loaded.column("objectId").to_pylist())
    assert written.schema.field("ra").metadata[b"unit"] == b"deg"
    run("query", "SELECT COUNT(*) AS n FROM dr.Object", "--out", str(csv_out))
    assert pd.read_csv(csv_out)["n"].tolist() == [loaded.num_rows]
    unknown_format = runner.invoke(
        app, ["query", "SELECT ra FROM dr.Object", "--out", str(tmp_path / "x.txt")], env=env
    )
    assert unknown_format.exit_code == 1 and ".parquet" in unknown_format.output and not (tmp_path / "x.txt").exists()
    wrong = runner.invoke(app, ["query", "SELECT nope FROM dr.Object"], env=env)
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output and "nope" in wrong.output


def test_simulate_needs_a_destination() -> None:
    result = CliRunner().invoke(app, ["simulate"])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_an_unexpected_failure_is_one_line_and_exit_code_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_config: object) -> list[object]:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(cli, "list_catalogs", broken)
    monkeypatch.setattr(sys, "argv", ["dms-db", "schema", "list"])
    monkeypatch.delenv("DMS_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error" in err and "simulated bug" in err and "DMS_DEBUG=1" in err
    assert "Traceback" not in err


def test_token_create_list_revoke(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(1)
    env = _env(cluster)
    runner = CliRunner()

    async def owner_of(secret: str) -> str | None:
        async with await psycopg.AsyncConnection.connect(cluster.coordinator_dsn) as conn:
            return await token_owner(conn, secret)

    created = runner.invoke(app, ["token", "create", "alice", "--note", "notebook", "--days", "30"], env=env)
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("dms_") and asyncio.run(owner_of(secret)) == "alice"
    listed = runner.invoke(app, ["token", "list"], env=env)
    assert listed.exit_code == 0 and "alice" in listed.output and "notebook" in listed.output
    assert secret not in listed.output  # only the hash is stored, never shown again
    revoked = runner.invoke(app, ["token", "revoke", "--owner", "alice"], env=env)
    assert revoked.exit_code == 0 and "revoked 1 token" in revoked.output
    assert asyncio.run(owner_of(secret)) is None
    again = runner.invoke(app, ["token", "revoke", secret], env=env)
    assert again.exit_code == 1 and "no active token" in again.output and "Traceback" not in again.output
    bad_owner = runner.invoke(app, ["token", "create", "two words"], env=env)
    assert bad_owner.exit_code == 1 and "owner name" in bad_owner.output
