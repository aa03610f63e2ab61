"""The page's actions: POSTs that change queues and tasks through the store.

Every action's form carries the session's CSRF token (checked here) and comes from the
page's own origin (checked by ``security``); the store refuses what a task's status
does not allow, with its reason, which the error page shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from clearq.errors import InvalidInput
from clearq.models import TaskStatus
from clearq.scheduler import Store
from clearq.ui.security import CSRF_FIELD, Guard
from clearq.ui.tables import link, task_href
from clearq.ui.web import redirect, store_of, task_id_of


class _Refused(Exception):
    """A form without this session's CSRF token."""


async def _form(request: Request) -> FormData:
    form = await request.form()
    guard: Guard = request.app.state.guard
    given = form.get(CSRF_FIELD)
    if not guard.csrf_ok(request.state.session, given if isinstance(given, str) else None):
        raise _Refused
    return form


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _ids(values: Sequence[object]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(str(v)) for v in values]
    except ValueError:
        raise InvalidInput("a selected task id is not a task id") from None


def _refused() -> Response:
    return PlainTextResponse(
        "this form has expired or came from another site: reload the page", 403
    )


async def queue_entries(request: Request) -> Response:
    """POST /queue/entries: move selected tasks to the front or back, remove, or move them."""
    try:
        form = await _form(request)
    except _Refused:
        return _refused()
    name, action, target = _text(form, "name"), _text(form, "action"), _text(form, "target")
    ids = _ids(form.getlist("task"))
    await run_in_threadpool(_apply_to_entries, store_of(request), name, action, ids, target)
    return redirect(link("/queue", name=name))


def _apply_to_entries(
    store: Store, name: str, action: str, ids: list[uuid.UUID], target: str
) -> None:
    if not ids:
        raise InvalidInput("select at least one task first")
    order = {e.task_id: i for i, e in enumerate(store.queues.entries(name))}
    picked = sorted(ids, key=lambda t: order.get(t, len(order)))
    # Several to the front: the last first, so that they keep their order at the front.
    steps: dict[str, Callable[[uuid.UUID], object]] = {
        "front": store.queues.move_to_front,
        "back": store.queues.move_to_back,
        "remove": store.queues.dequeue,
        "move": lambda t: store.queues.move_to_queue(t, target),
    }
    step = steps.get(action)
    if step is None:
        raise InvalidInput(f"unknown queue action {action!r}")
    if action == "move" and not target:
        raise InvalidInput("choose the queue to move the tasks to")
    for task_id in reversed(picked) if action == "front" else picked:
        step(task_id)


async def schedules_remove(request: Request) -> Response:
    """POST /schedules/remove: remove the selected schedules (their waiting clones too)."""
    try:
        form = await _form(request)
    except _Refused:
        return _refused()
    try:
        ids = [int(str(v)) for v in form.getlist("task")]
    except ValueError:
        raise InvalidInput("a selected schedule id is not a number") from None
    if not ids:
        raise InvalidInput("select at least one schedule first")
    store = store_of(request)
    for schedule_id in ids:
        await run_in_threadpool(store.schedules.remove, schedule_id)
    return redirect("/schedules")


async def queue_clear(request: Request) -> Response:
    """POST /queue/clear: take every task out of a queue (each becomes a draft)."""
    try:
        form = await _form(request)
    except _Refused:
        return _refused()
    name = _text(form, "name")
    await run_in_threadpool(store_of(request).queues.clear, name)
    return redirect(link("/queue", name=name))


async def task_action(request: Request) -> Response:
    """POST /tasks/ID/ACTION: clone, enqueue, abort, reset, set the parameters or variables,
    archive, unarchive or delete (then the tasks list is shown)."""
    action = request.path_params["action"]
    handler = _TASK_ACTIONS.get(action)
    if handler is None:
        return PlainTextResponse(f"no task action {action!r}", 404)
    try:
        form = await _form(request)
    except _Refused:
        return _refused()
    task_id = task_id_of(request)
    shown = await run_in_threadpool(handler, store_of(request), task_id, form)
    return redirect("/tasks" if shown is None else task_href(shown))


def _clone(store: Store, task_id: uuid.UUID, form: FormData) -> uuid.UUID:
    return store.tasks.clone(task_id, name=_text(form, "name") or None).id


def _enqueue(store: Store, task_id: uuid.UUID, form: FormData) -> uuid.UUID:
    try:
        priority = int(_text(form, "priority") or "0")
    except ValueError:
        raise InvalidInput("the priority must be a whole number") from None
    store.queues.enqueue(task_id, _text(form, "queue"), priority=priority)
    return task_id


def _abort(store: Store, task_id: uuid.UUID, form: FormData) -> uuid.UUID:
    if store.tasks.get(task_id).status is TaskStatus.QUEUED:
        store.queues.dequeue(task_id)
    else:
        store.leases.request_stop(task_id)  # refused, with the reason, unless running
    return task_id


def _reset(store: Store, task_id: uuid.UUID, form: FormData) -> uuid.UUID:
    store.tasks.reset(task_id)
    return task_id


def _parameters(store: Store, task_id: uuid.UUID, form: FormData) -> uuid.UUID:
    names = [str(n).strip() for n in form.getlist("param_name")]
    values = [str(v) for v in form.getlist("param_value")]
    if len(names) != len(values):
        raise InvalidInput("every parameter needs a name and a value")
    parameters = {n: v for n, v in zip(names, values, strict=True) if n}
    store.tasks.update_parameters(task_id, parameters, replace=True)
    return task_id


def _environment(store: Store, task_id: uuid.UUID, form: FormData) -> uuid.UUID:
    names = [str(n).strip() for n in form.getlist("env_name")]
    values = [str(v) for v in form.getlist("env_value")]
    if len(names) != len(values):
        raise InvalidInput("every variable needs a name and a value")
    environment = {n: v for n, v in zip(names, values, strict=True) if n}
    store.tasks.edit(task_id, environment=environment)
    return task_id


def _archive(store: Store, task_id: uuid.UUID, form: FormData) -> uuid.UUID:
    store.cleanup.archive([task_id])
    return task_id


def _unarchive(store: Store, task_id: uuid.UUID, form: FormData) -> uuid.UUID:
    store.cleanup.unarchive([task_id])
    return task_id


def _delete(store: Store, task_id: uuid.UUID, form: FormData) -> None:
    # Refused, with the reason, while it runs. Its files are left to `clearq gc`: the
    # page acts through the store only, which knows no storage.
    store.cleanup.delete([task_id])


_TASK_ACTIONS: dict[str, Callable[[Store, uuid.UUID, FormData], uuid.UUID | None]] = {
    "clone": _clone,
    "enqueue": _enqueue,
    "abort": _abort,
    "reset": _reset,
    "parameters": _parameters,
    "environment": _environment,
    "archive": _archive,
    "unarchive": _unarchive,
    "delete": _delete,
}
