"""Settings and database URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.errors import ConfigError
from clearq.scheduler.engine import normalise_url


def test_default_database_is_sqlite_under_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CLEARQ_DATABASE_URL", raising=False)
    monkeypatch.setenv("CLEARQ_HOME", str(tmp_path / "h"))
    settings = Settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'h' / 'clearq.db'}"


def test_database_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARQ_DATABASE_URL", "postgresql://u@db/x")
    assert Settings().resolved_database_url == "postgresql://u@db/x"


def test_home_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings(home=Path("~/.cq")).home_dir == tmp_path / ".cq"


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
