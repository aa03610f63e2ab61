"""An in-package stand-in for agents, over the in-memory store: it claims from the twin's
queues and ends each attempt as the test says, reporting the scalars it is told to.

It goes through the same store calls a real agent makes (claim, append_scalars, finish),
so what the controllers see is what a real run would leave; it starts no process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clearq.models import Claim, ScalarPoint, Task, TaskStatus
from clearq.testing import MemoryStore


@dataclass(frozen=True)
class Ending:
    """How one attempt ends: its status and the scalars it reports first."""

    status: TaskStatus = TaskStatus.COMPLETED
    scalars: Sequence[ScalarPoint] = ()
    reason: str = ""


Decide = Callable[[Task], Ending]


@dataclass
class FakeAgent:
    """Runs whatever the twin hands out of ``queues``, ending it as ``decide`` says."""

    store: MemoryStore
    decide: Decide = lambda task: Ending()
    queues: Sequence[str] = ("q",)
    ran: list[Claim] = field(default_factory=list)
    on_claim: Callable[[Claim], None] | None = None

    def drain(self) -> int:
        """Run every claimable attempt, one at a time, until none is left; how many ran."""
        claimer = self.store.claimer("fake", list(self.queues))
        count = 0
        while claims := claimer.claim():
            for claim in claims:
                self._end(claim)
                count += 1
        return count

    def _end(self, claim: Claim) -> None:
        self.ran.append(claim)
        if self.on_claim is not None:
            self.on_claim(claim)
        ending = self.decide(self.store.tasks.get(claim.task_id))
        if ending.scalars:
            self.store.outputs.append_scalars(claim.fence, list(ending.scalars))
        code = 0 if ending.status is TaskStatus.COMPLETED else 1
        self.store.leases.finish(claim.fence, ending.status, exit_code=code, reason=ending.reason)

    def serve(self, stop: threading.Event, pause: float = 0.005) -> threading.Thread:
        """Drain in a thread of its own until ``stop`` is set."""

        def loop() -> None:
            while not stop.is_set():
                self.drain()
                stop.wait(pause)

        thread = threading.Thread(target=loop, name="fake-agent", daemon=True)
        thread.start()
        return thread

    def beside(
        self, drive: Callable[[], object], halt: Callable[[], object], seconds: float = 60.0
    ) -> None:
        """Run ``drive`` (a controller's loop) while this agent serves; if it has not
        ended after ``seconds``, ``halt`` it and fail, rather than hang the test run."""
        stop = threading.Event()
        serving = self.serve(stop)
        driving = threading.Thread(target=drive, name="controller", daemon=True)
        driving.start()
        driving.join(timeout=seconds)
        stuck = driving.is_alive()
        if stuck:
            halt()
            driving.join(timeout=seconds)
        stop.set()
        serving.join(timeout=seconds)
        assert not stuck, f"the controller did not end within {seconds} s"
