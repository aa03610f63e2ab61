"""The task side of the attempt channel: how a task under an agent reaches its store.

Under an agent a task's process has no database URL. Its agent opens a unix socket for
the one attempt it runs (``CLEARQ_CHANNEL``) and hands it a token (``CLEARQ_CHANNEL_TOKEN``);
:class:`ChannelLink` speaks to it, with the same methods as the run's
:class:`~clearq.scheduler.runlink.RunLink`, so the reporter and the run do not know which
they have. The agent applies each request with the attempt's fence and refuses whatever
is outside it (``clearq.runtime.channel`` says what is allowed).

The protocol is one JSON object a line each way, on the standard library only (a
training script imports this on its way to ``Task.init``): a request
``{"token", "op", "task_id", "attempt", "args"}``, an answer ``{"ok": true, "result"}``
or ``{"ok": false, "error": kind, "message"}``, where ``kind`` names a ``clearq.errors``
class that is raised here again.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clearq import errors
from clearq.enums import TaskStatus
from clearq.scheduler.runlink import Beat, Point, RunFence, RunTask
from clearq.scheduler.runlink_results import PlotRow, SampleRow, row_values

MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest request or answer either side reads (a batch of logs is one line)."""
SOCKET_NAME = "channel.sock"
_SUN_PATH_MAX = 100
"""sockaddr_un holds 108 bytes; longer paths are reached through the folder's descriptor."""
_ERRORS: dict[str, type[errors.ClearqError]] = {
    "LeaseLost": errors.LeaseLost,
    "NotFound": errors.NotFound,
    "InvalidInput": errors.InvalidInput,
    "ChannelRefused": errors.ChannelRefused,
    "StoreUnavailable": errors.StoreUnavailable,
    "StoreError": errors.StoreError,
}


@contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A name for the socket ``path`` short enough for ``bind`` and ``connect``.

    A run folder under a deep home exceeds the 108 bytes of a socket address; then the
    socket is named through ``/proc/self/fd`` of its folder, opened for the call.
    """
    text = str(path)
    if len(text.encode()) <= _SUN_PATH_MAX:
        yield text
        return
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


class ChannelLink:
    """One task's connection to its agent's channel; thread-safe, reconnects when dropped."""

    def __init__(self, path: Path, token: str, *, lease_seconds: float = 60.0) -> None:
        self.path = path
        self._token = token
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader: Any = None

    # ---- what the run's reporter and the Task use (RunLink's methods) -------------------

    def read(self, task_id: uuid.UUID) -> RunTask:
        """The task this run attaches to (its own: the channel serves one attempt)."""
        got = self.call("read", RunFence(task_id=task_id, attempt=0))
        return RunTask(
            id=uuid.UUID(got["id"]),
            project=got["project"],
            name=got["name"],
            status=TaskStatus(got["status"]),
            attempt=got["attempt"],
            worker=got["worker"],
            parameters=dict(got["parameters"]),
            output_uri=got["output_uri"],
        )

    def update_parameters(self, fence: RunFence, values: dict[str, str]) -> dict[str, str]:
        """Merge ``values`` into the running task's parameters; return them all."""
        return dict(self.call("update_parameters", fence, values=values))

    def append(
        self,
        fence: RunFence,
        logs: Sequence[tuple[str, str]],
        points: Sequence[Point],
        *,
        plots: Sequence[PlotRow] = (),
        samples: Sequence[SampleRow] = (),
    ) -> None:
        """Write a batch of log pieces, scalar points, plots and debug samples."""
        if not (logs or points or plots or samples):
            return
        self.call(
            "append",
            fence,
            logs=list(logs),
            points=list(points),
            plots=[row_values(p) for p in plots],
            samples=[row_values(s) for s in samples],
        )

    def heartbeat(self, fence: RunFence) -> Beat:
        """Whether the attempt is still this run's, and whether a stop was asked for."""
        got = self.call("heartbeat", fence)
        return Beat(held=bool(got["held"]), stop_requested=bool(got["stop_requested"]))

    def finish(
        self, fence: RunFence, status: TaskStatus, *, exit_code: int | None, reason: str
    ) -> None:
        """Refused: under an agent the agent records how the attempt ended."""
        raise errors.ChannelRefused(
            f"task {fence.task_id}: its agent records how the attempt ends, from its exit code"
        )

    def close(self) -> None:
        """Close the connection (a later call opens another)."""
        with self._lock:
            self._drop()

    # ---- the protocol -------------------------------------------------------------------

    def call(self, op: str, fence: RunFence, **args: Any) -> Any:
        """Send one request about ``fence``'s attempt; its result, or its error raised."""
        request = {
            "token": self._token,
            "op": op,
            "task_id": str(fence.task_id),
            "attempt": fence.attempt,
            "args": args,
        }
        line = json.dumps(request).encode() + b"\n"
        with self._lock:
            answer = self._exchange(line)
        if answer.get("ok"):
            return answer.get("result")
        kind = _ERRORS.get(str(answer.get("error")), errors.StoreError)
        raise kind(str(answer.get("message") or "the agent's channel refused the request"))

    def _exchange(self, line: bytes) -> dict[str, Any]:
        for tries_left in (1, 0):
            try:
                reader = self._connected()
                assert self._sock is not None
                self._sock.sendall(line)
                reply = reader.readline(MAX_LINE_BYTES)
                if not reply:
                    raise ConnectionError("the agent closed the channel")
                answer: dict[str, Any] = json.loads(reply)
                return answer
            except OSError as e:
                self._drop()
                if not tries_left:
                    raise errors.StoreUnavailable(
                        f"cannot reach this task's agent through {self.path}: {e}"
                    ) from e
        raise AssertionError("unreachable")

    def _connected(self) -> Any:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                with reachable(self.path) as name:
                    sock.connect(name)
            except OSError:
                sock.close()
                raise
            self._sock, self._reader = sock, sock.makefile("rb")
        return self._reader

    def _drop(self) -> None:
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
        self._sock = self._reader = None


__all__ = ["ChannelLink", "reachable"]
