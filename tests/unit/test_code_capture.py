"""The capture thread of ``Task.init``: its result reaches the task's row, its error the run."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from clearq.enums import TaskStatus
from clearq.errors import ClearqError, LeaseLost
from clearq.scheduler.runlink import RunFence
from clearq.sdk.code_capture import Code, CodeCapture
from clearq.sdk.run import Outcome, Run

pytestmark = pytest.mark.fast

FENCE = RunFence(task_id=uuid.uuid4(), attempt=1)
CODE: Code = ({"entry_point": "train.py", "diff": "+x"}, {"requirements": ["six==1.16.0"]})


class Link:
    """What the capture writes through: the code it was given, in order."""

    def __init__(self, refuse: bool = False) -> None:
        self.written: list[tuple[RunFence, Code]] = []
        self.refuse = refuse

    def record_code(self, fence: RunFence, script: dict[str, Any], env: dict[str, Any]) -> None:
        if self.refuse:
            raise LeaseLost("the attempt is no longer this run's")
        self.written.append((fence, (script, env)))


def _slow(release: threading.Event, result: Code = CODE) -> Any:
    def capture() -> Code:
        release.wait(5)
        return result

    return capture


def test_the_code_is_written_into_the_task_once_both_are_there() -> None:
    release = threading.Event()
    link = Link()
    capture = CodeCapture(_slow(release))
    capture.record_into(link, FENCE)  # type: ignore[arg-type]
    assert link.written == []  # still capturing: nothing written yet
    release.set()
    capture.wait()
    assert link.written == [(FENCE, CODE)]


def test_a_capture_done_before_the_row_exists_waits_for_it() -> None:
    link = Link()
    capture = CodeCapture(lambda: CODE)
    capture._thread.join(0.2)
    assert not capture.done  # captured, waiting for the row
    capture.record_into(link, FENCE)  # type: ignore[arg-type]
    capture.wait()
    assert link.written == [(FENCE, CODE)]


def test_an_abandoned_capture_writes_nothing() -> None:
    capture = CodeCapture(lambda: CODE)
    capture.abandon()
    assert capture.done
    capture.wait()


class Broken(ClearqError):
    pass


def _failing() -> Code:
    raise Broken("git status failed in /repo: fatal: index file corrupt")


def test_a_capture_error_is_raised_to_each_waiter_unless_asked_not_to() -> None:
    capture = CodeCapture(_failing)
    capture.record_into(Link(), FENCE)  # type: ignore[arg-type]
    with pytest.raises(Broken, match="index file corrupt"):
        capture.wait()
    with pytest.raises(Broken):
        capture.wait()
    capture.wait(raise_error=False)


class Reporter:
    lease_lost = False

    def close(self) -> None:
        pass


class RunLink:
    def __init__(self) -> None:
        self.finished: list[tuple[TaskStatus, int | None, str]] = []

    def finish(
        self, fence: RunFence, status: TaskStatus, *, exit_code: int | None, reason: str
    ) -> None:
        self.finished.append((status, exit_code, reason))

    def close(self) -> None:
        pass


def _run(capture: CodeCapture) -> tuple[Run, RunLink]:
    link = RunLink()
    run = Run(link, FENCE, Reporter(), under_agent=False, code=capture)  # type: ignore[arg-type]
    return run, link


def test_the_run_ends_only_after_its_code_is_written() -> None:
    release = threading.Event()
    code_link = Link()
    capture = CodeCapture(_slow(release))
    capture.record_into(code_link, FENCE)  # type: ignore[arg-type]
    run, link = _run(capture)
    ender = threading.Thread(target=run.end)
    ender.start()
    ender.join(0.2)
    assert ender.is_alive()  # the end waits for the capture
    assert link.finished == []
    release.set()
    ender.join(5)
    assert code_link.written == [(FENCE, CODE)]
    assert link.finished == [(TaskStatus.COMPLETED, 0, "")]


def test_a_run_whose_code_could_not_be_captured_ends_failed_saying_why() -> None:
    capture = CodeCapture(_failing)
    capture.record_into(Link(), FENCE)  # type: ignore[arg-type]
    run, link = _run(capture)
    run.end()
    [(status, code, reason)] = link.finished
    assert (status, code) == (TaskStatus.FAILED, 1)
    assert reason == (
        "capturing the code failed: git status failed in /repo: fatal: index file corrupt"
    )


def test_a_script_that_failed_keeps_its_own_reason() -> None:
    capture = CodeCapture(_failing)
    capture.record_into(Link(), FENCE)  # type: ignore[arg-type]
    run, link = _run(capture)
    run.end(Outcome(TaskStatus.FAILED, 3, "exited with 3"))
    assert link.finished == [(TaskStatus.FAILED, 3, "exited with 3")]


def test_a_superseded_attempt_is_not_failed_by_its_late_code() -> None:
    capture = CodeCapture(lambda: CODE)
    capture.record_into(Link(refuse=True), FENCE)  # type: ignore[arg-type]
    run, link = _run(capture)
    run.end()
    assert link.finished == [(TaskStatus.COMPLETED, 0, "")]
