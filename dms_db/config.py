"""Configuration of a dms-db deployment.

One pydantic model describes where the coordinator and the workers are (either
existing servers named by DSN, or a local cluster that dms-db runs itself) and
how catalogs are partitioned.  Values come, in increasing priority, from the
defaults, a TOML file (``--config``, ``DMS_CONFIG`` or ``./dms-db.toml``) and
environment variables prefixed ``DMS_`` (nested fields with ``__``, e.g.
``DMS_LOCAL__WORKERS=2``).  Unknown keys are rejected so that a typo never
silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dms_db.errors import ConfigError

DEFAULT_CONFIG_FILE = "dms-db.toml"
MAX_CHUNK_ORDER = 12


def default_data_dir() -> Path:
    """Where the local cluster lives unless configured otherwise.

    Root's home is not traversable by the unprivileged account that runs the
    servers, so a root user gets a system location instead of ``~``.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/dms-db")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dms-db"


class LocalClusterConfig(BaseModel):
    """A cluster of PostgreSQL servers that dms-db creates and runs on this machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(4, ge=1, le=64, description="Number of worker PostgreSQL servers.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory holding the servers' data, logs and credentials.",
    )
    host: str = Field("127.0.0.1", description="Address the servers listen on.")
    base_port: int = Field(
        15432,
        ge=1024,
        le=65000,
        description="Port of the coordinator; worker i listens on base_port + i.",
    )
    service_user: str | None = Field(
        None,
        description=(
            "Unprivileged account that runs the servers when dms-db runs as root "
            "(default: 'postgres', created as 'dms-db' if absent)."
        ),
    )
    bin_dir: Path | None = Field(
        None,
        description="Directory of the PostgreSQL 15 server binaries (default: searched).",
    )
    fsync: bool = Field(True, description="Whether servers fsync; only throwaway test clusters should turn it off.")
    shared_buffers_mb: int = Field(128, ge=16, description="shared_buffers of each server, in MiB.")
    wal_level: Literal["minimal", "replica", "logical"] = Field(
        "minimal",
        description=(
            "wal_level of each server.  'minimal' lets a load skip the write-ahead log for the chunk "
            "partitions it creates (PostgreSQL's advice for bulk loading) but rules out streaming "
            "replication and point-in-time recovery; choose 'replica' for servers that need them."
        ),
    )
    worker_parallel_workers: int | None = Field(
        None,
        ge=0,
        le=64,
        description=(
            "max_parallel_workers_per_gather of each worker server (default: CPUs // workers - 1, at "
            "least 0).  Every worker runs its part of a query at the same time on this one machine, so "
            "PostgreSQL's own parallel workers on top would only oversubscribe the CPUs."
        ),
    )

    def worker_parallelism(self) -> int:
        """The workers' max_parallel_workers_per_gather: configured, or what the machine's CPUs allow."""
        if self.worker_parallel_workers is not None:
            return self.worker_parallel_workers
        return max(0, (os.cpu_count() or 1) // self.workers - 1)


class ServiceConfig(BaseModel):
    """The TAP service: where it listens, its limits, and who may use it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address the TAP service listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the TAP service listens on.")
    public_url: str | None = Field(
        None,
        description=(
            "Base URL clients reach the service at (e.g. https://data.example.org); "
            "default: the URL of each request. Used in capabilities and job links."
        ),
    )
    maxrec_default: int = Field(100_000, ge=0, description="Rows a query returns when MAXREC is not given.")
    maxrec_limit: int = Field(10_000_000, ge=1, description="Largest MAXREC accepted; larger values are lowered to it.")
    upload_max_bytes: int = Field(
        20_000_000, ge=1, description="Largest UPLOAD table accepted, in bytes of the uploaded file."
    )
    upload_max_rows: int = Field(100_000, ge=1, description="Largest UPLOAD table accepted, in rows.")
    upload_from_urls: bool = Field(
        True,
        description=(
            "Whether UPLOAD may name an http(s) URL for the service to fetch (TAP 1.1 requires it). The service "
            "then reaches any address a client names: turn it off where that would expose internal hosts."
        ),
    )
    sync_timeout_s: float = Field(
        600.0, gt=0, description="Longest a synchronous query may run before it is cancelled, in seconds."
    )
    execution_duration_s: int = Field(
        3600, ge=1, description="Default executionDuration of an async job (its run-time limit), in seconds."
    )
    execution_duration_max_s: int = Field(
        86_400, ge=1, description="Largest executionDuration a client may ask for, in seconds."
    )
    destruction_days: float = Field(
        7.0, gt=0, description="Days an async job and its result are kept before the sweeper deletes them."
    )
    running_jobs_limit: int = Field(4, ge=1, description="Async jobs executing at once; more wait in QUEUED.")
    results_dir: Path | None = Field(
        None, description="Directory for async results and uploads (default: <local.data_dir>/tap-results)."
    )
    auth: Literal["anonymous", "token"] = Field(
        "anonymous",
        description="'anonymous': anyone may query; 'token': every request needs a bearer token (dms-db token create).",
    )
    tls_certfile: Path | None = Field(None, description="PEM certificate chain; with tls_keyfile, HTTPS.")
    tls_keyfile: Path | None = Field(None, description="PEM private key of tls_certfile.")

    @model_validator(mode="after")
    def _consistent(self) -> ServiceConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both for HTTPS, or neither")
        if self.maxrec_default > self.maxrec_limit:
            raise ValueError("maxrec_default exceeds maxrec_limit; lower the default or raise the limit")
        if self.execution_duration_s > self.execution_duration_max_s:
            raise ValueError("execution_duration_s exceeds execution_duration_max_s")
        return self


class DmsConfig(BaseSettings):
    """Top-level configuration of a dms-db deployment."""

    model_config = SettingsConfigDict(
        env_prefix="DMS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    coordinator_dsn: str | None = Field(
        None,
        description=(
            "libpq connection string of an existing coordinator database. Leave empty to use the local cluster."
        ),
    )
    worker_dsns: list[str] = Field(
        default_factory=list,
        description="libpq connection strings of existing worker databases (with coordinator_dsn).",
    )
    local: LocalClusterConfig = Field(
        default_factory=LocalClusterConfig,
        description="The local cluster, used when coordinator_dsn is empty.",
    )
    database: str = Field("dms", description="Database name used on every local server.")
    chunk_order: int = Field(
        5,
        ge=0,
        le=MAX_CHUNK_ORDER,
        description=(
            "Default HEALPix order of chunks for newly deployed catalogs (5: 12288 chunks of 3.4 square degrees)."
        ),
    )
    overlap_arcsec: float = Field(
        60.0,
        ge=0.0,
        le=3600.0,
        description="Width of the overlap margin kept around each chunk, in arcseconds.",
    )
    replication: int = Field(1, ge=1, le=8, description="Number of workers that hold each chunk.")
    service: ServiceConfig = Field(default_factory=ServiceConfig, description="The TAP service.")

    @field_validator("worker_dsns")
    @classmethod
    def _distinct_workers(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("worker_dsns lists the same DSN twice; each worker must be distinct")
        return value

    @model_validator(mode="after")
    def _consistent_topology(self) -> DmsConfig:
        if self.coordinator_dsn is None and self.worker_dsns:
            raise ValueError("worker_dsns needs coordinator_dsn; set both, or neither to use the local cluster")
        if self.coordinator_dsn is not None and not self.worker_dsns:
            raise ValueError("coordinator_dsn needs at least one entry in worker_dsns")
        workers = len(self.worker_dsns) if self.coordinator_dsn else self.local.workers
        if self.replication > workers:
            raise ValueError(
                f"replication={self.replication} exceeds the number of workers ({workers}); "
                "lower replication or add workers"
            )
        return self

    @property
    def results_dir(self) -> Path:
        """Where the TAP service keeps async results and uploads."""
        return self.service.results_dir or self.local.data_dir / "tap-results"

    @property
    def uses_local_cluster(self) -> bool:
        """True when dms-db runs the servers itself."""
        return self.coordinator_dsn is None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file_in_use()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


_explicit_config_file: Path | None = None


def _config_file_in_use() -> Path | None:
    if _explicit_config_file is not None:
        return _explicit_config_file
    if env_file := os.environ.get("DMS_CONFIG"):
        return Path(env_file)
    local = Path(DEFAULT_CONFIG_FILE)
    return local if local.is_file() else None


def load_config(config_file: Path | None = None, **overrides: Any) -> DmsConfig:
    """Read the configuration, turning pydantic's report into a :class:`ConfigError`.

    Parameters
    ----------
    config_file
        TOML file to read; overrides ``DMS_CONFIG`` and ``./dms-db.toml``.
    **overrides
        Field values that take precedence over every other source.
    """
    global _explicit_config_file
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"configuration file {config_file} does not exist")
    previous = _explicit_config_file
    _explicit_config_file = config_file
    try:
        return DmsConfig(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        source = _config_file_in_use()
        where = f" (file {source})" if source else ""
        raise ConfigError(f"invalid configuration{where}: {problems}") from None
    finally:
        _explicit_config_file = previous
