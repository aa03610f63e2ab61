"""The fenced writes, each written once against a small execution interface.

Every write about a running attempt (a run created running, its renewals, how it ended
with the side effects of that end, its logs, scalars and their summary, its parameters
and runtime facts) is an operation here, on the statements of ``statements.py``. It runs
on an :class:`Execution` (one transaction's statements) or, when it spans transactions,
on a :class:`Connector`. Two adapters exist: the Store's SQLAlchemy connection
(``sqla_exec.py``) and a run's bare DB-API connection (``runlink.py``), so the agent, a
batch finish and a script run by hand share not just the SQL but what follows from it.

Finishing an attempt (:func:`finish`): a failed one with retries left goes back to its
queue; a completed one with children wakes idle agents (NOTIFY); a failed or stopped one
skips the children waiting on it. Standard library only, like ``statements.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from clearq.enums import RUN_END_STATUSES, TaskStatus
from clearq.errors import InvalidInput, LeaseLost
from clearq.scheduler import runlink_results as results
from clearq.scheduler import statements as q
from clearq.scheduler.lifecycle import check_transition
from clearq.scheduler.runlink_results import PlotRow, SampleRow
from clearq.scheduler.statements import Statement, render
from clearq.valueclass import value_class

LOG_STREAMS = frozenset({"stdout", "stderr", "agent"})
"""The streams a log piece may name."""
ENQUEUE_CHANNEL = "clearq_enqueue"
"""Payload: the id of the queue that got an entry (``notify.py`` listens)."""
PG_FRONT_LOCK = 0x636C7166726E74
"""Any fixed number: serialises inserts at the front of a queue, which pick their own ids."""

Point = tuple[str, str, int, float]
"""A reported scalar: (title, series, iteration, value)."""


class FenceLike(Protocol):
    """The attempt a write is about (``models.Fence`` and ``runlink.RunFence`` are both)."""

    @property
    def task_id(self) -> uuid.UUID: ...
    @property
    def attempt(self) -> int: ...
    @property
    def worker(self) -> str | None: ...


class Execution(Protocol):
    """One transaction's statements, on some driver: the whole of what an operation needs."""

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL, False on SQLite (which statement text to render)."""
        ...

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returned (none for a plain write)."""
        ...

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement once for each row of parameters."""
        ...


class Connector(Protocol):
    """Where operations that span transactions get their :class:`Execution` from."""

    def transaction(self) -> AbstractContextManager[Execution]:
        """BEGIN ... COMMIT (BEGIN IMMEDIATE on SQLite), rolled back on any error."""
        ...

    def statement(self) -> AbstractContextManager[Execution]:
        """For a single write: on PostgreSQL autocommit (no BEGIN/COMMIT round trips)."""
        ...


@value_class
class NewTask:
    """The values of a new task row (a draft, or a run started by hand)."""

    project: str
    name: str
    type: str
    script: Mapping[str, Any]
    env: Mapping[str, Any]
    container: Mapping[str, Any]
    max_attempts: int
    parameters: Mapping[str, str]
    tags: Sequence[str] = ()
    comment: str = ""
    parent_id: uuid.UUID | None = None
    output_uri: str | None = None
    max_run_seconds: float | None = None
    max_retries: int = 0
    retry_delay_seconds: float | None = None


@value_class
class Renewal:
    """What renewing one attempt's lease found."""

    held: bool
    stop_requested: bool = False
    overtime: bool = False
    stop_reason: str = ""
    """Why the stop was asked for (the task's reason while it stops), when it was."""


@value_class
class Ending:
    """How one attempt ended (``models.RunResult`` without pydantic)."""

    fence: FenceLike
    status: TaskStatus
    exit_code: int | None = None
    reason: str = ""


# ---- running statements -----------------------------------------------------------------


def rows(x: Execution, statement: Statement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``statement`` with ``params`` on ``x``; the rows it returned."""
    return x.execute(render(statement, x.postgres), bind(params, x.postgres))


def run_many(x: Execution, statement: Statement, params: Iterable[Mapping[str, Any]]) -> None:
    """Run ``statement`` once for each set of ``params``."""
    batch = [bind(p, x.postgres) for p in params]
    if batch:
        x.execute_many(render(statement, x.postgres), batch)


def bind(params: Mapping[str, Any], postgres: bool) -> dict[str, Any]:
    """Parameters as the driver takes them: the schema's Uuid is 32 hex digits on SQLite."""
    if postgres:
        return dict(params)
    return {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in params.items()}


def as_uuid(value: Any) -> uuid.UUID:
    """A Uuid column's value as read back (native on PostgreSQL, hex text on SQLite)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def as_json(value: Any) -> Any:
    """A JSON column's value as read back (psycopg decodes it, sqlite3 hands back text)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def fence_params(fence: FenceLike, suffix: str = "") -> dict[str, Any]:
    """The bind values of :data:`statements.FENCE`."""
    return {
        f"task_id{suffix}": fence.task_id,
        f"attempt{suffix}": fence.attempt,
        f"worker{suffix}": fence.worker,
    }


# ---- the fence --------------------------------------------------------------------------


def lost_message(fence_task: uuid.UUID, attempt: int, worker: str | None, now: str) -> str:
    """The LeaseLost message for a fence; ``now`` says what the task is at present."""
    return (
        f"task {fence_task}: attempt {attempt} by {worker or 'a local run'} "
        f"is no longer current ({now}); stop working on it, nothing more it writes is kept"
    )


def lost(x: Execution, fence: FenceLike) -> LeaseLost:
    """The LeaseLost error for ``fence``, saying what the task is now."""
    found = rows(x, q.NOW_IS, {"task_id": fence.task_id})
    now = "it no longer exists"
    if found:
        status, attempt, worker = found[0]
        now = f"it is {status} at attempt {attempt} (worker {worker or 'none'})"
    return LeaseLost(lost_message(fence.task_id, fence.attempt, fence.worker, now))


def hold(x: Execution, fence: FenceLike) -> None:
    """Check ``fence`` and keep it until the transaction ends; else raise LeaseLost."""
    if not rows(x, q.HOLD, fence_params(fence)):
        raise lost(x, fence)


# ---- tasks ------------------------------------------------------------------------------


def insert_task(
    x: Execution, task: NewTask, *, running: bool, lease_seconds: float = 0.0
) -> uuid.UUID:
    """Store a new task: a draft, or (``running``) a run started by hand, attempt 1."""
    task_id = uuid.uuid4()
    values = {
        "id": task_id,
        "project": task.project,
        "name": task.name,
        "type": task.type,
        "status": (TaskStatus.RUNNING if running else TaskStatus.CREATED).value,
        "script": json.dumps(task.script),
        "env": json.dumps(task.env),
        "container": json.dumps(task.container),
        "parameters": json.dumps(dict(task.parameters)),
        "tags": json.dumps(list(task.tags)),
        "runtime": "{}",
        "comment": task.comment,
        "parent_id": task.parent_id,
        "output_uri": task.output_uri,
        "attempt": 1 if running else 0,
        "max_attempts": task.max_attempts,
        "max_run_seconds": task.max_run_seconds,
        "max_retries": task.max_retries,
        "retry_delay_seconds": task.retry_delay_seconds,
        "lease": lease_seconds,
    }
    rows(x, q.INSERT_TASK, values)
    return task_id


def set_parameters(x: Execution, task_id: uuid.UUID, parameters: Mapping[str, str]) -> None:
    """Write a task's parameters as given (the caller checked who may)."""
    rows(x, q.SET_PARAMETERS, {"task_id": task_id, "parameters": json.dumps(dict(parameters))})


def update_parameters(
    x: Execution, fence: FenceLike, values: Mapping[str, str], *, replace: bool = False
) -> dict[str, str]:
    """Merge (or replace with) ``values`` into the running attempt's parameters; all of them."""
    hold(x, fence)
    current = {} if replace else dict(as_json(rows(x, q.READ_PARAMETERS, _task(fence))[0][0]))
    merged = {**current, **values}
    set_parameters(x, fence.task_id, merged)
    return merged


def update_runtime(x: Execution, fence: FenceLike, info: Mapping[str, Any]) -> None:
    """Merge facts about the current run (environment used, host, ...) into ``runtime``."""
    hold(x, fence)
    current = dict(as_json(rows(x, q.READ_RUNTIME, _task(fence))[0][0]))
    runtime = json.dumps({**current, **info})
    rows(x, q.SET_RUNTIME, {"task_id": fence.task_id, "runtime": runtime})


def record_code(
    x: Execution, fence: FenceLike, script: Mapping[str, Any], env: Mapping[str, Any]
) -> None:
    """Write the running attempt's captured code and packages (its capture ended)."""
    hold(x, fence)
    code = {"task_id": fence.task_id, "script": json.dumps(script), "env": json.dumps(env)}
    rows(x, q.SET_CODE, code)


def _task(fence: FenceLike) -> dict[str, Any]:
    return {"task_id": fence.task_id}


# ---- outputs ----------------------------------------------------------------------------


def check_streams(logs: Iterable[tuple[str, str]]) -> None:
    """Refuse log pieces on a stream that does not exist."""
    bad = {stream for stream, _ in logs} - LOG_STREAMS
    if bad:
        raise InvalidInput(f"unknown log streams {sorted(bad)}; use one of {sorted(LOG_STREAMS)}")


def append(
    x: Execution,
    fence: FenceLike,
    logs: Sequence[tuple[str, str]],
    points: Sequence[Point],
    *,
    plots: Sequence[PlotRow] = (),
    samples: Sequence[SampleRow] = (),
) -> None:
    """Append log pieces, scalar points, plots and debug samples of the attempt, fenced."""
    check_streams(logs)
    results.check_rows(plots, samples)
    if not logs and not points and not plots and not samples:
        return
    hold(x, fence)
    task = {"task_id": fence.task_id, "attempt": fence.attempt}
    run_many(x, q.INSERT_LOG, ({**task, "stream": s, "text": t} for s, t in logs))
    if points:
        keys = ("title", "series", "iteration", "value")
        run_many(x, q.INSERT_SCALAR, ({**task, **dict(zip(keys, p, strict=True))} for p in points))
        folded = summarise(points)
        summary = ({**task, "title": t, "series": s, **v} for (t, s), v in folded.items())
        run_many(x, q.UPSERT_SUMMARY, summary)
    run_many(x, q.INSERT_PLOT, results.plot_params(task, plots))
    if samples:
        newest = results.sample_params(task, samples)
        run_many(x, q.FORGET_SAMPLE, newest)
        run_many(x, q.INSERT_SAMPLE, newest)


def summarise(points: Iterable[Point]) -> dict[tuple[str, str], dict[str, Any]]:
    """Fold points into last/min/max/last_iteration per (title, series), in report order."""
    summary: dict[tuple[str, str], dict[str, Any]] = {}
    for title, series, iteration, value in points:
        s = summary.get((title, series))
        if s is None:
            summary[(title, series)] = {
                "last": value,
                "min": value,
                "max": value,
                "last_iteration": iteration,
            }
            continue
        s.update(last=value, last_iteration=iteration)
        s["min"] = min(s["min"], value)
        s["max"] = max(s["max"], value)
    return summary


# ---- leases -----------------------------------------------------------------------------


def renew(x: Execution, fence: FenceLike, lease_seconds: float) -> Renewal:
    """Extend the attempt's lease, if ``fence`` still holds it."""
    found = rows(x, q.RENEW, {**fence_params(fence), "lease": lease_seconds})
    if not found:
        return Renewal(held=False)
    stop, reason, overtime = found[0]
    asked = stop is not None
    return Renewal(
        held=True,
        stop_requested=asked,
        overtime=bool(overtime),
        stop_reason=reason if asked else "",
    )


# ---- queue entries and hints ------------------------------------------------------------


def notify(x: Execution, channel: str, payload: str) -> None:
    """Send a hint when the transaction commits (PostgreSQL); nothing on SQLite."""
    if x.postgres:
        rows(x, q.NOTIFY, {"channel": channel, "payload": payload})


def entry_payload(queue_id: int, delay_seconds: float | None) -> str:
    """The enqueue hint of a queue's new entry: ``ID``, or ``ID@SECONDS`` when the entry
    may be claimed only that many seconds from now (a retry's delay)."""
    return f"{queue_id}@{delay_seconds:.3f}" if delay_seconds else str(queue_id)


def ready_in(payload: str) -> float | None:
    """The seconds an enqueue hint says its entry waits (``entry_payload``), or None."""
    _, at, delay = payload.partition("@")
    if not at:
        return None
    try:
        return max(0.0, float(delay))
    except ValueError:
        return None


def insert_entry(
    x: Execution,
    *,
    queue_id: int,
    task_id: uuid.UUID,
    priority: int,
    front: bool = False,
    delay_seconds: float | None = None,
) -> None:
    """Add a task's entry to a queue, last in its priority or first of the whole queue.

    Entries are claimed by (priority desc, id). An entry put at the front takes the
    queue's highest priority and an id below every other, so it is claimed next. A
    delay (a retry's) keeps it from being claimed before then.
    """
    values: dict[str, Any] = {
        "queue_id": queue_id,
        "task_id": task_id,
        "priority": priority,
        "delay": delay_seconds or 0.0,
    }
    if not front:
        [(owner,)] = rows(x, q.INSERT_ENTRY, values)
    else:
        if x.postgres:
            rows(x, q.FRONT_LOCK, {"key": PG_FRONT_LOCK})
        lowest, top = rows(x, q.FRONT_OF, {"queue_id": queue_id})[0]
        values["id"] = (lowest if lowest is not None else 1) - 1
        values["priority"] = max(priority, top) if top is not None else priority
        [(owner,)] = rows(x, q.INSERT_ENTRY_AT, values)
    if owner is not None:  # a fair-share queue: the claim probes each owner it knows
        rows(x, q.ADD_OWNER, {"queue_id": queue_id, "owner": owner})
    notify(x, ENQUEUE_CHANNEL, entry_payload(queue_id, delay_seconds))


def skip_blocked(x: Execution) -> list[uuid.UUID]:
    """Mark every queued task blocked by a parent that gave up ``skipped``; their ids.

    Repeats until nothing is left, so a skipped task's own children follow it.
    """
    skipped: list[uuid.UUID] = []
    while True:
        reasons: dict[Any, str] = {}
        for child, parent, name, status in rows(x, q.BLOCKED, {}):
            reasons.setdefault(child, f"task {name!r} ({as_uuid(parent)}) it depends on {status}")
        if not reasons:
            return skipped
        for child, reason in reasons.items():
            rows(x, q.DROP_ENTRY, {"task_id": child})
            rows(x, q.SKIP, {"task_id": child, "reason": f"skipped: {reason}"})
            skipped.append(as_uuid(child))


# ---- finishing --------------------------------------------------------------------------


def check_final(status: TaskStatus) -> None:
    """Refuse an end status a run cannot end in."""
    if status not in RUN_END_STATUSES:
        raise InvalidInput(f"a run ends completed, failed or stopped, not {status}")


def finish(c: Connector, ending: Ending) -> None:
    """Record how an attempt ended, with what follows from it; LeaseLost if it is not its own.

    Failed with retries left: back to its queue after its delay. Completed with children:
    idle agents are woken. Failed or stopped: the children waiting on it are skipped.
    """
    check_final(ending.status)
    if ending.status is TaskStatus.FAILED:
        with c.transaction() as x:
            if retry(x, ending):
                return
            if end(x, ending) is None:
                raise lost(x, ending.fence)
    else:
        with c.statement() as x:
            has_children = end(x, ending)
            if has_children is None:
                raise lost(x, ending.fence)
            if has_children and ending.status is TaskStatus.COMPLETED:
                # Wake idle agents now: a child of this task may have become claimable.
                notify(x, ENQUEUE_CHANNEL, str(ending.fence.task_id))
    if ending.status is not TaskStatus.COMPLETED:
        with c.transaction() as x:
            skip_blocked(x)


def finish_many(c: Connector, endings: Sequence[Ending]) -> frozenset[uuid.UUID]:
    """Record several ended attempts as :func:`finish` does each; the tasks whose fence lost.

    Completed and stopped attempts go in one statement (PostgreSQL) or one transaction;
    a failed one goes through :func:`finish`, which decides whether it is retried.
    """
    for e in endings:
        check_final(e.status)
    lost_ids: set[uuid.UUID] = set()
    batch: list[Ending] = []
    for e in endings:
        if e.status is not TaskStatus.FAILED:
            batch.append(e)
            continue
        try:
            finish(c, e)
        except LeaseLost:
            lost_ids.add(e.fence.task_id)
    if batch:
        lost_ids |= _finish_batch(c, batch)
    return frozenset(lost_ids)


def _finish_batch(c: Connector, endings: Sequence[Ending]) -> set[uuid.UUID]:
    with c.statement() as x:
        ended = _end_all(x, endings)
        completed = {e.fence.task_id for e in endings if e.status is TaskStatus.COMPLETED}
        woken = {task_id for task_id, has_children in ended.items() if has_children} & completed
        if woken:  # a child of one of them may be claimable now
            notify(x, ENQUEUE_CHANNEL, str(min(woken)))
    if any(e.status is not TaskStatus.COMPLETED for e in endings):
        with c.transaction() as x:
            skip_blocked(x)
    return {e.fence.task_id for e in endings if e.fence.task_id not in ended}


def _end_all(x: Execution, endings: Sequence[Ending]) -> dict[uuid.UUID, bool]:
    """End each attempt still fenced; {task: has children} of those that ended."""
    if not x.postgres:
        found = {e.fence.task_id: end(x, e) for e in endings}
        return {task_id: bool(h) for task_id, h in found.items() if h is not None}
    params: dict[str, Any] = {}
    for i, e in enumerate(endings):
        params.update(fence_params(e.fence, str(i)))
        params.update({f"status{i}": e.status.value, f"exit_code{i}": e.exit_code})
        params[f"reason{i}"] = e.reason
    sql = render(q.FINISH_MANY_PG, True, rows=q.finish_many_rows(len(endings)))
    ended = x.execute(sql, params)
    for task_id, _, fair in ended:
        if fair is not None:
            charge(x, as_uuid(task_id))
    return {as_uuid(task_id): bool(h) for task_id, h, _ in ended}


def end(x: Execution, ending: Ending) -> bool | None:
    """The fenced end of one attempt: whether the task has children; None if the fence lost."""
    values = {
        **fence_params(ending.fence),
        "status": ending.status.value,
        "exit_code": ending.exit_code,
        "reason": ending.reason,
    }
    found = rows(x, q.FINISH, values)
    if not found:
        return None
    has_children, fair = found[0]
    if fair is not None:
        charge(x, ending.fence.task_id)
    return bool(has_children)


def charge(x: Execution, task_id: uuid.UUID) -> None:
    """Add the run of ``task_id`` that just ended to its owner's usage of a fair-share queue.

    Run seconds (from its start to now, on the database's clock) times its queue's GPUs
    per task (at least 1), decayed with the queue's half-life (``statements.CHARGE``).
    A task of any other queue is charged nothing.
    """
    rows(x, q.CHARGE, {"task_id": task_id})


def retry(x: Execution, ending: Ending) -> bool:
    """Send a failed attempt back to its queue after its delay, if it has retries left.

    A retry is for the code failing (the attempt ran and exited badly): it spends one of
    ``max_retries``, not one of the ``max_attempts`` kept for lost workers. LeaseLost
    when the fence no longer holds.
    """
    fence = ending.fence
    found = rows(x, q.LOCK_FOR_RETRY, fence_params(fence))
    if not found:
        raise lost(x, fence)
    queue_id, max_retries, retries, delay_seconds, attempt = found[0]
    if queue_id is None or retries >= max_retries:
        return False
    check_transition(fence.task_id, TaskStatus.RUNNING, TaskStatus.QUEUED)
    charge(x, fence.task_id)  # the failed run used its share, as a finished one does
    delay = (delay_seconds or 0.0) * 2**retries
    reason = f"retry {retries + 1} of {max_retries} after attempt {attempt}: {ending.reason}" + (
        f" (waits {delay:g} s)" if delay else ""
    )
    rows(
        x,
        q.RETRY,
        {"task_id": fence.task_id, "reason": reason, "exit_code": ending.exit_code},
    )
    insert_entry(
        x, queue_id=queue_id, task_id=fence.task_id, priority=0, front=True, delay_seconds=delay
    )
    return True
