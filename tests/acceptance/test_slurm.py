"""``clearq slurm`` against a real single-machine Slurm: submit, show, cancel, preempt.

The glue runs as the user runs it (``clearq slurm`` in a subprocess), except where a test
needs one pass at a time (``SlurmGlue.pass_once``); jobs run ``clearq task run ID`` in
Slurm. The machine's Slurm (``.ci/slurm-up``) has one node and two partitions: ``debug``
and ``urgent``, whose jobs preempt debug's (REQUEUE).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.models import HistoryMark, TaskStatus
from clearq.runtime.slurm import GlueOptions, SlurmGlue
from clearq.runtime.slurmcli import Slurm
from clearq.scheduler import Store
from tests import forkserver
from tests.acceptance.conftest import CLEARQ, Cli
from tests.acceptance.test_task_run import steps_done, train_task, wait_for_marks
from tests.conftest import on_one_database
from tests.slurmcluster import cancel_jobs_of, ensure_slurm

WAIT_SECONDS = 120
GLUE = (str(CLEARQ), "slurm", "--run-arg=--skip-env", "--poll", "0.5")
URGENT_JOB = (
    "sbatch",
    "--parsable",
    "--partition=urgent",
    "--cpus-per-task=2",
    "--job-name=urgent-test",
    "--output=/dev/null",
)


@pytest.fixture(scope="module")
def slurm() -> Slurm:
    ensure_slurm()
    return Slurm()


class Glue:
    """``clearq slurm`` subprocesses of one test, stopped (and their jobs cancelled) at its end."""

    def __init__(self, cli: Cli, store: Store, folder: Path) -> None:
        self._cli, self._store, self.folder = cli, store, folder
        self.procs: list[forkserver.Process] = []

    def start(self, *args: str) -> forkserver.Process:
        with (self.folder.parent / f"glue-{len(self.procs)}.log").open("wb") as log:
            proc = forkserver.spawn(
                [*GLUE, "--folder", str(self.folder), *args],
                env=self._cli.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=30)
        cancel_jobs_of([str(t.id) for t in self._store.tasks.list(limit=1000)])


@pytest.fixture
def glue(slurm: Slurm, cli: Cli, store: Store, tmp_path: Path) -> Iterator[Glue]:
    running = Glue(cli, store, tmp_path / "slurm")
    yield running
    running.stop()


def wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def job_of(task: object) -> str:
    worker = getattr(task, "worker", None) or ""
    host, _, name = worker.partition(":")
    assert host == socket.gethostname()
    assert name.startswith("slurm-")
    return name.removeprefix("slurm-")


def status(store: Store, task_id: uuid.UUID) -> TaskStatus:
    return store.tasks.get(task_id).status


@on_one_database("postgres")
def test_queued_tasks_run_as_slurm_jobs(store: Store, glue: Glue, tmp_path: Path) -> None:
    store.queues.create("q")
    ids = [train_task(store, "q", tmp_path / f"marks{i}") for i in range(3)]
    glue.start("-q", "q", "--max-jobs", "2")
    for task_id in ids:
        wait_until(lambda t=task_id: status(store, t) is TaskStatus.COMPLETED, f"{task_id} done")
    jobs = [job_of(store.tasks.get(t)) for t in ids]
    assert len(set(jobs)) == 3
    for task_id, job in zip(ids, jobs, strict=True):
        assert store.tasks.get(task_id).tries == 1
        out = (glue.folder / f"{job}.out").read_text()
        assert f"task {task_id} completed" in out
        assert steps_done(tmp_path / f"marks{ids.index(task_id)}") == [(1, 0), (1, 1), (1, 2)]


@on_one_database("sqlite")
def test_pending_jobs_show_on_their_tasks_and_an_abort_cancels_the_job(
    slurm: Slurm, store: Store, glue: Glue, tmp_path: Path
) -> None:
    store.queues.create("q")
    ids = [train_task(store, "q", tmp_path / f"m{i}") for i in range(3)]
    options = GlueOptions(
        queues=("q",),
        command=(str(CLEARQ),),
        folder=glue.folder,
        max_jobs=2,
        sbatch_args=("--begin=now+3600",),  # pending in Slurm until the test ends
        run_args=("--skip-env",),
    )
    one = SlurmGlue(store, slurm, options)
    first = one.pass_once()
    assert [t for t, _ in first.submitted] == ids[:2]  # in queue order, at most 2
    assert all(status(store, t) is TaskStatus.QUEUED for t in ids)
    assert one.pass_once().submitted == []
    job = dict(first.submitted)[ids[0]]
    assert store.tasks.get(ids[0]).status_reason == f"pending in Slurm job {job}: BeginTime"
    # An agent cannot claim what Slurm holds: the third task is the only one it sees.
    assert [c.task_id for c in store.claimer("host:agent", ["q"]).claim(5)] == [ids[2]]
    store.queues.dequeue(ids[0])  # what `clearq task abort` does to a queued task
    second = one.pass_once()
    assert second.cancelled == [job]
    states = {j.job_id: j.state for j in slurm.jobs()}
    assert states[job] == "CANCELLED"
    assert status(store, ids[0]) is TaskStatus.CREATED


@on_one_database("sqlite")
def test_slurm_cancelling_a_running_job_preempts_its_task_which_resumes(
    store: Store, glue: Glue, tmp_path: Path
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks"
    task_id = train_task(store, "q", marks, steps=100, step_seconds=0.05)
    glue.start("-q", "q")
    wait_for_marks(marks, 3)
    job = job_of(store.tasks.get(task_id))
    subprocess.run(["scancel", job], check=True)  # Slurm: SIGTERM, then SIGKILL
    wait_until(lambda: status(store, task_id) is TaskStatus.COMPLETED, "the resumed run")
    task = store.tasks.get(task_id)
    assert task.tries == 1  # the preemption spent no attempt
    history = [(e.status, e.attempt) for e in store.tasks.history(task_id)]
    assert (HistoryMark.PREEMPTED, 1) in history
    first = [s for a, s in steps_done(marks) if a == 1]
    second = [s for a, s in steps_done(marks) if a == 2]
    assert second[0] >= first[-1]  # resumed from the checkpoint, not from step 0
    assert second[-1] == 99
    assert job_of(task) != job


@on_one_database("postgres")
def test_a_job_killed_outright_puts_its_task_back_as_an_infrastructure_failure(
    store: Store, glue: Glue, tmp_path: Path
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks"
    task_id = train_task(store, "q", marks, steps=60, step_seconds=0.05, hook=False)
    glue.start("-q", "q")
    wait_for_marks(marks, 3)
    task = store.tasks.get(task_id)
    job = job_of(task)
    # The runner dies without a word (the OOM killer, a crashed node): Slurm ends the job.
    assert task.worker is not None
    os.kill(store.workers.get(task.worker).pid or 0, signal.SIGKILL)
    wait_until(lambda: status(store, task_id) is TaskStatus.COMPLETED, "the second run")
    task = store.tasks.get(task_id)
    assert (task.attempt, task.tries) == (2, 2)  # a lost runner spends an attempt
    reasons = [e.reason for e in store.tasks.history(task_id) if e.status is TaskStatus.QUEUED]
    assert any(f"Slurm job {job} ended" in r for r in reasons), reasons


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_higher_priority_partition_preempts_the_job_and_slurm_requeues_it(
    store: Store, glue: Glue, tmp_path: Path
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks"
    # The first attempt lasts until Slurm preempts it (a scheduler pass, then the partition's
    # grace), however slow the machine; the requeued one finishes at once.
    task_id = train_task(store, "q", marks, steps=2000, step_seconds=0.05, slow_attempts=1)
    glue.start("-q", "q", "--partition", "debug", "--sbatch-arg=--cpus-per-task=2")
    wait_for_marks(marks, 3)
    urgent = subprocess.run(
        [*URGENT_JOB, f"--wrap={sys.executable} -c 'import time; time.sleep(1)'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        wait_until(
            lambda: HistoryMark.PREEMPTED in [e.status for e in store.tasks.history(task_id)],
            "Slurm's preemption of the job",
        )
        wait_until(lambda: status(store, task_id) is TaskStatus.COMPLETED, "the requeued run")
    finally:
        subprocess.run(["scancel", urgent], check=False)
    task = store.tasks.get(task_id)
    assert task.tries == 1
    assert HistoryMark.PREEMPTED in [e.status for e in store.tasks.history(task_id)]
    assert [a for a, _ in steps_done(marks)][-1] == 2


@on_one_database("sqlite")
def test_a_gang_task_runs_as_one_allocation_with_a_rank_per_slurm_task(
    store: Store, glue: Glue, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from tests.acceptance.test_gangs import gang_task, logs_of, marks_of

    store.queues.create("q")
    marks = tmp_path / "marks"
    task_id = gang_task(store, 2, marks)
    glue.start("-q", "q")
    wait_until(lambda: status(store, task_id) is TaskStatus.COMPLETED, "the gang's all-reduce")
    logs = logs_of(store, task_id)
    assert "[rank 0] all-reduce: 3\n" in logs
    assert "[rank 1] all-reduce: 3\n" in logs
    workers = [worker for _, worker, _ in store.gangs.members(task_id)]
    jobs = {w.rsplit(":slurm-", 1)[1].split("-")[0] for w in workers}
    assert len(jobs) == 1  # both ranks in one Slurm job
    [job] = jobs
    assert sorted(w.rsplit("-", 1)[1] for w in workers) == ["0", "1"]  # SLURM_PROCID
    out = glue.folder / f"{job}.out"
    for rank in (0, 1):  # each rank's runner prints its end as it exits, after the task's
        line = f"task {task_id} (rank {rank} of 2) completed"
        wait_until(lambda line=line: line in out.read_text(), f"rank {rank}'s end in {out}")
    assert len(marks_of(marks)) == 2


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_gang_job_whose_runners_die_puts_the_gang_back(
    store: Store, glue: Glue, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from tests.acceptance.test_gangs import gang_task, marks_of

    store.queues.create("q")
    marks = tmp_path / "marks"
    # Rank 1 of attempt 1 hangs; rank 0 gives up on it after 10 s (gloo's timeout).
    task_id = gang_task(store, 2, marks, hang=True, timeout=10)
    glue.start("-q", "q")
    wait_until(lambda: len(marks_of(marks)) == 2, "both ranks of attempt 1")
    runners = [w for _, w, _ in store.gangs.members(task_id)]
    for runner in runners:  # both runners die without a word: Slurm ends the job
        os.kill(store.workers.get(runner).pid or 0, signal.SIGKILL)
    wait_until(lambda: status(store, task_id) is TaskStatus.COMPLETED, "attempt 2")
    task = store.tasks.get(task_id)
    assert (task.attempt, task.tries) == (2, 2)  # lost runners spend an attempt
    job = runners[0].rsplit(":slurm-", 1)[1].split("-")[0]
    reasons = [e.reason for e in store.tasks.history(task_id) if e.status is TaskStatus.QUEUED]
    assert any(f"Slurm job {job} ended" in r for r in reasons), reasons
