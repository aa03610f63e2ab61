"""Whether an agent may claim now: its operator's word and its claim windows.

An operator drains or pauses an agent from any machine (``clearq workers drain|pause``);
the command sits in the agent's worker rows. The agent reads it before it claims: at
once when told something changed (a NOTIFY on PostgreSQL, or one of its tasks ended, so
a drain asked while that task ran is seen before the next claim), and otherwise every
``poll_seconds``. Outside its ``--uptime`` windows (or inside a ``--downtime`` one) it
claims nothing either. In every case the agent keeps heartbeating and running what it
has: only new claims wait.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from datetime import UTC, datetime

from clearq.models import WorkerCommand
from clearq.scheduler.claim_windows import ClaimWindows

COMMAND_POLL_SECONDS = 1.0
"""How often an agent that polls (SQLite, or PostgreSQL without LISTEN) reads its command."""
NOTIFIED_COMMAND_POLL_SECONDS = 60.0
"""The same where a NOTIFY wakes it: a fallback for a hint lost with its connection."""


class Gate(enum.StrEnum):
    """What the agent does about new claims."""

    OPEN = "open"
    PAUSED = "paused"
    """The operator paused it: no claims until resumed."""
    DRAINING = "draining"
    """The operator drained it: no claims; it exits once its tasks have ended."""
    CLOSED = "closed"
    """Outside its claim windows."""


class ClaimGate:
    """Decides, before each claim, whether the agent may take new work.

    ``read`` returns the operator's command for the agent's workers (it may raise a
    ``StoreError``: the gate then keeps its last answer and reads again next time).
    ``say`` hears each change once.
    """

    def __init__(
        self,
        read: Callable[[], WorkerCommand | None],
        *,
        say: Callable[[str], None],
        windows: ClaimWindows | None = None,
        poll_seconds: float = COMMAND_POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._read = read
        self._say = say
        self._windows = windows or ClaimWindows()
        self._poll = poll_seconds
        self._clock = clock
        self._now = now
        self._command: WorkerCommand | None = None
        self._read_at = float("-inf")
        self._due = True
        self.gate = Gate.OPEN

    def wake(self) -> None:
        """Read the command before the next claim (a hint came, or a task ended)."""
        self._due = True

    def check(self) -> Gate:
        """The gate now: reads the command when due; StoreError propagates (gate kept)."""
        if self._due or self._clock() - self._read_at >= self._poll:
            self._command = self._read()
            self._read_at = self._clock()
            self._due = False
        gate = self._decide()
        if gate is not self.gate:
            self._say(self._change(gate))
            self.gate = gate
        return gate

    def _decide(self) -> Gate:
        if self._command is WorkerCommand.DRAIN:
            return Gate.DRAINING
        if self._command is WorkerCommand.PAUSE:
            return Gate.PAUSED
        if self._windows and not self._windows.allows(self._now()):
            return Gate.CLOSED
        return Gate.OPEN

    def _change(self, gate: Gate) -> str:
        if gate is Gate.DRAINING:
            return "draining (clearq workers drain): running tasks finish, nothing new is claimed"
        if gate is Gate.PAUSED:
            return (
                "paused (clearq workers pause): claiming nothing until "
                "`clearq workers resume`; running tasks go on"
            )
        if gate is Gate.CLOSED:
            return f"outside its claim windows ({self._windows.describe()}): claiming nothing"
        if self.gate is Gate.CLOSED:
            return f"inside its claim windows ({self._windows.describe()}): claiming again"
        return "resumed (clearq workers resume): claiming again"
