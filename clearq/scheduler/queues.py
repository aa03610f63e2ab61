"""Queues and their entries: create, list, delete; enqueue, dequeue, reorder.

An entry exists exactly while its task is queued: every operation here changes the
entry and the task's status in one transaction.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from clearq.errors import AlreadyExists, InvalidInput, NotFound, QueueNotEmpty
from clearq.models import (
    DEFAULT_FAIR_HALF_LIFE,
    FairShare,
    Fence,
    QueueEntry,
    QueueInfo,
    Task,
    TaskStatus,
)
from clearq.scheduler import fenced
from clearq.scheduler.dependencies import add_parents, skip_blocked
from clearq.scheduler.engine import Database
from clearq.scheduler.notify import ENQUEUE_CHANNEL, notify
from clearq.scheduler.rows import fetch_task, hold, transition
from clearq.scheduler.schema import db_now, fair_usage, queue_entries, queues, tasks
from clearq.scheduler.sqla_exec import on
from clearq.scheduler.statements import TRIGGER_HOLD


def queue_row(conn: Connection, name: str) -> Row[Any]:
    """The queue's row by name; NotFound naming the fix when there is none."""
    row = conn.execute(sa.select(queues).where(queues.c.name == name)).first()
    if row is None:
        raise NotFound(f"no queue named {name!r}: create it with `clearq queue create {name}`")
    return row


def insert_entry(
    conn: Connection,
    *,
    queue_id: int,
    task_id: uuid.UUID,
    priority: int,
    front: bool = False,
    delay_seconds: float | None = None,
) -> None:
    """Add a task's entry to a queue (``fenced.insert_entry``), waking idle agents."""
    fenced.insert_entry(
        on(conn),
        queue_id=queue_id,
        task_id=task_id,
        priority=priority,
        front=front,
        delay_seconds=delay_seconds,
    )


def queue_tags(tags: Sequence[str]) -> builtins.list[str]:
    """A queue's tags, checked (no empty ones, no surrounding spaces), each once, in order."""
    for tag in tags:
        if not tag or tag != tag.strip():
            raise InvalidInput(f"queue tag {tag!r} is empty or has surrounding spaces")
    return list(dict.fromkeys(tags))


def _check_cap(max_running: int | None) -> None:
    if max_running is not None and max_running < 1:
        raise InvalidInput(f"a queue's cap on running tasks must be at least 1, not {max_running}")


def check_half_life(seconds: float) -> None:
    """Refuse a fair share's half-life that is not a positive number of seconds."""
    if not seconds > 0:
        raise InvalidInput(f"a fair share's half-life must be a positive duration, not {seconds}")


def _owner_of(by: FairShare) -> sa.ColumnElement[Any]:
    """An entry's owner in a queue shared ``by`` (as ``statements.INSERT_ENTRY`` writes it)."""
    column = tasks.c.created_by if by is FairShare.USER else tasks.c.project
    return (
        sa.select(sa.func.coalesce(column, ""))
        .where(tasks.c.id == queue_entries.c.task_id)
        .scalar_subquery()
    )


class QueueOps:
    """Named queues of tasks waiting for a worker."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        name: str,
        *,
        gpus: int = 0,
        max_running: int | None = None,
        description: str = "",
        tags: Sequence[str] = (),
        fair_share: FairShare | None = None,
        half_life_seconds: float = DEFAULT_FAIR_HALF_LIFE,
    ) -> QueueInfo:
        """Create a queue whose tasks each need ``gpus`` GPUs, at most ``max_running`` at once.

        ``description`` and ``tags`` say what it is for, for people (``queue list``).
        ``fair_share``: among entries of equal priority, the user's (or project's) with the
        least usage, decayed with ``half_life_seconds``, is claimed first.
        """
        if not name or name != name.strip():
            raise InvalidInput(f"queue name {name!r} is empty or has surrounding spaces")
        if gpus < 0:
            raise InvalidInput(f"a queue's GPUs per task cannot be negative ({gpus})")
        _check_cap(max_running)
        labels = {"description": description or None, "tags": queue_tags(tags) or None}
        check_half_life(half_life_seconds)
        by = None if fair_share is None else FairShare(fair_share)
        with self._db.write() as conn:
            exists = conn.execute(sa.select(queues.c.id).where(queues.c.name == name)).first()
            if exists is not None:
                raise AlreadyExists(f"a queue named {name!r} exists already")
            conn.execute(
                queues.insert().values(
                    name=name,
                    gpus=gpus,
                    max_running=max_running,
                    created_at=db_now(),
                    fair_share=None if by is None else by.value,
                    fair_half_life=None if by is None else half_life_seconds,
                    **labels,
                )
            )
        return self.get(name)

    def set_fair_share(
        self,
        name: str,
        fair_share: FairShare | None,
        *,
        half_life_seconds: float = DEFAULT_FAIR_HALF_LIFE,
    ) -> QueueInfo:
        """Share a queue's turns by user or by project (None: first in, first out again).

        The usage counted so far is forgotten; the waiting entries take their owners.
        """
        check_half_life(half_life_seconds)
        by = None if fair_share is None else FairShare(fair_share)
        with self._db.write() as conn:
            queue_id = queue_row(conn, name).id
            conn.execute(
                queues.update()
                .where(queues.c.id == queue_id)
                .values(
                    fair_share=None if by is None else by.value,
                    fair_half_life=None if by is None else half_life_seconds,
                )
            )
            conn.execute(fair_usage.delete().where(fair_usage.c.queue_id == queue_id))
            owner: Any = None if by is None else _owner_of(by)
            conn.execute(
                queue_entries.update()
                .where(queue_entries.c.queue_id == queue_id)
                .values(owner=owner)
            )
            owners = (
                sa.select(queue_entries.c.queue_id, queue_entries.c.owner)
                .where(queue_entries.c.queue_id == queue_id, queue_entries.c.owner.is_not(None))
                .distinct()
            )
            conn.execute(fair_usage.insert().from_select(["queue_id", "owner"], owners))
        return self.get(name)

    def set_max_running(self, name: str, max_running: int | None) -> QueueInfo:
        """Cap (or, with None, uncap) how many of a queue's tasks run at once."""
        _check_cap(max_running)
        with self._db.write() as conn:
            row = queue_row(conn, name)
            conn.execute(
                queues.update().where(queues.c.name == name).values(max_running=max_running)
            )
            # A raised cap frees entries no enqueue announces: wake the idle agents.
            notify(conn, self._db, ENQUEUE_CHANNEL, str(row.id))
        return self.get(name)

    def edit(
        self, name: str, *, description: str | None = None, tags: Sequence[str] | None = None
    ) -> QueueInfo:
        """Set a queue's description (``""``: none) and/or its tags (``[]``: none)."""
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description or None
        if tags is not None:
            values["tags"] = queue_tags(tags) or None
        with self._db.write() as conn:
            queue_row(conn, name)
            if values:
                conn.execute(queues.update().where(queues.c.name == name).values(values))
        return self.get(name)

    def get(self, name: str) -> QueueInfo:
        """One queue with its length and oldest wait."""
        found = self._infos(queues.c.name == name)
        if not found:
            raise NotFound(f"no queue named {name!r}: create it with `clearq queue create {name}`")
        return found[0]

    def list(self) -> builtins.list[QueueInfo]:
        """Every queue, by name, with its length and oldest wait."""
        return self._infos(sa.true())

    def _infos(self, where: sa.ColumnElement[bool]) -> builtins.list[QueueInfo]:
        query = (
            sa.select(
                queues,
                sa.func.count(queue_entries.c.id).label("length"),
                sa.func.min(queue_entries.c.enqueued_at).label("oldest"),
            )
            .select_from(queues.outerjoin(queue_entries, queue_entries.c.queue_id == queues.c.id))
            .where(where)
            .group_by(queues.c.id)
            .order_by(queues.c.name)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            QueueInfo(
                id=r.id,
                name=r.name,
                gpus=r.gpus,
                created_at=r.created_at,
                length=r.length,
                oldest_enqueued_at=r.oldest,
                max_running=r.max_running,
                description=r.description or "",
                tags=tuple(r.tags or ()),
                fair_share=r.fair_share,
                fair_half_life=r.fair_half_life,
            )
            for r in rows
        ]

    def delete(self, name: str, *, force: bool = False) -> builtins.list[uuid.UUID]:
        """Delete a queue; refused while it holds entries unless ``force``.

        With ``force`` its waiting tasks go back to drafts (created), with a reason;
        their ids are returned.
        """
        with self._db.write() as conn:
            queue = queue_row(conn, name)
            waiting = list(
                conn.execute(
                    sa.select(queue_entries.c.task_id).where(queue_entries.c.queue_id == queue.id)
                ).scalars()
            )
            if waiting and not force:
                raise QueueNotEmpty(
                    f"queue {name!r} holds {len(waiting)} task(s): dequeue them, or delete "
                    "with --force, which turns them back into drafts"
                )
            conn.execute(queue_entries.delete().where(queue_entries.c.queue_id == queue.id))
            for task_id in waiting:
                transition(
                    conn,
                    task_id,
                    TaskStatus.CREATED,
                    expect=TaskStatus.QUEUED,
                    status_reason=f"dequeued: queue {name!r} was deleted",
                    queued_at=None,
                )
            conn.execute(queues.delete().where(queues.c.id == queue.id))
        return waiting

    def enqueue(
        self,
        task_id: uuid.UUID,
        queue: str,
        *,
        priority: int = 0,
        depends_on: Sequence[uuid.UUID] = (),
        continue_on_failure: bool = False,
        nodes: int | None = None,
    ) -> Task:
        """Put a draft in a queue; higher ``priority`` is claimed first, then FIFO.

        With ``depends_on`` the task is claimed only once every one of those tasks has
        completed; if one fails or is stopped it is skipped instead, unless
        ``continue_on_failure`` (then it runs once they have all ended). ``nodes``: run
        it on that many agents at once, one rank each (a gang: ``clearq.scheduler.gangs``).
        """
        with self._db.write() as conn:
            row = queue_row(conn, queue)
            if depends_on:
                add_parents(conn, task_id, depends_on, continue_on_failure=continue_on_failure)
            transition(
                conn,
                task_id,
                TaskStatus.QUEUED,
                expect=TaskStatus.CREATED,
                queue_id=row.id,
                queued_at=db_now(),
                status_reason="",
            )
            if nodes is not None:
                _set_nodes(conn, task_id, nodes)
            insert_entry(conn, queue_id=row.id, task_id=task_id, priority=priority)
            if depends_on:
                skip_blocked(conn)  # a parent that already failed
            return fetch_task(conn, task_id)

    def enqueue_run(
        self, fence: Fence, queue: str, *, priority: int = 0, nodes: int | None = None
    ) -> Task:
        """Send a task that is running by hand to a queue (``execute_remotely``).

        The local run gives the task up: it goes back in line for an agent, which
        starts a fresh attempt, and nothing the local run writes later is kept.
        """
        with self._db.write() as conn:
            row = queue_row(conn, queue)
            hold(conn, fence)
            transition(
                conn,
                fence.task_id,
                TaskStatus.QUEUED,
                expect=TaskStatus.RUNNING,
                queue_id=row.id,
                queued_at=db_now(),
                worker=None,
                tries=0,
                lease_expires_at=None,
                status_reason=f"sent to queue {queue!r} by its local run",
            )
            if nodes is not None:
                _set_nodes(conn, fence.task_id, nodes)
            insert_entry(conn, queue_id=row.id, task_id=fence.task_id, priority=priority)
            return fetch_task(conn, fence.task_id)

    def dequeue(self, task_id: uuid.UUID) -> Task:
        """Take a queued task out of its queue; it becomes a draft again."""
        with self._db.write() as conn:
            transition(
                conn,
                task_id,
                TaskStatus.CREATED,
                expect=TaskStatus.QUEUED,
                queued_at=None,
                status_reason="",
            )
            conn.execute(queue_entries.delete().where(queue_entries.c.task_id == task_id))
            return fetch_task(conn, task_id)

    def move_to_front(self, task_id: uuid.UUID) -> None:
        """Make a queued task the next one its queue hands out."""
        self._move(task_id, front=True)

    def move_to_back(self, task_id: uuid.UUID) -> None:
        """Make a queued task the last one its queue hands out (it takes the lowest priority)."""
        self._move(task_id, front=False)

    def _move(self, task_id: uuid.UUID, *, front: bool) -> None:
        with self._db.write() as conn:
            entry = conn.execute(
                sa.select(queue_entries).where(queue_entries.c.task_id == task_id).with_for_update()
            ).first()
            if entry is None:
                status = conn.execute(
                    sa.select(tasks.c.status).where(tasks.c.id == task_id)
                ).scalar()
                what = "does not exist" if status is None else f"is {status}, not queued"
                raise InvalidInput(f"task {task_id} {what}: only a queued task can be moved")
            conn.execute(queue_entries.delete().where(queue_entries.c.id == entry.id))
            priority = entry.priority
            if not front:
                lowest = conn.execute(
                    sa.select(sa.func.min(queue_entries.c.priority)).where(
                        queue_entries.c.queue_id == entry.queue_id
                    )
                ).scalar()
                priority = min(priority, lowest) if lowest is not None else priority
            insert_entry(
                conn,
                queue_id=entry.queue_id,
                task_id=task_id,
                priority=priority,
                front=front,
            )
            _keep_schedule(conn, entry)

    def move_to_queue(self, task_id: uuid.UUID, queue: str) -> Task:
        """Move a queued task to the back of another queue (its priority kept)."""
        with self._db.write() as conn:
            target = queue_row(conn, queue)
            entry = conn.execute(
                sa.select(queue_entries).where(queue_entries.c.task_id == task_id).with_for_update()
            ).first()
            if entry is None:
                current = fetch_task(conn, task_id)
                raise InvalidInput(
                    f"task {task_id} is {current.status}, not queued: only a queued task moves"
                )
            conn.execute(queue_entries.delete().where(queue_entries.c.id == entry.id))
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(queue_id=target.id, updated_at=db_now())
            )
            insert_entry(conn, queue_id=target.id, task_id=task_id, priority=entry.priority)
            _keep_schedule(conn, entry)
            return fetch_task(conn, task_id)

    def clear(self, queue: str) -> builtins.list[uuid.UUID]:
        """Take every task out of a queue (each becomes a draft again); their ids."""
        with self._db.write() as conn:
            row = queue_row(conn, queue)
            ids = list(
                conn.execute(
                    sa.select(queue_entries.c.task_id)
                    .where(queue_entries.c.queue_id == row.id)
                    .order_by(queue_entries.c.priority.desc(), queue_entries.c.id)
                ).scalars()
            )
            for task_id in ids:
                transition(
                    conn,
                    task_id,
                    TaskStatus.CREATED,
                    expect=TaskStatus.QUEUED,
                    queued_at=None,
                    status_reason=f"taken out of {queue!r} when it was cleared",
                )
            conn.execute(queue_entries.delete().where(queue_entries.c.queue_id == row.id))
        return ids

    def entries(self, queue: str, *, limit: int = 1000) -> builtins.list[QueueEntry]:
        """The tasks waiting in a queue, in the order they will be claimed."""
        with self._db.read() as conn:
            row = queue_row(conn, queue)
            rows = conn.execute(
                sa.select(
                    queue_entries.c.task_id,
                    queue_entries.c.priority,
                    queue_entries.c.enqueued_at,
                    tasks.c.name,
                )
                .join(tasks, tasks.c.id == queue_entries.c.task_id)
                .where(queue_entries.c.queue_id == row.id)
                .order_by(queue_entries.c.priority.desc(), queue_entries.c.id)
                .limit(limit)
            ).all()
        return [
            QueueEntry(
                task_id=r.task_id,
                task_name=r.name,
                priority=r.priority,
                enqueued_at=r.enqueued_at,
            )
            for r in rows
        ]


def _keep_schedule(conn: Connection, old: Row[Any]) -> None:
    """A schedule's waiting clone moved stays its waiting clone: its time, a trigger's hold.

    (The claim that takes it fires the schedule, which writes the next clone in the
    schedule's own queue.)
    """
    if old.schedule_id is None:
        return
    conn.execute(
        queue_entries.update()
        .where(queue_entries.c.task_id == old.task_id)
        .values(
            schedule_id=old.schedule_id,
            not_before=old.not_before,
            held_by=TRIGGER_HOLD if old.held_by == TRIGGER_HOLD else queue_entries.c.held_by,
        )
    )


def _set_nodes(conn: Connection, task_id: uuid.UUID, nodes: int) -> None:
    """Ask for ``nodes`` ranks (a gang for more than one)."""
    if nodes < 1:
        raise InvalidInput(f"a task runs on at least one node, not {nodes}")
    conn.execute(tasks.update().where(tasks.c.id == task_id).values(nodes=nodes))
