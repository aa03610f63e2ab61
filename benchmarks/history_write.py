"""What the status history costs the server, in instructions: a figure the machine's load
does not move, where timings of the same statements swung 2x between repeats here.

``perf stat -e instructions`` is not supported on this machine (no hardware counters in
its VM), and valgrind cannot attach to a running backend, so: a throwaway cluster
(``initdb``, as ``tests/pgserver.py`` makes them) gets clearq's schema, ``--history``
(100,000) completed tasks with their events, and the queued tasks below. It is stopped,
and for each variant a copy of its data directory is opened by one single-user backend
(``postgres --single``) under valgrind's callgrind, which dumps its counts each time a
statement is parsed (``--dump-before=pg_parse_query``), so each statement's instructions
are read apart. Each variant's DDL (``VARIANTS``) runs first, on the schema at head; then
20 tasks of warm-up and, counted:

- ``--singles`` (100) tasks, one statement each for claim (``common.CEILING_CLAIM``: lock
  the first entry, delete it, set the task running), renew (the lease) and complete
  (fenced, as the store's), each its own transaction;
- one claim of ``--batch`` (1,000) tasks, one statement completing them all and one
  deleting them all (per task).

Printed: per variant and statement, the median over the statements of a run, as
min / median / max of ``--runs`` (3) runs taken in turns, and (in brackets) the difference
from the variant without the history trigger. Instructions are not time, and single-user
mode has no other process (no WAL writer, no autovacuum), but the same statement costs
the same within a fraction of a percent at any load.

    python benchmarks/history_write.py [--runs 3] [--history 100000] [--variants fk,brin]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg
from common import (
    CEILING_CLAIM,
    CEILING_COMPLETE,
    banner,
    ensure_queues,
    fill_queue,
    libpq_dsn,
    open_store,
    table,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pgserver import PgServer, find_pg_bin_dirs, start_cluster

DATABASE = "hist"
QUEUE = "hist"
WARMUP = 20
SINGLES = 100
BATCH = 1_000
WORKER = "bench:hist"

_FK_ON = (
    "DROP TRIGGER task_events_on_delete ON tasks",
    "ALTER TABLE task_events ADD CONSTRAINT fk_task_events_task_id_tasks FOREIGN KEY (task_id)"
    " REFERENCES tasks (id) ON DELETE CASCADE",
)
_AT_NONE = ("DROP INDEX ix_task_events_at",)
_AT_BTREE = (*_AT_NONE, "CREATE INDEX ix_task_events_at ON task_events (at)")
_AT_BRIN = (*_AT_NONE, "CREATE INDEX ix_task_events_at ON task_events USING brin (at)")
_HISTORY_OFF = "DROP TRIGGER task_events_on_update ON tasks"
_STATEMENT_TRIGGER = (
    _HISTORY_OFF,
    "CREATE FUNCTION bench_task_events() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO task_events (task_id, at, status, attempt, worker, reason)"
    " SELECT n.id, clock_timestamp(), n.status, n.attempt, n.worker, n.status_reason"
    " FROM new_rows n JOIN old_rows o ON o.id = n.id"
    " WHERE n.status IS DISTINCT FROM o.status OR n.attempt IS DISTINCT FROM o.attempt;"
    " RETURN NULL; END $$",
    "CREATE TRIGGER bench_task_events AFTER UPDATE ON tasks"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION bench_task_events()",
)
_ROW_DELETE = (
    "DROP TRIGGER task_events_on_delete ON tasks",
    "CREATE FUNCTION bench_gone() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " DELETE FROM task_events WHERE task_id = OLD.id; RETURN NULL; END $$",
    "CREATE TRIGGER bench_gone AFTER DELETE ON tasks FOR EACH ROW EXECUTE FUNCTION bench_gone()",
)
# Each variant's DDL, run on the schema at head before the measured statements.
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "none": ("no history trigger (no FK, btree at)", (_HISTORY_OFF, *_AT_BTREE)),
    "fk": ("FK, btree at (before 0023)", (*_FK_ON, *_AT_BTREE)),
    "fk-noat": ("FK, no at index", (*_FK_ON, *_AT_NONE)),
    "btree": ("no FK, btree at", _AT_BTREE),
    "rowdel": ("no FK, btree at, a row delete trigger", (*_ROW_DELETE, *_AT_BTREE)),
    "brin": ("no FK, BRIN at", _AT_BRIN),
    "noat": ("no FK, no at index", _AT_NONE),
    "stmt": ("statement trigger, no FK, btree at", (*_STATEMENT_TRIGGER, *_AT_BTREE)),
    "bare": (
        "no status trigger at all",
        (
            _HISTORY_OFF,
            "DROP TRIGGER schedule_triggers_on_update ON tasks",
            "DROP TRIGGER queue_entries_waiting_on_parent ON tasks",
        ),
    ),
}
_TOTAL = re.compile(rb"^(?:summary|totals): (\d+)", re.M)
_PART = re.compile(r"\.(\d+)$")


def one_line(sql: str, **params: object) -> str:
    """``sql`` with its %(name)s parameters as literals, on one line (single-user input)."""
    text = " ".join(sql.split())
    for name, value in params.items():
        literal = str(value) if isinstance(value, int | float) else f"'{value}'"
        text = text.replace(f"%({name})s", literal)
    return text


def prepare(server: PgServer, history: int, queued: int) -> tuple[int, list[str]]:
    """Fill the database; the queue's id and its tasks' ids in claim order."""
    # Made by hand, not server.create_database: the cluster is stopped before it closes.
    with server.connect() as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    url = server.database_url(DATABASE)
    store = open_store(url)
    try:
        ensure_queues(store, QUEUE, "old")
        fill_queue(store, "old", history, tag="old")
        fill_queue(store, QUEUE, queued)
        qid = store.queues.get(QUEUE).id
    finally:
        store.close()
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        old = store_queue_id(conn, "old")
        conn.execute("DELETE FROM queue_entries WHERE queue_id = %s", (old,))
        conn.execute(
            "UPDATE tasks SET status = 'completed', attempt = 1 WHERE queue_id = %s", (old,)
        )
        conn.execute("VACUUM ANALYZE")
        rows = conn.execute(
            "SELECT task_id FROM queue_entries WHERE queue_id = %s ORDER BY id", (qid,)
        ).fetchall()
    return qid, [str(r[0]) for r in rows]


def store_queue_id(conn: psycopg.Connection, name: str) -> int:
    """The id of queue ``name``."""
    row = conn.execute("SELECT id FROM queues WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def script(
    qid: int, ids: Sequence[str], singles: int, batch: int
) -> tuple[list[str], dict[str, list[int]]]:
    """The measured statements after a variant's DDL, and which of them each kind is."""
    lines: list[str] = []
    kinds: dict[str, list[int]] = {"claim": [], "renew": [], "complete": []}
    for k, task_id in enumerate(ids[: WARMUP + singles]):
        steps = {
            "claim": one_line(CEILING_CLAIM, qid=qid, n=1, worker=WORKER, lease=600.0),
            "renew": one_line(
                "UPDATE tasks SET lease_expires_at = now() + interval '600 seconds'"
                " WHERE id = %(id)s AND attempt = 1 AND status = 'running' AND worker = %(w)s",
                id=task_id,
                w=WORKER,
            ),
            "complete": one_line(CEILING_COMPLETE, id=task_id, attempt=1, worker=WORKER),
        }
        for kind, line in steps.items():
            if k >= WARMUP:
                kinds[kind].append(len(lines))
            lines.append(line)
    kinds["batch claim"] = [len(lines)]
    lines.append(one_line(CEILING_CLAIM, qid=qid, n=batch, worker=WORKER + "b", lease=600.0))
    kinds["batch complete"] = [len(lines)]
    lines.append(
        one_line(
            "UPDATE tasks SET status = 'completed', finished_at = now(), updated_at = now(),"
            " lease_expires_at = NULL WHERE worker = %(w)s AND status = 'running'",
            w=WORKER + "b",
        )
    )
    kinds["batch delete"] = [len(lines)]
    lines.append(one_line("DELETE FROM tasks WHERE worker = %(w)s", w=WORKER + "b"))
    lines.append("SELECT count(*) FROM task_events")
    return lines, kinds


def run_variant(
    data: Path, work: Path, ddl: Sequence[str], lines: Sequence[str], kinds: dict[str, list[int]]
) -> dict[str, float]:
    """Median instructions of each kind of statement in one single-user session."""
    copy = work / "data-copy"
    out = work / "cg"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(["cp", "-a", str(data), str(copy)], check=True)
    out.mkdir()
    shutil.chown(out, "postgres", "postgres")
    postgres = find_pg_bin_dirs()[0] / "postgres"
    statements = [*ddl, *lines]
    first = len(ddl)
    result = subprocess.run(
        [
            *("runuser", "-u", "postgres", "--", "valgrind", "--tool=callgrind"),
            "--dump-before=pg_parse_query",
            f"--callgrind-out-file={out}/cg.out",
            *(str(postgres), "--single", "-D", str(copy), "-c", "autovacuum=off", DATABASE),
        ],
        input="\n".join(statements) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
        tail = (result.stdout + result.stderr)[-3000:]
        raise SystemExit(f"single-user run failed ({result.returncode}): {tail}")
    counts = dump_counts(out)
    # Dump k+1 is taken as statement k+1 is parsed: it holds statement k (0-based: k).
    per_statement = counts[1:]
    if len(per_statement) < len(statements):
        raise SystemExit(f"{len(per_statement)} dumps for {len(statements)} statements")
    shutil.rmtree(copy)
    return {
        kind: statistics.median(per_statement[first + i] for i in where)
        for kind, where in kinds.items()
    }


def dump_counts(out: Path) -> list[int]:
    """Instructions of each dump of a run, in order (the final dump last)."""
    parts: list[tuple[int, int]] = []
    for file in out.iterdir():
        match = _PART.search(file.name)
        number = int(match.group(1)) if match else sys.maxsize
        total = _TOTAL.search(file.read_bytes())
        if total is not None:
            parts.append((number, int(total.group(1))))
    return [count for _, count in sorted(parts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--variants", default="", help="keys of VARIANTS, comma-separated")
    parser.add_argument("--singles", type=int, default=SINGLES, help="tasks claimed one by one")
    parser.add_argument("--batch", type=int, default=BATCH, help="tasks of the batch claim")
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v] or list(VARIANTS)
    print("load:", os.getloadavg())
    server = start_cluster()
    try:
        assert server.workdir is not None
        qid, ids = prepare(server, args.history, WARMUP + args.singles + args.batch)
        data = server.workdir / "data"
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(data), "-m", "fast", "stop"],
            check=True,
            capture_output=True,
        )
        lines, kinds = script(qid, ids, args.singles, args.batch)
        work = Path(tempfile.mkdtemp(prefix="clearq-hist-"))
        shutil.chown(work, "postgres", "postgres")
        try:
            # Interleaved (every variant once per round), though counts barely move.
            results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for _ in range(args.runs):
                for name in names:
                    results[name].append(run_variant(data, work, VARIANTS[name][1], lines, kinds))
        finally:
            shutil.rmtree(work)
    finally:
        server.close()
    report(results, kinds, args.batch)


def report(
    results: dict[str, list[dict[str, float]]], kinds: dict[str, list[int]], batch: int
) -> None:
    """Per variant and statement, thousands of instructions (min / median / max of runs)."""
    banner("server instructions per statement (thousands; batch: per task)")
    base = results.get("none")
    rows = []
    for name, runs in results.items():
        row: list[object] = [VARIANTS[name][0]]
        for kind in kinds:
            scale = batch if kind.startswith("batch") else 1
            values = sorted(r[kind] / scale / 1e3 for r in runs)
            text = f"{values[0]:.1f} / {statistics.median(values):.1f} / {values[-1]:.1f}"
            if base is not None and name != "none":
                extra = statistics.median(values) - statistics.median(
                    r[kind] / scale / 1e3 for r in base
                )
                text += f" ({extra:+.1f})"
            row.append(text)
        rows.append(row)
    print(table(["variant", *kinds], rows))


if __name__ == "__main__":
    main()
