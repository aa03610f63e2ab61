"""Settings: the one place environment variables are read.

Every setting has a named default below and can be given as ``CLEARQ_<NAME>`` in the
environment. The database URL is the only thing a new machine needs.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path("~/.clearq")
SQLITE_FILENAME = "clearq.db"
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_WORKER_GONE_SECONDS = 300.0
DEFAULT_METRICS_RETENTION_SECONDS = 24 * 3600.0
DEFAULT_MAX_DIFF_BYTES = 50 * 1024 * 1024


class Settings(BaseSettings):
    """clearq's settings, read from ``CLEARQ_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CLEARQ_", frozen=True, extra="ignore")

    home: Path = Field(default=DEFAULT_HOME, description="clearq's own folder on this machine.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; default: an SQLite file under home.",
    )
    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1)
    worker_gone_seconds: float = Field(default=DEFAULT_WORKER_GONE_SECONDS, gt=0)
    metrics_retention_seconds: float = Field(default=DEFAULT_METRICS_RETENTION_SECONDS, gt=0)
    max_diff_bytes: int = Field(
        default=DEFAULT_MAX_DIFF_BYTES,
        gt=0,
        description="Above this size a captured diff plus untracked files warns loudly.",
    )

    # Set by an agent in the environment of a task it runs: Task.init attaches to it.
    task_id: uuid.UUID | None = None
    attempt: int | None = None
    worker: str | None = None

    @property
    def home_dir(self) -> Path:
        """The home folder with ``~`` expanded."""
        return self.home.expanduser()

    @property
    def artifacts_dir(self) -> Path:
        """Default output folder for artifacts."""
        return self.home_dir / "artifacts"

    @property
    def resolved_database_url(self) -> str:
        """The database URL to use: the configured one, or the SQLite file under home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / SQLITE_FILENAME}"


def load_settings() -> Settings:
    """Read the settings from the environment now."""
    return Settings()
