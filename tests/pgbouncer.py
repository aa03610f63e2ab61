"""A throwaway pgbouncer (Debian's) in transaction mode in front of a test PostgreSQL.

It refuses to run as root, so as root it runs as the ``postgres`` OS user, with its
config, log and pid file in a temp dir it owns; it listens on a free loopback port and
forwards every database name to the same name on the test server (auth_type trust).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

OS_USER = "postgres"
START_TIMEOUT_SECONDS = 30


class PgbouncerUnavailable(Exception):
    """pgbouncer cannot be started here; the message says why."""


@dataclass(frozen=True)
class Pgbouncer:
    """A running pgbouncer: ``url_for`` turns a direct URL into one through it."""

    port: int

    def url_for(self, direct_url: str) -> str:
        """The same database, user and password, reached through this pgbouncer."""
        url = make_url(direct_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(folder: Path, server_url: str, port: int) -> Path:
    server = make_url(server_url)
    users = folder / "users.txt"
    users.write_text(f'"{server.username or "postgres"}" ""\n')
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {users}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 500\n"
        "default_pool_size = 20\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
        f"pidfile = {folder / 'pgbouncer.pid'}\n"
    )
    return ini


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text() if log.exists() else ""
            raise PgbouncerUnavailable(f"pgbouncer exited with {proc.returncode}: {text[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise PgbouncerUnavailable(f"pgbouncer did not listen on port {port} in time")


@contextlib.contextmanager
def running_pgbouncer(server_url: str) -> Iterator[Pgbouncer]:
    """Start pgbouncer in front of ``server_url``'s server; stop it at the end."""
    binary = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if binary is None:
        raise PgbouncerUnavailable("no pgbouncer on PATH or in /usr/sbin (apt install pgbouncer)")
    folder = Path(tempfile.mkdtemp(prefix="clearq-pgbouncer-"))
    argv = [binary]
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(OS_USER)
        except KeyError as e:
            raise PgbouncerUnavailable(f"running as root and there is no {OS_USER!r} user") from e
        os.chown(folder, user.pw_uid, user.pw_gid)
        argv = ["runuser", "-u", OS_USER, "--", binary]
    port = _free_port()
    ini = _config(folder, server_url, port)
    proc = subprocess.Popen([*argv, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc, folder / "pgbouncer.log")
        yield Pgbouncer(port=port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
