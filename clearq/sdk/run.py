"""The run of this process: its fence, its reporter, and how it ends.

A script started by hand owns its task's attempt: at exit the run records how Python
ends the process (see :mod:`clearq.sdk.exits`): completed (exit status 0), failed (an
uncaught exception, ``sys.exit(3)``, ``raise SystemExit("message")`` with the message as
its reason) or stopped (Ctrl-C, a stop request, SIGTERM). Under an agent the agent owns
the attempt and records the end from the exit code; the run only flushes what it reported.
"""

from __future__ import annotations

import atexit
import logging
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from clearq.enums import TaskStatus
from clearq.errors import InvalidInput, LeaseLost, StoreError
from clearq.scheduler.runlink import RunFence
from clearq.sdk import argparse_hook
from clearq.sdk.console import ConsoleCapture
from clearq.sdk.exits import ExitStatus, ExitWatch
from clearq.sdk.preemption import SIGTERM_EXIT_CODE, AbortHandler
from clearq.sdk.reporter import Reporter, RunWriter
from clearq.valueclass import value_class

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from clearq.sdk.code_capture import CodeCapture
    from clearq.sdk.samples import SampleFiles


@value_class
class Outcome:
    """How the script is ending, as far as the hooks have seen."""

    status: TaskStatus = TaskStatus.COMPLETED
    exit_code: int | None = 0
    reason: str = ""


class Run:
    """This process's run of a task.

    A plain class, not a dataclass: it is made once, on every training script's way to
    its first line, where defining a dataclass compiles its methods from source.
    """

    def __init__(
        self,
        link: RunWriter,
        fence: RunFence,
        reporter: Reporter,
        under_agent: bool,
        console: ConsoleCapture | None = None,
        output_root: str | None = None,
        *,
        code: CodeCapture | None = None,
    ) -> None:
        self.link = link
        self.fence = fence
        self.reporter = reporter
        self.under_agent = under_agent
        self.console = console
        self.output_root = output_root
        """Where the run's files go (the task's output URI, else the artifacts folder)."""
        self.outcome: Outcome | None = None
        """How the run ends, where a hook has seen it (an uncaught exception, SIGTERM)."""
        self.ended = False
        self.abort: AbortHandler | None = None
        """The SIGTERM handler running the task's abort callback, once one is registered."""
        self._saved_hook: Any = None
        self._exits = ExitWatch()
        self.before_end: list[Callable[[], None]] = []
        """Called first when the run ends (pending artifact uploads finish there)."""
        self._samples: SampleFiles | None = None
        self.code = code
        """The capture of the script's code still under way in its thread, if any."""

    def settle_code(self, *, raise_error: bool = True) -> None:
        """Wait until the script's code is captured and written; raise the capture's error
        (unless ``raise_error=False``)."""
        if self.code is not None:
            self.code.wait(raise_error=raise_error)

    def sample_files(self) -> SampleFiles:
        """Where this run's debug samples are written (made on the first sample)."""
        if self._samples is None:
            from clearq.sdk.samples import SampleFiles

            if self.output_root is None:
                raise InvalidInput("this run has no output location for its debug samples")
            self._samples = SampleFiles(self.output_root, self.fence.task_id)
        return self._samples

    def install_exit_hooks(self) -> None:
        """Watch for uncaught exceptions and how the process exits; finish at exit."""
        self._saved_hook = sys.excepthook
        sys.excepthook = self._excepthook
        if not self.under_agent:  # the agent records the end from the exit status itself
            self._exits.install()
        atexit.register(self._end_at_exit)

    def _end_at_exit(self) -> None:
        if self.outcome is None and not self.ended:
            self.outcome = _outcome(self._exits.status())
        self.end()

    def _excepthook(
        self, kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        # Printed through the console tee, so the traceback lands in the task's log.
        sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))
        sys.stderr.flush()
        if issubclass(kind, KeyboardInterrupt):
            asked = self.reporter.stop_reason or "stop requested"
            why = asked if self.reporter.stop_requested else "interrupted (Ctrl-C)"
            self.outcome = Outcome(TaskStatus.STOPPED, None, why)
        else:
            message = f"{kind.__name__}: {value}".strip().rstrip(":")
            self.outcome = Outcome(TaskStatus.FAILED, 1, f"uncaught exception: {message}")

    def on_sigterm(self) -> None:
        """The process is ending on SIGTERM after its abort callback: note why.

        Nothing is flushed here (the interrupted code may hold the reporter's lock): the
        exit's own :meth:`end` flushes once the stack has unwound.
        """
        self.outcome = Outcome(TaskStatus.STOPPED, SIGTERM_EXIT_CODE, "stopped by SIGTERM")

    def end(self, outcome: Outcome | None = None, *, record: bool = True) -> None:
        """Flush, record the end (for a run started by hand) and undo the hooks. Once.

        ``record=False`` when the run gave its task away (``execute_remotely``): the
        attempt is no longer this run's to end.
        """
        if self.ended:
            return
        self.ended = True
        outcome = outcome or self.outcome or Outcome()
        for finish in self.before_end:
            try:
                finish()
            except Exception as e:  # noqa: BLE001 - the run must still end and be recorded
                log.warning("clearq: before the run ended: %s", e)
                if outcome.status is TaskStatus.COMPLETED:
                    outcome = Outcome(TaskStatus.FAILED, 1, f"an artifact upload failed: {e}")
        if record:
            outcome = self._code_settled(outcome)
        self.reporter.close()
        if self.console is not None:
            self.console.stop()
        argparse_hook.uninstall()
        if self._saved_hook is not None:
            sys.excepthook = self._saved_hook
        self._exits.uninstall()
        try:
            if record and not self.under_agent and not self.reporter.lease_lost:
                self._finish(outcome)
        finally:
            self.link.close()

    def _code_settled(self, outcome: Outcome) -> Outcome:
        """``outcome``, once the code is recorded; failed, saying why, when it cannot be."""
        try:
            self.settle_code()
        except KeyboardInterrupt:
            log.warning("clearq: interrupted while the task's code was being captured")
            return Outcome(TaskStatus.STOPPED, None, "interrupted (Ctrl-C) capturing the code")
        except LeaseLost as e:
            log.warning("clearq: this run's code was not recorded: %s", e)
        except Exception as e:  # noqa: BLE001 - the run must still end and be recorded
            log.error("clearq: the task's code could not be captured: %s", e)
            if outcome.status is TaskStatus.COMPLETED:
                return Outcome(TaskStatus.FAILED, 1, f"capturing the code failed: {e}")
        return outcome

    def _finish(self, outcome: Outcome) -> None:
        try:
            self.link.finish(
                self.fence, outcome.status, exit_code=outcome.exit_code, reason=outcome.reason
            )
        except LeaseLost as e:
            log.warning("clearq: this run's end was not recorded: %s", e)
        except StoreError as e:
            log.warning("clearq: could not record how task %s ended: %s", self.fence.task_id, e)


def _outcome(status: ExitStatus) -> Outcome:
    """The end to record for the exit status Python gives the process."""
    if isinstance(status.exception, KeyboardInterrupt):
        return Outcome(TaskStatus.STOPPED, None, "interrupted (Ctrl-C)")
    if status.code == 0:
        return Outcome()
    return Outcome(TaskStatus.FAILED, status.code, status.reason)
