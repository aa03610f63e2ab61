"""What a ``Task`` is to this process, chosen once when the Task is made.

A :class:`~clearq.sdk.task.Task` is a record in the store; what differs is whether
this process runs it, and how:

- :class:`Stored` -- a task found, made or cloned here; nothing of it runs in this
  process. ``connect`` and ``set_parameters`` change the draft's parameters; it has no
  logger output, no artifacts to upload and nothing to send to a queue.
- :class:`LocalRun` -- ``Task.init`` run by hand: this process owns the attempt.
  Parameters are written through the run's fence; ``execute_remotely`` gives the task
  to a queue and stops here.
- :class:`AgentRun` -- ``Task.init`` under an agent: the agent owns the attempt.
  ``connect`` and argparse receive the stored values (overrides included) instead of
  recording their own; ``execute_remotely`` does nothing.

Each role answers the few questions on which those differ; ``Task``'s methods ask them
and never branch on the kind of run themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from clearq.enums import TaskStatus
from clearq.errors import InvalidInput
from clearq.sdk import parameters as params
from clearq.sdk.preemption import AbortHandler

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from clearq.models import Fence
    from clearq.sdk.console import ConsoleCapture
    from clearq.sdk.reporter import Reporter
    from clearq.sdk.run import Run
    from clearq.sdk.task import Task


class Stored:
    """A task with no run in this process."""

    run: Run | None = None
    """This process's run of the task, when it has one."""

    def write_parameters(self, task: Task, flat: dict[str, str]) -> None:
        """Merge ``flat`` into the task's parameters (a draft's)."""
        task._remember(task._records.update_parameters(task._id, flat))

    def connect(self, task: Task, values: MutableMapping[str, Any], section: str) -> None:
        """Record the connected values as the task's parameters."""
        self.write_parameters(task, params.flatten(values, section))

    def configuration(self, key: str) -> str | None:
        """The stored text of a connected configuration file, when the run is handed it."""
        return None

    def replace_parameters(self, task: Task, kept: dict[str, str]) -> None:
        """Make ``kept`` the draft's whole parameters (what is left after a deletion)."""
        task._remember(task._store.tasks.update_parameters(task._id, kept, replace=True))

    @property
    def iteration_offset(self) -> int:
        """What is added to every iteration this process's run reports (none runs here)."""
        return 0

    def set_iteration_offset(self, offset: int) -> None:
        """Add ``offset`` to every iteration the run reports from now on."""
        raise InvalidInput("the initial iteration is set by the task's own run")

    def uploading_run(self, task: Task) -> Run:
        """The run whose artifacts this process uploads."""
        raise InvalidInput("artifacts are uploaded by the task's own run (after Task.init)")

    def own_run(self, task: Task) -> Run:
        """This process's run of ``task``: only its own run reports."""
        raise InvalidInput(f"task {task.id} is not run by this process: only its own run reports")

    def reporter(self, task: Task) -> Reporter:
        """The reporter of this process's run of ``task``."""
        return self.own_run(task).reporter

    def model_run(self, task: Task) -> Run:
        """The run whose output models this process stores (``OutputModel``)."""
        raise InvalidInput("an OutputModel belongs to the task this process runs (Task.init)")

    @property
    def takes_reports(self) -> bool:
        """Whether a run here still takes what the script reports (captured frameworks)."""
        return False

    @property
    def output_root(self) -> str | None:
        """Where this process's run puts its files, when it has a run."""
        return None

    @property
    def console(self) -> ConsoleCapture | None:
        """The console tee of this process's run, when it has one."""
        return None

    def flush(self) -> None:
        """Write what this process's run reported so far (nothing to write here)."""

    def settle_code(self, *, raise_error: bool = True) -> None:
        """Wait until this process's run has recorded its captured code (none runs here)."""

    def fence(self, task: Task) -> Fence:
        """The attempt this process runs, for the writes only a run makes (artifacts)."""
        raise InvalidInput("artifacts are uploaded by the task's own run (after Task.init)")

    def execute_remotely(
        self, task: Task, queue_name: str | None, clone: bool, exit_process: bool
    ) -> Task | None:
        """Let an agent run the task this process runs (``Task.execute_remotely``)."""
        raise InvalidInput("execute_remotely is for the task this process runs")

    def register_abort(self, callback: Callable[[], object] | None, timeout: float) -> None:
        """Run ``callback`` when this process's run is stopped from outside (SIGTERM)."""
        raise InvalidInput("abort callbacks are for the task this process runs")

    def monitor_resources(self) -> None:
        """Report the machine's CPU and memory while this process's run lasts."""
        raise InvalidInput("resource monitoring is for the task this process runs")

    def launch_multi_node(self, task: Task, total_num_nodes: int, queue: str) -> dict[str, Any]:
        """Run the task as a gang of ``total_num_nodes`` ranks (outside any gang)."""
        raise InvalidInput("launch_multi_node is for the task this process runs (Task.init)")

    def end(self) -> None:
        """End this process's run (nothing runs here)."""


class LocalRun(Stored):
    """This process's run of a task it started by hand: it owns the attempt."""

    def __init__(self, run: Run) -> None:
        self.run: Run = run

    def own_run(self, task: Task) -> Run:
        """This process's run."""
        return self.run

    def model_run(self, task: Task) -> Run:
        """This process's run: it stores the output models."""
        return self.run

    @property
    def takes_reports(self) -> bool:
        """Until the run has ended."""
        return not self.run.ended

    @property
    def output_root(self) -> str | None:
        """The run's output location."""
        return self.run.output_root

    def replace_parameters(self, task: Task, kept: dict[str, str]) -> None:
        """Refused: a run's parameters only grow (its fence writes merge)."""
        raise InvalidInput("a running task's user properties can be set, not deleted")

    @property
    def iteration_offset(self) -> int:
        """What the run's reporter adds to every iteration."""
        return self.run.reporter.iteration_offset

    def set_iteration_offset(self, offset: int) -> None:
        """Add ``offset`` to every iteration the run reports from now on."""
        self.run.reporter.iteration_offset = offset

    def uploading_run(self, task: Task) -> Run:
        """This process's run: it uploads the artifacts."""
        return self.run

    def write_parameters(self, task: Task, flat: dict[str, str]) -> None:
        """Merge ``flat`` into the running task's parameters, through the run's fence."""
        self.run.link.update_parameters(self.run.fence, flat)
        task._forget()  # read again when asked

    @property
    def console(self) -> ConsoleCapture | None:
        """The run's console tee, when it captures the console."""
        return self.run.console

    def flush(self) -> None:
        """Write what the run reported so far, now."""
        self.run.reporter.flush()

    def settle_code(self, *, raise_error: bool = True) -> None:
        """Wait until the run's code is captured and recorded; raise the capture's error
        (unless ``raise_error=False``)."""
        self.run.settle_code(raise_error=raise_error)

    def fence(self, task: Task) -> Fence:
        """The run's attempt, as the store's Fence."""
        from clearq.models import Fence

        f = self.run.fence
        return Fence(task_id=f.task_id, attempt=f.attempt, worker=f.worker)

    def execute_remotely(
        self, task: Task, queue_name: str | None, clone: bool, exit_process: bool
    ) -> Task | None:
        """Give the task to ``queue_name`` (or leave it a draft), or send a clone; stop here.

        ``clone=True`` sends a clone instead (returned) and, with ``exit_process=False``,
        this run goes on; ``exit_process=False`` needs ``clone=True``.
        """
        if not clone and not exit_process:
            raise InvalidInput(
                "execute_remotely(clone=False, exit_process=False) cannot work: this run "
                "gives its task away; pass clone=True to keep running here"
            )
        task.flush(wait_for_uploads=True)
        self.settle_code()  # the agent runs what the capture recorded
        if clone:
            return self._send_clone(task, queue_name, exit_process)
        if queue_name is None:
            task._remember(task._records.release_run(self.fence(task)))
            log.info("clearq: task %s left as a draft", task.id)
        else:
            task._remember(task._records.enqueue_run(self.fence(task), queue_name))
            log.info("clearq: task %s sent to queue %r", task.id, queue_name)
        self.run.end(record=False)
        raise SystemExit(0)

    def _send_clone(self, task: Task, queue_name: str | None, exit_process: bool) -> Task:
        from clearq.sdk.run import Outcome

        made = type(task).clone(task, name=task.name)
        if queue_name is not None:
            made.enqueue(queue_name)
        where = f"queue {queue_name!r}" if queue_name else "a draft"
        log.info("clearq: task %s, a clone of %s, is %s", made.id, task.id, where)
        if exit_process:
            self.run.end(Outcome(TaskStatus.STOPPED, 0, f"a clone ({made.id}) runs instead"))
            raise SystemExit(0)
        return made

    def register_abort(self, callback: Callable[[], object] | None, timeout: float) -> None:
        """Run ``callback`` on SIGTERM, for at most ``timeout`` seconds, then exit."""
        if self.run.abort is None:
            self.run.abort = AbortHandler(self.run.on_sigterm)
        self.run.abort.register(callback, timeout)

    def monitor_resources(self) -> None:
        """Start the resource monitor; the run's end stops it."""
        from clearq.sdk.resource_monitor import ResourceMonitor

        self.run.before_end.append(ResourceMonitor(self.run.reporter).stop)

    def launch_multi_node(self, task: Task, total_num_nodes: int, queue: str) -> dict[str, Any]:
        """Give the task to ``queue`` asking for ``total_num_nodes`` ranks; stop here."""
        task.flush(wait_for_uploads=True)
        self.settle_code()
        task._remember(task._records.enqueue_run(self.fence(task), queue, nodes=total_num_nodes))
        log.info(
            "clearq: task %s sent to queue %r to run on %s nodes", task.id, queue, total_num_nodes
        )
        self.run.end(record=False)
        raise SystemExit(0)

    def end(self) -> None:
        """End the run now, as if the script exited."""
        self.run.end()


class AgentRun(LocalRun):
    """This process's run of a task an agent claimed: the agent owns the attempt."""

    def __init__(self, run: Run, parameters: dict[str, str]) -> None:
        super().__init__(run)
        self.parameters = dict(parameters)
        """The task's parameters as read when the run attached, overrides included."""

    def write_parameters(self, task: Task, flat: dict[str, str]) -> None:
        """Merge ``flat`` into the running task's parameters, through the run's fence."""
        self.parameters = self.run.link.update_parameters(self.run.fence, flat)
        task._forget()

    def connect(self, task: Task, values: MutableMapping[str, Any], section: str) -> None:
        """Write the stored values (overrides included) into ``values``."""
        params.apply_overrides(values, self.parameters, section)

    def configuration(self, key: str) -> str | None:
        """The stored text of a connected configuration file (an override, perhaps)."""
        return self.parameters.get(key)

    def execute_remotely(
        self, task: Task, queue_name: str | None, clone: bool, exit_process: bool
    ) -> Task | None:
        """Already running on an agent: nothing to do."""
        return None

    def launch_multi_node(self, task: Task, total_num_nodes: int, queue: str) -> dict[str, Any]:
        """One agent runs this task (not a gang): rank 0 of 1, or refused for more."""
        if total_num_nodes == 1:
            return {"node_rank": 0, "total_num_nodes": 1, "master_addr": "", "master_port": 0}
        raise InvalidInput(
            f"this task runs on one agent, not as a gang of {total_num_nodes}: enqueue it "
            f"with nodes={total_num_nodes} (Task.enqueue(task, queue_name=..., nodes=N))"
        )


Role = Stored | LocalRun | AgentRun
"""Any of the three."""

__all__ = ["AgentRun", "LocalRun", "Role", "Stored"]
