"""The workers registry and the time series of their machines' figures."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from clearq.errors import NotFound
from clearq.models import MetricsSample, TaskStatus, WorkerInfo, WorkerMetrics, WorkerState
from clearq.scheduler.engine import Database
from clearq.scheduler.schema import db_now, tasks, worker_metrics, workers


class Workers:
    """Who is serving which queues, what they run, and how their machines are doing."""

    def __init__(self, db: Database, *, metrics_retention_seconds: float) -> None:
        self._db = db
        self._retention = metrics_retention_seconds

    def register(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int | None,
        queues: Sequence[str],
        gpus: Sequence[str] = (),
    ) -> WorkerInfo:
        """Register (or re-register) a worker as active now."""
        values = {
            "host": host,
            "pid": pid,
            "queues": list(queues),
            "gpus": list(gpus),
            "state": WorkerState.ACTIVE.value,
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

    def record_metrics(self, worker_id: str, metrics: WorkerMetrics) -> None:
        """Store one sample and drop this worker's samples older than the retention."""
        values = metrics.model_dump(mode="json")
        with self._db.write() as conn:
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
    )


def _sample(row: Row[Any]) -> MetricsSample:
    fields = {name: row._mapping[name] for name in WorkerMetrics.model_fields}
    return MetricsSample(
        worker_id=row.worker_id, at=row.at, metrics=WorkerMetrics.model_validate(fields)
    )
