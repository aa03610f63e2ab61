"""Run one named task here, now: ``clearq task run ID``, the hook of outside launchers.

The task is claimed out of its queue by the same fenced claim as an agent's (an agent
racing for it gets all of it or nothing), under a worker of this process's own; a
heartbeat thread renews its lease and passes stop requests, lost leases and overruns to
the run, exactly as an agent's does; the :class:`Executor` runs it with the options an
agent would give it (workspace, environment or Docker). A signal to this process from
outside (Slurm preempting the job, a spot notice, Ctrl-C) preempts the run: the task gets
SIGTERM and its grace period, its abort callbacks checkpoint, and it goes back to the
front of its queue without spending an attempt.

The process's exit code says how the task ended, as ``clearq agent --once``'s does
(:class:`clearq.runtime.exits.OnceExit`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from clearq.errors import InvalidInput, LeaseLost, StoreError
from clearq.models import Claim, TaskStatus
from clearq.ports import GangPort, OneTaskStore
from clearq.runtime.executor import Control, Executor, Outcome
from clearq.runtime.exits import OnceExit
from clearq.runtime.gangs import GangClaimer, machine_address

log = logging.getLogger(__name__)

BEAT_SECONDS = 1.0


@dataclass(frozen=True)
class RunEnd:
    """How a run of one named task ended, and the exit code that says it."""

    claim: Claim
    outcome: Outcome
    recorded: bool

    @property
    def exit_code(self) -> int:
        """As ``clearq agent --once``: 0 completed, 3 failed, 4 stopped, 5 requeued, 6 lost."""
        if not self.recorded:
            return OnceExit.LOST
        if self.outcome.requeue or self.outcome.status is None:
            return OnceExit.REQUEUED
        return OnceExit.for_status(self.outcome.status)


def run_worker_id(name: str | None) -> str:
    """``host:NAME``; without a name, ``host:run-<pid>`` (unique on the machine)."""
    return f"{socket.gethostname()}:{name or f'run-{os.getpid()}'}"


class TaskRunner:
    """Claims one named task for ``worker`` and runs it to its end."""

    def __init__(
        self,
        store: OneTaskStore,
        executor: Executor,
        *,
        worker: str,
        gpus: Sequence[str] | None = None,
        gangs: GangPort | None = None,
    ) -> None:
        self._store = store
        self._gang_port = gangs
        self._stopping = threading.Event()
        self._gangs = None
        if gangs is not None:
            settings = store.settings
            self._gangs = GangClaimer(
                gangs,
                wait_seconds=settings.gang_wait_seconds,
                address=machine_address(settings.agent_address),
                stopping=self._stopping,
            )
        self._executor = executor
        self.worker = worker
        self._gpus = tuple(gpus) if gpus is not None else None
        self._control = Control()
        self._preempted: str | None = None
        self._done = threading.Event()

    def preempt(self, reason: str) -> None:
        """Interrupt the run from outside: it goes back to its queue (signal-safe)."""
        self._preempted = reason
        self._stopping.set()
        self._control.requeue(reason)

    def run(self, task_id: uuid.UUID) -> RunEnd:
        """Claim ``task_id`` (InvalidInput when it cannot be), run it, record its end."""
        claim = self._claim(task_id)
        self._store.workers.register(
            self.worker,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=(claim.queue,),
            gpus=list(self._gpus or ()),
        )
        beat = threading.Thread(
            target=self._beat_loop, args=(claim,), name="clearq-heartbeat", daemon=True
        )
        beat.start()
        try:
            outcome = self._outcome(claim)
            recorded = record_outcome(self._store, claim, outcome, self._gang_port)
        finally:
            self._done.set()
            beat.join(timeout=5)
            self._unregister()
        return RunEnd(claim, outcome, recorded)

    def _claim(self, task_id: uuid.UUID) -> Claim:
        """The task's claim; for a gang task, this process's rank once all ranks joined."""
        if self._gangs is None or self._store.tasks.get(task_id).nodes == 1:
            return self._store.claim_task(self.worker, task_id)
        claim = self._gangs.claim_task(self.worker, task_id)
        if claim is None:
            raise InvalidInput(
                f"task {task_id} did not start: no free rank, or its other ranks did not "
                "join in time (CLEARQ_GANG_WAIT_SECONDS)"
            )
        return claim

    def _outcome(self, claim: Claim) -> Outcome:
        try:
            outcome = self._executor.run(claim, self._control, self._gpus)
        except Exception as e:  # noqa: BLE001 - the attempt must be recorded whatever broke
            outcome = Outcome(TaskStatus.FAILED, None, f"runner error: {type(e).__name__}: {e}")
        if self._preempted is not None and outcome.status is TaskStatus.FAILED:
            # The launcher signalled the task's processes too (Slurm signals the whole
            # job): it died of the preemption, not of its own failure.
            return Outcome(None, outcome.exit_code, self._preempted, requeue=True, preempted=True)
        return outcome

    def _beat_loop(self, claim: Claim) -> None:
        while not self._done.wait(min(BEAT_SECONDS, self._store.settings.lease_seconds / 3)):
            try:
                beat = self._store.leases.heartbeat(self.worker, [claim.fence])
            except StoreError as e:
                log.warning("cannot renew the lease of task %s: %s", claim.task_id, e)
                continue
            if claim.task_id in beat.lost:
                self._control.lose()
            elif claim.task_id in beat.stop_requested:
                self._control.stop(beat.stop_reasons.get(claim.task_id) or "stop requested")
            elif claim.task_id in beat.overtime:
                limit = self._store.tasks.get(claim.task_id).max_run_seconds or 0.0
                self._control.stop(f"ran longer than its maximum of {limit:g} s")

    def _unregister(self) -> None:
        try:
            self._store.workers.unregister(self.worker)
        except StoreError as e:
            log.warning("could not unregister %s: %s", self.worker, e)


def record_outcome(
    store: OneTaskStore, claim: Claim, outcome: Outcome, gangs: GangPort | None = None
) -> bool:
    """Record how an attempt ended; False when it was no longer ``claim``'s to record.

    A gang's rank that completes ends the task only as its last rank; a rank that fails
    says which it was.
    """
    fence = claim.fence
    gang = claim.gang
    if gang is not None and outcome.reason:
        outcome = replace(outcome, reason=f"rank {gang.rank} of {gang.size}: {outcome.reason}")
    try:
        if (
            gang is not None
            and gangs is not None
            and outcome.status is TaskStatus.COMPLETED
            and not gangs.complete_rank(fence, gang.rank)
        ):
            log.info("task %s: rank %d completed; the others run on", claim.task_id, gang.rank)
            return True
        if outcome.requeue:
            store.leases.requeue(
                fence, reason=outcome.reason, infra=outcome.infra, preempted=outcome.preempted
            )
            log.info("task %s requeued: %s", claim.task_id, outcome.reason)
        elif outcome.status is not None:
            store.leases.finish(
                fence, outcome.status, exit_code=outcome.exit_code, reason=outcome.reason
            )
            log.info("task %s %s %s", claim.task_id, outcome.status, outcome.reason)
        else:
            log.warning("task %s is no longer this run's: %s", claim.task_id, outcome.reason)
            return False
    except LeaseLost as e:
        log.warning("task %s: %s", claim.task_id, e)
        return False
    return True
