"""Preemption without lost work: abort callbacks and the ``checkpoint`` artifact.

Whatever stops a task from outside (an abort, its agent draining, a spot notice, Slurm
taking the node back) reaches the task's process as SIGTERM, then SIGKILL after the grace
period. :func:`register_abort_callback` installs a SIGTERM handler that runs the
callback first, bounded by its timeout, so the code can save a checkpoint; then the
process exits with 143 (as SIGTERM's default would), its reports flushed on the way out.
A task preempted this way goes back to its queue; the next attempt reads the last
checkpoint with ``task.get_checkpoint()`` and resumes.

A checkpoint is the task's artifact named ``checkpoint`` (replaced by each save). The
artifact lives under the task's output URI: for a task whose attempts may run on
different machines, give it one that every machine reads (a shared folder, an object
store URL).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from clearq.errors import InvalidInput

log = logging.getLogger(__name__)

CHECKPOINT_ARTIFACT = "checkpoint"
DEFAULT_CALLBACK_TIMEOUT_SECONDS = 30.0
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM


class AbortHandler:
    """This process's abort callback and the SIGTERM handler that runs it (one per process).

    ``before_exit`` runs after the callback (the run flushes its reports and notes how
    it ended) and before the process exits.
    """

    def __init__(self, before_exit: Callable[[], None]) -> None:
        self._before_exit = before_exit
        self._callback: Callable[[], object] | None = None
        self._timeout = DEFAULT_CALLBACK_TIMEOUT_SECONDS
        self._installed = False
        self._aborting = False

    def register(self, callback: Callable[[], object] | None, timeout: float) -> None:
        """Run ``callback`` (at most ``timeout`` s) when the task is stopped; None: no callback."""
        if callback is not None and not callable(callback):
            raise InvalidInput(f"the abort callback must be callable, not {callback!r}")
        if timeout <= 0:
            raise InvalidInput(f"the abort callback's timeout must be positive, not {timeout}")
        if not self._installed:
            if threading.current_thread() is not threading.main_thread():
                raise InvalidInput(
                    "register_abort_callback must be called from the main thread "
                    "(signal handlers live there)"
                )
            signal.signal(signal.SIGTERM, self._on_sigterm)
            self._installed = True
        self._callback, self._timeout = callback, timeout

    def _on_sigterm(self, signum: int, _frame: FrameType | None) -> None:
        if self._aborting:
            return  # a second SIGTERM while the callback runs: keep going
        self._aborting = True
        log.warning("clearq: the task is being stopped: running its abort callback")
        if self._callback is not None:
            self._run_callback(self._callback)
        self._before_exit()
        raise SystemExit(SIGTERM_EXIT_CODE)

    def _run_callback(self, callback: Callable[[], object]) -> None:
        # In a thread, so that its timeout holds whatever it does; the main thread waits.
        failed: list[BaseException] = []

        def call() -> None:
            try:
                callback()
            except Exception as e:  # noqa: BLE001 - reported below; the exit must go on
                failed.append(e)

        worker = threading.Thread(target=call, name="clearq-abort-callback", daemon=True)
        worker.start()
        worker.join(self._timeout)
        if worker.is_alive():
            log.warning("clearq: the abort callback ran past its %g s: exiting", self._timeout)
        elif failed:
            error = failed[0]
            log.warning("clearq: the abort callback failed: %s: %s", type(error).__name__, error)
