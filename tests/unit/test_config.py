"""Settings and database URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearq import valueclass
from clearq.config import Settings, load_settings
from clearq.errors import ConfigError
from clearq.scheduler.engine import normalise_url


def test_default_database_is_sqlite_under_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CLEARQ_DATABASE_URL", raising=False)
    monkeypatch.setenv("CLEARQ_HOME", str(tmp_path / "h"))
    settings = load_settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'h' / 'clearq.db'}"


def test_database_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARQ_DATABASE_URL", "postgresql://u@db/x")
    assert load_settings().resolved_database_url == "postgresql://u@db/x"


def test_home_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings(home=Path("~/.cq")).home_dir == tmp_path / ".cq"


def test_every_setting_can_come_from_the_environment() -> None:
    environ = {
        "CLEARQ_HOME": "/srv/cq",
        "CLEARQ_DATABASE_URL": "postgresql://u@db/x",
        "CLEARQ_LEASE_SECONDS": "5.5",
        "CLEARQ_MAX_ATTEMPTS": "7",
        "CLEARQ_WORKER_GONE_SECONDS": "9",
        "CLEARQ_METRICS_RETENTION_SECONDS": "11",
        "CLEARQ_MAX_DIFF_BYTES": "1024",
        "CLEARQ_TASK_ID": "00000000-0000-0000-0000-00000000000a",
        "CLEARQ_ATTEMPT": "2",
        "CLEARQ_WORKER": "host:w",
        "CLEARQ_CHANNEL": "/srv/cq/runs/x/channel.sock",
        "CLEARQ_CHANNEL_TOKEN": "t0ken",
        "CLEARQ_ENV_CACHE_MAX_ENTRIES": "5",
        "CLEARQ_ENV_CACHE_MAX_BYTES": "1000000",
        "CLEARQ_STORAGE_CACHE_MAX_BYTES": "2000000",
        "CLEARQ_DOCKER_IMAGE": "python:3.11",
        "CLEARQ_DOCKER_VOLUME_ROOTS": "/data:/models",
        "CLEARQ_DOCKER_STOP_GRACE_SECONDS": "3",
        "CLEARQ_CA_BUNDLE": "/etc/ca.pem",
        "CLEARQ_ALLOW_LOCAL_REPOSITORIES": "yes",
        "CLEARQ_GANG_WAIT_SECONDS": "12",
        "CLEARQ_AGENT_ADDRESS": "10.0.0.7",
        "CLEARQ_DB_CONNECT_TIMEOUT_SECONDS": "4",
        "CLEARQ_DB_KEEPALIVE_SECONDS": "6",
        "CLEARQ_DB_TCP_USER_TIMEOUT_SECONDS": "12",
        "CLEARQ_DB_STATEMENT_TIMEOUT_SECONDS": "0",
        "CLEARQ_DB_IDLE_IN_TRANSACTION_SECONDS": "30",
        "CLEARQ_DB_POOL_SIZE": "3",
        "CLEARQ_DB_MAX_OVERFLOW": "1",
        "CLEARQ_DATABASE_PGBOUNCER": "1",
        "CLEARQ_LISTEN_URL": "postgresql://u@direct/x",
        "CLEARQ_LISTEN_RELAY": "Process",
        "CLEARQ_RETENTION_LOGS_DAYS": "30",
        "CLEARQ_RETENTION_METRICS_DAYS": "60",
        "CLEARQ_RETENTION_ARCHIVED_DAYS": "90",
        "CLEARQ_RETENTION_ENVS_DAYS": "7",
        "CLEARQ_RETENTION_MIRRORS_DAYS": "14",
        "CLEARQ_RETENTION_EVERY_SECONDS": "600",
    }
    settings = load_settings(environ)
    assert set(valueclass.fields(Settings)) == {
        k.removeprefix("CLEARQ_").lower() for k in environ
    }, "a setting without a CLEARQ_ variable (add it to config._READERS and here)"
    assert settings.home == Path("/srv/cq")
    assert settings.channel == Path("/srv/cq/runs/x/channel.sock")
    assert settings.channel_token == "t0ken"
    assert "t0ken" not in repr(settings)  # a secret
    assert settings.lease_seconds == 5.5
    assert settings.max_attempts == 7
    assert settings.max_diff_bytes == 1024
    assert (settings.db_pool_size, settings.db_max_overflow) == (3, 1)
    assert settings.database_pgbouncer
    assert settings.listen_url == "postgresql://u@direct/x"
    assert settings.listen_relay == "process"
    assert str(settings.task_id).endswith("0a")
    assert settings.attempt == 2
    assert settings.worker == "host:w"
    assert settings.env_cache_max_entries == 5
    assert settings.storage_cache_max_bytes == 2_000_000
    assert settings.env_cache_max_bytes == 1_000_000
    assert settings.docker_image == "python:3.11"
    assert settings.docker_volume_roots == (Path("/data"), Path("/models"))
    assert settings.docker_stop_grace_seconds == 3.0
    assert settings.ca_bundle == Path("/etc/ca.pem")
    assert settings.allow_local_repositories is True
    assert settings.gang_wait_seconds == 12.0
    assert settings.retention_every_seconds == 600.0
    assert settings.agent_address == "10.0.0.7"
    assert settings.db_connect_timeout_seconds == 4.0
    assert settings.db_keepalive_seconds == 6.0
    assert settings.db_tcp_user_timeout_seconds == 12.0
    assert settings.db_statement_timeout_seconds == 0.0
    assert settings.db_idle_in_transaction_seconds == 30.0


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings({"CLEARQ_LEASE_SECONDS": "5"}, lease_seconds=8.0)
    assert settings.lease_seconds == 8.0


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"CLEARQ_LEASE_SECONDS": "soon"}, "CLEARQ_LEASE_SECONDS='soon' cannot be used"),
        ({"CLEARQ_LEASE_SECONDS": "0"}, "CLEARQ_LEASE_SECONDS must be a number above 0"),
        ({"CLEARQ_MAX_ATTEMPTS": "0"}, "CLEARQ_MAX_ATTEMPTS must be a whole number"),
        ({"CLEARQ_TASK_ID": "nope"}, "CLEARQ_TASK_ID='nope'"),
        ({"CLEARQ_DB_CONNECT_TIMEOUT_SECONDS": "0"}, "at least 1"),
        ({"CLEARQ_DB_STATEMENT_TIMEOUT_SECONDS": "-1"}, "must not be negative"),
    ],
)
def test_bad_environment_values_say_which_variable(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(environ)


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db"])
def test_postgres_urls_use_psycopg3(url: str) -> None:
    assert normalise_url(url).drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u@h/db", "not supported"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("not a url", "cannot parse"),
    ],
)
def test_unusable_urls_say_why(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        normalise_url(url)


def test_schema_revision_constant_is_the_newest_migration() -> None:
    from clearq.scheduler.migrate import SCHEMA_REVISION, head_revision

    assert head_revision() == SCHEMA_REVISION


def test_an_unknown_listen_relay_is_refused() -> None:
    with pytest.raises(ConfigError, match="CLEARQ_LISTEN_RELAY"):
        load_settings({"CLEARQ_LISTEN_RELAY": "everywhere"})
