"""The workers registry, operators' commands to workers, and their machines' figures.

An operator drains or pauses a worker by name from any machine (``set_command``): the
command is a column of the worker's rows (an agent in services mode has one row per
slot, ``host:name:k``; a command names the agent and reaches all of them), with a NOTIFY
on PostgreSQL so an idle agent hears it at once. The agent reads it before it claims
(``command``); registering clears it, so a restarted agent serves again.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from clearq.errors import InvalidInput, NotFound
from clearq.models import (
    MetricsSample,
    TaskStatus,
    WorkerCommand,
    WorkerInfo,
    WorkerMetrics,
    WorkerState,
)
from clearq.scheduler.engine import Database
from clearq.scheduler.notify import WORKER_CHANNEL, notify
from clearq.scheduler.schema import db_now, tasks, worker_metrics, workers


class Workers:
    """Who is serving which queues, what they run, and how their machines are doing."""

    def __init__(
        self, db: Database, *, metrics_retention_seconds: float, live_seconds: float
    ) -> None:
        self._db = db
        self._retention = metrics_retention_seconds
        self._live = live_seconds

    def register(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int | None,
        queues: Sequence[str],
        gpus: Sequence[str] = (),
        windows: dict[str, Any] | None = None,
    ) -> WorkerInfo:
        """Register (or re-register) a worker as active now (``windows``: its published
        claim windows, ``ClaimWindows.published``)."""
        values = {
            "windows": windows,
            "host": host,
            "pid": pid,
            "queues": list(queues),
            "gpus": list(gpus),
            "state": WorkerState.ACTIVE.value,
            "command": None,
            "started_at": db_now(),
            "last_seen": db_now(),
        }
        with self._db.write() as conn:
            updated = conn.execute(workers.update().where(workers.c.id == worker_id).values(values))
            if updated.rowcount == 0:
                conn.execute(workers.insert().values(id=worker_id, **values))
        return self.get(worker_id)

    def unregister(self, worker_id: str) -> None:
        """Remove a worker that is shutting down; its metrics age out on their own."""
        with self._db.write() as conn:
            conn.execute(workers.delete().where(workers.c.id == worker_id))

    def command(self, worker_ids: Sequence[str]) -> WorkerCommand | None:
        """What an operator asked of these workers (one agent's): drain wins over pause."""
        if not worker_ids:
            return None
        query = sa.select(workers.c.command).where(
            workers.c.id.in_(list(worker_ids)), workers.c.command.is_not(None)
        )
        with self._db.read() as conn:
            found = {WorkerCommand(c) for c in conn.execute(query).scalars()}
        return strongest(found)

    def set_command(self, name: str, command: WorkerCommand | None) -> builtins.list[str]:
        """Drain, pause or (None) resume the workers ``name`` names; their ids.

        ``name`` is a worker id (``host:name``, with its sub-workers), a host (every
        agent on it) or an agent's name on whichever host it runs (``pick_workers``).
        """
        with self._db.write() as conn:
            ids = pick_workers(name, conn.execute(sa.select(workers.c.id)).scalars())
            value = None if command is None else command.value
            conn.execute(workers.update().where(workers.c.id.in_(ids)).values(command=value))
            for worker_id in ids:
                notify(conn, self._db, WORKER_CHANNEL, worker_id)
        return ids

    def get(self, worker_id: str) -> WorkerInfo:
        """One worker; NotFound when it is not registered."""
        found = self._infos(workers.c.id == worker_id)
        if not found:
            raise NotFound(f"no worker {worker_id!r} is registered: see `clearq workers`")
        return found[0]

    def list(self, *, include_gone: bool = True) -> builtins.list[WorkerInfo]:
        """Registered workers by id."""
        where = sa.true() if include_gone else workers.c.state == WorkerState.ACTIVE.value
        return self._infos(where)

    def serving(self, queue: str) -> builtins.list[WorkerInfo]:
        """The live workers of ``queue``: active and heard from within ``live_seconds``
        on the database's clock (paused or draining ones included: see ``command``)."""
        fresh = sa.and_(
            workers.c.state == WorkerState.ACTIVE.value,
            workers.c.last_seen >= db_now(-self._live),
        )
        return [w for w in self._infos(fresh) if queue in w.queues]

    def _infos(self, where: sa.ColumnElement[bool]) -> builtins.list[WorkerInfo]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(workers).where(where).order_by(workers.c.id)).all()
            running = conn.execute(
                sa.select(tasks.c.worker, tasks.c.id)
                .where(
                    tasks.c.status == TaskStatus.RUNNING.value,
                    tasks.c.worker.in_([r.id for r in rows]),
                )
                .order_by(tasks.c.started_at)
            ).all()
        by_worker: dict[str, list[Any]] = {}
        for worker, task_id in running:
            by_worker.setdefault(worker, []).append(task_id)
        return [_info(r, by_worker.get(r.id, [])) for r in rows]

    def record_metrics(
        self, worker_id: str, metrics: WorkerMetrics, *, seen: Sequence[str] = ()
    ) -> None:
        """Store one sample and drop this worker's samples older than the retention.

        ``seen``: workers to mark seen (active, heard from now) in the same transaction:
        an idle agent's heartbeat and its sample are one write.
        """
        values = metrics.model_dump(mode="json")
        with self._db.write() as conn:
            mark_seen(conn, seen)
            conn.execute(worker_metrics.insert().values(worker_id=worker_id, at=db_now(), **values))
            conn.execute(
                worker_metrics.delete().where(
                    worker_metrics.c.worker_id == worker_id,
                    worker_metrics.c.at < db_now(-self._retention),
                )
            )

    def metrics(self, worker_id: str, *, limit: int = 1000) -> builtins.list[MetricsSample]:
        """A worker's most recent samples, oldest first."""
        query = (
            sa.select(worker_metrics)
            .where(worker_metrics.c.worker_id == worker_id)
            .order_by(worker_metrics.c.at.desc(), worker_metrics.c.id.desc())
            .limit(limit)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [_sample(r) for r in reversed(rows)]

    def latest_metrics(self) -> dict[str, MetricsSample]:
        """Each worker's newest sample."""
        newest = (
            sa.select(sa.func.max(worker_metrics.c.id).label("id"))
            .group_by(worker_metrics.c.worker_id)
            .subquery()
        )
        query = sa.select(worker_metrics).join(newest, newest.c.id == worker_metrics.c.id)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return {r.worker_id: _sample(r) for r in rows}


def _info(row: Row[Any], running: builtins.list[Any]) -> WorkerInfo:
    return WorkerInfo(
        id=row.id,
        host=row.host,
        pid=row.pid,
        queues=tuple(row.queues),
        gpus=tuple(row.gpus),
        state=WorkerState(row.state),
        started_at=row.started_at,
        last_seen=row.last_seen,
        tasks=tuple(running),
        command=None if row.command is None else WorkerCommand(row.command),
        windows=row.windows,
    )


def mark_seen(conn: Connection, worker_ids: Iterable[str]) -> None:
    """Mark workers active and heard from now (a heartbeat), in ``conn``'s transaction."""
    ids = sorted(set(worker_ids))
    if ids:
        conn.execute(
            workers.update()
            .where(workers.c.id.in_(ids))
            .values(last_seen=db_now(), state=WorkerState.ACTIVE.value)
        )


def worker_names(worker: str | Sequence[str] | None) -> builtins.list[str]:
    """A heartbeat's ``worker``: one id, several (an agent's sub-workers), or none."""
    if worker is None:
        return []
    return [worker] if isinstance(worker, str) else list(worker)


def strongest(commands: Iterable[WorkerCommand]) -> WorkerCommand | None:
    """The command that wins among an agent's rows: drain, else pause, else none."""
    found = set(commands)
    for command in (WorkerCommand.DRAIN, WorkerCommand.PAUSE):
        if command in found:
            return command
    return None


def pick_workers(name: str, registered: Iterable[str]) -> builtins.list[str]:
    """The registered worker ids ``name`` stands for, sorted.

    First the ids equal to ``name`` or under it (``host:name`` and its sub-workers
    ``host:name:k``; a bare host: every agent on it); else the agents called ``name`` on
    any host, which must be one host. NotFound when nothing matches, InvalidInput when
    a bare name is on several hosts.
    """
    ids = sorted(set(registered))
    if not name or name != name.strip():
        raise InvalidInput(f"worker name {name!r} is empty or has surrounding spaces")
    under = [w for w in ids if w == name or w.startswith(f"{name}:")]
    if under:
        return under
    named = [w for w in ids if w.split(":")[1:2] == [name]]
    hosts = sorted({w.split(":")[0] for w in named})
    if len(hosts) > 1:
        choices = ", ".join(f"{h}:{name}" for h in hosts)
        raise InvalidInput(f"agents named {name!r} run on several hosts: give one of {choices}")
    if not named:
        raise NotFound(f"no worker {name!r} is registered: `clearq workers list` shows their names")
    return named


def _sample(row: Row[Any]) -> MetricsSample:
    fields = {name: row._mapping[name] for name in WorkerMetrics.model_fields}
    return MetricsSample(
        worker_id=row.worker_id, at=row.at, metrics=WorkerMetrics.model_validate(fields)
    )
