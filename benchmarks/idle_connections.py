"""Server connections an idle agent holds, direct and through pgbouncer.

An idle ``clearq agent`` (listening, claiming, writing metrics, reaping) runs against a
fresh database for ``--seconds`` (20); ``pg_stat_activity`` is sampled every 0.2 s and
the figure is the largest number of server backends on that database at one time.
Three set-ups, in one run:

- baseline: direct, with SQLAlchemy's default pools (``CLEARQ_DB_POOL_SIZE=5``,
  ``CLEARQ_DB_MAX_OVERFLOW=10``), as before the pools were sized;
- direct: clearq's defaults (2 + 4 a pool);
- direct pool 1: ``CLEARQ_DB_POOL_SIZE=1`` (a busier moment opens overflow connections,
  closed when given back: they count while they are open);
- pgbouncer: through Debian's pgbouncer in transaction mode
  (``CLEARQ_DATABASE_PGBOUNCER=1``), LISTEN on a direct ``CLEARQ_LISTEN_URL``; the
  server backends counted are pgbouncer's plus the direct LISTEN one. Skipped with the
  reason where pgbouncer cannot be started.

Target (issue 14): an idle agent holds at most 2 server connections.

Run: ``python benchmarks/idle_connections.py [--seconds S] [--runs R]`` with
``CLEARQ_BENCH_POSTGRES_URL`` naming the server (a database is created and dropped).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg
from common import banner, base_url, bench_database, libpq_dsn, machine_note, median, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pgbouncer import PgbouncerUnavailable, running_pgbouncer

CLEARQ = Path(sys.executable).with_name("clearq")


def _peak_backends(admin: str, database: str, seconds: float) -> int:
    peak = 0
    deadline = time.monotonic() + seconds
    with psycopg.connect(admin, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
            peak = max(peak, int(row[0]) if row else 0)
            time.sleep(0.2)
    return peak


def _idle_agent(url: str, extra: Mapping[str, str], seconds: float) -> int:
    """Peak server backends on ``url``'s database while an agent idles on it."""
    database = url.rsplit("/", 1)[1]
    admin = libpq_dsn(base_url())
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        env.update(CLEARQ_DATABASE_URL=url, CLEARQ_HOME=home, **extra)
        subprocess.run([str(CLEARQ), "queue", "create", "idle"], env=env, check=True)
        agent = subprocess.Popen(
            [str(CLEARQ), "agent", "--skip-env", "-q", "idle"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)  # started and settled: the figure is the idle steady state
            return _peak_backends(admin, database, seconds)
        finally:
            agent.terminate()
            agent.wait(timeout=60)


def _one_run(seconds: float) -> dict[str, int | None]:
    figures: dict[str, int | None] = {}
    with bench_database("conns") as url:
        figures["baseline"] = _idle_agent(
            url, {"CLEARQ_DB_POOL_SIZE": "5", "CLEARQ_DB_MAX_OVERFLOW": "10"}, seconds
        )
    with bench_database("conns") as url:
        figures["direct"] = _idle_agent(url, {}, seconds)
    with bench_database("conns") as url:
        figures["direct pool 1"] = _idle_agent(url, {"CLEARQ_DB_POOL_SIZE": "1"}, seconds)
    with bench_database("conns") as url:
        try:
            with running_pgbouncer(url) as bouncer:
                extra = {"CLEARQ_DATABASE_PGBOUNCER": "1", "CLEARQ_LISTEN_URL": url}
                figures["pgbouncer"] = _idle_agent(bouncer.url_for(url), extra, seconds)
        except PgbouncerUnavailable as e:
            print(f"pgbouncer left out: {e}")
            figures["pgbouncer"] = None
    return figures


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    banner(f"server connections of an idle agent ({machine_note()})")
    runs = []
    for run in range(1, args.runs + 1):
        figures = _one_run(args.seconds)
        runs.append(figures)
        print(table(["run", *figures], [[run, *figures.values()]]), flush=True)
    for name in runs[0]:
        values = [r[name] for r in runs if r[name] is not None]
        if values:
            print(f"{name}: min {min(values)}, median {median(values):g}, max {max(values)}")


if __name__ == "__main__":
    main()
