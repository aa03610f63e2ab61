"""``Task.get_task`` / ``Task.get_tasks`` filters, with ClearML's meaning.

- ``project_name``: one project or a list of them;
- ``task_name``: exact for ``get_task``; for ``get_tasks`` a part of the name (a regular
  expression searched in it, as ClearML does);
- ``tags``: every plain tag must be on the task; ``-tag`` excludes tasks with it;
- ``allow_archived=False`` leaves out archived tasks (``clearq task archive``,
  ``task.set_archived(True)``); tasks asked for by id are returned archived or not;
- ``task_filter``: ``status``, ``type``, ``tags``, ``parent``, ``id``, ``name`` and
  ``order_by`` (``created``, ``last_update``, ``name``, ``-`` for descending). Any other
  key is an error naming it. ClearML's ``in_progress`` status is clearq's ``running``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clearq.enums import TaskStatus
from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from clearq.models import Task as TaskRecord
    from clearq.scheduler import Store

FILTER_KEYS = frozenset({"status", "type", "tags", "parent", "id", "name", "order_by"})
SCAN_LIMIT = 100_000
"""How many of the newest tasks a filtered query looks through at most."""
_STATUS_ALIASES = {"in_progress": TaskStatus.RUNNING, "closed": TaskStatus.COMPLETED}
_ORDER_FIELDS = {
    "created": "created_at",
    "last_update": "updated_at",
    "last_change": "updated_at",
    "started": "started_at",
    "name": "name",
}


def find_tasks(
    store: Store,
    *,
    task_ids: Sequence[str | uuid.UUID] | None = None,
    project_name: str | Sequence[str] | None = None,
    task_name: str | None = None,
    name_is_pattern: bool,
    tags: Sequence[str] | None = None,
    allow_archived: bool = True,
    task_filter: Mapping[str, Any] | None = None,
    status: TaskStatus | Sequence[TaskStatus] | None = None,
    limit: int | None = None,
    user: str | None = None,
) -> list[TaskRecord]:
    """Task records matching every filter, newest first unless ``order_by`` says otherwise."""
    wanted = dict(task_filter or {})
    unknown = sorted(set(wanted) - FILTER_KEYS)
    if unknown:
        raise InvalidInput(
            f"task_filter has unknown keys {unknown}: clearq reads {sorted(FILTER_KEYS)}"
        )
    statuses = _statuses(status, wanted.get("status"))
    projects = [project_name] if isinstance(project_name, str) else list(project_name or [])
    single_project = projects[0] if len(projects) == 1 else None
    exact_name = task_name if task_name is not None and not name_is_pattern else None
    if task_ids:
        records = [store.tasks.get(_as_uuid(t)) for t in task_ids]
        records = [r for r in records if user is None or r.user == user]
    else:
        records = store.tasks.list(
            project=single_project,
            name=exact_name,
            status=statuses,
            limit=SCAN_LIMIT,
            user=user,
            archived=None if allow_archived else False,
        )
    checks = _checks(
        projects=projects,
        pattern=task_name if name_is_pattern else None,
        statuses=statuses,
        tags=[*(tags or []), *_as_list(wanted.get("tags"))],
        wanted=wanted,
    )
    found = [r for r in records if all(check(r) for check in checks)]
    found = _ordered(found, _as_list(wanted.get("order_by")))
    return found if limit is None else found[:limit]


def _checks(
    *,
    projects: list[str],
    pattern: str | None,
    statuses: list[TaskStatus] | None,
    tags: list[str],
    wanted: Mapping[str, Any],
) -> list[Any]:
    checks: list[Any] = []
    if projects:
        checks.append(lambda r: r.project in projects)
    if pattern is not None:
        compiled = _regex(pattern)
        checks.append(lambda r: compiled.search(r.name) is not None)
    if "name" in wanted:
        by_name = _regex(str(wanted["name"]))
        checks.append(lambda r: by_name.search(r.name) is not None)
    if statuses is not None:
        checks.append(lambda r: r.status in statuses)
    required = {t for t in tags if not t.startswith("-")}
    excluded = {t[1:] for t in tags if t.startswith("-")}
    checks.append(lambda r: required <= set(r.tags) and not excluded & set(r.tags))
    if "type" in wanted:
        types = {str(t) for t in _as_list(wanted["type"])}
        checks.append(lambda r: r.type in types)
    if "parent" in wanted:
        parent = _as_uuid(wanted["parent"])
        checks.append(lambda r: r.parent_id == parent)
    if "id" in wanted:
        ids = {_as_uuid(i) for i in _as_list(wanted["id"])}
        checks.append(lambda r: r.id in ids)
    return checks


def _statuses(
    given: TaskStatus | Sequence[TaskStatus] | None, in_filter: Any
) -> list[TaskStatus] | None:
    names: list[Any] = []
    if given is not None:
        names += [given] if isinstance(given, str) else list(given)
    names += _as_list(in_filter)
    if not names:
        return None
    out: list[TaskStatus] = []
    for name in names:
        text = str(name)
        try:
            out.append(_STATUS_ALIASES.get(text) or TaskStatus(text))
        except ValueError:
            known = ", ".join(s.value for s in TaskStatus)
            raise InvalidInput(f"status {text!r} is not one of: {known}, in_progress") from None
    return out


def _ordered(records: list[TaskRecord], order_by: list[Any]) -> list[TaskRecord]:
    for key in reversed(order_by):
        text = str(key)
        field = _ORDER_FIELDS.get(text.lstrip("-+"))
        if field is None:
            raise InvalidInput(f"order_by {text!r}: use one of {sorted(_ORDER_FIELDS)}")
        present = [r for r in records if getattr(r, field) is not None]
        missing = [r for r in records if getattr(r, field) is None]
        present.sort(key=lambda r: getattr(r, field), reverse=text.startswith("-"))
        records = present + missing
    return records


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(re.escape(pattern))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | uuid.UUID):
        return [value]
    return list(value)


def _as_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as e:
        raise InvalidInput(f"{value!r} is not a task id") from e


__all__ = ["FILTER_KEYS", "find_tasks"]
