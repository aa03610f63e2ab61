"""Cleanup: archive, unarchive and delete tasks in bulk; what retention removes.

Every operation takes a list of ids and works through it in chunks of ``CHUNK`` ids, one
statement per table per chunk (``WHERE task_id IN (...)``), never one statement per task:
archiving or deleting an HPO sweep of 10,000 trials is a few dozen statements
(``benchmarks/cleanup.py``).

A delete removes the task's rows from every table that references it, in one transaction
per chunk (SQLite: per 10 chunks): logs, scalars and their summary, plots, debug samples,
artifacts, models, history (``task_events``), queue entries, dependency edges and gang
ranks, by their foreign keys' ``ON DELETE CASCADE`` (the history: a delete trigger) on
PostgreSQL and, on SQLite, by one
set-based DELETE per referencing table before the tasks' own (half the CPU of the
per-row cascade there; ``_delete_rows``); tasks cloned from it stay, with ``parent_id``
cleared (``SET NULL``). A test keeps every reference to ``tasks`` cascading. The files those
rows named (artifacts, samples, models' weights) are returned for the caller to remove:
the store knows no storage. A running task is refused unless ``force``, which first ends
its attempt as ``stopped`` (its agent finds the attempt lost and stops the process). A task
that starts running between the check and its chunk is left in place and reported.

Retention (``purge_*``) deletes old log lines and scalar points of ended tasks (the
scalar summary stays, so objectives and ``task show`` still read), and archived tasks
archived long enough ago.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput, NotFound
from clearq.models import FINAL_STATUSES, DeletedTasks, TaskFilter, TaskStatus
from clearq.scheduler.engine import Database
from clearq.scheduler.leases import Leases
from clearq.scheduler.schema import (
    UNKEYED_TASK_COLUMNS,
    chores,
    db_now,
    metadata,
    task_artifacts,
    task_logs,
    task_models,
    task_plots,
    task_samples,
    task_scalars,
    tasks,
)

CHUNK = 500
"""Ids per statement: far below SQLite's bound-parameter limit, large enough that 10,000
tasks take 20 rounds."""

SQLITE_CHUNKS_PER_TRANSACTION = 10
"""On SQLite a delete commits every 10 chunks (5,000 tasks), not every chunk: each commit
of a big delete checkpoints the WAL. 10,000 tasks took 2x one plain DELETE this way, 3x at
4 chunks, 4x at 1 (``benchmarks/cleanup.py``). Writers wait on SQLite's lock meanwhile
(seconds; the busy timeout is 30 s); on PostgreSQL each chunk is its own short transaction."""

_FILE_COLUMNS = (task_artifacts.c.uri, task_samples.c.uri, task_models.c.uri)
RUNNING_SHOWN = 5
"""How many running tasks a refusal names."""


def chunks(ids: Sequence[uuid.UUID], size: int = CHUNK) -> Iterator[list[uuid.UUID]]:
    """``ids`` in lists of at most ``size``, in order, each id once."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def running_refusal(running: Sequence[uuid.UUID]) -> InvalidInput:
    """The error refusing to delete running tasks, naming them and the way out."""
    if len(running) == 1:
        return InvalidInput(
            f"task {running[0]} is running: abort it first (`clearq task abort {running[0]}`), "
            "or delete it with --force (force=True), which stops it first"
        )
    shown = ", ".join(str(t) for t in running[:RUNNING_SHOWN])
    extra = len(running) - RUNNING_SHOWN
    more = f" and {extra} more" if extra > 0 else ""
    return InvalidInput(
        f"{len(running)} of the tasks to delete are running ({shown}{more}): abort them "
        "first (`clearq task abort ID`), or delete with --force (force=True), which stops them"
    )


class Cleanup:
    """Archive, delete and retention over many tasks at once."""

    def __init__(self, db: Database, *, leases: Leases) -> None:
        self._db = db
        self._leases = leases

    def select(self, where: TaskFilter, *, limit: int | None = None) -> list[uuid.UUID]:
        """The ids of the tasks ``where`` picks, oldest first."""
        query = sa.select(tasks.c.id).order_by(tasks.c.created_at, tasks.c.id)
        for condition in _conditions(where):
            query = query.where(condition)
        if limit is not None:
            query = query.limit(limit)
        wanted = set(where.tags)
        with self._db.read() as conn:
            if not wanted:
                return list(conn.execute(query).scalars())
            tagged = query.add_columns(tasks.c.tags)
            return [r.id for r in conn.execute(tagged) if wanted <= set(r.tags)]

    def archive(self, task_ids: Sequence[uuid.UUID]) -> int:
        """Archive the tasks (those already archived stay as they were); how many changed."""
        return self._set_archived(task_ids, archived=True)

    def unarchive(self, task_ids: Sequence[uuid.UUID]) -> int:
        """Bring archived tasks back into the default lists; how many changed."""
        return self._set_archived(task_ids, archived=False)

    def _set_archived(self, task_ids: Sequence[uuid.UUID], *, archived: bool) -> int:
        self._check_exist(task_ids)
        changed = 0
        for chunk in chunks(task_ids):
            state = tasks.c.archived_at.is_(None) if archived else tasks.c.archived_at.is_not(None)
            with self._db.write() as conn:
                result = conn.execute(
                    tasks.update()
                    .where(tasks.c.id.in_(chunk), state)
                    .values(archived_at=db_now() if archived else None)
                )
                changed += result.rowcount
        return changed

    def delete(self, task_ids: Sequence[uuid.UUID], *, force: bool = False) -> DeletedTasks:
        """Delete the tasks with everything that references them; the files they named.

        Unknown ids are refused (NotFound) before anything is deleted; running tasks are
        refused too, unless ``force``, which stops them first.
        """
        running = self._check_exist(task_ids)
        if running and not force:
            raise running_refusal(running)
        for task_id in running:
            self._leases.request_stop(task_id, reason="deleted", force=True)
        deleted: list[uuid.UUID] = []
        files: list[str] = []
        skipped: list[uuid.UUID] = []
        per_transaction = 1 if self._db.is_postgres else SQLITE_CHUNKS_PER_TRANSACTION
        batches = list(chunks(task_ids))
        postgres = self._db.is_postgres
        for start in range(0, len(batches), per_transaction):
            with self._db.write() as conn, _page_cache(conn, postgres=postgres):
                for chunk in batches[start : start + per_transaction]:
                    gone = _deletable(conn, chunk)
                    kept = set(gone)
                    skipped += [t for t in chunk if t not in kept]
                    if gone:
                        files += _files_of(conn, gone)
                        _delete_rows(conn, gone, children_first=not postgres)
                        deleted += gone
        return DeletedTasks(deleted=tuple(deleted), files=tuple(files), skipped=tuple(skipped))

    def _check_exist(self, task_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """NotFound unless every id is a task; the running ones among them."""
        found: dict[uuid.UUID, str] = {}
        with self._db.read() as conn:
            for chunk in chunks(task_ids):
                rows = conn.execute(
                    sa.select(tasks.c.id, tasks.c.status).where(tasks.c.id.in_(chunk))
                )
                found.update((r.id, r.status) for r in rows)
        missing = [t for t in dict.fromkeys(task_ids) if t not in found]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise NotFound(
                f"no task with id {missing[0]}{more}: nothing was changed; "
                "check the ids with `clearq task list`"
            )
        return [t for t, status in found.items() if status == TaskStatus.RUNNING.value]

    # ---- what files on a machine are still for ----------------------------------------

    def existing(self, task_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``task_ids`` that are tasks (``clearq gc``: a folder of no task goes)."""
        found: set[uuid.UUID] = set()
        with self._db.read() as conn:
            for chunk in chunks(task_ids):
                query = sa.select(tasks.c.id).where(tasks.c.id.in_(chunk))
                found.update(conn.execute(query).scalars())
        return found

    def repositories(self) -> set[str]:
        """Every repository URL a stored task runs from (``clearq gc`` keeps their mirrors)."""
        url = tasks.c.script["repository"].as_string()
        with self._db.read() as conn:
            rows = conn.execute(sa.select(url).where(url.is_not(None)).distinct())
            return {u for u in rows.scalars() if u}

    # ---- retention ----------------------------------------------------------------------

    def count_old_logs(self, older_than_seconds: float) -> int:
        """Log lines of ended tasks written more than ``older_than_seconds`` ago."""
        return self._count(task_logs, older_than_seconds)

    def count_old_scalars(self, older_than_seconds: float) -> int:
        """Scalar points and plots of ended tasks reported more than that long ago."""
        return self._count(task_scalars, older_than_seconds) + self._count(
            task_plots, older_than_seconds
        )

    def purge_logs(self, older_than_seconds: float, *, limit: int | None = None) -> int:
        """Delete log lines of ended tasks older than ``older_than_seconds``; how many.

        ``limit``: at most that many (the agents' retention works in bounded steps).
        """
        return self._purge(task_logs, older_than_seconds, limit)

    def purge_scalars(self, older_than_seconds: float, *, limit: int | None = None) -> int:
        """Delete scalar points and plots of ended tasks older than that; how many.

        The per-series summary (last, min, max) stays: objectives and lists still read.
        ``limit``: at most that many rows in all.
        """
        removed = self._purge(task_scalars, older_than_seconds, limit)
        left = None if limit is None else limit - removed
        if left is not None and left <= 0:
            return removed
        return removed + self._purge(task_plots, older_than_seconds, left)

    def take_turn(
        self, chore: str, holder: str, *, every_seconds: float, keep: bool = False
    ) -> bool:
        """True when ``holder`` is the one to run the fleet-wide ``chore`` now: it was
        due, and this call moved its next time ``every_seconds`` ahead. Of callers racing
        for it, one wins; the others read a time ahead and get False.

        ``keep``: the holder running it keeps its turn (True, its next time moved on),
        unless another took it meanwhile (False).
        """
        if keep:
            due = chores.c.holder == holder
        else:
            due = sa.or_(chores.c.next_at.is_(None), chores.c.next_at <= db_now())
        with self._db.read() as conn:  # the common answer (not due) takes no write lock
            row = conn.execute(sa.select(chores.c.name).where(chores.c.name == chore, due))
            found = row.first() is not None
            exists = found or (
                conn.execute(sa.select(chores.c.name).where(chores.c.name == chore)).first()
                is not None
            )
        if exists and not found:
            return False
        with self._db.write() as conn:
            if not exists:
                conn.execute(_insert_ignoring_duplicates(self._db.is_postgres, chore))
            turn = conn.execute(
                chores.update()
                .where(chores.c.name == chore, due)
                .values(next_at=db_now(every_seconds), holder=holder)
            )
            return bool(turn.rowcount)

    def archived_before(self, seconds: float) -> list[uuid.UUID]:
        """Tasks archived more than ``seconds`` ago and not running (retention of archived
        tasks; a running one waits until it ends)."""
        if not seconds > 0:
            raise InvalidInput(f"a retention must be above 0 seconds, not {seconds}")
        query = sa.select(tasks.c.id).where(
            tasks.c.archived_at < db_now(-seconds), tasks.c.status != TaskStatus.RUNNING.value
        )
        with self._db.read() as conn:
            return list(conn.execute(query.order_by(tasks.c.archived_at)).scalars())

    def _old_rows(self, table: sa.Table, seconds: float) -> sa.Select[Any]:
        return sa.select(table.c.id).where(*_old(table, seconds))

    def _count(self, table: sa.Table, seconds: float) -> int:
        query = sa.select(sa.func.count()).select_from(self._old_rows(table, seconds).subquery())
        with self._db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def _purge(self, table: sa.Table, seconds: float, limit: int | None) -> int:
        old = self._old_rows(table, seconds)
        removed = 0
        while limit is None or removed < limit:
            # Bounded batches, each its own short transaction; the rows are found first in
            # a read (on SQLite the write lock is then held only for the deletes).
            size = PURGE_BATCH if limit is None else min(PURGE_BATCH, limit - removed)
            with self._db.read() as conn:
                batch = list(conn.execute(old.limit(size)).scalars())
            if not batch:
                break
            with self._db.write() as conn:
                # Still old and of an ended task (a task re-run meanwhile keeps its rows).
                gone = conn.execute(
                    table.delete().where(table.c.id.in_(batch), *_old(table, seconds))
                )
                removed += gone.rowcount
            if len(batch) < size:
                break
        return removed


PURGE_BATCH = 5000
"""Rows one retention statement deletes (then the next batch, in its own transaction)."""


def _old(table: sa.Table, seconds: float) -> list[sa.ColumnElement[bool]]:
    """``table``'s rows (logs, scalars, plots) of ended tasks older than ``seconds``."""
    if not seconds > 0:
        raise InvalidInput(f"a retention must be above 0 seconds, not {seconds}")
    ended = sa.select(tasks.c.id).where(tasks.c.status.in_([s.value for s in FINAL_STATUSES]))
    return [table.c.at < db_now(-seconds), table.c.task_id.in_(ended)]


def _conditions(where: TaskFilter) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if where.project is not None:
        found.append(tasks.c.project == where.project)
    if where.statuses:
        found.append(tasks.c.status.in_([s.value for s in where.statuses]))
    if where.user is not None:
        found.append(tasks.c.created_by == where.user)
    if where.archived is True:
        found.append(tasks.c.archived_at.is_not(None))
    elif where.archived is False:
        found.append(tasks.c.archived_at.is_(None))
    if where.ended_before_seconds is not None:
        ended = sa.func.coalesce(tasks.c.finished_at, tasks.c.created_at)
        found.append(ended < db_now(-where.ended_before_seconds))
    return found


def _deletable(conn: Connection, chunk: list[uuid.UUID]) -> list[uuid.UUID]:
    """Lock the chunk's tasks that may go now (not running); their ids."""
    query = (
        sa.select(tasks.c.id)
        .where(tasks.c.id.in_(chunk), tasks.c.status != TaskStatus.RUNNING.value)
        .with_for_update()
    )
    return list(conn.execute(query).scalars())


def _files_of(conn: Connection, ids: list[uuid.UUID]) -> list[str]:
    # One statement for the three tables naming files (60 round trips less per sweep).
    query = sa.union_all(
        *(
            sa.select(column.label("uri")).where(
                column.table.c.task_id.in_(ids), column.is_not(None)
            )
            for column in _FILE_COLUMNS
        )
    )
    return [uri for uri in conn.execute(query).scalars() if uri]


def _references() -> list[tuple[sa.Table, sa.Column[Any], str | None]]:
    """Every column of another table naming a task, with its ``ON DELETE`` rule.

    The columns without a foreign key (``task_events.task_id``) lose their rows by a delete
    trigger on ``tasks``, which is what ``CASCADE`` says here.
    """
    keyed = [
        (fk.parent.table, fk.parent, fk.ondelete)
        for table in metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column is tasks.c.id
    ]
    return keyed + [(column.table, column, "CASCADE") for column in UNKEYED_TASK_COLUMNS]


_REFERENCES = _references()

SQLITE_DELETE_CACHE_KIB = 256 * 1024
"""The page cache (KiB) of a SQLite connection while it deletes tasks: up to 256 MiB
(allocated only as pages are read, given back when the block ends), not SQLite's default
2 MiB. A sweep's rows lie on thousands of pages (its trials ran at once, so their log
lines and scalars interleave); with 2 MiB each page was read, written out, evicted and
read again several times within one transaction (``benchmarks/cleanup.py``)."""


@contextlib.contextmanager
def _page_cache(conn: Connection, *, postgres: bool) -> Iterator[None]:
    """On SQLite, the connection's page cache is large for the block, then as it was."""
    if postgres:
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_DELETE_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


def _delete_rows(conn: Connection, ids: list[uuid.UUID], *, children_first: bool) -> None:
    # Every table naming a task references it ON DELETE CASCADE (tasks.parent_id: SET
    # NULL; a unit test keeps it so; SQLite enforces foreign keys on every connection,
    # engine.py), or loses its rows by a delete trigger (task_events), and each such
    # column is indexed.
    #
    # PostgreSQL: one DELETE; the cascades and the trigger remove the rest. Its
    # foreign-key triggers run once per deleted task and table whatever was deleted
    # before, so deleting the children first only added statements (measured slower).
    #
    # SQLite: the children go first, one set-based statement per table (in index order of
    # the referencing column), then the tasks, whose foreign-key checks (and the events'
    # trigger) then find nothing.
    # The cascade instead runs per task row, in the tasks' order: measured twice the CPU.
    # Foreign keys stay on: a table added later and missed here would still cascade.
    if children_first:
        for table, column, rule in _REFERENCES:
            if table is tasks:
                continue  # tasks.parent_id: its SET NULL is one index probe per task
            if rule == "CASCADE":
                conn.execute(table.delete().where(column.in_(ids)))
    conn.execute(tasks.delete().where(tasks.c.id.in_(ids)))


def _insert_ignoring_duplicates(postgres: bool, chore: str) -> sa.Insert:
    """The chore's row, unless another caller made it first (then nothing)."""
    from sqlalchemy.dialects import postgresql, sqlite

    if postgres:
        return postgresql.insert(chores).values(name=chore).on_conflict_do_nothing()
    return sqlite.insert(chores).values(name=chore).on_conflict_do_nothing()
