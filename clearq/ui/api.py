"""The JSON a page polls: live tables, chart panels, a task's state and console.

Each table is gathered by one function that the first render (``pages``) uses too, so a
page and its updates always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clearq.errors import InvalidInput
from clearq.models import Task, TaskStatus
from clearq.scheduler import Store
from clearq.ui import charts, compare, fmt, tables
from clearq.ui.tables import Row
from clearq.ui.web import store_of, task_id_of

TASK_LIST_LIMIT = 200
LOG_BATCH = 2000
"""Console pieces per poll; a client that got a full batch asks again at once."""
SCALAR_POINTS = 500
RUNNING_LIMIT = 1000


def _json(data: Any) -> Response:
    return JSONResponse(data)


def _rows(rows: list[Row]) -> Response:
    return _json(tables.as_json(rows))


def _range(request: Request) -> tuple[str, int]:
    return fmt.range_seconds(request.query_params.get("range"))


# ---- workers ------------------------------------------------------------------------------


def worker_table(store: Store, range_name: str) -> list[Row]:
    """The workers table, each with its current task."""
    running = store.tasks.list(status=TaskStatus.RUNNING, limit=RUNNING_LIMIT)
    by_id = {t.id: t for t in running}
    return tables.worker_rows(store.workers.list(), by_id, fmt.now(), range_name)


def workers(request: Request) -> Response:
    """GET /api/workers: the workers table."""
    return _rows(worker_table(store_of(request), _range(request)[0]))


def worker_charts(request: Request) -> Response:
    """GET /api/workers/charts?worker=ID&range=1h: one worker's machine over time."""
    worker = request.query_params.get("worker", "")
    seconds = _range(request)[1]
    samples = store_of(request).views.worker_series(worker, range_seconds=seconds)
    end = fmt.now().timestamp()
    return _json([p.as_json() for p in charts.worker_panels(samples, (end - seconds, end))])


def activity(request: Request) -> Response:
    """GET /api/workers/activity?range=1h: active vs total workers over time."""
    points = store_of(request).views.worker_activity(range_seconds=_range(request)[1])
    return _json([charts.activity_panel(points).as_json()])


# ---- schedules ----------------------------------------------------------------------------


def schedule_table(store: Store) -> list[Row]:
    """The schedules and triggers table."""
    return tables.schedule_rows(store.schedules.list(), fmt.now())


def schedules(request: Request) -> Response:
    """GET /api/schedules: the schedules and triggers table."""
    return _rows(schedule_table(store_of(request)))


# ---- queues -------------------------------------------------------------------------------


def queue_table(store: Store, name: str | None = None) -> list[Row]:
    """The queues table (one queue's row alone with ``name``)."""
    stats = [q for q in store.views.queue_stats() if name is None or q.name == name]
    return tables.queue_rows(stats, fmt.now())


def queues(request: Request) -> Response:
    """GET /api/queues[?name=Q]: the queues table, or one queue's row."""
    return _rows(queue_table(store_of(request), request.query_params.get("name")))


def queue_charts(request: Request) -> Response:
    """GET /api/queues/charts?range=1h: every queue's length and wait over time."""
    series = store_of(request).views.queue_series(range_seconds=_range(request)[1])
    return _json([p.as_json() for p in charts.queue_panels(series)])


def entry_table(store: Store, name: str) -> list[Row]:
    """A queue's tasks in claim order."""
    return tables.entry_rows(store.queues.entries(name), fmt.now())


def entries(request: Request) -> Response:
    """GET /api/queue/entries?name=Q: the queue's tasks in claim order."""
    return _rows(entry_table(store_of(request), request.query_params.get("name", "")))


# ---- tasks --------------------------------------------------------------------------------


def task_filters(request: Request) -> dict[str, Any]:
    """The tasks list's filters from the query string (blank ones left out)."""
    params = {k: request.query_params.get(k, "").strip() for k in ("project", "status", "queue")}
    tag = request.query_params.get("tag", "").strip()
    filters: dict[str, Any] = {k: v for k, v in params.items() if v}
    if "status" in filters:
        try:
            filters["status"] = TaskStatus(filters["status"])
        except ValueError:
            raise InvalidInput(f"no task status {filters['status']!r}") from None
    if tag:
        filters["tags"] = (tag,)
    if request.query_params.get("archived", "").strip():
        filters["archived"] = True  # only archived ones: the default lists leave them out
    return filters


def task_table(
    store: Store, filters: dict[str, Any], columns: Sequence[compare.Column] = ()
) -> list[Row]:
    """The tasks list, newest first, each with a selection box and the chosen columns."""
    found = store.tasks.list(limit=TASK_LIST_LIMIT, **filters)
    return compare.compared_rows(store, found, tables.task_rows(found, fmt.now()), columns)


def tasks(request: Request) -> Response:
    """GET /api/tasks?project=&status=&queue=&tag=&archived=&metric=&param=: the filtered
    tasks list (archived ones only with ``archived=1``)."""
    columns = compare.columns_of(request)
    return _rows(task_table(store_of(request), task_filters(request), columns))


def task_fields(store: Store, task: Task) -> dict[str, str]:
    """The parts of a task's page that change while it lives."""
    position = store.views.queue_position(task.id) if task.status is TaskStatus.QUEUED else None
    return {
        "status": task.status.value,
        "reason": task.status_reason or "-",
        "queue": task.queue or "-",
        "position": "-" if position is None else f"{position[0]} of {position[1]}",
        "worker": task.worker or "-",
        "attempt": f"{task.attempt} (tries {task.tries} of {task.max_attempts})",
        "queued": fmt.stamp(task.queued_at),
        "started": fmt.stamp(task.started_at),
        "finished": fmt.stamp(task.finished_at),
        "exit_code": "-" if task.exit_code is None else str(task.exit_code),
        "stop_requested": fmt.stamp(task.stop_requested_at),
    }


def task_state(request: Request) -> Response:
    """GET /api/tasks/ID/state: status, queue position, worker, attempt, times."""
    store = store_of(request)
    return _json(task_fields(store, store.tasks.get(task_id_of(request))))


def logs(request: Request) -> Response:
    """GET /api/tasks/ID/logs?after=SEQ: console pieces after ``SEQ``, oldest first."""
    try:
        after = int(request.query_params.get("after", "0"))
    except ValueError:
        raise InvalidInput("after must be a whole number (a log sequence)") from None
    lines = store_of(request).outputs.logs(task_id_of(request), after=after, limit=LOG_BATCH)
    return _json(
        {
            "lines": [{"seq": ln.seq, "stream": ln.stream, "text": ln.text} for ln in lines],
            "after": lines[-1].seq if lines else after,
            "more": len(lines) == LOG_BATCH,
        }
    )


def scalars(request: Request) -> Response:
    """GET /api/tasks/ID/scalars: one chart per title, downsampled by iteration."""
    points = store_of(request).views.scalar_series(task_id_of(request), points=SCALAR_POINTS)
    return _json([p.as_json() for p in charts.scalar_panels(points)])


def summary(request: Request) -> Response:
    """GET /api/tasks/ID/summary: last, min and max of each scalar series."""
    return _rows(tables.summary_rows(store_of(request).outputs.summary(task_id_of(request))))


def history(request: Request) -> Response:
    """GET /api/tasks/ID/history: every status change, oldest first."""
    return _rows(tables.history_rows(store_of(request).tasks.history(task_id_of(request))))
