"""One LISTEN per machine (clearq.scheduler.relay), with real processes and PostgreSQL.

Each process below is a listener of its own (``store.listen()``, as an agent's loop
makes); they share one home and database, so one of them LISTENs and relays hints to
the others over a unix socket, and when it dies another takes over.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from clearq.config import Settings
from clearq.models import TaskStatus
from clearq.runtime.agent import worker_id
from clearq.scheduler import Store
from clearq.scheduler.notify import ENQUEUE_CHANNEL
from clearq.scheduler.relay import RelayListener
from tests.integration.helpers import queued
from tests.pgserver import listen_backends

pytestmark = pytest.mark.postgres

WAIT_SECONDS = 90.0

LISTENER = """
import sys
from pathlib import Path
from clearq.config import Settings
from clearq.scheduler import Store

url, home = sys.argv[1], Path(sys.argv[2])
store = Store(url, settings=Settings(home=home, database_url=url))
listener = store.listen()
print("ready", listener.connected, flush=True)
while True:
    for notice in listener.wait(1.0):
        print("notice", notice.channel, notice.payload, flush=True)
"""


AGENT = """
import sys
import threading
import time
from pathlib import Path
from clearq.config import Settings
from clearq.models import TaskStatus
from clearq.runtime import agent as agent_module
from clearq.runtime.agent import Agent, AgentOptions
from clearq.runtime.executor import Outcome
from clearq.scheduler import Store

# Its idle re-claim an hour away: only a hint (or polling while it has none) claims.
agent_module.LISTENING_WAIT_SECONDS = 3600.0


class Completes:
    def run(self, claim, control, gpus):
        return Outcome(TaskStatus.COMPLETED, 0)


url, home, name, queue = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
store = Store(url, settings=Settings(home=home, database_url=url))
agent = Agent(store, Completes(), AgentOptions(queues=(queue,), name=name))
threading.Thread(target=agent.run, daemon=True).start()
listener = store.listen()  # the process's one relay, which the agent's loop shares
while agent.state.value == "starting" or not listener.connected:
    time.sleep(0.05)
print("serving", flush=True)
threading.Event().wait()
"""


class Listening:
    """A listener process; what it printed, line by line."""

    def __init__(
        self, url: str, home: Path, *, script: str = LISTENER, args: tuple[str, ...] = ()
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, url, str(home), *args],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.strip())

    def wait_for(self, text: str, *, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"listener {self.proc.pid} never said {text!r}: {self.seen}"
            try:
                self.seen.append(self.lines.get(timeout=min(left, 0.5)))
            except queue.Empty:
                continue

    def has_said(self, text: str) -> bool:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return text in self.seen

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one too
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=WAIT_SECONDS)


@pytest.fixture
def listeners(pg_url: str, tmp_path: Path) -> Iterator[list[Listening]]:
    with Store(pg_url, settings=Settings(home=tmp_path, database_url=pg_url)):
        pass  # the schema, before any listener opens the store
    started: list[Listening] = []
    yield started
    for one in started:
        one.kill()


def _notify(pg_url: str, payload: str) -> None:
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (ENQUEUE_CHANNEL, payload))


def _until(condition: object, what: str, *, pause: float = 0.2) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(pause)


def test_listeners_of_one_machine_share_one_listen_and_all_hear_a_hint(
    pg_url: str, tmp_path: Path, listeners: list[Listening]
) -> None:
    for _ in range(3):
        listeners.append(Listening(pg_url, tmp_path))
    for one in listeners:
        one.wait_for("ready True")
    assert len(listen_backends(pg_url)) == 1
    _notify(pg_url, "q1")
    for one in listeners:
        one.wait_for(f"notice {ENQUEUE_CHANNEL} q1")


def test_when_the_listening_process_dies_another_takes_over(
    pg_url: str, tmp_path: Path, listeners: list[Listening]
) -> None:
    hub = Listening(pg_url, tmp_path)
    listeners.append(hub)
    hub.wait_for("ready True")  # the first: it holds the lock and LISTENs
    (first,) = listen_backends(pg_url)
    others = [Listening(pg_url, tmp_path) for _ in range(2)]
    listeners.extend(others)
    for one in others:
        one.wait_for("ready True")
    assert listen_backends(pg_url) == [first]
    hub.kill()

    def heard() -> bool:  # a hint sent while no one listens is lost: send until heard
        _notify(pg_url, "after")
        return all(one.has_said(f"notice {ENQUEUE_CHANNEL} after") for one in others)

    _until(heard, "the others never heard a hint after the listening process died", pause=0.5)
    _until(lambda: len(listen_backends(pg_url)) == 1, "not one LISTEN after the handover")
    assert listen_backends(pg_url) != [first]


def test_a_frozen_listening_process_is_relayed_around_until_it_thaws(
    pg_url: str, tmp_path: Path, listeners: list[Listening]
) -> None:
    queue = "frozen"
    with Store(pg_url, settings=Settings(home=tmp_path, database_url=pg_url)) as store:
        store.queues.create(queue)
        hub = Listening(pg_url, tmp_path, script=AGENT, args=("hub", queue))
        listeners.append(hub)
        hub.wait_for("serving")
        _until(lambda: len(listen_backends(pg_url)) == 1, "the first agent never listened")
        other = Listening(pg_url, tmp_path, script=AGENT, args=("other", queue))
        listeners.append(other)
        other.wait_for("serving")
        assert len(listen_backends(pg_url)) == 1  # the other hears the hub's hints

        hub.proc.send_signal(signal.SIGSTOP)  # alive, its lock held, its socket open
        frozen = queued(store, queue, "while frozen")

        def claimed_by_other(task_id: object) -> bool:
            task = store.tasks.get(task_id)  # type: ignore[arg-type]
            return task.status is TaskStatus.COMPLETED and task.worker == worker_id("other")

        _until(lambda: claimed_by_other(frozen), "no agent claimed while the hub was frozen")
        _until(lambda: len(listen_backends(pg_url)) == 2, "no deputy listened for the frozen hub")
        relayed = queued(store, queue, "through the deputy")  # a hint, as the agent waits
        _until(lambda: claimed_by_other(relayed), "the deputy's hint never reached the agent")

        hub.proc.send_signal(signal.SIGCONT)
        _until(lambda: len(listen_backends(pg_url)) == 1, "not one LISTEN after the thaw")
        after = [queued(store, queue, f"after {k}") for k in range(3)]
        _until(
            lambda: all(store.tasks.get(t).status is TaskStatus.COMPLETED for t in after),
            "hints stopped reaching the agents after the thaw",
        )
        assert len(listen_backends(pg_url)) == 1


def test_listeners_in_one_process_share_one_relay(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=pg_url, listen_relay="process")
    with Store(pg_url, settings=settings) as a, Store(pg_url, settings=settings) as b:
        one, two = a.listen(), b.listen()
        try:
            assert isinstance(one, RelayListener)
            assert one.connected
            assert len(listen_backends(pg_url)) == 1
            payload = str(uuid.uuid4())
            _notify(pg_url, payload)
            for listener in (one, two):
                deadline = time.monotonic() + WAIT_SECONDS
                got: list[str] = []
                while payload not in got and time.monotonic() < deadline:
                    got += [n.payload for n in listener.wait(1.0)]
                assert payload in got
        finally:
            one.close()
            two.close()
        _until(lambda: not listen_backends(pg_url), "the LISTEN outlived its last listener")


def test_off_gives_each_listener_its_own_connection(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=pg_url, listen_relay="off")
    with Store(pg_url, settings=settings) as store:
        one, two = store.listen(), store.listen()
        try:
            assert len(listen_backends(pg_url)) == 2
        finally:
            one.close()
            two.close()
