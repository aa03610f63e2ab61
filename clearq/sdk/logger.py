"""``Logger``: scalars and text reported by the running task, written in batches."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from clearq.sdk.reporter import Reporter
    from clearq.sdk.task import Task

SUMMARY_TITLE = "Summary"


class Logger:
    """Reports into one task; get it with ``task.get_logger()`` or ``Logger.current_logger()``."""

    def __init__(self, task: Task) -> None:
        self._task = task

    @classmethod
    def current_logger(cls) -> Logger:
        """The logger of the task this process runs."""
        from clearq.sdk.task import Task

        task = Task.current_task()
        if task is None:
            raise InvalidInput("no current task: call Task.init() first")
        return task.get_logger()

    def _reporter(self) -> Reporter:
        run = self._task._run
        if run is None:
            raise InvalidInput(
                f"task {self._task.id} is not run by this process: only its own run reports"
            )
        return run.reporter

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        """Report ``value`` of (title, series) at ``iteration``."""
        number = float(value)
        if math.isnan(number):
            raise InvalidInput(f"scalar {title}/{series} at iteration {iteration} is NaN")
        self._reporter().scalar((title, series, int(iteration), number))

    def report_single_value(self, name: str, value: float) -> None:
        """Report one summary number (title ``Summary``)."""
        self.report_scalar(SUMMARY_TITLE, name, value, 0)

    def report_text(self, msg: str, level: int = logging.INFO, print_console: bool = True) -> None:
        """Add a line of text to the task's log (and print it unless told not to)."""
        run = self._task._run
        if print_console and run is not None and run.console is not None:
            print(msg)  # the console tee copies it into the log
            return
        if print_console:
            print(msg)
        stream = "stderr" if level >= logging.WARNING else "stdout"
        self._reporter().log(stream, f"{msg}\n")

    def flush(self, wait: bool = True) -> None:
        """Write everything reported so far."""
        self._reporter().flush()
