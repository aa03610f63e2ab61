"""Batched writes of one run's console output, scalars, plots and debug samples, from a
background thread.

The training loop only appends to in-memory buffers; a daemon thread writes them every
``interval`` seconds (and renews the lease of a run started by hand). A debug sample is
queued as a job that encodes and writes its file: the thread runs it just before the batch
that records its row, so the loop pays neither for encoding nor for the write. Every write
is fenced: once the store says the attempt is no longer this run's, buffers are dropped and
nothing more is written.
"""

from __future__ import annotations

import _thread
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from clearq.enums import TaskStatus
from clearq.errors import ClearqError, LeaseLost, StoreError
from clearq.scheduler.runlink import Beat, Point, RunFence, RunTask
from clearq.scheduler.runlink_results import PlotRow, SampleRow

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
RESEND_INTERRUPT_SECONDS = 0.05
"""How soon a stop's interrupt that Python swallowed is sent again (``stop_main_thread``)."""
SINGLE_VALUES_TITLE = "Summary"
"""``report_single_value``'s title: its numbers have no iteration to offset."""
MAX_BUFFERED_LOG_PIECES = 100_000
"""Past this many unwritten pieces (the store is unreachable) the oldest are dropped."""
SAMPLES_BEFORE_EARLY_FLUSH = 32
"""Queued samples that wake the writer before its interval (they hold encoded images)."""

SampleJob = Callable[[], SampleRow]
"""Writes a debug sample's file (in the writer thread) and describes it."""


class RunWriter(Protocol):
    """A run's path to its task: the database (``RunLink``, a run by hand) or its
    agent's channel (``clearq.sdk.channel.ChannelLink``, a run under an agent)."""

    lease_seconds: float

    def read(self, task_id: uuid.UUID) -> RunTask: ...
    def update_parameters(self, fence: RunFence, values: dict[str, str]) -> dict[str, str]: ...
    def append(
        self,
        fence: RunFence,
        logs: Sequence[tuple[str, str]],
        points: Sequence[Point],
        *,
        plots: Sequence[PlotRow] = (),
        samples: Sequence[SampleRow] = (),
    ) -> None: ...
    def heartbeat(self, fence: RunFence) -> Beat: ...
    def finish(
        self, fence: RunFence, status: TaskStatus, *, exit_code: int | None, reason: str
    ) -> None: ...
    def close(self) -> None: ...


def interrupt_main_thread() -> None:
    """Raise KeyboardInterrupt in the main thread, as Ctrl-C would, from another thread.

    ``_thread.interrupt_main`` runs the SIGINT handler Python has, and does nothing when
    there is none: a script started with SIGINT ignored (``python train.py &`` from a
    non-interactive shell, or by a parent that ignores it) would never stop. There the
    exception is set on the main thread directly (CPython's ``PyThreadState_SetAsyncExc``);
    like a Ctrl-C, it is raised at the main thread's next Python instruction.
    """
    import signal

    if callable(signal.getsignal(signal.SIGINT)):
        _thread.interrupt_main()  # Python's handler, or the script's own
        return
    import ctypes

    main = threading.main_thread().ident
    if main is None:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(main), ctypes.py_object(KeyboardInterrupt)
    )


_previous_unraisablehook: Callable[[Any], Any] | None = None


def stop_main_thread() -> None:
    """Interrupt the main thread for a stop request, and again if Python swallows it.

    An interrupt raised while the main thread runs a callback whose exceptions Python
    only reports ("Exception ignored in ...": a weakref callback such as the import
    system's module locks) never reaches the script, Ctrl-C's neither. Once a stop was
    asked for, every KeyboardInterrupt Python swallows that way is sent again, so the
    script still stops; an interrupt the script itself catches is never repeated.
    """
    global _previous_unraisablehook
    if _previous_unraisablehook is None:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _resend_swallowed_interrupt
    interrupt_main_thread()


def _resend_swallowed_interrupt(unraisable: Any) -> None:
    assert _previous_unraisablehook is not None
    _previous_unraisablehook(unraisable)
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        # Not from inside the callback that is unwinding: from a thread, a moment later.
        threading.Timer(RESEND_INTERRUPT_SECONDS, interrupt_main_thread).start()


class Reporter:
    """Buffers logs and scalars and writes them in batches."""

    def __init__(
        self,
        link: RunWriter,
        fence: RunFence,
        *,
        interval: float = FLUSH_SECONDS,
        renew_lease: bool = False,
    ) -> None:
        self._link = link
        self.fence = fence
        self._interval = interval
        self._renew = renew_lease
        self._logs: list[tuple[str, str]] = []
        self._scalars: list[Point] = []
        self._plots: list[PlotRow] = []
        self._sample_jobs: list[SampleJob] = []
        self._samples: list[SampleRow] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self.lease_lost = False
        self.stop_requested = False
        self.stop_reason = ""
        self.iteration_offset = 0
        """Added to every reported iteration (``task.set_initial_iteration``)."""
        self._last_beat = time.monotonic()
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="clearq-reporter", daemon=True)
        self._thread.start()

    def log(self, stream: str, text: str) -> None:
        """Queue a piece of console output."""
        if not text or self.lease_lost:
            return
        with self._lock:
            self._logs.append((stream, text))
            if len(self._logs) > MAX_BUFFERED_LOG_PIECES:
                del self._logs[: len(self._logs) - MAX_BUFFERED_LOG_PIECES]

    def scalar(self, point: Point) -> None:
        """Queue a reported scalar value: (title, series, iteration, value)."""
        if self.lease_lost:
            return
        title, series, iteration, value = point
        if self.iteration_offset and title != SINGLE_VALUES_TITLE:
            point = (title, series, iteration + self.iteration_offset, value)
        with self._lock:
            self._scalars.append(point)

    def plot(self, row: PlotRow) -> None:
        """Queue a reported plot."""
        if self.lease_lost:
            return
        with self._lock:
            self._plots.append(row)

    def sample(self, job: SampleJob) -> None:
        """Queue a debug sample: ``job`` writes its file and says what it wrote."""
        if self.lease_lost:
            return
        with self._lock:
            self._sample_jobs.append(job)
            early = len(self._sample_jobs) >= SAMPLES_BEFORE_EARLY_FLUSH
        if early:
            self._wake.set()

    def flush(self) -> None:
        """Write everything queued so far, now."""
        with self._write_lock:
            with self._lock:
                logs, self._logs = self._logs, []
                scalars, self._scalars = self._scalars, []
                plots, self._plots = self._plots, []
                jobs, self._sample_jobs = self._sample_jobs, []
                samples, self._samples = self._samples, []
            if self.lease_lost:
                return
            samples += self._write_samples(jobs)
            try:
                self._link.append(self.fence, logs, scalars, plots=plots, samples=samples)
            except LeaseLost as e:
                self._lose(str(e))
            except StoreError as e:
                self._requeue(logs, scalars, plots, samples)
                self._warn("store", f"clearq: cannot write results yet, will retry: {e}")

    def _write_samples(self, jobs: list[SampleJob]) -> list[SampleRow]:
        written = []
        for job in jobs:
            try:
                written.append(job())
            except (OSError, ClearqError, ValueError) as e:
                # A file that cannot be written now will not be later: say so, go on.
                self._warn(f"sample:{type(e).__name__}", f"clearq: a debug sample is lost: {e}")
        return written

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def _requeue(
        self,
        logs: list[tuple[str, str]],
        scalars: list[Point],
        plots: list[PlotRow],
        samples: list[SampleRow],
    ) -> None:
        with self._lock:
            self._logs[:0] = logs
            self._scalars[:0] = scalars
            self._plots[:0] = plots
            self._samples[:0] = samples

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()
            if self._renew and not self.lease_lost:
                self._heartbeat()

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_beat < self._link.lease_seconds / 3:
            return
        try:
            beat = self._link.heartbeat(self.fence)
        except StoreError as e:
            self._warn("beat", f"clearq: cannot renew this run's lease: {e}")
            return
        self._last_beat = time.monotonic()
        if not beat.held:
            self._lose(f"task {self.fence.task_id} was taken over; results are no longer kept")
        elif beat.stop_requested and not self.stop_requested:
            self.stop_requested = True
            self.stop_reason = beat.stop_reason
            # Stop the script the way Ctrl-C would; the exit hook records "stopped".
            stop_main_thread()

    def _lose(self, why: str) -> None:
        self.lease_lost = True
        with self._lock:
            self._logs.clear()
            self._scalars.clear()
            self._plots.clear()
            self._sample_jobs.clear()
            self._samples.clear()
        self._warn("lost", f"clearq: {why}")

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)
