"""A script run again by hand takes over its earlier task (ClearML's reuse and continue).

``Task.init(reuse_last_task_id=...)`` / ``continue_last_task=...`` start an earlier task
again as this process's run instead of creating a new one. These statements and the one
operation over them serve both adapters of ``fenced.Execution`` (a run's bare driver in
``runlink.py``, the Store's connection in ``task_admin.py``), so a script's second run
pays no SQLAlchemy import. Standard library only, like ``statements.py``.

The lifecycle is kept: an ended task becomes a draft, then the draft starts (the status
history records both); reuse deletes the earlier outputs and starts a new attempt,
continue keeps them and goes on in the same attempt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from clearq.enums import FINAL_STATUSES, TaskStatus
from clearq.errors import InvalidInput, NotFound
from clearq.scheduler import fenced
from clearq.scheduler.statements import Statement
from clearq.valueclass import value_class

OUTPUT_TABLES = (
    "task_logs",
    "task_scalars",
    "task_scalar_summary",
    "task_artifacts",
    "task_plots",
    "task_samples",
    "task_models",
)
"""What a task's runs produced (``tasks.RESET_TABLES``; a test keeps the two the same)."""
_ENDED = ", ".join(f"'{s.value}'" for s in sorted(FINAL_STATUSES))

READ = Statement(
    "takeover_read",
    "SELECT status, attempt, tags, "
    "(SELECT COUNT(*) FROM task_artifacts WHERE task_id = :task_id), "
    "(SELECT MAX(last_iteration) FROM task_scalar_summary WHERE task_id = :task_id) "
    "FROM tasks WHERE id = :task_id{for_update}",
)
TO_DRAFT = Statement(
    "takeover_to_draft",
    f"UPDATE tasks SET status = 'created', updated_at = {{now}} "
    f"WHERE id = :task_id AND status IN ({_ENDED})",
)
START = Statement(
    "takeover_start",
    "UPDATE tasks SET status = 'running', worker = NULL, queue_id = NULL, "
    "attempt = attempt + :bump, tries = tries + 1, started_at = {now}, finished_at = NULL, "
    "exit_code = NULL, stop_requested_at = NULL, lease_expires_at = {after_lease}, "
    "status_reason = '', script = {json_script}, env = {json_env}, tags = {json_tags}, "
    "name = :name, updated_at = {now} WHERE id = :task_id AND status = 'created'",
)
CLEAR = {
    t: Statement(f"takeover_clear_{t}", f"DELETE FROM {t} WHERE task_id = :task_id")
    for t in OUTPUT_TABLES
}


@value_class
class Candidate:
    """What decides whether an earlier task can be taken over."""

    status: TaskStatus
    attempt: int
    tags: tuple[str, ...]
    artifacts: int
    last_iteration: int | None

    @property
    def free(self) -> bool:
        """A draft or an ended task: nothing runs it."""
        return self.status is TaskStatus.CREATED or self.status in FINAL_STATUSES


@value_class
class TakenOver:
    """The run's attempt, and where its iterations continue (``continue_last_task``)."""

    attempt: int
    next_iteration: int


def candidate(x: fenced.Execution, task_id: uuid.UUID) -> Candidate | None:
    """The earlier task's facts, or None when there is no such task."""
    found = fenced.rows(x, READ, {"task_id": task_id})
    if not found:
        return None
    status, attempt, tags, artifacts, last = found[0]
    return Candidate(
        status=TaskStatus(status),
        attempt=int(attempt),
        tags=tuple(fenced.as_json(tags)),
        artifacts=int(artifacts),
        last_iteration=None if last is None else int(last),
    )


def take_over(
    x: fenced.Execution,
    task_id: uuid.UUID,
    *,
    keep_outputs: bool,
    name: str | None,
    script: dict[str, Any] | None,
    env: dict[str, Any] | None,
    add_tags: Sequence[str],
    lease_seconds: float,
) -> TakenOver:
    """Start the earlier task as a run by hand (no worker), inside ``x``'s transaction."""
    found = candidate(x, task_id)
    if found is None:
        raise NotFound(f"no task with id {task_id}")
    if not found.free:
        raise InvalidInput(
            f"task {task_id} is {found.status}: only a draft or an ended task can be "
            "continued or reused; wait for it to end or abort it"
        )
    if found.status is not TaskStatus.CREATED:
        fenced.rows(x, TO_DRAFT, {"task_id": task_id})
    if not keep_outputs:
        for statement in CLEAR.values():
            fenced.rows(x, statement, {"task_id": task_id})
    # A draft has had no attempt of its own yet (or only a released one): a new one.
    same = keep_outputs and found.status is not TaskStatus.CREATED
    current = _read_code(x, task_id)
    fenced.rows(
        x,
        START,
        {
            "task_id": task_id,
            "bump": 0 if same else 1,
            "lease": lease_seconds,
            "script": json.dumps(script if script is not None else current[0]),
            "env": json.dumps(env if env is not None else current[1]),
            "tags": json.dumps(list(dict.fromkeys([*found.tags, *add_tags]))),
            "name": name if name is not None else current[2],
        },
    )
    last = found.last_iteration if keep_outputs else None
    return TakenOver(
        attempt=found.attempt if same else found.attempt + 1,
        next_iteration=0 if last is None else last + 1,
    )


_READ_CODE = Statement("takeover_code", "SELECT script, env, name FROM tasks WHERE id = :task_id")


def _read_code(x: fenced.Execution, task_id: uuid.UUID) -> Any:
    script, env, name = fenced.rows(x, _READ_CODE, {"task_id": task_id})[0]
    return [fenced.as_json(script), fenced.as_json(env), name]


__all__ = ["OUTPUT_TABLES", "Candidate", "TakenOver", "candidate", "take_over"]
