"""Shared plumbing for the benchmark scripts (not a benchmark itself).

- :func:`bench_database`: a throwaway PostgreSQL database, dropped afterwards.
- :func:`open_store`, :func:`fill_queue`, :func:`reset_tasks`: a clearq store on it, and
  bulk loading of queued tasks straight into ``tasks`` / ``queue_entries`` (the column
  list comes from :mod:`clearq.scheduler.schema`, every value is copied from a template
  task made by the store itself, so rows look exactly like the store's own).
- :func:`run_processes`: start worker processes (spawn), release them together with a
  barrier once each has finished its setup, collect what each returns.
- :func:`common_window`: throughput over the window in which every worker was running.

Timestamps that cross processes use ``time.monotonic()``: on Linux it reads
CLOCK_MONOTONIC, which is one clock for the whole machine, so differences between
processes are meaningful (``perf_counter`` is the same clock on Linux, but nothing
promises that elsewhere).
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from clearq.config import Settings
from clearq.models import TaskSpec
from clearq.scheduler import Store
from clearq.scheduler.schema import tasks as tasks_table

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
URL_ENV = "CLEARQ_BENCH_POSTGRES_URL"
TEMPLATE_NAME = "bench-template"


# --------------------------------------------------------------------------- databases


def base_url() -> str:
    """The server to benchmark on: ``$CLEARQ_BENCH_POSTGRES_URL`` or the local default."""
    return os.environ.get(URL_ENV, DEFAULT_URL)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (driver part normalised to plain postgresql)."""
    return (
        make_url(url)
        .set(drivername="postgresql", database=name)
        .render_as_string(hide_password=False)
    )


def libpq_dsn(url: str) -> str:
    """A URL psycopg/libpq accepts (drops a ``+driver`` suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def bench_database(tag: str) -> Iterator[str]:
    """Create ``bench_<tag>_<random>`` on the benchmark server; drop it (FORCE) at the end."""
    admin = libpq_dsn(base_url())
    name = f"bench_{tag}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_dsn(store: Store) -> str:
    """The libpq URL of ``store``'s database, password included."""
    return libpq_dsn(store.db.url.render_as_string(hide_password=False))


def open_store(url: str) -> Store:
    """A clearq store on ``url`` (schema created on an empty database)."""
    return Store(url, settings=Settings(database_url=url))


# --------------------------------------------------------------------------- bulk loading


def ensure_queues(store: Store, *names: str) -> None:
    """Create the queues that do not exist yet."""
    have = {q.name for q in store.queues.list()}
    for name in names:
        if name not in have:
            store.queues.create(name)


def template_task(store: Store) -> str:
    """Id (text) of the draft every bulk-loaded task is copied from; made once per database."""
    found = store.tasks.list(project="bench", name=TEMPLATE_NAME, limit=1)
    if found:
        return str(found[0].id)
    return str(store.tasks.create(TaskSpec(project="bench", name=TEMPLATE_NAME)).id)


def task_copy_columns(overrides: dict[str, str]) -> tuple[str, str]:
    """(column list, select list) copying every ``tasks`` column from ``t`` but ``overrides``."""
    names = [c.name for c in tasks_table.columns]
    missing = set(overrides) - set(names)
    if missing:
        raise RuntimeError(f"the tasks table has no column(s) {sorted(missing)}")
    cols = ", ".join(f'"{n}"' for n in names)
    exprs = ", ".join(overrides.get(n, f't."{n}"') for n in names)
    return cols, exprs


def fill_queue(store: Store, queue: str, n: int, *, priority: int = 0, tag: str = "") -> None:
    """Put ``n`` new queued tasks into ``queue`` with one INSERT ... SELECT generate_series.

    Each task is a copy of the template draft (status queued, its queue set), with an
    entry in ``queue_entries``; entry ids follow the series, so FIFO order is 1..n.
    """
    template = template_task(store)
    queue_id = store.queues.get(queue).id
    cols, exprs = task_copy_columns(
        {
            "id": "gen_random_uuid()",
            "name": f"'bench{tag}-' || g",
            "status": "'queued'",
            "queue_id": "%(qid)s",
            "queued_at": "now()",
            "created_at": "now()",
            "updated_at": "now()",
        }
    )
    sql = f"""
        WITH new AS (
            INSERT INTO tasks ({cols})
            SELECT {exprs} FROM tasks t, generate_series(1, %(n)s) g
            WHERE t.id = %(template)s
            RETURNING id, name
        )
        INSERT INTO queue_entries (queue_id, task_id, priority, enqueued_at)
        SELECT %(qid)s, id, %(prio)s, now() FROM new
        ORDER BY split_part(name, '-', 2)::bigint
    """
    with psycopg.connect(store_dsn(store), autocommit=True) as conn:
        conn.execute(sql, {"n": n, "qid": queue_id, "template": template, "prio": priority})


def reset_tasks(store: Store) -> None:
    """Remove every task but the template (and their entries), then VACUUM ANALYZE."""
    with psycopg.connect(store_dsn(store), autocommit=True) as conn:
        conn.execute("DELETE FROM queue_entries")
        conn.execute("DELETE FROM tasks WHERE name <> %s", (TEMPLATE_NAME,))
        conn.execute("VACUUM ANALYZE tasks")
        conn.execute("VACUUM ANALYZE queue_entries")


def vacuum_analyze(url: str, *tables: str) -> None:
    """VACUUM ANALYZE ``tables`` (all of the database when none are named)."""
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        if not tables:
            conn.execute("VACUUM ANALYZE")
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")


# --------------------------------------------------------------------------- the ceiling

# The same claim as the store's, hand-written for one queue: lock the first entry with
# SKIP LOCKED, delete it and flip its task to running, one statement (autocommit).
CEILING_CLAIM = """
WITH picked AS MATERIALIZED (
    SELECT e.id, e.task_id FROM queue_entries e
    WHERE e.queue_id = %(qid)s
    ORDER BY e.priority DESC, e.id
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
), taken AS (
    DELETE FROM queue_entries e USING picked p WHERE e.id = p.id
)
UPDATE tasks t
SET status = 'running', worker = %(worker)s, attempt = t.attempt + 1, tries = t.tries + 1,
    started_at = now(), updated_at = now(), finished_at = NULL, exit_code = NULL,
    stop_requested_at = NULL, status_reason = '',
    lease_expires_at = now() + make_interval(secs => %(lease)s)
FROM picked p
WHERE t.id = p.task_id
RETURNING t.id, t.attempt
"""

# The completing write, fenced like the store's (id, attempt, running, worker).
CEILING_COMPLETE = """
UPDATE tasks
SET status = 'completed', exit_code = NULL, status_reason = '', finished_at = now(),
    updated_at = now(), lease_expires_at = NULL
WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running' AND worker = %(worker)s
"""


# --------------------------------------------------------------------------- processes


@dataclass
class WorkerResult:
    """What a throughput worker hands back: when it started and when each job completed.

    ``client_cpu`` is the worker process's CPU seconds over its loop; ``server_cpu`` that
    of its PostgreSQL backend (None when the server's processes cannot be read here).
    """

    start: float
    done: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float | None = None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by process ``pid``; None if unreadable.

    Used for the PostgreSQL backend serving a worker: on a local server its process is
    visible in /proc; on a remote one it is not, and the figure is left out.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class CpuMeter:
    """CPU seconds of this process and of one server backend between start and stop."""

    def __init__(self, backend_pid: int) -> None:
        self.backend_pid = backend_pid
        self._client = time.process_time()
        self._server = process_cpu(backend_pid)

    def stop(self, result: WorkerResult) -> WorkerResult:
        """Record the CPU used since construction on ``result``; return it."""
        result.client_cpu = time.process_time() - self._client
        server = process_cpu(self.backend_pid)
        if server is not None and self._server is not None:
            result.server_cpu = server - self._server
        return result


def _child(
    fn: Callable[..., Any],
    index: int,
    barrier: Any,
    out: Any,
    args: tuple[Any, ...],
) -> None:
    try:
        result = fn(barrier, *args)
    except BaseException:
        barrier.abort()
        out.put((index, None, traceback.format_exc()))
        return
    out.put((index, result, None))


def run_processes(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    *,
    timeout: float = 900.0,
) -> list[Any]:
    """Run ``fn(barrier, *a)`` for each ``a`` in its own spawned process; return the results.

    ``fn`` does its setup (imports, connections), then calls ``barrier.wait()``: every
    process and this one pass it together, so all workers start their timed loop at
    once. A worker that raises aborts the barrier; its traceback is re-raised here.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(args) + 1)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(fn, i, barrier, out, a), daemon=True)
        for i, a in enumerate(args)
    ]
    for p in procs:
        p.start()
    results: list[Any] = [None] * len(args)
    errors: list[str] = []
    try:
        with contextlib.suppress(Exception):
            barrier.wait(timeout=SETUP_SECONDS_PER_WORKER * max(len(args), 12))
        for _ in procs:
            index, result, error = out.get(timeout=timeout)
            if error is not None:
                errors.append(f"worker {index}:\n{error}")
            results[index] = result
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    if errors:
        raise RuntimeError("a worker process failed:\n" + "\n".join(errors))
    return results


SETUP_SECONDS_PER_WORKER = 10.0
"""How long the workers of run_processes may take to reach their barrier, per worker:
at load 30-45 on two cores, 32 spawned workers (each importing clearq) took over 120 s."""

_ERROR = "__worker_error__"


class Feed:
    """Items a background worker process sends; its traceback is raised if it fails."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def get(self, timeout: float) -> Any:
        """The next item; RuntimeError with the worker's traceback if it failed."""
        item = self._queue.get(timeout=timeout)
        if isinstance(item, tuple) and item and item[0] == _ERROR:
            raise RuntimeError(f"the worker process failed:\n{item[1]}")
        return item


def _feeding_child(fn: Callable[..., Any], barrier: Any, out: Any, args: tuple[Any, ...]) -> None:
    try:
        fn(barrier, out, *args)
    except BaseException:
        barrier.abort()
        out.put((_ERROR, traceback.format_exc()))


@contextlib.contextmanager
def run_processes_async(fn: Callable[..., Any], args: tuple[Any, ...]) -> Iterator[Feed]:
    """Run ``fn(barrier, out, *args)`` in a spawned process alongside this one.

    Returns once both have passed the barrier (the worker has done its setup); yields
    the feed of what the worker puts on ``out``. The worker is joined (or terminated)
    when the block ends.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    proc = ctx.Process(target=_feeding_child, args=(fn, barrier, out, args), daemon=True)
    proc.start()
    feed = Feed(out)
    try:
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            feed.get(timeout=10)  # raises the worker's traceback
            raise
        yield feed
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()


@dataclass
class Window:
    """Completions inside the window where every worker was running, and CPU per job."""

    count: int
    seconds: float
    total: int
    client_cpu_ms: float = float("nan")
    server_cpu_ms: float = float("nan")

    @property
    def rate(self) -> float:
        """Completions per second in the window."""
        return self.count / self.seconds if self.seconds > 0 else float("nan")


def common_window(results: Sequence[WorkerResult]) -> Window:
    """From the last worker's start to the first worker's last completion.

    Workers drain one shared queue, so they all run out at about the same moment; the
    window leaves out start-up skew and the tail where only some workers still run.
    """
    busy = [r for r in results if r.done]
    if not busy:
        return Window(0, 0.0, 0)
    start = max(r.start for r in results)
    end = min(r.done[-1] for r in busy)
    count = sum(1 for r in busy for t in r.done if start < t <= end)
    total = sum(len(r.done) for r in results)
    window = Window(count, end - start, total)
    window.client_cpu_ms = sum(r.client_cpu for r in results) / total * 1e3
    if all(r.server_cpu is not None for r in results):
        window.server_cpu_ms = sum(r.server_cpu or 0.0 for r in results) / total * 1e3
    return window


# --------------------------------------------------------------------------- reporting


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), nearest-rank on sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    """The median (nan when empty)."""
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # nan
            return "n/a"
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def banner(title: str) -> None:
    """Print a section title."""
    print(f"\n== {title} ==", flush=True)


def machine_note() -> str:
    """One line about where and when this ran, with the load average (others' work)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs (load {load}), "
        f"server {make_url(base_url()).render_as_string(hide_password=True)}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
    )


REPO = Path(__file__).resolve().parents[1]


def baseline_tree(ref: str, *, prefix: str = "baseline-") -> Path:
    """``clearq/`` as it was at ``ref`` (``git archive``), in a temporary folder."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "clearq"],
        check=True,
        capture_output=True,
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder
