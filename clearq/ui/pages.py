"""The pages: workers, queues, one queue, tasks, one task. Rendered on the server;
their tables, charts and console then follow the database through ``api``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from clearq.models import FINAL_STATUSES, Task, TaskStatus
from clearq.scheduler.serving import unserved_warning
from clearq.ui import api, compare, fmt, tables
from clearq.ui.security import PLOT_PAGE_CSP
from clearq.ui.tables import link
from clearq.ui.web import redirect, render, store_of, task_id_of

UNTRACKED_PREVIEW_BYTES = 64 * 1024


def _ranges(path: str, current: str, **query: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "href": link(path, **query, range=name), "current": name == current}
        for name in fmt.RANGES
    ]


def home(request: Request) -> Response:
    """GET /: the workers page."""
    return redirect("/workers")


def workers(request: Request) -> Response:
    """GET /workers?worker=ID&range=1h: the workers table and the selected one's charts."""
    store = store_of(request)
    range_name, _ = fmt.range_seconds(request.query_params.get("range"))
    selected = request.query_params.get("worker") or None
    query = {"worker": selected} if selected else {}
    return render(
        request,
        "workers.html",
        title="Workers",
        columns=tables.WORKER_COLUMNS,
        rows=api.worker_table(store, range_name),
        live=link("/api/workers", range=range_name),
        selected=selected,
        ranges=_ranges("/workers", range_name, **query),
        activity=link("/api/workers/activity", range=range_name),
        charts=link("/api/workers/charts", worker=selected, range=range_name) if selected else None,
    )


def queues(request: Request) -> Response:
    """GET /queues?range=1h: the queues table and their length and wait charts."""
    range_name, _ = fmt.range_seconds(request.query_params.get("range"))
    return render(
        request,
        "queues.html",
        title="Queues",
        columns=tables.QUEUE_COLUMNS,
        rows=api.queue_table(store_of(request)),
        live="/api/queues",
        ranges=_ranges("/queues", range_name),
        charts=link("/api/queues/charts", range=range_name),
    )


def schedules(request: Request) -> Response:
    """GET /schedules: the schedules and triggers, with their next run; remove some."""
    return render(
        request,
        "schedules.html",
        title="Schedules",
        columns=tables.SCHEDULE_COLUMNS,
        rows=api.schedule_table(store_of(request)),
        live="/api/schedules",
    )


def queue(request: Request) -> Response:
    """GET /queue?name=Q: one queue's tasks in claim order, with the actions on them."""
    store = store_of(request)
    name = request.query_params.get("name", "")
    info = store.queues.get(name)  # NotFound: a 404 page that says so
    return render(
        request,
        "queue.html",
        title=f"Queue {name}",
        queue=info,
        stats_columns=tables.QUEUE_COLUMNS,
        stats=api.queue_table(store, name),
        stats_live=link("/api/queues", name=name),
        columns=tables.ENTRY_COLUMNS,
        rows=api.entry_table(store, name),
        live=link("/api/queue/entries", name=name),
        others=[q.name for q in store.queues.list() if q.name != name],
    )


def tasks(request: Request) -> Response:
    """GET /tasks?project=&status=&queue=&tag=&metric=&param=: the tasks, filtered, with
    the chosen metric and parameter columns; tick some to compare them."""
    store = store_of(request)
    filters = api.task_filters(request)
    columns = compare.columns_of(request)
    named = ("project", "status", "queue", "tag", "archived")
    given = {k: request.query_params.get(k, "") for k in named}
    query = [(k, v) for k, v in given.items() if v] + compare.column_query(columns)
    return render(
        request,
        "tasks.html",
        title="Tasks",
        columns=("", *tables.TASK_COLUMNS, *(c.label for c in columns)),
        rows=api.task_table(store, filters, columns),
        live=f"/api/tasks?{urlencode(query)}" if query else "/api/tasks",
        given=given,
        chosen={
            "metric": ", ".join(c.query[1] for c in columns if c.kind == "metric"),
            "param": ", ".join(c.key for c in columns if c.kind == "param"),
        },
        projects=store.views.projects(),
        statuses=[s.value for s in TaskStatus],
        queues=[q.name for q in store.queues.list()],
    )


def task(request: Request) -> Response:
    """GET /tasks/ID: a task's code, environment, parameters, console, scalars, history."""
    store = store_of(request)
    record = store.tasks.get(task_id_of(request))
    base = f"/api/tasks/{record.id}"
    page = render(
        request,
        "task.html",
        title=f"Task {record.name}",
        task=record,
        fields=api.task_fields(store, record),
        env_used=_env_used(record),
        untracked=_untracked(record),
        artifacts=store.outputs.artifacts(record.id),
        models=store.registry.of_task(record.id),
        queues=[q.name for q in store.queues.list()],
        # Queued where no worker claims now: the same warning as `clearq task enqueue`'s.
        unserved=(
            unserved_warning(store.workers, record.queue)
            if record.status is TaskStatus.QUEUED and record.queue
            else None
        ),
        final=[s.value for s in FINAL_STATUSES],
        deletable=[s.value for s in TaskStatus if s is not TaskStatus.RUNNING],
        urls={
            "state": f"{base}/state",
            "logs": f"{base}/logs",
            "scalars": f"{base}/scalars",
            "summary": f"{base}/summary",
            "history": f"{base}/history",
            "plots": f"{base}/plots",
            "samples": f"{base}/samples",
        },
        summary_columns=tables.SUMMARY_COLUMNS,
        history_columns=tables.HISTORY_COLUMNS,
        history_rows=tables.history_rows(store.tasks.history(record.id)),
        size=fmt.size,
        stamp=fmt.stamp,
    )
    page.headers["Content-Security-Policy"] = PLOT_PAGE_CSP
    return page


def _env_used(task: Task) -> list[tuple[str, str]]:
    """What the agent recorded about the environment it ran the task in."""
    env = task.runtime.get("env")
    if not isinstance(env, dict):
        return []
    hit = env.get("hit")
    cache = "-" if hit is None else "hit (reused)" if hit else "miss (built)"
    return [
        ("cache", cache),
        ("key", str(env.get("key", "-"))),
        ("manager", str(env.get("manager", "-"))),
        ("python", str(env.get("python", "-"))),
        ("build seconds", str(env.get("build_seconds", "-"))),
        ("host", str(task.runtime.get("host", "-"))),
        ("GPUs", ", ".join(task.runtime.get("gpus") or []) or "-"),
    ]


def _untracked(task: Task) -> list[dict[str, Any]]:
    """Untracked files with their text when it is short and readable."""
    files = []
    for f in task.script.untracked:
        text: str | None = None
        if len(f.data) <= UNTRACKED_PREVIEW_BYTES:
            try:
                text = f.data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        files.append({"path": f.path, "size": fmt.size(len(f.data)), "text": text})
    return files
