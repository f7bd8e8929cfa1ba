"""The ``dms-db`` command line: each command is one call into a service function.

Exit codes scripts can rely on: 0 success, 1 a user error (bad input, bad
configuration), 2 usage error, 3 the machine or the cluster is not ready
(missing package, server down), 4 an internal error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from dms_db import cluster as cluster_service
from dms_db import migration_support
from dms_db.catalog_service import deploy_schema_file, deploy_shipped_schemas, list_catalogs
from dms_db.config import DmsConfig, load_config
from dms_db.errors import ClusterError, DmsError, SetupError, UserError
from dms_db.local_cluster import LocalCluster
from dms_db.topology import Topology
from loaders.recovery import recover as recover_cluster

EXIT_USER_ERROR = 1
EXIT_NOT_READY = 3
EXIT_INTERNAL = 4

app = typer.Typer(
    help="dms-db: a sharded PostgreSQL catalog database for sky surveys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cluster_app = typer.Typer(help="Create, run and inspect the cluster.", no_args_is_help=True)
schema_app = typer.Typer(help="Deploy and list catalog schemas (Felis YAML).", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")
app.add_typer(schema_app, name="schema")

console = Console()
errors = Console(stderr=True)
_state: dict[str, Path | None] = {"config_file": None}


@app.callback()
def _global_options(
    config_file: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML configuration file (default: DMS_CONFIG or ./dms-db.toml)."),
    ] = None,
) -> None:
    _state["config_file"] = config_file


def _config() -> DmsConfig:
    return load_config(_state["config_file"])


def _fail(exc: DmsError) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
    if exc.hint:
        errors.print(f"  hint: {exc.hint}", highlight=False, soft_wrap=True)
    if isinstance(exc, SetupError | ClusterError):
        return typer.Exit(EXIT_NOT_READY)
    if isinstance(exc, UserError):
        return typer.Exit(EXIT_USER_ERROR)
    return typer.Exit(EXIT_INTERNAL)


def _print_status(config: DmsConfig) -> bool:
    report = cluster_service.cluster_status(config)
    table = Table(title="dms-db cluster")
    for heading in ("node", "role", "address", "state", "schema", "note"):
        table.add_column(heading)
    for node in report:
        colour = "green" if node.is_up else "red"
        table.add_row(
            node.name, node.role, node.address, f"[{colour}]{node.state}[/]", node.revision or "-", node.detail
        )
    console.print(table)
    return all(node.is_up for node in report)


_PYVO_SNIPPET = """\
import pyvo
tap = pyvo.dal.TAPService("{url}")
print(tap.run_sync("SELECT TOP 5 diaObjectId, ra, dec, nDiaSources FROM apdb.DiaObject").to_table())"""


@app.command()
def up(
    workers: Annotated[int | None, typer.Option(help="Number of local workers (default from config).")] = None,
    sample: Annotated[bool, typer.Option(help="Load a simulated survey into apdb and dr if they are empty.")] = True,
    objects: Annotated[int, typer.Option(help="Size of the simulated survey (true objects on the sky).")] = 20_000,
    serve_tap: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve TAP in the foreground afterwards.")
    ] = True,
) -> None:
    """Bring up the embedded default: local cluster, schemas, a simulated survey and the TAP service."""
    try:
        config = _config()
        if workers is not None:
            config = load_config(_state["config_file"], local=config.local.model_copy(update={"workers": workers}))
        with console.status("starting the cluster and migrating every node..."):
            topology = cluster_service.bring_up(config)
            recover_cluster(topology)
        for report in deploy_shipped_schemas(config):
            verb = "deployed" if report.created else "already deployed"
            console.print(f"schema [bold]{report.schema_name}[/] {verb} ({len(report.tables)} tables)")
        if sample:
            _load_sample_survey(config, topology, objects)
        healthy = _print_status(config)
    except DmsError as exc:
        raise _fail(exc) from None
    if not healthy:
        raise typer.Exit(EXIT_NOT_READY)
    if serve_tap:
        _serve(config, topology)


def _load_sample_survey(config: DmsConfig, topology: Topology, objects: int) -> None:
    from loaders.simulate import SimulationConfig, simulate_survey
    from loaders.survey_load import load_survey

    with psycopg.connect(topology.coordinator.dsn) as conn:
        loaded = conn.execute(
            "SELECT COALESCE(SUM(row_count), 0) FROM dms.chunk_row_count WHERE schema_name IN ('apdb', 'dr')"
        ).fetchone()
    if loaded and loaded[0]:
        console.print(f"sample survey already loaded ({int(loaded[0]):,} rows in apdb and dr)")
        return
    with console.status(f"simulating a survey of {objects:,} objects..."):
        survey = simulate_survey(SimulationConfig(n_objects=objects))
    with console.status("loading the simulated survey..."):
        reports = load_survey(topology, survey, replication=config.replication)
    console.print(f"sample survey loaded: {sum(r.rows for r in reports):,} rows in {len(reports)} tables")


def _serve(config: DmsConfig, topology: Topology | None = None) -> None:
    from api.tap.server import serve, service_url

    url = service_url(config)
    console.print(f"\nTAP service on [bold]{url}[/] (Ctrl-C stops it; the cluster keeps running). Try:\n")
    console.print(_PYVO_SNIPPET.format(url=url), highlight=False, markup=False, soft_wrap=True)
    serve(config, topology=topology)


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default from config: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default from config: 8000).")] = None,
) -> None:
    """Serve TAP for an existing cluster (local or remote), in the foreground."""
    try:
        config = _config()
        changes = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        if changes:
            config = config.model_copy(update={"service": config.service.model_copy(update=changes)})
        topology = cluster_service.resolve_topology(config)
        migration_support.ensure_schema_current(topology)
    except DmsError as exc:
        raise _fail(exc) from None
    _serve(config, topology)


def _coordinator_connection() -> psycopg.Connection:
    """An autocommit connection to the configured coordinator (for the token commands)."""
    topology = cluster_service.resolve_topology(_config())
    return psycopg.connect(topology.coordinator.dsn, autocommit=True)


token_app = typer.Typer(help="Bearer tokens of the TAP service (auth = 'token').", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    owner: Annotated[str, typer.Argument(help="User the token acts for; owns its async jobs.")],
    note: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    days: Annotated[float | None, typer.Option(help="Expire after this many days (default: never).")] = None,
) -> None:
    """Create a token and print it once; only its hash is stored."""
    from datetime import UTC, datetime, timedelta

    from dms_db.tokens import create_token

    try:
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        with _coordinator_connection() as conn:
            issued = create_token(conn, owner, note=note, expires_at=expires)
    except DmsError as exc:
        raise _fail(exc) from None
    errors.print(f"token for {issued.owner} (shown once; send it as 'Authorization: Bearer <token>'):")
    console.print(issued.secret, highlight=False, markup=False)


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str | None, typer.Argument(help="The token to revoke.")] = None,
    owner: Annotated[str | None, typer.Option(help="Revoke every token of this owner instead.")] = None,
) -> None:
    """Revoke one token, or every token of an owner."""
    from dms_db.tokens import revoke_tokens

    try:
        with _coordinator_connection() as conn:
            count = revoke_tokens(conn, owner=owner, secret=token)
    except DmsError as exc:
        raise _fail(exc) from None
    console.print(f"revoked {count} token{'s' if count != 1 else ''}")


@token_app.command("list")
def token_list() -> None:
    """List tokens (owner, note, dates; never the secrets)."""
    from dms_db.tokens import list_tokens

    try:
        with _coordinator_connection() as conn:
            tokens = list_tokens(conn)
    except DmsError as exc:
        raise _fail(exc) from None
    table = Table(title="TAP tokens")
    for heading in ("owner", "note", "created", "expires", "revoked"):
        table.add_column(heading)
    for owner, note, created, expires, revoked in tokens:
        table.add_row(owner, note or "", f"{created:%Y-%m-%d %H:%M}", str(expires or ""), str(revoked or ""))
    console.print(table)


@cluster_app.command("init")
def cluster_init() -> None:
    """Create (if needed) and start the local servers, migrate every node, register workers."""
    try:
        config = _config()
        cluster_service.bring_up(config)
        _print_status(config)
    except DmsError as exc:
        raise _fail(exc) from None


@cluster_app.command("start")
def cluster_start() -> None:
    """Start the local servers that are not running."""
    try:
        started = LocalCluster(_config()).start()
    except DmsError as exc:
        raise _fail(exc) from None
    console.print(f"started: {', '.join(started)}" if started else "all servers were already running")


@cluster_app.command("stop")
def cluster_stop() -> None:
    """Stop the local servers."""
    try:
        stopped = LocalCluster(_config()).stop()
    except DmsError as exc:
        raise _fail(exc) from None
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "no server was running")


@cluster_app.command("status")
def cluster_status() -> None:
    """Show every node: reachable or down, and its schema revision. Exit 3 if any is down."""
    try:
        healthy = _print_status(_config())
    except DmsError as exc:
        raise _fail(exc) from None
    if not healthy:
        raise typer.Exit(EXIT_NOT_READY)


@cluster_app.command("add-worker")
def cluster_add_worker(
    dsn: Annotated[str, typer.Argument(help="libpq connection string of the new worker's database.")],
    name: Annotated[str | None, typer.Option(help="Node name (default: worker-N).")] = None,
) -> None:
    """Add an existing PostgreSQL database as a worker: migrate it, create the deployed catalogs, copy
    replicated tables, then register it (refused while a load or deploy runs)."""
    try:
        worker = cluster_service.add_worker(_config(), dsn, name)
    except DmsError as exc:
        raise _fail(exc) from None
    console.print(f"registered {worker.name} ({worker.safe_address}); new chunks may be placed on it")


@app.command()
def migrate() -> None:
    """Upgrade the coordinator and every worker to the newest schema (same as 'alembic upgrade head')."""
    try:
        topology = cluster_service.resolve_topology(_config())
        migration_support.upgrade(topology)
    except DmsError as exc:
        raise _fail(exc) from None
    console.print(f"{len(topology.nodes)} nodes at {migration_support.head_revision()}")


@schema_app.command("deploy")
def schema_deploy(
    source: Annotated[str, typer.Argument(help="Felis YAML file, or 'apdb' / 'dr' for a shipped schema.")],
    as_name: Annotated[str | None, typer.Option("--as", help="ADQL schema name to deploy it under.")] = None,
    chunk_order: Annotated[int | None, typer.Option(help="HEALPix order of chunks (default from config).")] = None,
) -> None:
    """Create a catalog's tables on every worker and its registry and TAP_SCHEMA rows."""
    try:
        report = deploy_schema_file(_config(), source, as_name, chunk_order)
    except DmsError as exc:
        raise _fail(exc) from None
    verb = "deployed" if report.created else "already deployed, unchanged"
    console.print(f"schema [bold]{report.schema_name}[/] {verb} on {report.workers} workers:")
    for table, kind in report.tables:
        console.print(f"  {table:<20} {kind}")


@schema_app.command("list")
def schema_list() -> None:
    """List deployed catalogs."""
    try:
        catalogs = list_catalogs(_config())
    except DmsError as exc:
        raise _fail(exc) from None
    table = Table(title="deployed catalogs")
    for heading in ("schema", "felis name", "version", "chunk order", "tables"):
        table.add_column(heading)
    for c in catalogs:
        table.add_row(c.schema_name, c.felis_name, c.version or "-", str(c.chunk_order), str(c.tables))
    console.print(table)


def _parse_column_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise typer.BadParameter(f"--map takes INPUT=COLUMN, got {pair!r}")
        mapping[source] = target
    return mapping


@app.command()
def load(
    target: Annotated[str, typer.Argument(help="SCHEMA.TABLE to load into, e.g. apdb.DiaSource.")],
    files: Annotated[list[Path], typer.Argument(help="Parquet, CSV (.csv/.csv.gz), FITS or VOTable files.")],
    column_map: Annotated[
        list[str] | None, typer.Option("--map", help="INPUT=COLUMN for input columns named differently.")
    ] = None,
    batch_rows: Annotated[int, typer.Option(help="Rows per batch (memory use grows with it).")] = 200_000,
) -> None:
    """Load files into one table: validated, partitioned, all or nothing, and only once.

    Transactions left by a crashed earlier load are recovered first.
    """
    from loaders.bulk_load import load_inputs
    from loaders.progress import load_progress

    try:
        config = _config()
        topology = cluster_service.resolve_topology(config)
        recover_cluster(topology)  # a crashed earlier load must not keep locks or ledger rows open
        with load_progress(console, files) as advance:
            report = load_inputs(
                topology,
                target,
                files,
                replication=config.replication,
                column_map=_parse_column_map(column_map or []),
                batch_rows=batch_rows,
                progress=advance,
            )
    except DmsError as exc:
        raise _fail(exc) from None
    if report.already_loaded:
        console.print(f"{report.target}: these inputs were already loaded (load {report.load_id}); nothing to do")
        return
    rate = report.rows / report.seconds if report.seconds else 0.0
    console.print(
        f"{report.target}: loaded {report.rows:,} rows into {report.chunks} chunks "
        f"(+{report.overlap_rows:,} overlap copies) in {report.seconds:.1f} s, {rate:,.0f} rows/s; "
        f"load {report.load_id}"
    )


@app.command()
def simulate(
    out: Annotated[Path | None, typer.Option(help="Write one Parquet file per table into this folder.")] = None,
    load_into_cluster: Annotated[bool, typer.Option("--load", help="Load the survey into the cluster.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same survey.")] = 42,
    ra: Annotated[float, typer.Option(help="RA of the area's centre, degrees.")] = 60.0,
    dec: Annotated[float, typer.Option(help="Dec of the area's centre, degrees.")] = -30.0,
    radius: Annotated[float, typer.Option(help="Radius of the area, degrees.")] = 1.5,
    objects: Annotated[int, typer.Option(help="Number of true objects on the sky.")] = 20_000,
    visits: Annotated[int, typer.Option(help="Number of visits.")] = 60,
    days: Annotated[float, typer.Option(help="Time span of the survey, days.")] = 365.0,
) -> None:
    """Simulate a seeded survey (visits, DiaObjects/DiaSources, data release) to Parquet or into the cluster."""
    from loaders.simulate import SimulationConfig, simulate_survey
    from loaders.survey_load import load_survey

    if out is None and not load_into_cluster:
        raise typer.BadParameter("give --out DIR, --load, or both")
    try:
        settings = SimulationConfig(
            seed=seed, ra_center=ra, dec_center=dec, radius_deg=radius, n_objects=objects, n_visits=visits, days=days
        )
        with console.status("simulating the survey..."):
            survey = simulate_survey(settings)
        for name, frame in survey.tables.items():
            console.print(f"  {name:<22} {len(frame):>10,} rows")
        if out is not None:
            paths = survey.write_parquet(out)
            console.print(f"wrote {len(paths)} Parquet files to {out}")
        if load_into_cluster:
            config = _config()
            topology = cluster_service.resolve_topology(config)
            load_survey(
                topology,
                survey,
                replication=config.replication,
                on_table=lambda r: console.print(f"loaded {r.target}: {r.rows:,} rows"),
            )
    except DmsError as exc:
        raise _fail(exc) from None


_SHOWN_ROWS = 1000


@app.command()
def query(
    adql: Annotated[str, typer.Argument(help="The ADQL query; '-' reads it from standard input.")],
    out: Annotated[
        Path | None, typer.Option(help="Write the result to this file instead (.csv or .parquet, by suffix).")
    ] = None,
    max_rows: Annotated[int | None, typer.Option(help="Return at most this many rows.", min=0)] = None,
) -> None:
    """Run an ADQL query on the cluster and print the rows as a table, or write them to a file."""
    from api.result_files import result_file_format, write_result_file
    from sharding.coordinator import QueryEngine

    text = sys.stdin.read() if adql == "-" else adql
    try:
        if out is not None:
            result_file_format(out)  # refuse a file we cannot write before running the query
        topology = cluster_service.resolve_topology(_config())
        with QueryEngine(topology) as engine, engine.query(text, max_rows=max_rows) as result:
            if out is not None:
                written = write_result_file(out, result.columns, result)
                errors.print(f"{written} rows written to {out}")
                return
            table = Table(*(column.name for column in result.columns), show_lines=False)
            shown = 0
            for row in result:
                if shown == _SHOWN_ROWS:
                    shown += sum(1 for _ in result)
                    break
                table.add_row(*("" if value is None else str(value) for value in row))
                shown += 1
            console.print(table)
            more = f" (the first {_SHOWN_ROWS} shown; use --out to keep them all)" if shown > _SHOWN_ROWS else ""
            errors.print(f"{shown} rows{more}")
    except DmsError as exc:
        raise _fail(exc) from None


@app.command()
def recover() -> None:
    """Finish or roll back transactions left by crashed loaders; close their ledger rows."""
    try:
        summary = recover_cluster(cluster_service.resolve_topology(_config()))
    except DmsError as exc:
        raise _fail(exc) from None
    console.print(
        f"committed {len(summary.committed)}, rolled back {len(summary.rolled_back)} prepared transactions; "
        f"closed {len(summary.aborted_loads)} abandoned loads"
    )
    if summary.unreachable:
        errors.print(f"unreachable workers, run again when they are up: {', '.join(summary.unreachable)}")
        raise typer.Exit(EXIT_NOT_READY)


def main() -> None:
    """Console entry point: unexpected failures become one line and exit code 4, not a traceback."""
    try:
        app()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        errors.print(f"[bold red]database error:[/] {first}", highlight=False, soft_wrap=True)
        errors.print("  hint: check 'dms-db cluster status'; if the schema is stale run 'alembic upgrade head'")
        raise SystemExit(EXIT_INTERNAL) from None
    except Exception as exc:  # a bug: one line for the user, the traceback only on request
        if os.environ.get("DMS_DEBUG"):
            raise
        errors.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        errors.print("  hint: this is a bug in dms-db; run again with DMS_DEBUG=1 to see where, and report it")
        raise SystemExit(EXIT_INTERNAL) from None


if __name__ == "__main__":
    main()
