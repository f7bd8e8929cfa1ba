"""Deploying Felis schemas: partitioned worker tables, registry and TAP_SCHEMA rows, all or nothing."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from api.cli import app
from dms_db.catalog_service import deploy_schema_file
from dms_db.errors import AlreadyExistsError, SchemaError
from tests.harness import DatabaseCluster

FOREIGN = """
name: survey
"@id": "#survey"
description: A catalog written without dms-db annotations.
tables:
  - name: Star
    "@id": "#Star"
    description: Stars.
    primaryKey: "#Star.starId"
    columns:
      - {name: starId, "@id": "#Star.starId", datatype: long, nullable: false, description: Star id.}
      - {name: ra, "@id": "#Star.ra", datatype: double, "ivoa:ucd": pos.eq.ra;meta.main, "ivoa:unit": deg}
      - {name: dec, "@id": "#Star.dec", datatype: double, "ivoa:ucd": pos.eq.dec;meta.main, "ivoa:unit": deg}
      - {name: gMag, "@id": "#Star.gMag", datatype: float, "ivoa:unit": mag, description: g magnitude.}
  - name: Epoch
    "@id": "#Epoch"
    description: Photometric epochs of stars.
    primaryKey: "#Epoch.epochId"
    columns:
      - {name: epochId, "@id": "#Epoch.epochId", datatype: long, nullable: false}
      - {name: starId, "@id": "#Epoch.starId", datatype: long, nullable: false}
      - {name: mjd, "@id": "#Epoch.mjd", datatype: double, "ivoa:unit": d}
    constraints:
      - name: epoch_star
        "@id": "#FK_Epoch_Star"
        "@type": ForeignKey
        columns: ["#Epoch.starId"]
        referencedColumns: ["#Star.starId"]
  - name: Filter
    "@id": "#Filter"
    description: Photometric filters.
    primaryKey: "#Filter.band"
    columns:
      - {name: band, "@id": "#Filter.band", datatype: char, length: 1, nullable: false}
"""


def _partitioned(dsn: str) -> set[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname, pg_get_partkeydef(c.oid) FROM pg_partitioned_table p "
            "JOIN pg_class c ON c.oid = p.partrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        ).fetchall()
    return set(rows)


def test_shipped_schemas_deploy_with_tap_schema_metadata(cluster: DatabaseCluster) -> None:
    for name in ("apdb", "dr"):
        report = deploy_schema_file(cluster.config, name)
        assert report.created
        assert report.workers == len(cluster.topology.workers)
    for worker in cluster.topology.workers:
        partitioned = _partitioned(worker.dsn)
        for table in ("DiaObject", "DiaSource", "DiaForcedSource", "DiaObject__overlap"):
            assert ("apdb", table, "LIST (chunk_id)") in partitioned
        for table in ("Object", "Source", "ForcedSource"):
            assert ("dr", table, "LIST (chunk_id)") in partitioned
        assert not any(t[1] in ("Visit", "CcdVisit", "SSObject") for t in partitioned)
        with psycopg.connect(worker.dsn) as conn:
            # The columns every worker statement filters on come first (a row is decoded up to
            # the last column a filter reads).
            for schema_name, table, _ in partitioned:
                leading = conn.execute(
                    "SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute "
                    "WHERE attrelid = format('%%I.%%I', %s::text, %s::text)::regclass AND attnum IN (1, 2)",
                    (schema_name, table),
                ).fetchone()[0]
                assert leading == ["chunk_id", "healpix_index"], (schema_name, table, leading)
            visit = conn.execute("SELECT to_regclass('dr.\"Visit\"')").fetchone()[0]
            gist = {
                table: [
                    row[0]
                    for row in conn.execute(
                        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'apdb' AND tablename = %s "
                        "AND indexdef LIKE '%%gist%%'",
                        (table,),
                    )
                ]
                for table in ("DiaObject", "DiaSource")
            }
            healpix = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'apdb' AND tablename = 'DiaSource' "
                "AND indexdef LIKE '%healpix_index%'"
            ).fetchone()
        assert visit is not None
        # directors keep a GiST on their position; child tables are found by HEALPix ranges (B-tree)
        assert len(gist["DiaObject"]) == 1 and 'spoint(radians(ra), radians("dec"))' in gist["DiaObject"][0]
        assert gist["DiaSource"] == [] and healpix is not None

    with psycopg.connect(cluster.coordinator_dsn) as conn:
        kinds = dict(
            conn.execute("SELECT table_name, kind FROM dms.catalog_table WHERE schema_name = 'apdb'").fetchall()
        )
        flux = conn.execute(
            'SELECT unit, ucd, description, datatype FROM "TAP_SCHEMA".columns '
            "WHERE table_name = 'apdb.DiaSource' AND column_name = 'psfFlux'"
        ).fetchone()
        ra = conn.execute(
            'SELECT unit, ucd, indexed, principal FROM "TAP_SCHEMA".columns '
            "WHERE table_name = 'dr.Object' AND column_name = 'ra'"
        ).fetchone()
        tables = {r[0] for r in conn.execute('SELECT table_name FROM "TAP_SCHEMA".tables')}
        keys = conn.execute('SELECT count(*) FROM "TAP_SCHEMA".keys').fetchone()[0]
    assert kinds == {
        "DiaObject": "director",
        "DiaSource": "child",
        "DiaForcedSource": "child",
        "SSObject": "replicated",
    }
    assert flux[0] == "nJy" and flux[1] and flux[2] and flux[3] in ("float", "double")
    assert ra[0] == "deg" and ra[1].startswith("pos.eq.ra") and ra[2] == 1 and ra[3] == 1
    assert {"apdb.DiaObject", "dr.Object", "dr.CcdVisit"} <= tables
    assert keys > 0


def test_deploy_is_idempotent_and_refuses_a_different_schema_under_a_taken_name(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(2)
    assert deploy_schema_file(cluster.config, "apdb").created
    assert not deploy_schema_file(cluster.config, "apdb").created
    with pytest.raises(AlreadyExistsError, match="--as"):
        deploy_schema_file(cluster.config, "dr", name="apdb")
    assert deploy_schema_file(cluster.config, "apdb", name="apdb_copy").created


def test_foreign_felis_file_gets_defaults(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(2)
    source = tmp_path / "survey.yaml"
    source.write_text(FOREIGN)
    report = deploy_schema_file(cluster.config, str(source))
    assert dict(report.tables) == {"Star": "director", "Epoch": "child", "Filter": "replicated"}
    for worker in cluster.topology.workers:
        assert ("survey", "Epoch", "LIST (chunk_id)") in _partitioned(worker.dsn)


def test_a_failed_deploy_leaves_nothing_behind(make_cluster) -> None:
    cluster = make_cluster(3)
    doomed = cluster.topology.workers[2]
    with psycopg.connect(doomed.dsn) as conn:  # a table in the way makes that worker fail
        conn.execute('CREATE SCHEMA apdb; CREATE TABLE apdb."DiaSource" (x int)')
    with pytest.raises(psycopg.errors.DuplicateTable):
        deploy_schema_file(cluster.config, "apdb")
    for worker in cluster.topology.workers[:2]:
        with psycopg.connect(worker.dsn) as conn:
            assert conn.execute("SELECT to_regnamespace('apdb')").fetchone()[0] is None
            assert conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone()[0] == 0
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM dms.catalog").fetchone()[0] == 0
        described = 'SELECT count(*) FROM "TAP_SCHEMA".columns WHERE table_name NOT LIKE %s'
        assert conn.execute(described, ("TAP_SCHEMA.%",)).fetchone()[0] == 0  # only TAP_SCHEMA's own rows


def test_cli_reports_bad_schema_files_without_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ntables: [ {name: T, '@id': '#T', columns: [{name: a}]} ]\n")
    result = CliRunner().invoke(app, ["schema", "deploy", str(broken)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["schema", "deploy", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1
    assert "does not exist" in missing.output


def test_schema_errors_are_schema_errors(tmp_path: Path) -> None:
    from dms_db.catalog_schema import load_catalog_schema

    bad = tmp_path / "bad.yaml"
    bad.write_text(FOREIGN.replace("description: Stars.", "description: Stars.\n    dms:kind: galaxy"))
    with pytest.raises(SchemaError, match="dms:kind"):
        load_catalog_schema(bad)
