"""Archiving and deleting an HPO sweep of 10,000 trials, against per-task loops and one DELETE.

Each run fills a fresh database with ``--tasks`` completed tasks of project ``sweep``
(each with ``--logs`` log lines, ``--scalars`` scalar points, a summary row and its
history event), then times, on that same data:

- ``select``: ``store.cleanup.select(TaskFilter(project="sweep"))``, the ids a filter picks;
- ``archive``: ``store.cleanup.archive(ids)`` (batched: one UPDATE per 500 ids);
- ``delete``: ``store.cleanup.delete(ids)`` (batched: one DELETE per table per 500 ids);

and, as baselines in the same run, on a second fill of the same size:

- ``plain DELETE``: one ``DELETE FROM tasks WHERE project = 'sweep'`` left to the
  foreign keys' ``ON DELETE CASCADE`` (what a hand-written cleanup would do);
- ``loop``: ``archive([id])`` then ``delete([id])`` one task at a time, on the first
  ``--loop-tasks`` tasks (default 1,000), scaled to ``--tasks`` (a per-row loop takes
  minutes at 10,000).

Run: ``python benchmarks/cleanup.py [--tasks N] [--logs L] [--scalars S] [--runs R]
[--dialect postgresql|sqlite|both]``; PostgreSQL at ``CLEARQ_BENCH_POSTGRES_URL`` (a
database is created and dropped per run), SQLite in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa
from common import banner, bench_database, machine_note, median, open_store, table

from clearq.models import TaskFilter, TaskSpec
from clearq.scheduler import Store
from clearq.scheduler.schema import tasks as tasks_table

PROJECT = "sweep"


@contextlib.contextmanager
def _database(dialect: str) -> Iterator[str]:
    if dialect == "postgresql":
        with bench_database("cleanup") as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="clearq-bench-cleanup-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


def _series(pg: bool, name: str, n: int) -> str:
    """A CTE ``name(n)`` counting 1..n in either dialect."""
    if pg:
        return f"{name}(n) AS (SELECT generate_series(1, {int(n)}))"
    return f"{name}(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM {name} WHERE n < {int(n)})"


def _fill(store: Store, n: int, logs: int, scalars: int) -> None:
    """``n`` completed tasks copied from a template, with their logs, scalars, summary."""
    template = store.tasks.create(TaskSpec(project="bench", name="template")).id
    pg = store.db.is_postgres
    new_id = "gen_random_uuid()" if pg else "lower(hex(randomblob(16)))"
    names = [c.name for c in tasks_table.columns]
    overrides = {
        "id": new_id,
        "project": f"'{PROJECT}'",
        "name": "'trial-' || g.n",
        "status": "'completed'",
        "attempt": "1",
    }
    cols = ", ".join(f'"{c}"' for c in names)
    exprs = ", ".join(overrides.get(c, f't."{c}"') for c in names)
    template_id = template.hex if not pg else str(template)
    recursive = "" if pg else "RECURSIVE "
    statements = [
        f"""WITH {recursive}{_series(pg, "g", n)}
            INSERT INTO tasks ({cols}) SELECT {exprs} FROM tasks t, g
            WHERE t.id = :template""",
        f"""WITH {recursive}{_series(pg, "g", logs)}
            INSERT INTO task_logs (task_id, attempt, at, stream, text)
            SELECT t.id, 1, t.created_at, 'stdout', 'epoch ' || g.n || ': training...'
            FROM tasks t, g WHERE t.project = '{PROJECT}'""",
        f"""WITH {recursive}{_series(pg, "g", scalars)}
            INSERT INTO task_scalars (task_id, attempt, title, series, iteration, value, at)
            SELECT t.id, 1, 'loss', 'train', g.n, 1.0 / g.n, t.created_at
            FROM tasks t, g WHERE t.project = '{PROJECT}'""",
        f"""INSERT INTO task_scalar_summary
                (task_id, title, series, attempt, last, min, max, last_iteration)
            SELECT t.id, 'loss', 'train', 1, 0.1, 0.1, 1.0, {int(scalars)}
            FROM tasks t WHERE t.project = '{PROJECT}'""",
    ]
    with store.db.write() as conn:
        for sql in statements:
            conn.execute(sa.text(sql), {"template": template_id})
    if pg:
        with store.db.write() as conn:
            conn.execute(sa.text("ANALYZE"))


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _count(store: Store) -> int:
    with store.db.read() as conn:
        query = sa.select(sa.func.count()).where(tasks_table.c.project == PROJECT)
        return int(conn.execute(query).scalar_one())


def _batched(url: str, args: argparse.Namespace) -> dict[str, float]:
    store = open_store(url)
    try:
        _fill(store, args.tasks, args.logs, args.scalars)
        ids: list[uuid.UUID] = []
        figures = {"select": _timed(lambda: ids.extend(_pick(store)))}
        assert len(ids) == args.tasks, len(ids)
        figures["archive"] = _timed(lambda: store.cleanup.archive(ids))
        figures["delete"] = _timed(lambda: store.cleanup.delete(ids))
        assert _count(store) == 0
        return figures
    finally:
        store.close()


def _pick(store: Store) -> list[uuid.UUID]:
    return store.cleanup.select(TaskFilter(project=PROJECT))


def _baselines(url: str, args: argparse.Namespace) -> dict[str, float]:
    store = open_store(url)
    try:
        _fill(store, args.tasks, args.logs, args.scalars)
        ids = store.cleanup.select(TaskFilter(project=PROJECT))[: args.loop_tasks]
        scale = args.tasks / len(ids)

        def archive_each() -> None:
            for task_id in ids:
                store.cleanup.archive([task_id])

        def delete_each() -> None:
            for task_id in ids:
                store.cleanup.delete([task_id])

        figures = {
            "loop archive": _timed(archive_each) * scale,
            "loop delete": _timed(delete_each) * scale,
        }

        def plain_delete() -> None:
            with store.db.write() as conn:
                conn.execute(tasks_table.delete().where(tasks_table.c.project == PROJECT))

        figures["plain DELETE"] = _timed(plain_delete)
        assert _count(store) == 0
        return figures
    finally:
        store.close()


COLUMNS = ("select", "archive", "delete", "plain DELETE", "loop archive", "loop delete")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--logs", type=int, default=20)
    parser.add_argument("--scalars", type=int, default=50)
    parser.add_argument("--loop-tasks", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dialect", choices=("postgresql", "sqlite", "both"), default="both")
    args = parser.parse_args()
    dialects = ("postgresql", "sqlite") if args.dialect == "both" else (args.dialect,)
    for dialect in dialects:
        banner(
            f"{dialect}: {args.tasks} tasks x ({args.logs} log lines, {args.scalars} scalars); "
            f"loops on {args.loop_tasks}, scaled ({machine_note()})"
        )
        runs: list[dict[str, float]] = []
        for run in range(1, args.runs + 1):
            with _database(dialect) as url:
                figures = _batched(url, args)
            with _database(dialect) as url:
                figures |= _baselines(url, args)
            runs.append(figures)
            print(table(["run", *COLUMNS], [[run, *(figures[c] for c in COLUMNS)]]), flush=True)
        print("seconds, min / median / max over the runs:")
        rows = [
            [c, min(r[c] for r in runs), median([r[c] for r in runs]), max(r[c] for r in runs)]
            for c in COLUMNS
        ]
        print(table(["step", "min s", "median s", "max s"], rows), flush=True)


if __name__ == "__main__":
    main()
