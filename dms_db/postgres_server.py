"""One PostgreSQL 15 server that dms-db creates, starts and stops on this machine.

Both the local cluster (a coordinator and N workers) and the test harness are
built from this class.  The server listens on TCP only (its Unix socket lives
in its own directory, so it never collides with a system PostgreSQL), uses
SCRAM passwords kept in a libpq password file that only the invoking user can
read, and runs as an unprivileged account when dms-db itself runs as root.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg import sql

from dms_db.errors import ClusterError, SetupError
from dms_db.service_account import ServiceAccount

SUPERUSER = "dms"
PG_MAJOR = 15
_BIN_CANDIDATES = (Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin"), Path("/usr/local/pgsql/bin"))
_SERVER_PACKAGE = f"postgresql-{PG_MAJOR}"
_PGSPHERE_PACKAGE = f"postgresql-{PG_MAJOR}-pgsphere"
START_TIMEOUT_S = 60


class ServerState(StrEnum):
    """What ``status`` found."""

    NOT_INITIALISED = "not initialised"
    STOPPED = "stopped"
    RUNNING = "running"
    UNREACHABLE = "running but unreachable"


@dataclass(frozen=True)
class ServerSettings:
    """postgresql.conf settings that dms-db manages for a server."""

    port: int
    host: str = "127.0.0.1"
    max_prepared_transactions: int = 64
    max_connections: int = 100
    max_locks_per_transaction: int = 512
    shared_buffers_mb: int = 128
    fsync: bool = True
    wal_level: str = "replica"
    max_parallel_workers_per_gather: int | None = None  # None: PostgreSQL's default

    def as_conf(self, socket_dir: Path) -> str:
        """Render the settings as a postgresql.conf fragment."""
        durable = "on" if self.fsync else "off"
        lines = [
            "# Managed by dms-db; edits are overwritten by 'dms-db cluster init'.",
            f"port = {self.port}",
            f"listen_addresses = '{self.host}'",
            f"unix_socket_directories = '{socket_dir}'",
            f"max_connections = {self.max_connections}",
            f"max_prepared_transactions = {self.max_prepared_transactions}",
            f"max_locks_per_transaction = {self.max_locks_per_transaction}",
            f"shared_buffers = {self.shared_buffers_mb}MB",
            f"fsync = {durable}",
            f"synchronous_commit = {durable}",
            f"full_page_writes = {durable}",
            f"wal_level = {self.wal_level}",
            *(["max_wal_senders = 0"] if self.wal_level == "minimal" else []),
            *(
                [f"max_parallel_workers_per_gather = {self.max_parallel_workers_per_gather}"]
                if self.max_parallel_workers_per_gather is not None
                else []
            ),
            "logging_collector = off",
            "log_min_messages = warning",
            "log_line_prefix = '%m [%p] %d '",
        ]
        return "\n".join(lines) + "\n"


def find_server_binaries(bin_dir: Path | None = None) -> Path:
    """Locate ``initdb``/``pg_ctl`` of PostgreSQL 15 or explain how to install them."""
    candidates = [bin_dir] if bin_dir else list(_BIN_CANDIDATES)
    pg_config = shutil.which("pg_config")
    if bin_dir is None and pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    for candidate in candidates:
        if candidate and (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates if c)
    raise SetupError(
        f"PostgreSQL {PG_MAJOR} server binaries (initdb, pg_ctl) not found in {searched}",
        hint=f"install them with: apt-get install {_SERVER_PACKAGE}",
    )


def check_pgsphere_installed(bin_dir: Path) -> None:
    """Fail early, naming the package, when these binaries' PostgreSQL lacks pgSphere."""
    candidates = [bin_dir.parent / "share" / "extension", bin_dir.parent / "share" / "postgresql" / "extension"]
    # Debian keeps /usr/lib/postgresql/15/bin's shared files in /usr/share/postgresql/15.
    candidates.append(Path("/usr/share/postgresql") / bin_dir.parent.name / "extension")
    pg_config = bin_dir / "pg_config"
    if pg_config.is_file():
        out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.insert(0, Path(out.stdout.strip()) / "extension")
    if not any((c / "pg_sphere.control").is_file() for c in candidates):
        raise SetupError(
            f"the pgSphere extension is not installed for the PostgreSQL in {bin_dir.parent}",
            hint=f"install it with: apt-get install {_PGSPHERE_PACKAGE}",
        )


class PostgresServer:
    """A PostgreSQL server under ``home`` (pgdata, log, socket dir) on one port.

    Parameters
    ----------
    home
        Directory of this server; created if needed.
    settings
        Managed postgresql.conf settings (port, 2PC slots...).
    account
        Account that owns the data and runs the server.
    passfile
        libpq password file holding the superuser's password; written on init.
    bin_dir
        Directory of the server binaries (default: searched).
    """

    def __init__(
        self,
        home: Path,
        settings: ServerSettings,
        account: ServiceAccount,
        passfile: Path,
        bin_dir: Path | None = None,
    ) -> None:
        self.home = home
        self.settings = settings
        self.account = account
        self.passfile = passfile
        self._bin_dir = bin_dir

    @property
    def pgdata(self) -> Path:
        """The server's data directory."""
        return self.home / "pgdata"

    @property
    def logfile(self) -> Path:
        """Where the server writes its log."""
        return self.home / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's Unix socket (private to this server)."""
        return self.home / "run"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq connection string for a database on this server."""
        return psycopg.conninfo.make_conninfo(
            host=self.settings.host,
            port=str(self.settings.port),
            dbname=dbname,
            user=SUPERUSER,
            passfile=str(self.passfile),
            connect_timeout="10",
        )

    @property
    def bin_dir(self) -> Path:
        """Server binaries, located on first use."""
        if self._bin_dir is None or not (self._bin_dir / "pg_ctl").is_file():
            self._bin_dir = find_server_binaries(self._bin_dir)
        return self._bin_dir

    def is_initialised(self) -> bool:
        """True once initdb has run here."""
        return (self.pgdata / "PG_VERSION").is_file()

    def init(self) -> bool:
        """Create the data directory (idempotent); return True if it was new."""
        bin_dir = self.bin_dir
        check_pgsphere_installed(bin_dir)
        self._prepare_directories()
        created = False
        if not self.is_initialised():
            password = secrets.token_urlsafe(24)
            pwfile = self.home / ".initdb-password"
            pwfile.write_text(password + "\n")
            os.chmod(pwfile, 0o600)
            self._chown(pwfile)
            try:
                self._run_as_account(
                    [
                        str(bin_dir / "initdb"),
                        "--pgdata",
                        str(self.pgdata),
                        "--username",
                        SUPERUSER,
                        "--pwfile",
                        str(pwfile),
                        "--auth",
                        "scram-sha-256",
                        "--encoding",
                        "UTF8",
                        "--locale",
                        "C",
                        "--no-instructions",
                        *([] if self.settings.fsync else ["--no-sync"]),
                    ]
                )
            finally:
                pwfile.unlink(missing_ok=True)
            self._remember_password(password)
            created = True
        self._write_managed_conf()
        return created

    def start(self) -> bool:
        """Start the server if it is not running; return True if it was started."""
        if not self.is_initialised():
            raise ClusterError(f"server in {self.home} is not initialised", hint="run 'dms-db cluster init' first")
        if self._pg_ctl_status() == 0:
            return False
        self._write_managed_conf()
        result = self._run_as_account(
            [
                str(self.bin_dir / "pg_ctl"),
                "--pgdata",
                str(self.pgdata),
                "--log",
                str(self.logfile),
                "--wait",
                "--timeout",
                str(START_TIMEOUT_S),
                "start",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"PostgreSQL on port {self.settings.port} did not start: {self._log_tail()}",
                hint=f"see {self.logfile}; is the port already taken by another server?",
            )
        self._wait_until_accepting()
        return True

    def stop(self) -> bool:
        """Stop the server if it runs (fast shutdown); return True if it was running."""
        if not self.is_initialised() or self._pg_ctl_status() != 0:
            return False
        self._run_as_account(
            [str(self.bin_dir / "pg_ctl"), "--pgdata", str(self.pgdata), "--mode", "fast", "--wait", "stop"]
        )
        return True

    def kill(self) -> None:
        """Kill the postmaster abruptly (SIGKILL), as a crash would; for fault tests."""
        pid_file = self.pgdata / "postmaster.pid"
        if pid_file.is_file():
            pid = int(pid_file.read_text().splitlines()[0])
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                return
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)

    def state(self) -> ServerState:
        """Report whether the server is initialised, running and answering."""
        if not self.is_initialised():
            return ServerState.NOT_INITIALISED
        if self._pg_ctl_status() != 0:
            return ServerState.STOPPED
        try:
            with psycopg.connect(self.dsn(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return ServerState.UNREACHABLE
        return ServerState.RUNNING

    def ensure_database(self, dbname: str) -> str:
        """Create ``dbname`` with pgSphere if it does not exist; return its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")
        return self.dsn(dbname)

    # -- internals -----------------------------------------------------------------

    def _prepare_directories(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.home)
        self._chown(self.socket_dir)
        self.passfile.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.passfile.parent, 0o700)

    def _remember_password(self, password: str) -> None:
        """Add this server's line to the libpq password file (others' lines kept)."""
        prefix = f"{self.settings.host}:{self.settings.port}:"
        lines: list[str] = []
        if self.passfile.is_file():
            lines = [ln for ln in self.passfile.read_text().splitlines() if not ln.startswith(prefix)]
        lines.append(f"{prefix}*:{SUPERUSER}:{password}")
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def _write_managed_conf(self) -> None:
        managed = self.pgdata / "dms-db.conf"
        managed.write_text(self.settings.as_conf(self.socket_dir))
        self._chown(managed)
        main_conf = self.pgdata / "postgresql.conf"
        include = "include_if_exists = 'dms-db.conf'"
        text = main_conf.read_text()
        if include not in text:
            main_conf.write_text(text + "\n" + include + "\n")

    def _pg_ctl_status(self) -> int:
        result = self._run_as_account(
            [str(self.bin_dir / "pg_ctl"), "--pgdata", str(self.pgdata), "status"], check=False
        )
        return result.returncode

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=3) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.2)
        raise ClusterError(f"PostgreSQL on port {self.settings.port} does not accept connections: {last_error}")

    def _log_tail(self, lines: int = 5) -> str:
        if not self.logfile.is_file():
            return "no log written"
        return " | ".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0 and not self.account.is_current_user:
            os.chown(path, self.account.uid, self.account.gid)

    def _run_as_account(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        switch = os.geteuid() == 0 and not self.account.is_current_user
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        result = subprocess.run(
            argv,
            cwd=self.home,
            env=env,
            user=self.account.uid if switch else None,
            group=self.account.gid if switch else None,
            extra_groups=[] if switch else None,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            command = Path(argv[0]).name
            output = result.stderr.strip() or result.stdout.strip()
            raise ClusterError(f"{command} failed for the server in {self.home}: {output}")
        return result
