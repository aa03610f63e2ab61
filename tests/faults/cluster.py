"""A throwaway PostgreSQL cluster the fault tests may restart, stop and start."""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.pgserver import (
    CLUSTER_OS_USER,
    PgServer,
    ServerUnavailable,
    _Cluster,
    find_pg_bin_dirs,
    start_cluster,
)


@dataclass
class FaultCluster:
    """A cluster of this test session's own, and the pg_ctl commands to hurt it."""

    server: PgServer
    port: int
    _cluster: _Cluster

    @classmethod
    def start(cls) -> FaultCluster:
        """initdb and start a cluster (as the postgres OS user when root)."""
        dirs = find_pg_bin_dirs()
        if not dirs:
            raise ServerUnavailable("no initdb and pg_ctl found")
        server = start_cluster(dirs[0])
        assert server.workdir is not None
        run_as = pwd.getpwnam(CLUSTER_OS_USER) if os.geteuid() == 0 else None
        port = int(re.search(r":(\d+)/", server.url).group(1))  # type: ignore[union-attr]
        with server.connect() as conn:
            # The suite's clusters commit asynchronously for speed; a crash (an immediate
            # stop) would then forget acknowledged commits, which a real server does not.
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
        return cls(server, port, _Cluster(dirs[0], server.workdir, run_as))

    def restart_immediate(self) -> None:
        """``pg_ctl restart -m immediate``: every connection dies, the server comes back."""
        # -l: without a log file the server would keep pg_ctl's captured output open.
        self._ctl("-m", "immediate", "-l", str(self._cluster.log), "-w", "-t", "60", "restart")

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``: the server is gone until :meth:`start_again`."""
        self._ctl("-m", "immediate", "-w", "stop")

    def start_again(self) -> None:
        """Start the stopped server on its port."""
        log = str(self._cluster.log)
        self._ctl("-l", log, "-w", "-t", "60", "-o", f"-p {self.port}", "start")

    def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` every other connection to ``database``; how many."""
        with psycopg.connect(self.server.url.replace("+psycopg", ""), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        return int(row[0]) if row else 0

    def _ctl(self, *args: str) -> None:
        data = str(self._cluster.data)
        result = self._cluster._run("pg_ctl", ["-D", data, *args], timeout=90)
        assert result.returncode == 0, result.stderr + result.stdout


def url_via(server_url: str, database: str, port: int) -> str:
    """The URL of ``database`` on the cluster, reached through ``port`` (a proxy)."""
    return re.sub(r":\d+/[^/?]*", f":{port}/{database}", server_url)


def database_dir(server: PgServer) -> Path:
    """The cluster's work folder (its log is there)."""
    assert server.workdir is not None
    return server.workdir
