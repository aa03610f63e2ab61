"""``clearq slurm``: a glue that runs clearq tasks as Slurm jobs.

Each pass reads Slurm's view first (``squeue``), then the store's, and makes them agree:

1. A task running under a Slurm job (worker ``host:slurm-<job id>``) whose job no longer
   holds its allocation lost its runner without a record: Slurm preempted the job (it is
   pending again, or ended ``PREEMPTED``), so the task goes back to the front of its
   queue as *preempted*; or Slurm killed it (cancelled, node failure, time limit), so it
   goes back as an infrastructure failure, which spends one of its attempts.
2. A job whose task is no longer its own (aborted or dequeued while pending, reset, run
   elsewhere, or put back in its queue by step 1) is cancelled (``scancel``). Jobs are
   submitted ``--no-requeue``: a preempted task goes back to its clearq queue and is
   submitted anew, instead of waiting in Slurm for the old job's delayed restart.
3. A hold whose job is over (cancelled by someone, failed before it could claim) is
   released: the task is the agents' again, and the next pass may submit it anew.
4. While fewer than ``max_jobs`` clearq jobs are in Slurm, the next entry of a served
   queue is held (``slurm:<job id>``) and submitted: ``sbatch`` of a fixed script that
   runs ``clearq task run ID`` in the job, which claims the held entry through the
   normal fenced claim. A pending job's Slurm reason is shown on its task. A gang task
   (``nodes`` = N) is one job of N Slurm tasks (``--ntasks``): ``srun`` starts
   ``clearq task run ID`` in each, and each joins the gang as one rank.

The store and Slurm are the only state: a glue that dies and restarts (or another glue)
picks up where it left. A running task is stopped by its runner, which sees the stop
request in its heartbeat; Slurm's own signals (preemption, ``scancel``) reach the runner
as SIGTERM and preempt the task, whose abort callback may checkpoint.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clearq.enums import TaskStatus
from clearq.errors import ClearqError, InvalidInput, LeaseLost, NotFound, StoreError
from clearq.runtime.slurmcli import Slurm, SlurmError, SlurmJob

if TYPE_CHECKING:  # `clearq slurm --help` reads this module's defaults without the store
    from clearq.scheduler.holds import HeldEntry, RunningUnder
    from clearq.scheduler.store import Store

log = logging.getLogger(__name__)

JOB_PREFIX = "clearq-"
HOLD_PREFIX = "slurm:"
SUBMITTING = "slurm:submitting"
WORKER_MARK = ":slurm-"
DEFAULT_POLL_SECONDS = 2.0
DEFAULT_MAX_JOBS = 10
PREEMPTED_STATES = frozenset({"PREEMPTED", "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"})
"""How a job stands after Slurm took its allocation back to run something else."""

# Fixed text, never built from a task's data: the task's command comes as arguments.
JOB_SCRIPT = """#!/bin/sh
# Written by `clearq slurm`: runs one clearq task in this job; the arguments are the
# command (`clearq task run ID ...`), named after the job so that the glue can find it.
exec "$@" --name "slurm-${SLURM_JOB_ID}"
"""
GANG_SCRIPT = """#!/bin/sh
# Written by `clearq slurm`: runs the ranks of one clearq gang task in this allocation,
# one `clearq task run ID` per Slurm task (the first argument names clearq-rank.sh).
exec srun "$@"
"""
RANK_SCRIPT = """#!/bin/sh
# Written by `clearq slurm`: one rank of a gang task, named after its job and Slurm task.
exec "$@" --name "slurm-${SLURM_JOB_ID}-${SLURM_PROCID}"
"""


@dataclass(frozen=True)
class GlueOptions:
    """How the glue submits (the ``clearq slurm`` flags)."""

    queues: tuple[str, ...]
    command: tuple[str, ...]
    """The ``clearq`` command to run in a job, up to (not including) ``task run``."""
    folder: Path
    """Where the job script and the jobs' output files go (seen by the compute nodes)."""
    partition: str | None = None
    max_jobs: int = DEFAULT_MAX_JOBS
    sbatch_args: tuple[str, ...] = ()
    run_args: tuple[str, ...] = ()
    """Options for ``clearq task run`` in the job (``--skip-env``, ``--docker IMAGE``)."""
    poll_seconds: float = DEFAULT_POLL_SECONDS
    job_env: tuple[tuple[str, str], ...] = ()
    """The environment jobs are submitted with (Slurm passes it on to them)."""


@dataclass
class PassReport:
    """What one pass did."""

    submitted: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    requeued: list[uuid.UUID] = field(default_factory=list)
    released: list[uuid.UUID] = field(default_factory=list)


def job_name(task_id: uuid.UUID) -> str:
    """The Slurm job name of a task's job."""
    return f"{JOB_PREFIX}{task_id}"


def task_of(job: SlurmJob) -> uuid.UUID | None:
    """The task a clearq job runs, from its name; None for any other job."""
    if not job.name.startswith(JOB_PREFIX):
        return None
    try:
        return uuid.UUID(job.name.removeprefix(JOB_PREFIX))
    except ValueError:
        return None


class SlurmGlue:
    """Takes tasks from clearq queues and runs each as a Slurm job."""

    def __init__(self, store: Store, slurm: Slurm, options: GlueOptions) -> None:
        if not options.queues:
            raise InvalidInput("clearq slurm needs at least one queue: give --queue")
        if options.max_jobs < 1:
            raise InvalidInput(f"--max-jobs must be at least 1, not {options.max_jobs}")
        for name in options.queues:
            store.queues.get(name)  # NotFound naming the fix
        self._store = store
        self._slurm = slurm
        self._options = options
        self._stop = threading.Event()
        options.folder.mkdir(parents=True, exist_ok=True)
        self._script = _script(options.folder / "clearq-task.sh", JOB_SCRIPT)
        self._gang_script = _script(options.folder / "clearq-gang.sh", GANG_SCRIPT)
        self._rank_script = _script(options.folder / "clearq-rank.sh", RANK_SCRIPT)

    def request_stop(self) -> None:
        """End the loop after the current pass (signal-safe); jobs keep running."""
        self._stop.set()

    def run(self) -> None:
        """Pass after pass until stopped; a failing pass is logged and retried."""
        while not self._stop.is_set():
            try:
                self.pass_once()
            except (SlurmError, StoreError) as e:
                log.warning("clearq slurm: this pass failed, retrying: %s", e)
            self._stop.wait(self._options.poll_seconds)

    def pass_once(self) -> PassReport:
        """One reconciliation of Slurm's jobs with the store, then submissions."""
        report = PassReport()
        jobs = {job.job_id: job for job in self._slurm.jobs() if task_of(job) is not None}
        # Holds before running tasks: a claim in between moves a task from the first to
        # the second, so that no task the jobs hold is missed by both.
        held = {e.task_id: e for e in self._store.holds.held(HOLD_PREFIX)}
        running = self._store.holds.running_under(WORKER_MARK)
        for task in running:
            self._check_running(task, jobs, report)
        mine = {r.fence.task_id: r for r in running}
        active = 0
        for job in jobs.values():
            if job.active and self._check_job(job, held, mine, report):
                active += 1
        for entry in held.values():
            self._check_hold(entry, jobs, report)
        self._submit(self._options.max_jobs - active, report)
        return report

    # ---- reconciliation ---------------------------------------------------------------

    def _check_running(
        self, task: RunningUnder, jobs: dict[str, SlurmJob], report: PassReport
    ) -> None:
        job_id = job_of_worker(task.runner)
        job = jobs.get(job_id)
        if job is not None and job.running:
            return
        state = job.state if job is not None else "gone from squeue"
        preempted = job is not None and job.state in PREEMPTED_STATES
        why = (
            f"Slurm job {job_id} ended {state}"
            if not preempted
            else f"Slurm preempted job {job_id}"
        )
        try:
            self._store.leases.requeue(
                task.fence, reason=why, infra=not preempted, preempted=preempted
            )
        except LeaseLost:
            return  # its runner recorded the end after all
        log.info("clearq slurm: task %s back in its queue: %s", task.fence.task_id, why)
        report.requeued.append(task.fence.task_id)

    def _check_job(
        self,
        job: SlurmJob,
        held: dict[uuid.UUID, HeldEntry],
        running: dict[uuid.UUID, RunningUnder],
        report: PassReport,
    ) -> bool:
        """Keep, adopt or cancel an active job; True when it counts as one of this store's."""
        task_id = task_of(job)
        assert task_id is not None
        holder = HOLD_PREFIX + job.job_id
        mark = WORKER_MARK + job.job_id
        entry = held.get(task_id)
        if entry is not None and entry.holder == holder:
            self._note(task_id, holder, job)
            return True
        run = running.get(task_id)
        runs_here = run is not None and job_of_worker(run.runner) == job.job_id
        if runs_here and (job.running or task_id not in report.requeued):
            return True  # its runner has the task (or is recording how it ended)
        try:
            task = self._store.tasks.get(task_id)
        except NotFound:
            return False  # a job of another store's task (another clearq under this user)
        if (task.worker or "").endswith(mark) and (
            task.status is TaskStatus.RUNNING or (job.running and task.status.is_final)
        ):
            return True  # claimed since the holds were read, or recorded and on its way out
        if job.running and self._ranks_here(task_id, job):
            return True  # a gang whose ranks run in this job (or are joining)
        if job.state != "COMPLETING":  # a job that is ending needs no cancel
            self._cancel(job, f"task {task_id} is no longer this job's", report)
        return False

    def _ranks_here(self, task_id: uuid.UUID, job: SlurmJob) -> bool:
        ranks = f"{WORKER_MARK}{job.job_id}-"
        return any(ranks in worker for _, worker, _ in self._store.gangs.members(task_id))

    def _check_hold(self, entry: HeldEntry, jobs: dict[str, SlurmJob], report: PassReport) -> None:
        job = jobs.get(entry.holder.removeprefix(HOLD_PREFIX))
        if job is not None and job.active and job.job_id not in report.cancelled:
            return
        if self._store.holds.release(entry.task_id, entry.holder):
            state = job.state if job is not None else "gone"
            log.info("clearq slurm: released task %s (job %s)", entry.task_id, state)
            report.released.append(entry.task_id)

    def _note(self, task_id: uuid.UUID, holder: str, job: SlurmJob) -> None:
        if job.state == "PENDING":
            text = f"pending in Slurm job {job.job_id}: {job.reason}"
        else:
            text = f"starting in Slurm job {job.job_id} ({job.state})"
        self._store.holds.note(task_id, holder, text)

    def _cancel(self, job: SlurmJob, why: str, report: PassReport) -> None:
        log.info("clearq slurm: cancelling job %s: %s", job.job_id, why)
        self._slurm.cancel(job.job_id)
        report.cancelled.append(job.job_id)

    # ---- submission ---------------------------------------------------------------------

    def _submit(self, room: int, report: PassReport) -> None:
        for _ in range(max(room, 0)):
            task_id = self._next_task()
            if task_id is None:
                return
            try:
                job_id = self._sbatch(task_id)
            except SlurmError:
                self._store.holds.release(task_id, SUBMITTING)
                raise
            self._store.holds.rehold(task_id, HOLD_PREFIX + job_id, was=SUBMITTING)
            self._store.holds.note(
                task_id, HOLD_PREFIX + job_id, f"submitted as Slurm job {job_id}"
            )
            log.info("clearq slurm: task %s submitted as job %s", task_id, job_id)
            report.submitted.append((task_id, job_id))

    def _next_task(self) -> uuid.UUID | None:
        for queue in self._options.queues:
            task_id = self._store.holds.hold_next(queue, SUBMITTING)
            if task_id is not None:
                return task_id
        return None

    def _sbatch(self, task_id: uuid.UUID) -> str:
        o = self._options
        options = ["--no-requeue"]  # a preempted task comes back through its clearq queue
        if o.partition:
            options.append(f"--partition={o.partition}")
        options.extend(o.sbatch_args)
        command = [*o.command, "task", "run", str(task_id), *o.run_args]
        script = self._script
        nodes = self._store.tasks.get(task_id).nodes
        if nodes > 1:  # one allocation, a rank per Slurm task (srun)
            options.append(f"--ntasks={nodes}")
            script, command = self._gang_script, [str(self._rank_script), *command]
        return self._slurm.submit(
            script,
            command,
            name=job_name(task_id),
            output=str(o.folder / "%j.out"),
            options=options,
            env=dict(o.job_env) if o.job_env else None,
        )


def check_command(command: Sequence[str]) -> tuple[str, ...]:
    """The clearq command for jobs; an error when it names nothing runnable."""
    if not command or not Path(command[0]).is_file():
        raise ClearqError(
            f"cannot find the clearq command to run in jobs ({' '.join(command) or 'none'}): "
            "give --clearq PATH, a path the compute nodes can run"
        )
    return tuple(command)


def job_of_worker(worker: str) -> str:
    """The Slurm job id in a runner's worker name (``host:slurm-12``, ``host:slurm-12-0``)."""
    return worker.rsplit(WORKER_MARK, 1)[-1].split("-", 1)[0]


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path
