"""The watchdog's timing: the latest give-up time wins, and passing it unrenewed ends the task."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from clearq.runtime.executor import Control
from clearq.runtime.watchdog import Hold, watch

pytestmark = pytest.mark.fast

KEEPALIVE, CHILD = 10, 11


class Script:
    """A fake clock, select and pipe: each wait takes its next step's time and readiness."""

    def __init__(self, steps: Sequence[tuple[float, Sequence[int], bytes]]) -> None:
        self.now = 0.0
        self._steps = list(steps)
        self._data = b""
        self.timeouts: list[float | None] = []

    def clock(self) -> float:
        return self.now

    def wait(self, fds: Sequence[int], timeout: float | None) -> list[int]:
        self.timeouts.append(timeout)
        self.now, ready, self._data = self._steps.pop(0)
        return list(ready)

    def read(self, fd: int, size: int) -> bytes:
        assert fd == KEEPALIVE
        return self._data


def run(script: Script) -> str | None:
    return watch(KEEPALIVE, CHILD, clock=script.clock, wait=script.wait, read=script.read)


def test_the_latest_time_wins_and_a_line_may_come_in_two_reads() -> None:
    hold = Hold()
    assert hold.timeout(0.0) is None
    assert not hold.expired(1e9)
    hold.feed(b"10.5\n3")
    assert hold.until == 10.5
    hold.feed(b"0.25\n")
    assert hold.until == 30.25
    hold.feed(b"20.0\n")  # an older time written late changes nothing
    assert hold.until == 30.25
    assert hold.timeout(30.0) == pytest.approx(0.25)
    assert hold.timeout(31.0) == 0.0
    assert hold.expired(30.25)
    assert not hold.expired(30.0)


def test_without_a_give_up_time_it_waits_for_the_child_for_ever() -> None:
    script = Script([(500.0, [CHILD], b"")])
    assert run(script) is None
    assert script.timeouts == [None]


def test_renewals_keep_the_task_until_it_ends() -> None:
    script = Script(
        [
            (1.0, [KEEPALIVE], b"5.0\n"),
            (4.0, [KEEPALIVE], b"9.0\n"),
            (8.0, [KEEPALIVE], b"13.0\n"),
            (10.0, [CHILD], b""),
        ]
    )
    assert run(script) is None
    assert script.timeouts == [None, 4.0, 5.0, 5.0]


def test_a_give_up_time_passed_unrenewed_ends_the_group() -> None:
    script = Script([(1.0, [KEEPALIVE], b"5.0\n"), (5.0, [], b"")])
    assert "stopped renewing" in (run(script) or "")


def test_the_agent_closing_its_end_ends_the_group() -> None:
    script = Script([(1.0, [KEEPALIVE], b"")])
    assert run(script) == "the agent is gone"


def test_the_child_ending_wins_over_a_time_passed_at_once() -> None:
    script = Script([(1.0, [KEEPALIVE], b"2.0\n"), (9.0, [KEEPALIVE, CHILD], b"")])
    assert run(script) is None


def test_each_renewal_of_the_control_reaches_its_keepalive() -> None:
    sent: list[float] = []
    control = Control(hold_until=5.0, keepalive=sent.append)
    control.renewed(7.5)
    control.keepalive = None
    control.renewed(9.0)
    assert sent == [7.5]
    assert control.hold_until == 9.0
