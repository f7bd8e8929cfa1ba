"""Configuration: defaults, environment variables, files, and clear rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from dms_db.config import load_config
from dms_db.errors import ConfigError


def test_defaults_describe_a_local_cluster() -> None:
    config = load_config()
    assert config.uses_local_cluster
    assert config.local.workers >= 1
    assert config.replication == 1


def test_every_field_is_described() -> None:
    from dms_db.config import DmsConfig, LocalClusterConfig

    for model in (DmsConfig, LocalClusterConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_environment_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMS_LOCAL__WORKERS", "2")
    monkeypatch.setenv("DMS_CHUNK_ORDER", "7")
    config = load_config()
    assert config.local.workers == 2
    assert config.chunk_order == 7


def test_file_is_read_and_unknown_keys_rejected(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("chunk_order = 6\nreplication = 2\n[local]\nworkers = 3\n")
    config = load_config(good)
    assert (config.chunk_order, config.replication, config.local.workers) == (6, 2, 3)

    bad = tmp_path / "bad.toml"
    bad.write_text("chunk_ordr = 6\n")
    with pytest.raises(ConfigError, match="chunk_ordr"):
        load_config(bad)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"chunk_order": 13}, "chunk_order"),
        ({"replication": 5}, "replication=5 exceeds"),
        ({"worker_dsns": ["host=a"]}, "needs coordinator_dsn"),
        ({"coordinator_dsn": "host=a"}, "needs at least one"),
        ({"coordinator_dsn": "host=a", "worker_dsns": ["host=b", "host=b"]}, "same DSN twice"),
    ],
)
def test_invalid_values_name_the_field(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(**overrides)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
