"""A fleet of N agents on one PostgreSQL capped at max_connections=100, behind pgbouncer.

Each agent is clearq's own :class:`clearq.runtime.agent.Agent` loop (its claim,
heartbeat, reaper and metrics code, its listener) with an executor that does nothing
and completes the task (``NoopExecutor``): the fleet's cost is the agent's and the
database's, not the tasks'. ``--per-process`` (50) agent loops share one process and
one store (its pool of ``--pool`` connections to pgbouncer); the processes of the
fleet share one LISTEN connection through the host relay (clearq.scheduler.relay).

The server is a throwaway cluster (``initdb``/``pg_ctl`` as the postgres OS user on a
free port, tests/pgserver.py) with ``max_connections=100``, and Debian's pgbouncer in
transaction mode in front of it (tests/pgbouncer.py): agents reach the database through
pgbouncer (``CLEARQ_DATABASE_PGBOUNCER=1``) and LISTEN on a direct URL.

For each N (``--ns``, default 50, 200, 500), on a fresh database:

- idle: the fleet's PostgreSQL CPU (every process of the cluster, from /proc, % of one
  core) and its commits per second, over ``--idle-seconds``, with the agent's re-claim
  interval while it listens (``LISTENING_WAIT_SECONDS``, 15 s), and as the baseline in
  the same fleet with the old 1 s one (each re-claim that heard no hint looks first in
  both: the agent's code, only the interval changes); ``--statements``: where the idle
  server's time goes, by statement (pg_stat_statements, planning included);
- wake: ``--wakes`` single enqueues into the idle fleet, each at a random moment; the
  time from the enqueue's commit to the claim (both the server's clock: the task's
  ``queued_at`` and ``started_at``), p50 and p90;
- burst: ``--burst`` (20,000) tasks put in the queue in one statement (and one NOTIFY);
  tasks a second from the first queued to the last finished, and a check that each was
  claimed once and completed once (its ``task_events``) with no retry;
- peak server connections (``pg_stat_activity``, every backend but this script's
  sampler) over the whole run, and the leases reaped and workers marked gone (a live
  agent taken for dead: must be 0).

Baseline for the burst: one agent, direct to the server (no pgbouncer), on
``--baseline-burst`` tasks (per-agent speed without a fleet).

    python benchmarks/fleet.py [--ns 50,200,500] [--repeat 3] [--burst 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from common import banner, fill_queue, libpq_dsn, percentile, process_cpu, table

from clearq.config import Settings
from clearq.models import TaskSpec, TaskStatus
from clearq.runtime.agent import LISTENING_WAIT_SECONDS
from clearq.scheduler import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pgbouncer import running_pgbouncer
from tests.pgserver import PgServer, start_cluster

QUEUE = "fleet"
SAMPLER_APP = "clearq-fleet-sampler"
READY_SECONDS = 600
SETTLE_SECONDS = 12.0
"""After the last agent is up: its first claims, reaps and metrics are behind it."""
WAKE_TIMEOUT_SECONDS = 60
STOP_SECONDS = 120


# --------------------------------------------------------------------------- the fleet's side


class NoopExecutor:
    """Completes every task at once: the fleet's work is the agent's own."""

    def run(self, claim: object, control: object, gpus: object) -> object:
        from clearq.runtime.executor import Outcome

        return Outcome(TaskStatus.COMPLETED, 0)


def child(args: argparse.Namespace) -> int:
    """A process of the fleet: ``--agents`` agent loops on one store; commands on stdin."""
    import logging

    from clearq.runtime import agent as agent_module
    from clearq.runtime.agent import Agent, AgentOptions

    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        home=Path(args.home),
        database_url=args.url,
        database_pgbouncer=args.bounced,
        listen_url=args.listen or None,
        db_pool_size=args.pool,
    )
    store = Store(args.url, settings=settings, create_schema=False)
    agents = [
        Agent(store, NoopExecutor(), AgentOptions(queues=(QUEUE,), name=f"{args.prefix}-{i}"))  # type: ignore[arg-type]
        for i in range(args.agents)
    ]
    threads = [threading.Thread(target=a.run, daemon=True) for a in agents]
    for thread in threads:
        thread.start()
    while any(a.state.value == "starting" for a in agents):
        time.sleep(0.05)
    print("ready", flush=True)
    for line in sys.stdin:
        word, _, value = line.strip().partition(" ")
        if word == "wait":
            agent_module.LISTENING_WAIT_SECONDS = float(value)
            print("ok", flush=True)
        elif word == "stop":
            break
    for one in agents:
        one.request_stop()
    for thread in threads:
        thread.join(timeout=STOP_SECONDS)
    store.close()
    return 0


@dataclass
class Fleet:
    """The fleet's processes, started by this script."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @classmethod
    def start(
        cls, n: int, per: int, url: str, listen: str, home: Path, *, bounced: bool, pool: int
    ) -> Fleet:
        fleet = cls()
        left, index = n, 0
        while left > 0:
            count = min(per, left)
            argv = [
                sys.executable,
                __file__,
                "--child",
                *("--agents", str(count), "--prefix", f"p{index}", "--url", url),
                *("--listen", listen, "--home", str(home), "--pool", str(pool)),
                *(["--bounced"] if bounced else []),
            ]
            log = (home / f"fleet-{index}.log").open("w")
            fleet.procs.append(
                subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
                )
            )
            left, index = left - count, index + 1
        deadline = time.monotonic() + READY_SECONDS
        for proc in fleet.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready" or time.monotonic() > deadline:
                fleet.stop()
                raise RuntimeError(f"a fleet process did not start (said {line!r}); see {home}")
        return fleet

    def tell(self, line: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        for proc in self.procs:
            assert proc.stdout is not None
            proc.stdout.readline()

    def cpu(self) -> float:
        return sum(process_cpu(p.pid) or 0.0 for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write("stop\n")
                    proc.stdin.close()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- the server's side


def cluster_pids(data_dir: Path) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == postmaster:
            pids.append(int(entry))
    return pids


def server_cpu(data_dir: Path) -> float:
    """CPU seconds the cluster's processes have used so far (those alive now)."""
    return sum(process_cpu(pid) or 0.0 for pid in cluster_pids(data_dir))


class Sampler:
    """Peak server connections, every 0.25 s, on a direct connection of its own."""

    def __init__(self, admin: str) -> None:
        self._conn = psycopg.connect(admin, autocommit=True, application_name=SAMPLER_APP)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            row = self._conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            ).fetchone()
            self.peak = max(self.peak, int(row[0]) if row else 0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


def commits(conn: psycopg.Connection, database: str) -> int:
    row = conn.execute(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
    ).fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- one N


@dataclass
class Figures:
    n: int
    idle_cpu: float = float("nan")
    idle_commits: float = float("nan")
    old_idle_cpu: float = float("nan")
    old_idle_commits: float = float("nan")
    fleet_idle_cpu: float = float("nan")
    wake_p50_ms: float = float("nan")
    wake_p90_ms: float = float("nan")
    burst_per_s: float = float("nan")
    exactly_once: str = "n/a"
    peak_connections: int = 0
    reaped: int = 0
    gone: int = 0
    load: str = ""


def _idle(
    fleet: Fleet, admin: psycopg.Connection, data: Path, db: str, seconds: float
) -> tuple[float, float, float]:
    cpu0, fleet0, x0, t0 = server_cpu(data), fleet.cpu(), commits(admin, db), time.monotonic()
    time.sleep(seconds)
    span = time.monotonic() - t0
    cpu = (server_cpu(data) - cpu0) / span * 100
    return cpu, (commits(admin, db) - x0) / span, (fleet.cpu() - fleet0) / span * 100


def _print_statements(admin: psycopg.Connection, seconds: float) -> None:
    """The idle window's statements by server time (planning and executing), per minute."""
    rows = admin.execute(
        "SELECT calls, total_plan_time + total_exec_time, total_plan_time, query "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
        "WHERE datname = current_database()) ORDER BY 2 DESC LIMIT 15"
    ).fetchall()
    per_minute = 60.0 / seconds
    print("    idle statements (calls/min, server ms/min, of it planning, query):")
    for calls, total, plan, query in rows:
        text = " ".join(str(query).split())[:150]
        print(
            f"      {calls * per_minute:8.0f} {total * per_minute:9.1f} "
            f"{plan * per_minute:9.1f}  {text}"
        )


def _wakes(store: Store, admin: psycopg.Connection, count: int) -> list[float]:
    latencies = []
    for k in range(count):
        time.sleep(random.uniform(0.5, 2.0))  # not aligned with any poll
        task_id = store.tasks.create(TaskSpec(project="fleet", name=f"wake{k}")).id
        store.queues.enqueue(task_id, QUEUE)
        deadline = time.monotonic() + WAKE_TIMEOUT_SECONDS
        while True:
            row = admin.execute(
                "SELECT extract(epoch FROM started_at - queued_at) FROM tasks WHERE id = %s "
                "AND started_at IS NOT NULL",
                (task_id,),
            ).fetchone()
            if row is not None:
                latencies.append(float(row[0]) * 1000)
                break
            if time.monotonic() > deadline:
                latencies.append(float("inf"))
                break
            time.sleep(0.02)
    return latencies


def _burst(
    store: Store, admin: psycopg.Connection, size: int, tag: str, limit: float
) -> tuple[float, str]:
    fill_queue(store, QUEUE, size, tag=tag)
    queue_id = store.queues.get(QUEUE).id
    admin.execute("SELECT pg_notify('clearq_enqueue', %s)", (str(queue_id),))
    prefix = f"bench{tag}-%"
    started = time.monotonic()
    last = started
    while True:
        row = admin.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FROM tasks "
            "WHERE name LIKE %s",
            (prefix,),
        ).fetchone()
        done = int(row[0]) if row else 0
        if done >= size or time.monotonic() - started > limit:
            break
        if time.monotonic() - last >= 10:
            rate = done / (time.monotonic() - started)
            print(f"    burst: {done:,}/{size:,} completed ({rate:,.0f}/s)", flush=True)
            last = time.monotonic()
        time.sleep(0.5)
    row = admin.execute(
        "SELECT count(*), extract(epoch FROM max(finished_at) - min(queued_at)) FROM tasks "
        "WHERE name LIKE %s AND status = 'completed'",
        (prefix,),
    ).fetchone()
    assert row is not None
    completed, span = int(row[0]), float(row[1] or "nan")
    events = admin.execute(
        "SELECT count(*) FILTER (WHERE runs <> 1 OR ends <> 1 OR attempt <> 1), count(*) FROM ("
        " SELECT t.id, t.attempt,"
        "  count(*) FILTER (WHERE e.status = 'running') AS runs,"
        "  count(*) FILTER (WHERE e.status = 'completed') AS ends"
        " FROM tasks t JOIN task_events e ON e.task_id = t.id WHERE t.name LIKE %s"
        " GROUP BY t.id, t.attempt) x",
        (prefix,),
    ).fetchone()
    assert events is not None
    wrong = int(events[0])
    ok = completed == size and wrong == 0 and int(events[1]) == size
    verdict = "yes" if ok else f"NO: {completed:,}/{size:,} completed, {wrong:,} not once"
    if not ok:
        _show_not_once(admin, prefix)
    return completed / span if span == span and span > 0 else float("nan"), verdict


def _show_not_once(admin: psycopg.Connection, prefix: str) -> None:
    """Print the history of (up to 5) tasks not claimed and completed exactly once."""
    rows = admin.execute(
        "SELECT t.id FROM tasks t JOIN task_events e ON e.task_id = t.id WHERE t.name LIKE %s"
        " GROUP BY t.id, t.attempt HAVING t.attempt <> 1"
        " OR count(*) FILTER (WHERE e.status = 'running') <> 1"
        " OR count(*) FILTER (WHERE e.status = 'completed') <> 1 LIMIT 5",
        (prefix,),
    ).fetchall()
    for (task_id,) in rows:
        print(f"    not once: task {task_id}", flush=True)
        for event in admin.execute(
            "SELECT at, status, attempt, worker, reason FROM task_events WHERE task_id = %s "
            "ORDER BY id",
            (task_id,),
        ):
            print(f"      {event}", flush=True)


def _reaped(admin: psycopg.Connection) -> tuple[int, int]:
    row = admin.execute(
        "SELECT (SELECT count(*) FROM task_events WHERE reason LIKE '%%stopped renewing%%'),"
        " (SELECT count(*) FROM workers WHERE state = 'gone')"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def one_fleet(
    server: PgServer, bouncer_url: str, n: int, args: argparse.Namespace, *, burst: int
) -> Figures:
    name = f"fleet_{n}_{secrets.token_hex(3)}"
    direct = server.create_database(name)
    data = Path(server.workdir or "") / "data"
    admin_dsn = libpq_dsn(direct)
    figures = Figures(n=n, load=", ".join(f"{x:.1f}" for x in os.getloadavg()))
    home = Path(tempfile.mkdtemp(prefix=f"clearq-fleet-{n}-"))
    with Store(direct, settings=Settings(home=home, database_url=direct)) as store:
        store.queues.create(QUEUE)
    via = bouncer_url.rsplit("/", 1)[0] + f"/{name}"
    sampler = Sampler(libpq_dsn(server.url))
    fleet = None
    try:
        t0 = time.monotonic()
        fleet = Fleet.start(n, args.per_process, via, direct, home, bounced=True, pool=args.pool)
        print(
            f"  N={n}: {len(fleet.procs)} processes up in {time.monotonic() - t0:.0f} s", flush=True
        )
        time.sleep(SETTLE_SECONDS)
        with (
            psycopg.connect(admin_dsn, autocommit=True, application_name=SAMPLER_APP) as admin,
            Store(
                direct, settings=Settings(home=home, database_url=direct, listen_relay="off")
            ) as store,
        ):
            if args.statements:
                admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                admin.execute("SELECT pg_stat_statements_reset()")
            figures.idle_cpu, figures.idle_commits, figures.fleet_idle_cpu = _idle(
                fleet, admin, data, name, args.idle_seconds
            )
            if args.statements:
                _print_statements(admin, args.idle_seconds)
            fleet.tell("wait 1.0")
            time.sleep(2.0)
            figures.old_idle_cpu, figures.old_idle_commits, _ = _idle(
                fleet, admin, data, name, args.idle_seconds
            )
            fleet.tell(f"wait {LISTENING_WAIT_SECONDS}")
            print(
                f"    idle: server {figures.idle_cpu:.1f}% ({figures.idle_commits:.0f} commits/s), "
                f"at the old 1 s re-claim {figures.old_idle_cpu:.1f}% "
                f"({figures.old_idle_commits:.0f} commits/s)",
                flush=True,
            )
            time.sleep(5.0)
            latencies = _wakes(store, admin, args.wakes)
            figures.wake_p50_ms = percentile(latencies, 50)
            figures.wake_p90_ms = percentile(latencies, 90)
            print(
                f"    wake: p50 {figures.wake_p50_ms:.0f} ms, p90 {figures.wake_p90_ms:.0f} ms",
                flush=True,
            )
            figures.burst_per_s, figures.exactly_once = _burst(
                store, admin, burst, f"b{n}", args.burst_limit
            )
            print(
                f"    burst: {figures.burst_per_s:,.0f}/s, exactly once: {figures.exactly_once}",
                flush=True,
            )
            figures.reaped, figures.gone = _reaped(admin)
            print(f"    reaped leases {figures.reaped}, workers gone {figures.gone}", flush=True)
    finally:
        if fleet is not None:
            fleet.stop()
        sampler.close()
        figures.peak_connections = sampler.peak
        print(f"    peak server connections {sampler.peak}", flush=True)
        server.drop_database(name)
        shutil.rmtree(home, ignore_errors=True)
    return figures


def baseline(server: PgServer, args: argparse.Namespace) -> float:
    """One agent, direct: its burst rate (tasks/s) on ``--baseline-burst`` tasks."""
    name = f"fleet_base_{secrets.token_hex(3)}"
    direct = server.create_database(name)
    home = Path(tempfile.mkdtemp(prefix="clearq-fleet-base-"))
    try:
        with Store(direct, settings=Settings(home=home, database_url=direct)) as store:
            store.queues.create(QUEUE)
            fleet = Fleet.start(1, 1, direct, "", home, bounced=False, pool=2)
            try:
                with psycopg.connect(libpq_dsn(direct), autocommit=True) as admin:
                    rate, verdict = _burst(
                        store, admin, args.baseline_burst, "base", args.burst_limit
                    )
            finally:
                fleet.stop()
        print(
            f"  baseline: 1 agent direct, {rate:,.0f} tasks/s, exactly once: {verdict}", flush=True
        )
        return rate
    finally:
        server.drop_database(name)
        shutil.rmtree(home, ignore_errors=True)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _spread(values: Sequence[float]) -> str:
    finite = [v for v in values if v == v]
    if not finite:
        return "n/a"
    fmt = (lambda v: f"{v:,.0f}") if max(finite) >= 100 else (lambda v: f"{v:.1f}")
    return f"{fmt(min(finite))} / {fmt(statistics.median(finite))} / {fmt(max(finite))}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--agents", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="p", help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--listen", default="", help=argparse.SUPPRESS)
    parser.add_argument("--home", default="", help=argparse.SUPPRESS)
    parser.add_argument("--bounced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ns", default="50,200,500")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-process", type=int, default=50)
    parser.add_argument(
        "--pool", type=int, default=4, help="connections a fleet process's store keeps"
    )
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--baseline-burst", type=int, default=2_000)
    parser.add_argument("--burst-limit", type=float, default=600.0, help="seconds a burst may take")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--wakes", type=int, default=10)
    parser.add_argument(
        "--statements",
        action="store_true",
        help="load pg_stat_statements and print where the idle fleet's server time goes",
    )
    args = parser.parse_args()
    if args.child:
        return child(args)
    ns = [int(x) for x in args.ns.split(",")]
    server = start_cluster(
        settings={
            "shared_preload_libraries": "pg_stat_statements",
            "pg_stat_statements.track_planning": "on",
        }
        if args.statements
        else None
    )
    try:
        with server.connect() as conn:
            conn.execute("ALTER SYSTEM SET max_connections = 100")
        # initdb's default is 100 already; restarting would be needed only otherwise.
        with server.connect() as conn:
            row = conn.execute("SHOW max_connections").fetchone()
        assert row is not None
        assert int(row[0]) == 100, f"max_connections is {row[0]}"
        with running_pgbouncer(server.url) as bouncer:
            bouncer_url = bouncer.url_for(server.url)
            banner(
                f"fleet: N = {ns}, {args.repeat} run(s), max_connections=100, "
                "pgbouncer in transaction mode"
            )
            results: dict[int, list[Figures]] = {n: [] for n in ns}
            bases = []
            for run in range(args.repeat):
                print(
                    f"run {run + 1} ({_uptime()})",
                    flush=True,
                )
                bases.append(baseline(server, args))
                for n in ns:
                    results[n].append(one_fleet(server, bouncer_url, n, args, burst=args.burst))
            banner("min / median / max over the runs")
            rows = []
            for n in ns:
                fs = results[n]
                rows.append(
                    [
                        n,
                        _spread([f.burst_per_s for f in fs]),
                        ", ".join(f.exactly_once for f in fs),
                        _spread([f.wake_p50_ms for f in fs]),
                        _spread([f.wake_p90_ms for f in fs]),
                        _spread([f.idle_cpu for f in fs]),
                        _spread([f.old_idle_cpu for f in fs]),
                        _spread([f.idle_commits for f in fs]),
                        _spread([f.old_idle_commits for f in fs]),
                        _spread([f.fleet_idle_cpu for f in fs]),
                        _spread([float(f.peak_connections) for f in fs]),
                        sum(f.reaped for f in fs),
                        sum(f.gone for f in fs),
                        "; ".join(f.load for f in fs),
                    ]
                )
            print(
                table(
                    [
                        "N",
                        "burst/s",
                        "once",
                        "wake p50 ms",
                        "wake p90 ms",
                        "idle srv %",
                        "1 s re-claim srv %",
                        "idle commits/s",
                        "1 s commits/s",
                        "fleet CPU %",
                        "peak conns",
                        "reaped",
                        "gone",
                        "load (1/5/15)",
                    ],
                    rows,
                )
            )
            print(
                f"baseline, 1 agent direct, burst of {args.baseline_burst:,}: "
                f"{_spread(bases)} tasks/s (min / median / max)"
            )
            print(json.dumps({str(n): [f.__dict__ for f in results[n]] for n in ns}, default=str))
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
