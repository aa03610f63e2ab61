"""The script's code and packages, captured in a thread while the script goes on.

``Task.init`` run by hand must record what is needed to run the script again (git
remote, commit, diff, untracked files, packages), but the script needs none of it to
run: git's commands and the import scan would only keep its first line waiting. So the
capture runs in a thread of its own, started before the task's row is written, and its
result is written into the row (through the run's fence) as soon as both are there. The
row holds the entry point and arguments until then.

Nothing may be lost, so the run waits for it (:meth:`CodeCapture.wait`) wherever the
code is needed: before the run ends (however the script ends: an exit, an uncaught
exception, a stop), before the task is given to a queue (``execute_remotely``,
``launch_multi_node``), cloned, or read back by this process. A capture that failed
raises its error there, and a run that ends with its code not captured is recorded as
failed, with the capture's error as its reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearq.scheduler.runlink import RunFence, RunLink

Code = tuple[dict[str, Any], dict[str, Any]]
"""A capture's stored forms: the Script's and the EnvSpec's."""


class CodeCapture:
    """One capture running in its thread, and where its result is to be written."""

    def __init__(self, capture: Callable[[], Code]) -> None:
        self._capture = capture
        self._target: tuple[RunLink, RunFence] | None = None
        self._placed = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="clearq-capture", daemon=True)
        self._thread.start()

    def record_into(self, link: RunLink, fence: RunFence) -> None:
        """Write the result into the task of ``fence`` once the capture is done."""
        self._target = (link, fence)
        self._placed.set()

    def abandon(self) -> None:
        """Write the result nowhere (the task's row was never made); wait for the thread."""
        self._placed.set()
        self._thread.join()

    def wait(self, *, raise_error: bool = True) -> None:
        """Return once the code is captured and written; raise the capture's error if any
        (unless ``raise_error=False``: the run's end reports it)."""
        self._thread.join()
        if self._error is not None and raise_error:
            raise self._error

    @property
    def done(self) -> bool:
        """True once the thread has ended (written, failed or abandoned)."""
        return not self._thread.is_alive()

    def _work(self) -> None:
        try:
            script, env = self._capture()
            self._placed.wait()
            if self._target is not None:
                link, fence = self._target
                link.record_code(fence, script, env)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the code
            self._error = e


__all__ = ["Code", "CodeCapture"]
