"""Settings: the one place environment variables are read.

Every setting has a named default below and can be given as ``CLEARQ_<NAME>`` in the
environment. The database URL is the only thing a new machine needs.

``Settings`` is a frozen value class (``clearq.valueclass``: a frozen dataclass's
behaviour without ``dataclasses``, which would compile its 45-argument ``__init__`` and
import ``inspect``) because a training script imports it on the way to ``Task.init``,
where every millisecond of import counts. ``load_settings()`` reads the environment;
``Settings(...)`` takes values as given; ``valueclass.fields(Settings)`` names them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clearq import valueclass
from clearq.errors import ConfigError

ENV_PREFIX = "CLEARQ_"
DEFAULT_HOME = Path("~/.clearq")
SQLITE_FILENAME = "clearq.db"
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_GANG_WAIT_SECONDS = 300.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_WORKER_GONE_SECONDS = 300.0
DEFAULT_METRICS_RETENTION_SECONDS = 24 * 3600.0
DEFAULT_MAX_DIFF_BYTES = 50 * 1024 * 1024
ENVS_DIRNAME = "envs"
DEFAULT_ENV_CACHE_MAX_ENTRIES = 32
"""Built environments kept under ``home/envs`` before the least recently used go."""
DEFAULT_ENV_CACHE_MAX_BYTES = 64 * 1024**3
"""Bytes of built environments kept before the least recently used go."""
DOCKER_ENVS_DIRNAME = "docker-envs"
DEFAULT_STORAGE_CACHE_MAX_BYTES = 20 * 1024**3
"""Bytes of downloaded files ``StorageManager`` keeps per cache context under home/cache."""
DEFAULT_DOCKER_STOP_GRACE_SECONDS = 10.0
"""How long a stopped container has between SIGTERM and SIGKILL."""
DEFAULT_DB_CONNECT_TIMEOUT_SECONDS = 10.0
"""How long opening a PostgreSQL connection may take (libpq ``connect_timeout``); a caller
waits three times as long for one of the pool's connections to come free."""
DEFAULT_DB_KEEPALIVE_SECONDS = 10.0
"""Idle seconds before TCP keepalive probes start, and between them (three are sent)."""
DEFAULT_DB_TCP_USER_TIMEOUT_SECONDS = 30.0
"""How long sent data may stay unacknowledged before the connection is dropped."""
DEFAULT_DB_STATEMENT_TIMEOUT_SECONDS = 60.0
"""The server cancels one of clearq's statements that runs longer (0: no limit)."""
DEFAULT_DB_IDLE_IN_TRANSACTION_SECONDS = 10.0
"""The server ends a session idle inside a transaction this long, freeing its locks.

clearq's transactions last milliseconds: one left open is an agent frozen (SIGSTOP) or
cut off in the middle of it, whose row locks would hide its tasks from the reaper."""
DEFAULT_DB_POOL_SIZE = 2
"""PostgreSQL connections a store's pool may keep open while busy; one while quiet
(``CLEARQ_DB_POOL_SIZE``, ``clearq.scheduler.pool``)."""
DEFAULT_DB_MAX_OVERFLOW = 0
"""Connections the pool may open beyond its size for a moment, closed when returned."""
LISTEN_RELAYS = ("host", "process", "off")
"""Values of ``CLEARQ_LISTEN_RELAY``: who shares one LISTEN connection."""
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""Debian's and Ubuntu's system CA bundle: carried into containers when nothing else is set."""
PACKAGE_INDEX_VARIABLES = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
)
"""The agent's package index settings, carried into a task's container as they are."""
DEFAULT_RETENTION_ENVS_DAYS = 30.0
"""``clearq gc`` removes built environments no task used for this many days."""
DEFAULT_RETENTION_MIRRORS_DAYS = 30.0
"""``clearq gc`` removes git mirrors no task names that were not used for this many days."""
DEFAULT_RETENTION_EVERY_SECONDS = 3600.0
"""One agent of the fleet applies the store's retention settings once an hour."""
CA_BUNDLE_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
"""Where pip, uv, OpenSSL and requests look for a CA bundle, in the order clearq trusts them."""


@valueclass.value_class
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

    # How PostgreSQL connections give up on a server or network that stopped answering
    # (clearq.scheduler.engine). 0 turns a server-side timeout off (pgbouncer in
    # transaction mode, which refuses startup options: set them on the server instead).
    db_connect_timeout_seconds: float = DEFAULT_DB_CONNECT_TIMEOUT_SECONDS
    db_keepalive_seconds: float = DEFAULT_DB_KEEPALIVE_SECONDS
    db_tcp_user_timeout_seconds: float = DEFAULT_DB_TCP_USER_TIMEOUT_SECONDS
    db_statement_timeout_seconds: float = DEFAULT_DB_STATEMENT_TIMEOUT_SECONDS
    db_idle_in_transaction_seconds: float = DEFAULT_DB_IDLE_IN_TRANSACTION_SECONDS
    db_pool_size: int = DEFAULT_DB_POOL_SIZE
    """Connections the store's one pool (shared by every thread of an agent) may keep
    while busy; a quiet store keeps one (``clearq.scheduler.pool.ElasticPool``)."""
    db_max_overflow: int = DEFAULT_DB_MAX_OVERFLOW
    """Extra connections a busy pool may open for a moment (closed when given back)."""
    database_pgbouncer: bool = False
    """The database URL is a pgbouncer in transaction mode: no prepared statements, no
    startup options (set statement_timeout and idle_in_transaction_session_timeout on
    the server or role instead), and LISTEN only through ``listen_url``."""
    listen_url: str | None = None
    """A direct (session) PostgreSQL URL for the agent's LISTEN connection, when the
    database URL goes through a transaction pooler that cannot keep a LISTEN."""
    listen_relay: str = "host"
    """Who shares one LISTEN connection (``clearq.scheduler.relay``): ``host``, every
    listener of this machine, OS user and home (one listens, it relays to the others
    over a unix socket); ``process``, the listeners of one process; ``off``, each its
    own."""

    # Set by an agent in the environment of a task it runs: Task.init attaches to it.
    task_id: uuid.UUID | None = None
    attempt: int | None = None
    worker: str | None = None
    channel: Path | None = None
    """The socket of the attempt's channel to its agent (``clearq.runtime.channel``)."""
    channel_token: str | None = None
    """The token that opens the channel: a secret, never shown (not in the repr)."""

    # The environment cache (clearq.envs.EnvCache), under home/envs.
    env_cache_max_entries: int = DEFAULT_ENV_CACHE_MAX_ENTRIES
    """Built environments kept before the least recently used (and unused) go."""
    env_cache_max_bytes: int = DEFAULT_ENV_CACHE_MAX_BYTES
    """Bytes of built environments kept before the least recently used (and unused) go."""

    storage_cache_max_bytes: int = DEFAULT_STORAGE_CACHE_MAX_BYTES
    """Bytes of downloaded files kept per cache context (``StorageManager``)."""

    # Docker mode (clearq.envs.docker).
    docker_image: str | None = None
    """The image a task that names none runs in, when an agent runs tasks in Docker."""
    docker_volume_roots: tuple[Path, ...] = ()
    """Host folders under which a task's ``-v`` docker argument may mount (``:``-separated)."""
    docker_stop_grace_seconds: float = DEFAULT_DOCKER_STOP_GRACE_SECONDS
    ca_bundle: Path | None = None
    """The CA bundle mounted into containers for pip and uv; default: the host's."""

    gang_wait_seconds: float = DEFAULT_GANG_WAIT_SECONDS
    """How long an agent holding a rank of a gang that is not yet complete waits for the
    others before it gives its slot back."""
    agent_address: str | None = None
    """The address other ranks of a gang reach this agent's rank 0 at; default: the host
    name's address."""

    # Retention of logs, metrics and archived tasks, applied by `clearq gc` and by the
    # agents themselves: one agent every ``retention_every_seconds`` (None: kept for ever).
    retention_logs_days: float | None = None
    """Console lines of ended tasks older than this go."""
    retention_metrics_days: float | None = None
    """Scalar points and plots of ended tasks older than this go (their summary stays)."""
    retention_archived_days: float | None = None
    """Tasks archived longer ago than this are deleted, with their files."""
    retention_envs_days: float = DEFAULT_RETENTION_ENVS_DAYS
    """Built environments (the env cache) not used for this long go."""
    retention_mirrors_days: float = DEFAULT_RETENTION_MIRRORS_DAYS
    """Git mirrors no stored task names and not used for this long go."""
    retention_every_seconds: float = DEFAULT_RETENTION_EVERY_SECONDS
    """How often one of the fleet's agents applies the retention of logs, metrics and
    archived tasks (the one whose turn it takes, ``chores`` table)."""

    allow_local_repositories: bool = False
    """An agent clones a task's repository from a path or ``file://`` URL on its own
    machine only when its operator says so; https, ssh and git URLs always work."""

    def __repr__(self) -> str:
        shown = (
            f"{name}={getattr(self, name)!r}"
            for name in valueclass.fields(Settings)
            if name != "channel_token"
        )
        return f"Settings({', '.join(shown)})"

    def __post_init__(self) -> None:
        for name in (
            "lease_seconds",
            "worker_gone_seconds",
            "metrics_retention_seconds",
            "gang_wait_seconds",
            "retention_every_seconds",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{_env_name(name)} must be a number above 0")
        if self.listen_relay not in LISTEN_RELAYS:
            raise ConfigError(
                f"{_env_name('listen_relay')} must be one of {', '.join(LISTEN_RELAYS)}"
            )
        for name in (
            "max_attempts",
            "max_diff_bytes",
            "env_cache_max_entries",
            "env_cache_max_bytes",
            "storage_cache_max_bytes",
            "db_pool_size",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{_env_name(name)} must be a whole number of at least 1")
        for name in (
            "retention_logs_days",
            "retention_metrics_days",
            "retention_archived_days",
            "retention_envs_days",
            "retention_mirrors_days",
        ):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{_env_name(name)} must be a number of days above 0")
        for name in ("db_connect_timeout_seconds", "db_keepalive_seconds"):
            if not getattr(self, name) >= 1:
                raise ConfigError(f"{_env_name(name)} must be a number of at least 1")
        for name in (
            "docker_stop_grace_seconds",
            "db_tcp_user_timeout_seconds",
            "db_statement_timeout_seconds",
            "db_idle_in_transaction_seconds",
            "db_max_overflow",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{_env_name(name)} must not be negative")

    @property
    def home_dir(self) -> Path:
        """The home folder with ``~`` expanded."""
        return self.home.expanduser()

    @property
    def envs_dir(self) -> Path:
        """Where built Python environments are cached (``clearq.envs.EnvCache``)."""
        return self.home_dir / ENVS_DIRNAME

    @property
    def docker_envs_dir(self) -> Path:
        """Where environments built inside containers are cached (``clearq.envs.docker``)."""
        return self.home_dir / DOCKER_ENVS_DIRNAME

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
        return valueclass.replace(self, **changes)


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda text: convert(text) if text.strip() else None


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("give 1 or 0")


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
    "channel": _optional(Path),
    "channel_token": _optional(str.strip),
    "env_cache_max_entries": int,
    "env_cache_max_bytes": int,
    "storage_cache_max_bytes": int,
    "docker_image": _optional(str.strip),
    "docker_volume_roots": lambda text: tuple(Path(p) for p in text.split(os.pathsep) if p),
    "docker_stop_grace_seconds": float,
    "db_connect_timeout_seconds": float,
    "db_keepalive_seconds": float,
    "db_tcp_user_timeout_seconds": float,
    "db_statement_timeout_seconds": float,
    "db_idle_in_transaction_seconds": float,
    "db_pool_size": int,
    "db_max_overflow": int,
    "database_pgbouncer": _flag,
    "listen_url": _optional(str.strip),
    "listen_relay": lambda text: text.strip().lower(),
    "ca_bundle": _optional(Path),
    "allow_local_repositories": _flag,
    "retention_logs_days": _optional(float),
    "retention_metrics_days": _optional(float),
    "retention_archived_days": _optional(float),
    "retention_envs_days": float,
    "retention_mirrors_days": float,
    "retention_every_seconds": float,
    "gang_wait_seconds": float,
    "agent_address": _optional(str.strip),
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


HOME_MODE = 0o700
"""clearq's folder holds the SQLite database, the env caches and other tasks' run
folders: only its owner may look inside."""


def ensure_home(home: Path) -> Path:
    """``home`` (``~`` expanded), created owner-only (0700) if it does not exist yet."""
    folder = home.expanduser()
    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Another process may make it meanwhile: theirs stands.
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=HOME_MODE)
    return folder


def package_index_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agent's package index settings (``PIP_INDEX_URL``, ``UV_INDEX_URL``, ...)."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in PACKAGE_INDEX_VARIABLES if environ.get(name)}


def find_ca_bundle(settings: Settings, environ: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle file pip and uv should trust: the setting, the agent's, or the host's.

    ``CLEARQ_CA_BUNDLE`` first, then the first of ``PIP_CERT``, ``SSL_CERT_FILE`` and
    ``REQUESTS_CA_BUNDLE`` that names a file, then the system bundle; None when there is
    none of them.
    """
    environ = os.environ if environ is None else environ
    named = [settings.ca_bundle] if settings.ca_bundle else []
    named += [Path(environ[name]) for name in CA_BUNDLE_VARIABLES if environ.get(name)]
    for path in [*named, HOST_CA_BUNDLE]:
        if path.expanduser().is_file():
            return path.expanduser()
    return None
