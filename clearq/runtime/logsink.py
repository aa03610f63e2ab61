"""A running task's console, written to its log in batches, fenced like every write.

Secret values the agent knows (the database password, the operator's secret variables,
credentials in its package index URLs) are masked before anything is stored
(``clearq.runtime.logmask``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from clearq.errors import LeaseLost, StoreError, StoreUnavailable
from clearq.models import Fence
from clearq.ports import LogSinkStore
from clearq.runtime.logmask import SecretMask

log = logging.getLogger(__name__)

LOG_FLUSH_SECONDS = 0.5
MAX_PENDING_PIECES = 100_000
"""Past this many unwritten pieces (the store is unreachable) the oldest are dropped."""


class LogSink:
    """Collects (stream, text) pieces and writes them every ``interval`` seconds."""

    def __init__(
        self,
        store: LogSinkStore,
        fence: Fence,
        *,
        interval: float = LOG_FLUSH_SECONDS,
        secrets: Iterable[str] = (),
        line_prefix: str = "",
    ) -> None:
        self._store = store
        self._prefix = line_prefix
        self._line_start: dict[str, bool] = {}
        self._mask = SecretMask(secrets)
        self._fence = fence
        self._interval = interval
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self.lost = False
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="clearq-logs", daemon=True)
        self._thread.start()

    def __call__(self, stream: str, text: str) -> None:
        """Queue a piece of output."""
        if self.lost or not text:
            return
        with self._lock:
            text = self._mask.feed(stream, text)
            if not text:
                return
            if self._prefix:
                text = self._prefixed(stream, text)
            self._pending.append((stream, text))
            if len(self._pending) > MAX_PENDING_PIECES:
                del self._pending[: len(self._pending) - MAX_PENDING_PIECES]

    def _prefixed(self, stream: str, text: str) -> str:
        # Each line starts with the prefix (a gang's rank), wherever the pieces split.
        start = self._line_start.get(stream, True)
        lines = text.split("\n")
        out = [(self._prefix if start and lines[0] else "") + lines[0]]
        out += [self._prefix + line if line else line for line in lines[1:]]
        self._line_start[stream] = text.endswith("\n")
        return "\n".join(out)

    def agent(self, line: str) -> None:
        """Queue a line from the agent itself (what it is doing for the task)."""
        self("agent", line if line.endswith("\n") else f"{line}\n")

    def flush(self) -> bool:
        """Write what is queued now; False when the store cannot take it yet (an outage)."""
        with self._write_lock:
            with self._lock:
                pieces, self._pending = self._pending, []
            if not pieces or self.lost:
                return True
            try:
                self._store.outputs.append_logs(self._fence, pieces)
            except LeaseLost:
                self.lost = True
            except StoreError as e:
                with self._lock:
                    self._pending[:0] = pieces
                if not self._warned:
                    self._warned = True
                    log.warning("cannot write task logs yet: %s", e)
                return not isinstance(e, StoreUnavailable)
            return True

    def close(self, *, held: Callable[[], bool] = lambda: False) -> None:
        """Stop the thread after a last write, tried again while ``held()`` stays True.

        ``held`` says the attempt is still this agent's: through a database outage the
        last lines are kept and written once it is back, until the lease is outlived.
        """
        self._closed.set()
        self._thread.join(timeout=30)
        with self._lock:
            self._pending.extend(self._mask.drain())
        while not self.flush() and held():
            time.sleep(self._interval)

    def _loop(self) -> None:
        while not self._closed.wait(self._interval):
            self.flush()
