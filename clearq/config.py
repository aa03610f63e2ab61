"""Settings: the one place environment variables are read.

Every setting has a named default below and can be given as ``CLEARQ_<NAME>`` in the
environment. The database URL is the only thing a new machine needs.

``Settings`` is a plain frozen dataclass (standard library only) because a training
script imports it on the way to ``Task.init``, where every millisecond of import counts.
``load_settings()`` reads the environment; ``Settings(...)`` takes values as given.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearq.errors import ConfigError

ENV_PREFIX = "CLEARQ_"
DEFAULT_HOME = Path("~/.clearq")
SQLITE_FILENAME = "clearq.db"
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_WORKER_GONE_SECONDS = 300.0
DEFAULT_METRICS_RETENTION_SECONDS = 24 * 3600.0
DEFAULT_MAX_DIFF_BYTES = 50 * 1024 * 1024
ENVS_DIRNAME = "envs"
DEFAULT_ENV_CACHE_MAX_ENTRIES = 32
"""Built environments kept under ``home/envs`` before the least recently used go."""
DEFAULT_ENV_CACHE_MAX_BYTES = 64 * 1024**3
"""Bytes of built environments kept before the least recently used go."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """clearq's settings; ``load_settings()`` reads them from ``CLEARQ_*`` variables."""

    home: Path = DEFAULT_HOME
    """clearq's own folder on this machine."""
    database_url: str | None = None
    """SQLAlchemy-style URL of the store; default: an SQLite file under home."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    worker_gone_seconds: float = DEFAULT_WORKER_GONE_SECONDS
    metrics_retention_seconds: float = DEFAULT_METRICS_RETENTION_SECONDS
    max_diff_bytes: int = DEFAULT_MAX_DIFF_BYTES
    """Above this size a captured diff plus untracked files warns loudly."""

    # Set by an agent in the environment of a task it runs: Task.init attaches to it.
    task_id: uuid.UUID | None = None
    attempt: int | None = None
    worker: str | None = None

    # The environment cache (clearq.envs.EnvCache), under home/envs.
    env_cache_max_entries: int = DEFAULT_ENV_CACHE_MAX_ENTRIES
    """Built environments kept before the least recently used (and unused) go."""
    env_cache_max_bytes: int = DEFAULT_ENV_CACHE_MAX_BYTES
    """Bytes of built environments kept before the least recently used (and unused) go."""

    def __post_init__(self) -> None:
        for name in ("lease_seconds", "worker_gone_seconds", "metrics_retention_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{_env_name(name)} must be a number above 0")
        for name in (
            "max_attempts",
            "max_diff_bytes",
            "env_cache_max_entries",
            "env_cache_max_bytes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{_env_name(name)} must be a whole number of at least 1")

    @property
    def home_dir(self) -> Path:
        """The home folder with ``~`` expanded."""
        return self.home.expanduser()

    @property
    def envs_dir(self) -> Path:
        """Where built Python environments are cached (``clearq.envs.EnvCache``)."""
        return self.home_dir / ENVS_DIRNAME

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

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated like the original)."""
        return dataclasses.replace(self, **changes)


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda text: convert(text) if text.strip() else None


_READERS: dict[str, Callable[[str], Any]] = {
    "home": Path,
    "database_url": _optional(str.strip),
    "lease_seconds": float,
    "max_attempts": int,
    "worker_gone_seconds": float,
    "metrics_retention_seconds": float,
    "max_diff_bytes": int,
    "task_id": _optional(uuid.UUID),
    "attempt": _optional(int),
    "worker": _optional(str.strip),
    "env_cache_max_entries": int,
    "env_cache_max_bytes": int,
}


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """The settings from ``CLEARQ_*`` environment variables, then ``overrides`` on top."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, read in _READERS.items():
        text = environ.get(_env_name(name))
        if text is None:
            continue
        try:
            values[name] = read(text)
        except ValueError as e:
            raise ConfigError(f"{_env_name(name)}={text!r} cannot be used: {e}") from e
    values.update(overrides)
    return Settings(**values)
