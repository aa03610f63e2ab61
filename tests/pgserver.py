"""Find or start a PostgreSQL server for the test suite and hand out throwaway databases.

`find_server` tries, in order:

1. ``CLEARQ_TEST_POSTGRES_URL``: an existing server, used as the maintenance connection;
2. a testcontainers ``postgres`` container, only where the ``testcontainers`` package is
   importable, a Docker engine answers and a ``postgres`` image is already present locally
   (images are never pulled);
3. a throwaway cluster made with ``initdb`` and run with ``pg_ctl`` (as the ``postgres`` OS
   user when running as root), listening on a socket inside its temp dir and on 127.0.0.1;

and otherwise reports, in `Discovery.reason`, what it tried and how to provide a server.

A `PgServer` creates and drops databases through short-lived autocommit psycopg connections
to its maintenance database.  Use `unique_database_name` for database names: it includes the
process id and a random token, so parallel runs against one server do not collide.
"""

from __future__ import annotations

import enum
import importlib.util
import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "DEFAULT_SOURCES",
    "ENV_VAR",
    "Discovery",
    "PgServer",
    "PgServerError",
    "ServerUnavailable",
    "Source",
    "find_pg_bin_dirs",
    "find_server",
    "server_from_url",
    "start_cluster",
    "start_container",
    "unique_database_name",
]

ENV_VAR: Final = "CLEARQ_TEST_POSTGRES_URL"
"""Environment variable holding the URL of an existing server to use for the tests."""

MIN_SERVER_VERSION: Final = 130000
"""``DROP DATABASE ... WITH (FORCE)`` needs PostgreSQL 13."""

MAX_IDENTIFIER_BYTES: Final = 63
"""PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1)."""

DRIVER: Final = "postgresql+psycopg"
VERSIONED_BIN_ROOT: Final = Path("/usr/lib/postgresql")
CLUSTER_SUPERUSER: Final = "postgres"
CLUSTER_OS_USER: Final = "postgres"

_HOW_TO_PROVIDE: Final = (
    f"To use an existing server, set {ENV_VAR}, e.g. "
    f"{ENV_VAR}=postgresql://postgres@127.0.0.1:5432/postgres "
    "(the role needs CREATEDB or superuser; PostgreSQL 13 or newer)."
)
_names = itertools.count(1)


class ServerUnavailable(Exception):
    """No usable server could be found or started this way; the message says why."""


class PgServerError(RuntimeError):
    """A server that was in use could not be released cleanly."""


class Source(enum.StrEnum):
    """The places `find_server` looks for a server."""

    ENV = "env"
    CONTAINER = "testcontainers"
    CLUSTER = "initdb"


DEFAULT_SOURCES: Final[tuple[Source, ...]] = (Source.ENV, Source.CONTAINER, Source.CLUSTER)


def unique_database_name(prefix: str = "clearq_test") -> str:
    """Return a database name unique to this process and call.

    The name holds the process id (runs on one host never collide), a per-process counter
    and a random token (runs in different containers, which may share pids, do not either).
    """
    name = f"{prefix}_{os.getpid()}_{next(_names)}_{secrets.token_hex(3)}"
    _check_identifier(name)
    return name


class PgServer:
    """A PostgreSQL server reachable by URL, handing out throwaway databases.

    Admin statements run on fresh autocommit connections to the maintenance database, so
    the object holds no connection between calls.  Databases created through it and not
    dropped are dropped by `close`, which then releases the server (stops a container or a
    throwaway cluster).  `close` also runs at interpreter exit if it was never called.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        description: str,
        cleanup: Callable[[], None] | None = None,
        workdir: Path | None = None,
        connect_timeout: int = 10,
    ) -> None:
        """Wrap the server at ``url`` without connecting (see `server_from_url`).

        ``cleanup`` releases the server when `close` is called; ``workdir`` is the directory
        of a throwaway cluster (logs are there while it runs).
        """
        self._url = normalize_url(url)
        self.description = description
        self.workdir = workdir
        self.connect_timeout = connect_timeout
        self._created: set[str] = set()
        self._closed = False
        self._cleanup = weakref.finalize(self, cleanup) if cleanup is not None else None

    def __repr__(self) -> str:
        return f"PgServer({self._url.render_as_string(hide_password=True)!r})"

    @property
    def url(self) -> str:
        """SQLAlchemy URL (``postgresql+psycopg://...``) of the maintenance database."""
        return self._url.render_as_string(hide_password=False)

    @property
    def maintenance_database(self) -> str:
        """Name of the database admin statements connect to."""
        return self._url.database or CLUSTER_SUPERUSER

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        return self._closed

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL (``postgresql+psycopg://...``) of database ``name`` on this server."""
        _check_identifier(name)
        return self._url.set(database=name).render_as_string(hide_password=False)

    def connect(self, database: str | None = None) -> psycopg.Connection[TupleRow]:
        """Open an autocommit psycopg connection to ``database`` (default: maintenance db).

        The caller closes it (use it as a context manager).
        """
        url = self._url if database is None else self._url.set(database=database)
        return _connect(url, timeout=self.connect_timeout)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name``, as a copy of ``template`` if given; return its URL.

        PostgreSQL copies a template only while nobody else is connected to it: dispose of
        engines and close connections to the template first.
        """
        self._ensure_open()
        _check_identifier(name)
        if template is None:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        else:
            _check_identifier(template)
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with self.connect() as conn:
            try:
                conn.execute(statement)
            except psycopg.errors.ObjectInUse as exc:
                exc.add_note(
                    f"close every connection to template {template!r} (e.g. engine.dispose()) "
                    "before copying it"
                )
                raise
        self._created.add(name)
        return self.database_url(name)

    def drop_database(self, name: str, *, missing_ok: bool = True) -> None:
        """Drop database ``name``, terminating other connections to it first.

        With ``missing_ok`` (the default) a database that does not exist is not an error.
        """
        self._ensure_open()
        self._drop(name, missing_ok=missing_ok)

    def forget(self, name: str) -> None:
        """Stop tracking ``name`` (renamed away): `close` no longer drops it."""
        self._created.discard(name)

    def adopt(self, name: str) -> None:
        """Track ``name`` as created here (a database renamed to it): `close` drops it."""
        _check_identifier(name)
        self._created.add(name)

    def close(self) -> None:
        """Drop the databases this object created and kept, then release the server.

        Idempotent.  Raises `PgServerError` if leftovers could not be dropped (the server
        is released anyway) or the release itself failed.
        """
        if self._closed:
            return
        self._closed = True
        failures: list[str] = []
        for name in sorted(self._created):
            try:
                self._drop(name, missing_ok=True)
            except psycopg.Error as exc:
                failures.append(f"dropping {name!r}: {type(exc).__name__}: {exc}")
        if self._cleanup is not None:
            self._cleanup()
        if failures:
            raise PgServerError(f"closing {self.description}: " + "; ".join(failures))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _drop(self, name: str, *, missing_ok: bool) -> None:
        _check_identifier(name)
        template = (
            "DROP DATABASE IF EXISTS {} WITH (FORCE)"
            if missing_ok
            else "DROP DATABASE {} WITH (FORCE)"
        )
        with self.connect() as conn:
            conn.execute(sql.SQL(template).format(sql.Identifier(name)))
        self._created.discard(name)

    def _ensure_open(self) -> None:
        if self._closed:
            raise PgServerError(f"{self.description} is closed")


@dataclass(frozen=True)
class Discovery:
    """What `find_server` found.

    ``server`` is the server, or None.  ``source`` is where it came from; when ``server`` is
    None, ``source`` is `Source.ENV` if ``CLEARQ_TEST_POSTGRES_URL`` is set but unusable (a
    configuration error a caller may prefer to fail on rather than skip) and None otherwise.
    ``reason`` says which server is used, or what was tried and how to provide one.
    """

    server: PgServer | None
    source: Source | None
    reason: str


def find_server(
    sources: Sequence[Source] = DEFAULT_SOURCES,
    *,
    environ: Mapping[str, str] | None = None,
) -> Discovery:
    """Find or start a server, trying ``sources`` in order (see the module docstring).

    ``environ`` replaces ``os.environ`` for reading ``CLEARQ_TEST_POSTGRES_URL``.  A set but
    unusable URL ends the search: an explicit configuration is not silently replaced by
    another server.  The caller closes the returned server.
    """
    env = os.environ if environ is None else environ
    tried: list[str] = []
    for source in sources:
        if source is Source.ENV:
            raw = env.get(ENV_VAR, "").strip()
            if not raw:
                tried.append(f"{ENV_VAR}: not set")
                continue
            try:
                server = server_from_url(raw, description=f"{ENV_VAR} server")
            except ServerUnavailable as exc:
                return Discovery(None, Source.ENV, f"{ENV_VAR} is set but unusable: {exc}")
            return Discovery(server, Source.ENV, _found(server, tried))
        starter = start_container if source is Source.CONTAINER else start_cluster
        try:
            server = starter()
        except ServerUnavailable as exc:
            tried.append(f"{source}: {exc}")
            continue
        return Discovery(server, source, _found(server, tried))
    summary = "; ".join(tried) if tried else "no sources were tried"
    return Discovery(
        None, None, f"no PostgreSQL server for the tests ({summary}). {_HOW_TO_PROVIDE}"
    )


def server_from_url(url: str | URL, *, description: str | None = None) -> PgServer:
    """Use the existing server at ``url`` (any ``postgresql[+driver]://`` URL).

    Connects once to check that the server answers, is PostgreSQL 13 or newer and that the
    role may create databases; raises `ServerUnavailable` otherwise.  `PgServer.close`
    drops leftover databases but leaves the server running.
    """
    try:
        parsed = normalize_url(url)
    except ValueError as exc:
        raise ServerUnavailable(str(exc)) from exc
    shown = parsed.render_as_string(hide_password=True)
    full_description = f"{description or 'server'} at {shown}"
    _check_usable(parsed, full_description, timeout=10)
    return PgServer(parsed, description=full_description)


def normalize_url(url: str | URL) -> URL:
    """Parse a ``postgresql[+driver]://`` URL and switch its driver to psycopg 3.

    Raises ValueError for anything that is not a PostgreSQL URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {exc}") from exc
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)!r}")
    return parsed.set(drivername=DRIVER)


def start_container(image: str | None = None) -> PgServer:
    """Start a testcontainers PostgreSQL container from a locally present image.

    ``image`` defaults to the newest local ``postgres:<tag>``.  Never pulls: raises
    `ServerUnavailable` when testcontainers or the docker SDK is not installed, no Docker
    engine answers, or the image is missing.  If the Ryuk reaper's image is missing too,
    Ryuk is disabled for this process (the container is removed by `PgServer.close`, or at
    interpreter exit).
    """
    if importlib.util.find_spec("testcontainers") is None:
        raise ServerUnavailable("the testcontainers package is not installed")
    try:
        import docker  # type: ignore[import-not-found,import-untyped,unused-ignore]
        import docker.errors  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError as exc:
        raise ServerUnavailable(f"the docker SDK is not importable: {exc}") from exc

    notes: list[str] = []
    try:
        client = docker.from_env()
        try:
            client.ping()
            chosen = image or _newest_local_postgres_image(client)
            if chosen is None:
                raise ServerUnavailable(
                    "no postgres image is present locally (images are never pulled here)"
                )
            if not _image_present(client, chosen):
                raise ServerUnavailable(f"image {chosen!r} is not present locally")
            # Importing testcontainers talks to Docker, so only now that Docker answers.
            from testcontainers.core.config import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
                testcontainers_config,
            )
            from testcontainers.postgres import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
                PostgresContainer,
            )

            prefix = str(getattr(testcontainers_config, "hub_image_name_prefix", ""))
            if prefix and not _image_present(client, prefix + chosen):
                raise ServerUnavailable(f"image {prefix + chosen!r} is not present locally")
            ryuk_image = str(testcontainers_config.ryuk_image)
            if not testcontainers_config.ryuk_disabled and not _image_present(client, ryuk_image):
                testcontainers_config.ryuk_disabled = True
                notes.append(f"Ryuk disabled: its image {ryuk_image!r} is not present locally")
        finally:
            client.close()
    except ImportError as exc:
        raise ServerUnavailable(f"testcontainers is not importable: {exc}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise ServerUnavailable(f"Docker is not usable: {type(exc).__name__}: {exc}") from exc

    container = PostgresContainer(
        image=chosen, username="postgres", password="postgres", dbname="postgres", driver=None
    )

    def stop() -> None:
        container.stop()

    try:
        container.start()
        url = URL.create(
            DRIVER,
            username="postgres",
            password="postgres",
            host=container.get_container_host_ip(),
            port=int(container.get_exposed_port(5432)),
            database="postgres",
        )
        description = f"testcontainers {chosen} at {url.host}:{url.port}"
        if notes:
            description += f" ({'; '.join(notes)})"
        _check_usable(url, description, timeout=30)
    except (ServerUnavailable, docker.errors.DockerException, OSError) as exc:
        # TimeoutError and ConnectionError (testcontainers' readiness waits) are OSErrors.
        reason = f"container from {chosen!r} did not come up: {type(exc).__name__}: {exc}"
        try:
            container.stop()
        except (docker.errors.DockerException, OSError) as stop_exc:
            reason += f"; removing it failed too: {type(stop_exc).__name__}: {stop_exc}"
        raise ServerUnavailable(reason) from exc
    return PgServer(url, description=description, cleanup=stop, connect_timeout=30)


def find_pg_bin_dirs(
    search_path: str | None = None, versioned_root: Path = VERSIONED_BIN_ROOT
) -> list[Path]:
    """Directories holding both ``initdb`` and ``pg_ctl``, in order of preference.

    First the directory of the ``initdb`` found on ``search_path`` (default: ``$PATH``),
    symlinks resolved so it sits next to its ``pg_ctl`` and ``postgres``; then
    ``<versioned_root>/<version>/bin``, newest version first.
    """
    candidates: list[Path] = []
    found = shutil.which("initdb", path=search_path)
    if found is not None:
        candidates.append(Path(found).resolve().parent)
    if versioned_root.is_dir():
        versions = [p for p in versioned_root.iterdir() if _version_key(p.name)]
        versions.sort(key=lambda p: _version_key(p.name), reverse=True)
        candidates.extend(p / "bin" for p in versions)
    result: list[Path] = []
    for directory in candidates:
        resolved = directory.resolve()
        if resolved not in result and all(
            _is_executable(resolved / tool) for tool in ("initdb", "pg_ctl")
        ):
            result.append(resolved)
    return result


def start_cluster(
    bin_dir: Path | None = None,
    *,
    startup_timeout: int = 60,
    settings: Mapping[str, str] | None = None,
) -> PgServer:
    """Create and start a throwaway cluster with ``initdb`` and ``pg_ctl``.

    Uses ``bin_dir`` or the first of `find_pg_bin_dirs`.  The cluster lives in a new temp
    dir (owned by the ``postgres`` OS user, which runs it, when running as root), trusts
    every local connection, and listens on a socket in ``<workdir>/sock`` and on 127.0.0.1
    at a free port; ``settings`` are more lines of its postgresql.conf (for example
    ``shared_preload_libraries``).  `PgServer.close` stops it (``pg_ctl stop -m immediate``)
    and removes the dir.  Raises `ServerUnavailable` with the reason when any step fails.
    """
    if bin_dir is None:
        dirs = find_pg_bin_dirs()
        if not dirs:
            raise ServerUnavailable(
                f"no initdb and pg_ctl found on PATH or in {VERSIONED_BIN_ROOT}/*/bin"
            )
        bin_dir = dirs[0]
    run_as: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam(CLUSTER_OS_USER)
        except KeyError as exc:
            raise ServerUnavailable(
                "running as root, which PostgreSQL refuses, and there is no "
                f"{CLUSTER_OS_USER!r} OS user to run it as"
            ) from exc
    try:
        workdir = Path(tempfile.mkdtemp(prefix="clearq-pg-"))
        if run_as is not None:
            os.chown(workdir, run_as.pw_uid, run_as.pw_gid)
    except OSError as exc:
        raise ServerUnavailable(f"cannot make a temp dir for the cluster: {exc}") from exc

    cluster = _Cluster(bin_dir=bin_dir, workdir=workdir, run_as=run_as)
    try:
        cluster.init(settings or {})
        port = cluster.start(timeout=startup_timeout)
        url = URL.create(
            DRIVER, username=CLUSTER_SUPERUSER, host="127.0.0.1", port=port, database="postgres"
        )
        description = f"throwaway cluster ({bin_dir}) in {workdir} at 127.0.0.1:{port}"
        _check_usable(url, description, timeout=10)
    except BaseException:
        cluster.destroy()
        raise
    return PgServer(url, description=description, cleanup=cluster.destroy, workdir=workdir)


@dataclass(frozen=True)
class _Cluster:
    """The on-disk side of a throwaway cluster: its commands, run as ``run_as``."""

    bin_dir: Path
    workdir: Path
    run_as: pwd.struct_passwd | None

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def sockets(self) -> Path:
        return self.workdir / "sock"

    @property
    def log(self) -> Path:
        return self.workdir / "postgres.log"

    def init(self, extra: Mapping[str, str]) -> None:
        try:
            self.sockets.mkdir()
            if self.run_as is not None:
                os.chown(self.sockets, self.run_as.pw_uid, self.run_as.pw_gid)
        except OSError as exc:
            raise ServerUnavailable(f"cannot make the socket dir: {exc}") from exc
        self._run_checked(
            "initdb",
            [
                *("-D", str(self.data), "-U", CLUSTER_SUPERUSER),
                *("-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"),
            ],
            timeout=120,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.sockets),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **extra,
        }
        lines = "".join(f"{key} = {_conf_literal(value)}\n" for key, value in settings.items())
        try:
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write("\n# clearq tests/pgserver.py\n" + lines)
        except OSError as exc:
            raise ServerUnavailable(f"cannot configure the cluster: {exc}") from exc

    def start(self, *, timeout: int, attempts: int = 3) -> int:
        """Start on a free port (retrying if another process takes it first); return it."""
        for _ in range(attempts):
            port = _free_port()
            result = self._run(
                "pg_ctl",
                [
                    *("-D", str(self.data), "-l", str(self.log), "-w", "-t", str(timeout)),
                    *("-o", f"-p {port}", "start"),
                ],
                timeout=timeout + 30,
            )
            if result.returncode == 0:
                return port
            log = _tail(self.log)
            if "already in use" not in log:
                raise ServerUnavailable(
                    f"pg_ctl start failed ({result.returncode}): "
                    f"{_tail_text(result.stderr + result.stdout)}; log: {log}"
                )
        raise ServerUnavailable(f"no free port after {attempts} attempts; log: {_tail(self.log)}")

    def destroy(self) -> None:
        """Stop the server if it runs, then remove the work dir."""
        if (self.data / "postmaster.pid").exists():
            try:
                result = self._run(
                    "pg_ctl", ["-D", str(self.data), "-m", "immediate", "-w", "stop"], timeout=60
                )
            except ServerUnavailable as exc:
                raise PgServerError(f"{exc}; left {self.workdir} in place") from exc
            if result.returncode != 0 and (self.data / "postmaster.pid").exists():
                raise PgServerError(
                    f"pg_ctl stop failed ({result.returncode}): "
                    f"{_tail_text(result.stderr + result.stdout)}; left {self.workdir} in place"
                )
        shutil.rmtree(self.workdir)

    def _run_checked(self, tool: str, args: list[str], *, timeout: float) -> None:
        result = self._run(tool, args, timeout=timeout)
        if result.returncode != 0:
            raise ServerUnavailable(
                f"{tool} failed ({result.returncode}): {_tail_text(result.stderr + result.stdout)}"
            )

    def _run(
        self, tool: str, args: list[str], *, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program from ``bin_dir``; launch failures become ServerUnavailable."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LC_ALL": "C",
            "LANG": "C",
            "HOME": str(self.workdir),
        }
        as_root = self.run_as is not None
        try:
            return subprocess.run(
                [str(self.bin_dir / tool), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd=self.workdir,
                env=env,
                user=self.run_as.pw_uid if self.run_as is not None else None,
                group=self.run_as.pw_gid if self.run_as is not None else None,
                extra_groups=[] if as_root else None,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerUnavailable(f"{tool} timed out after {timeout}s") from exc
        except OSError as exc:
            raise ServerUnavailable(f"cannot run {tool}: {exc}") from exc


def _check_usable(url: URL, shown: str, *, timeout: int) -> None:
    """Raise ServerUnavailable unless the server answers, is new enough and may CREATE DATABASE."""
    try:
        with _connect(url, timeout=timeout) as conn:
            version = conn.info.server_version
            row = conn.execute(
                "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        raise ServerUnavailable(
            f"cannot connect to {shown}: {type(exc).__name__}: {str(exc).strip()}"
        ) from exc
    if version < MIN_SERVER_VERSION:
        raise ServerUnavailable(f"{shown} runs PostgreSQL {version}; 13 or newer is needed")
    if row is None or not row[0]:
        raise ServerUnavailable(f"the role connecting to {shown} may not create databases")


def _connect(url: URL, *, timeout: int) -> psycopg.Connection[TupleRow]:
    params: dict[str, Any] = {
        key: value if isinstance(value, str) else ",".join(value)
        for key, value in url.query.items()
    }
    params.setdefault("connect_timeout", timeout)
    for key, value in (
        ("host", url.host),
        ("port", url.port),
        ("user", url.username),
        ("password", url.password),
        ("dbname", url.database),
    ):
        if value is not None:
            params[key] = value
    return psycopg.connect(autocommit=True, **params)


def _found(server: PgServer, tried: list[str]) -> str:
    if not tried:
        return f"using {server.description}"
    return f"using {server.description} (skipped: {'; '.join(tried)})"


def _check_identifier(name: str) -> None:
    if not name or len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"database name must be 1 to {MAX_IDENTIFIER_BYTES} bytes, got {name!r}")


def _newest_local_postgres_image(client: Any) -> str | None:
    tags: set[str] = {
        tag
        for found in client.images.list(name="postgres")
        for tag in found.tags
        if tag.rpartition(":")[0].rpartition("/")[2] == "postgres"
    }
    if not tags:
        return None
    return max(tags, key=lambda tag: (_version_key(tag.rpartition(":")[2]), tag))


def _image_present(client: Any, image: str) -> bool:
    import docker.errors  # type: ignore[import-not-found,import-untyped,unused-ignore]

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _version_key(text: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _conf_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _tail(path: Path, limit: int = 1500) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return _tail_text(text, limit)


def _tail_text(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def listen_backends(url: str) -> list[int]:
    """Server pids of the sessions that LISTEN on ``url``'s database (their last query)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]
