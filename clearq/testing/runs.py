"""The in-memory store's runs: the claim, leases and ends of attempts, outputs (plots,
samples and models: ``clearq.testing.reported``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from clearq.errors import InvalidInput, LeaseLost
from clearq.models import (
    Artifact,
    Claim,
    ClaimOrder,
    Fence,
    Heartbeat,
    LogLine,
    ReapReport,
    RunResult,
    ScalarPoint,
    ScalarSummary,
    Task,
    TaskStatus,
    WorkerState,
)
from clearq.scheduler.fenced import check_final, check_streams, summarise
from clearq.scheduler.lifecycle import check_transition
from clearq.scheduler.runlink_results import PlotRow, SampleRow, check_rows
from clearq.scheduler.statements import GANG_HOLD
from clearq.scheduler.workers import worker_names
from clearq.testing.fair import charge, fair_order
from clearq.testing.quotas import over_quota
from clearq.testing.reported import record_results
from clearq.testing.schedules import fire
from clearq.testing.state import Entry, State, Summary


class MemoryClaimer:
    """A worker's claims across its ordered queues, as ``claim.Claimer`` hands them out."""

    def __init__(
        self, state: State, worker: str, queues: Sequence[str], order: ClaimOrder, lease: float
    ) -> None:
        if not queues:
            raise InvalidInput("a worker needs at least one queue to claim from")
        if len(set(queues)) != len(queues):
            raise InvalidInput(f"queues named more than once: {list(queues)}")
        self._s = state
        self.worker = worker
        self.queues = tuple(queues)
        self.order = order
        self._lease = lease
        self._start = 0

    def ranked(self, among: Sequence[str] | None = None) -> list[str]:
        """The queues in the order the next claim will try them."""
        rotated = self.queues[self._start :] + self.queues[: self._start]
        return [q for q in rotated if among is None or q in among]

    def claim(self, limit: int = 1, *, among: Sequence[str] | None = None) -> list[Claim]:
        """Claim up to ``limit`` eligible tasks in claim order."""
        s = self._s
        ranked = self.ranked(among)
        with s.lock:
            fair = any(q in s.queues and s.queues[q].fair_share for q in ranked)
            if s.quotas or fair:  # one at a time, each seeing the ones before
                claims: list[Claim] = []
                while len(claims) < limit and (got := self._claim(ranked, 1)):
                    claims.extend(got)
                    if self.order is ClaimOrder.ROUND_ROBIN:
                        after = ranked.index(got[0].queue) + 1
                        ranked = ranked[after:] + ranked[:after]
            else:
                claims = self._claim(ranked, limit)
        if self.order is ClaimOrder.ROUND_ROBIN and claims:
            self._start = (self.queues.index(claims[0].queue) + 1) % len(self.queues)
        return claims

    def anything_ready(self, among: Sequence[str] | None = None) -> bool:
        """Whether these queues hold an entry a claim might take now (due, and free or a
        forming gang's)."""
        s = self._s
        with s.lock:
            now = s.now()
            ids = {s.queues[q].id for q in self.ranked(among) if q in s.queues}
            return any(
                e.queue_id in ids
                and _due(e, now)
                and ((e.held_by is None and self._free(e)) or e.held_by == GANG_HOLD)
                for e in s.entries.values()
            )

    def _claim(self, ranked: Sequence[str], limit: int) -> list[Claim]:
        per_queue = [self._eligible(name, limit) for name in ranked]
        if self.order is ClaimOrder.ROUND_ROBIN:
            picked = [q[i] for i in range(limit) for q in per_queue if i < len(q)]
        else:
            picked = [e for q in per_queue for e in q]
        return [self._run(name, entry) for name, entry in picked[:limit]]

    def _eligible(self, name: str, limit: int) -> list[tuple[str, Entry]]:
        s = self._s
        queue = s.queues.get(name)
        if queue is None:
            return []
        now = s.now()
        entries = sorted(
            (e for e in s.entries.values() if e.queue_id == queue.id),
            key=lambda e: (-e.priority, e.id),
        )
        ready = [
            e
            for e in entries
            if _due(e, now)
            and e.held_by is None
            and self._free(e)
            and not over_quota(s, s.tasks[e.task_id], queue.gpus)
        ]
        if queue.fair_share is not None:
            ready = fair_order(s, queue, ready)
        room = limit
        if queue.max_running is not None:
            running = sum(
                1 for t in s.tasks.values() if t.queue == name and t.status is TaskStatus.RUNNING
            )
            room = max(0, min(limit, queue.max_running - running))
        return [(name, e) for e in ready[:room]]

    def _free(self, entry: Entry) -> bool:
        return _waiting_on(self._s, entry.task_id) is None

    def _run(self, name: str, entry: Entry) -> Claim:
        return _start(self._s, self.worker, name, entry, self._lease)


def _due(entry: Entry, now: datetime) -> bool:
    """Its retry delay (or a schedule's time) is over, or it has none."""
    return entry.not_before is None or entry.not_before <= now


def claim_task(state: State, worker: str, task_id: uuid.UUID, lease: float) -> Claim:
    """Claim one named queued task for ``worker`` (``claim_task.claim_task``'s twin): no
    retry delay or queue cap holds it back, an unfinished parent does."""
    s = state
    with s.lock:
        task = s.task(task_id)
        entry = s.entries.get(task_id)
        if task.status is TaskStatus.RUNNING:
            raise InvalidInput(
                f"task {task_id} is already running on {task.worker or 'a run by hand'}"
            )
        if task.status is TaskStatus.QUEUED and task.nodes > 1:
            raise InvalidInput(
                f"task {task_id} runs on {task.nodes} nodes at once: agents start it as a gang "
                "(`clearq agent` on as many machines); `clearq task run` runs one-node tasks"
            )
        if task.status is not TaskStatus.QUEUED or entry is None:
            raise InvalidInput(
                f"task {task_id} is {task.status}, not queued: enqueue it first "
                f"(`clearq task enqueue {task_id} --queue QUEUE`)"
            )
        waiting = _waiting_on(s, task_id)
        if waiting is not None:
            raise InvalidInput(
                f"task {task_id} waits for task {waiting.id} ({waiting.status}) to complete: "
                "run it once its parents have completed"
            )
        queue = s.queue_by_id(entry.queue_id)
        if entry.held_by is not None or queue is None:  # as the real store words a held entry
            raise InvalidInput(f"task {task_id} is being claimed by another worker right now")
        return _start(s, worker, queue.name, entry, lease)


def _waiting_on(s: State, task_id: uuid.UUID) -> Task | None:
    """A parent ``task_id`` still waits for, if any."""
    for parent_id, go_on in s.parents.get(task_id, {}).items():
        parent = s.tasks[parent_id]
        if parent.status is TaskStatus.COMPLETED:
            continue
        if go_on and parent.status in (TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.SKIPPED):
            continue
        return parent
    return None


def _start(s: State, worker: str, queue: str, entry: Entry, lease: float) -> Claim:
    """Take ``entry`` out of its queue and start the task's next attempt for ``worker``."""
    del s.entries[entry.task_id]
    task = s.task(entry.task_id)
    check_transition(task.id, task.status, TaskStatus.RUNNING)
    now = s.now()
    task = s.put(
        task,
        status=TaskStatus.RUNNING,
        worker=worker,
        attempt=task.attempt + 1,
        tries=task.tries + 1,
        started_at=now,
        finished_at=None,
        exit_code=None,
        stop_requested_at=None,
        status_reason="",
        lease_expires_at=now + timedelta(seconds=lease),
    )
    if entry.schedule_id is not None:
        fire(s, task.id, entry.schedule_id)
    return Claim(task_id=task.id, attempt=task.attempt, worker=worker, queue=queue)


class MemoryLeases:
    """Heartbeats, ends of attempts, stop requests and the reaper, in memory."""

    def __init__(self, state: State, *, lease_seconds: float, worker_gone_seconds: float) -> None:
        self._s = state
        self.lease_seconds = lease_seconds
        self._gone = worker_gone_seconds

    def heartbeat(
        self, worker: str | Sequence[str] | None, fences: Sequence[Fence] = ()
    ) -> Heartbeat:
        """Mark ``worker`` (one id or several) seen and extend the leases ``fences`` hold."""
        s = self._s
        held: dict[uuid.UUID, bool] = {}
        overtime: set[uuid.UUID] = set()
        reasons: dict[uuid.UUID, str] = {}
        with s.lock:
            now = s.now()
            s.mark_seen(
                {f.worker for f in fences if f.worker is not None} | set(worker_names(worker))
            )
            for f in fences:
                try:
                    task = s.hold(f)
                except LeaseLost:
                    continue
                s.tasks[task.id] = task.model_copy(
                    update={"lease_expires_at": now + timedelta(seconds=self.lease_seconds)}
                )
                held[task.id] = task.stop_requested_at is not None
                if held[task.id]:
                    reasons[task.id] = task.status_reason
                limit, started = task.max_run_seconds, task.started_at
                if (
                    limit is not None
                    and started is not None
                    and now - started > timedelta(seconds=limit)
                ):
                    overtime.add(task.id)
        return Heartbeat(
            held=frozenset(held),
            lost=frozenset(f.task_id for f in fences if f.task_id not in held),
            stop_requested=frozenset(t for t, stop in held.items() if stop),
            overtime=frozenset(overtime),
            stop_reasons=reasons,
        )

    def finish(
        self,
        fence: Fence,
        status: TaskStatus,
        *,
        exit_code: int | None = None,
        reason: str = "",
    ) -> None:
        """Record how an attempt ended, with what follows (as ``fenced.finish``)."""
        check_final(status)
        s = self._s
        with s.lock:
            task = s.hold(fence)
            charge(s, task)
            if status is TaskStatus.FAILED and self._retry(task, exit_code, reason):
                return
            s.put(
                task,
                status=status,
                exit_code=exit_code,
                status_reason=reason,
                finished_at=s.now(),
                lease_expires_at=None,
            )
            if status is TaskStatus.COMPLETED:
                if any(task.id in parents for parents in s.parents.values()):
                    s.notices.append(("clearq_enqueue", str(task.id)))
            else:
                s.skip_blocked()

    def _retry(self, task: Task, exit_code: int | None, reason: str) -> bool:
        s = self._s
        queue = s.queues.get(task.queue) if task.queue else None
        if queue is None or task.retries >= task.max_retries:
            return False
        check_transition(task.id, TaskStatus.RUNNING, TaskStatus.QUEUED)
        delay = (task.retry_delay_seconds or 0.0) * 2**task.retries
        why = f"retry {task.retries + 1} of {task.max_retries} after attempt {task.attempt}: "
        why += reason + (f" (waits {delay:g} s)" if delay else "")
        s.put(
            task,
            status=TaskStatus.QUEUED,
            status_reason=why,
            exit_code=exit_code,
            retries=task.retries + 1,
            tries=task.tries - 1,
            worker=None,
            lease_expires_at=None,
            stop_requested_at=None,
            queued_at=s.now(),
        )
        s.add_entry(task.id, queue.id, 0, front=True, delay=delay)
        return True

    def finish_many(self, results: Sequence[RunResult]) -> frozenset[uuid.UUID]:
        """Record several ended attempts; the tasks whose fence lost."""
        for r in results:
            check_final(r.status)
        lost: set[uuid.UUID] = set()
        for r in results:
            try:
                self.finish(r.fence, r.status, exit_code=r.exit_code, reason=r.reason)
            except LeaseLost:
                lost.add(r.fence.task_id)
        return frozenset(lost)

    def requeue(
        self, fence: Fence, *, reason: str, infra: bool = False, preempted: bool = False
    ) -> Task:
        """Give a running attempt back to the front of its queue, or fail it."""
        s = self._s
        with s.lock:
            task = s.hold(fence)
            if preempted and not reason.startswith("preempted: "):
                reason = "preempted: " + reason
            self._back_or_fail(task, reason, count_try=infra)
            if s.task(task.id).status is TaskStatus.FAILED:
                s.skip_blocked()
            return s.task(task.id)

    def _back_or_fail(self, task: Task, reason: str, *, count_try: bool) -> bool:
        s = self._s
        tries = task.tries if count_try else task.tries - 1
        queue = s.queues.get(task.queue) if task.queue else None
        if queue is not None and tries < task.max_attempts:
            check_transition(task.id, TaskStatus.RUNNING, TaskStatus.QUEUED)
            s.put(
                task,
                status=TaskStatus.QUEUED,
                status_reason=f"requeued after attempt {task.attempt}: {reason}",
                tries=tries,
                worker=None,
                lease_expires_at=None,
                stop_requested_at=None,
                queued_at=s.now(),
            )
            s.add_entry(task.id, queue.id, 0, front=True)
            return True
        check_transition(task.id, TaskStatus.RUNNING, TaskStatus.FAILED)
        if queue is None:
            why = f"worker lost: {reason}, and the task has no queue to go back to"
        else:
            why = f"worker lost: {reason}; all {task.max_attempts} attempts are spent"
        s.put(
            task,
            status=TaskStatus.FAILED,
            status_reason=why,
            lease_expires_at=None,
            finished_at=s.now(),
        )
        return False

    def request_stop(self, task_id: uuid.UUID, *, reason: str = "", force: bool = False) -> Task:
        """Ask the worker running a task to stop it (``force``: end the attempt now)."""
        why = f"stop requested: {reason}" if reason else "stop requested"
        s = self._s
        with s.lock:
            task = s.task(task_id)
            if task.status is not TaskStatus.RUNNING:
                queued = task.status is TaskStatus.QUEUED
                hint = "dequeue it instead" if queued else "nothing to stop"
                raise InvalidInput(f"task {task_id} is {task.status}, not running: {hint}")
            if force:
                fence = Fence(task_id=task_id, attempt=task.attempt, worker=task.worker)
                self.finish(fence, TaskStatus.STOPPED, reason=f"{why} (forced)")
                return s.task(task_id)
            task = s.put(
                task, stop_requested_at=task.stop_requested_at or s.now(), status_reason=why
            )
            s.notices.append(("clearq_stop", str(task_id)))
            return task

    def reap(self) -> ReapReport:
        """Requeue or fail running tasks whose lease expired; mark silent workers gone."""
        s = self._s
        requeued: list[uuid.UUID] = []
        failed: list[uuid.UUID] = []
        with s.lock:
            now = s.now()
            expired = [
                t
                for t in s.tasks.values()
                if t.status is TaskStatus.RUNNING
                and t.lease_expires_at is not None
                and t.lease_expires_at < now
            ]
            for task in sorted(expired, key=lambda t: t.lease_expires_at or now):
                who = f"worker {task.worker}" if task.worker else "the process running it"
                back = self._back_or_fail(task, f"{who} stopped renewing its lease", count_try=True)
                (requeued if back else failed).append(task.id)
            gone = []
            for wid, info in sorted(s.workers.items()):
                if info.state is WorkerState.ACTIVE and info.last_seen < now - timedelta(
                    seconds=self._gone
                ):
                    s.workers[wid] = info.model_copy(update={"state": WorkerState.GONE})
                    gone.append(wid)
            s.skip_blocked()
            active = sum(1 for i in s.workers.values() if i.state is WorkerState.ACTIVE)
        return ReapReport(
            requeued=tuple(requeued),
            failed=tuple(failed),
            workers_gone=tuple(gone),
            active_workers=active,
        )


class MemoryOutputs:
    """Logs and scalars of tasks, in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    def append_logs(self, fence: Fence, lines: Sequence[tuple[str, str]]) -> None:
        """Append (stream, text) pieces to the attempt's log, in order."""
        check_streams(lines)
        if not lines:
            return
        s = self._s
        with s.lock:
            s.hold(fence)
            for stream, text in lines:
                line = LogLine(
                    seq=next(s.ids), attempt=fence.attempt, at=s.now(), stream=stream, text=text
                )
                s.logs.append((fence.task_id, line))

    def append_scalars(self, fence: Fence, points: Sequence[ScalarPoint]) -> None:
        """Append reported values and fold them into the per-series summary."""
        if not points:
            return
        s = self._s
        with s.lock:
            s.hold(fence)
            s.scalars.extend((fence.task_id, fence.attempt, p, s.now()) for p in points)
            folded = summarise((p.title, p.series, p.iteration, p.value) for p in points)
            for (title, series), new in folded.items():
                key = (fence.task_id, title, series)
                old = s.summary.get(key)
                if old is None or old.attempt < fence.attempt:
                    s.summary[key] = Summary(fence.attempt, **new)
                    continue
                old.last, old.last_iteration = new["last"], new["last_iteration"]
                old.min, old.max = min(old.min, new["min"]), max(old.max, new["max"])

    def append_batch(
        self,
        fence: Fence,
        logs: Sequence[tuple[str, str]],
        points: Sequence[tuple[str, str, int, float]],
        *,
        plots: Sequence[PlotRow] = (),
        samples: Sequence[SampleRow] = (),
    ) -> None:
        """A run's batch of logs, scalars, plots and samples at once, fenced as one write."""
        check_streams(logs)
        check_rows(plots, samples)
        if not (logs or points or plots or samples):
            return
        with self._s.lock:  # re-entrant: the parts below hold it again
            self._s.hold(fence)
            self.append_logs(fence, logs)
            self.append_scalars(
                fence,
                [ScalarPoint(title=t, series=s, iteration=i, value=v) for t, s, i, v in points],
            )
            record_results(self._s, fence, plots, samples)

    def add_artifact(self, fence: Fence, artifact: Artifact) -> None:
        """Record an artifact of the attempt (by reference); the same name replaces it."""
        with self._s.lock:
            self._s.hold(fence)
            self._s.artifacts[(fence.task_id, artifact.name)] = artifact

    def artifacts(self, task_id: uuid.UUID) -> list[Artifact]:
        """The task's artifacts, by name."""
        with self._s.lock:
            found = [a for (t, _), a in self._s.artifacts.items() if t == task_id]
        return sorted(found, key=lambda a: a.name)

    def logs(
        self,
        task_id: uuid.UUID,
        *,
        after: int = 0,
        attempt: int | None = None,
        limit: int = 10_000,
    ) -> list[LogLine]:
        """Log pieces with ``seq`` above ``after``, oldest first."""
        with self._s.lock:
            found = [
                line
                for t, line in self._s.logs
                if t == task_id and line.seq > after and attempt in (None, line.attempt)
            ]
        return found[:limit]

    def scalars(
        self, task_id: uuid.UUID, *, title: str | None = None, series: str | None = None
    ) -> list[ScalarPoint]:
        """The values reported by the task's latest attempt, in report order."""
        with self._s.lock:
            latest = self._s.tasks[task_id].attempt if task_id in self._s.tasks else None
            return [
                p
                for t, attempt, p, _ in self._s.scalars
                if t == task_id
                and attempt == latest
                and title in (None, p.title)
                and series in (None, p.series)
            ]

    def summary(self, task_id: uuid.UUID) -> list[ScalarSummary]:
        """Last, min and max of each (title, series)."""
        with self._s.lock:
            rows = sorted((k, v) for k, v in self._s.summary.items() if k[0] == task_id)
        return [
            ScalarSummary(
                title=title,
                series=series,
                last=v.last,
                min=v.min,
                max=v.max,
                last_iteration=v.last_iteration,
            )
            for (_, title, series), v in rows
        ]
