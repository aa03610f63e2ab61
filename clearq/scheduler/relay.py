"""One LISTEN per machine: the listeners of a host share one notification connection.

DESIGN. PostgreSQL delivers a NOTIFY to every session that LISTENs, and each such
session is a server connection of its own; behind a transaction pooler it must be a
direct one (``CLEARQ_LISTEN_URL``) that the pooler cannot share. A fleet of 500 agents
on a server capped at ``max_connections=100`` cannot give each agent its own. So:

- Within a process, every listener for the same URL and channels subscribes to one
  :class:`_Relay` (a daemon thread): one source for all the agent loops and stores in
  it (``CLEARQ_LISTEN_RELAY=process`` stops there: the relay LISTENs itself).
- Across processes (``CLEARQ_LISTEN_RELAY=host``, the default) the relays of one
  machine, OS user, home and database race for an exclusive lock (``filelock``: an
  flock, which the kernel drops when its holder dies). The winner, the *hub*, LISTENs
  (a :class:`~clearq.scheduler.notify.PgListener`) and writes each hint, one line,
  to every process connected to its unix socket, next to the lock in
  ``$TMPDIR/clearq-<uid>`` (the folder 0700, the socket 0600: only the same OS user
  connects). The others connect to the socket and read hints from it.
- When the hub's process ends (or its last listener closes) its lock goes and its
  socket closes: every client sees end-of-file and tries the lock; one wins and
  listens, the others connect to it. Each change of source wakes every waiter with no
  hints, so it polls the store for what it may have missed. While no source is
  reachable (for longer than a handover takes, ``HANDOVER_GRACE_SECONDS``), or the
  hub's own LISTEN connection is down, waiting is a polling sleep and every listener's
  ``on_change`` hears the loss once, and the return once.
- A hub that is alive but frozen (SIGSTOP, a debugger, a swapped-out VM) keeps its lock
  and its socket: its clients would hear nothing and never see end-of-file. So the hub
  speaks at least every ``KEEPALIVE_SECONDS`` (a keepalive line), and a client that hears
  nothing for ``SILENT_SECONDS`` leaves it for the next *slot*: slot 0 is the hub's lock
  and socket, slots 1.. are deputies' (``SLOTS`` in all). There the clients race for that
  slot's lock exactly as for the hub's: one deputy LISTENs and relays, the others connect
  to it, so a frozen hub costs one LISTEN connection more, not one per process. A deputy
  keeps knocking at the slots below its own; as soon as one of them answers (the hub
  thawed, or a new process took the dead one's lock), the deputy closes its socket and
  LISTEN and its clients go back to slot 0: one LISTEN again.
- A hint is only a hint (:mod:`clearq.scheduler.notify`): a lost one costs latency,
  never correctness.

The wire: ``N<TAB>channel<TAB>payload`` per hint; ``S<TAB>1`` (the hub listens) or
``S<TAB>0<TAB>why`` (its LISTEN connection is down), sent on every change and first
to each new client; ``K`` (a keepalive) while there is nothing else to say.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import select
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from clearq.errors import ConnectionLost, StoreError
from clearq.scheduler.engine import Database
from clearq.scheduler.notify import Notice, PgListener, listen_target

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.25
"""Between tries (jittered) to reach a hub or take the lock while neither works."""
HANDOVER_GRACE_SECONDS = 3.0
"""A source gone for longer than this is reported (a handover takes less)."""
TICK_SECONDS = 0.5
"""How often the relay thread looks whether it should stop."""
SETTLE_SECONDS = 10.0
"""How long ``listen()`` waits for its relay to listen (or to fail) before it returns."""
SEND_TIMEOUT_SECONDS = 2.0
"""A client that does not read for this long is dropped (it reconnects)."""
KEEPALIVE_SECONDS = 1.0
"""A hub that has said nothing for this long says that it is there."""
SILENT_SECONDS = 6.0
"""A hub not heard for this long is taken for frozen: its clients go to a deputy. Far
above the keepalive, so that a hub slowed by a loaded machine is not left (leaving one
that is alive costs a second LISTEN for a moment, never a hint)."""
SLOTS = 4
"""The hub's lock and socket and its deputies': how many frozen relays in a row a host
rides out before its listeners poll."""

Source = Callable[[Callable[[StoreError | None], None]], PgListener]

_relays: dict[tuple[str, ...], _Relay] = {}
_relays_lock = threading.Lock()


def _forget_after_fork() -> None:
    # A forked child has none of its parent's relay threads: its listeners start anew.
    global _relays_lock
    _relays.clear()
    _relays_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def shared_listener(
    db: Database,
    channels: tuple[str, ...],
    *,
    on_change: Callable[[StoreError | None], None] | None = None,
) -> RelayListener:
    """A listener on this process's relay for ``db``'s LISTEN URL and ``channels``."""
    dsn, _where, _args = listen_target(db)
    host = db.settings.listen_relay == "host"
    home = str(db.settings.home_dir)
    key = (dsn, ",".join(sorted(channels)), home, "host" if host else "process")

    def source(changed: Callable[[StoreError | None], None]) -> PgListener:
        return PgListener(db, channels, on_change=changed)

    with _relays_lock:
        relay = _relays.get(key)
        if relay is None:
            relay = _Relay(key, source, slots=_slots(key) if host else None)
            _relays[key] = relay
        listener = RelayListener(relay, on_change)
        relay.add(listener)
    relay.settled.wait(SETTLE_SECONDS)
    return listener


def _slots(key: tuple[str, ...]) -> list[tuple[Path, Path]] | None:
    """The (lock, socket) of the hub and its deputies for ``key`` here; None: none safe."""
    digest = hashlib.sha256("\0".join((socket.gethostname(), *key)).encode()).hexdigest()[:20]
    folder = Path(tempfile.gettempdir()) / f"clearq-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise PermissionError(f"{folder} is not a folder of this user's")
        if info.st_mode & 0o077:
            folder.chmod(0o700)
    except OSError as e:
        log.warning("cannot share LISTEN with this machine's other processes: %s", e)
        return None
    names = [f"listen-{digest}"] + [f"listen-{digest}-{k}" for k in range(1, SLOTS)]
    return [(folder / f"{name}.lock", folder / f"{name}.sock") for name in names]


class RelayListener:
    """One waiter's view of its process's relay (:class:`~clearq.scheduler.notify.Listener`)."""

    def __init__(
        self, relay: _Relay, on_change: Callable[[StoreError | None], None] | None
    ) -> None:
        self._relay = relay
        self.on_change = on_change
        self._cond = threading.Condition()
        self._pending: list[Notice] = []
        self._woken = False
        self._closed = False

    @property
    def connected(self) -> bool:
        """True while hints arrive: the hub (this process or another) LISTENs."""
        return self._relay.live

    def push(self, notices: Sequence[Notice]) -> None:
        """Hints arrived (an empty list: wake up and poll the store)."""
        with self._cond:
            self._pending.extend(notices)
            self._woken = True
            self._cond.notify_all()

    def wait(self, timeout: float) -> list[Notice]:
        """Block until hints arrive, the source changes, or ``timeout`` seconds pass."""
        with self._cond:
            self._cond.wait_for(lambda: self._woken or self._closed, timeout)
            notices, self._pending, self._woken = self._pending, [], False
        return notices

    def wake(self) -> None:
        """End a wait in progress, or the next one (the condition's lock is reentrant, so
        a signal handler interrupting this thread's wait can take it)."""
        self.push([])

    def close(self) -> None:
        """Leave the relay (the last to leave stops it)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._relay.remove(self)


class _Relay:
    """A process's one source of hints: the hub's LISTEN, or a client of another's."""

    def __init__(
        self, key: tuple[str, ...], source: Source, *, slots: list[tuple[Path, Path]] | None
    ) -> None:
        self._key = key
        self._source = source
        self._slots = slots
        self._lock = threading.Lock()
        self._listeners: list[RelayListener] = []
        self._clients: list[socket.socket] = []
        self._stopping = threading.Event()
        self.settled = threading.Event()
        """Set once the relay first listens, or first finds it cannot."""
        self.live = False
        self._ever_live = False
        self._gone_since: float | None = None
        self._reported: StoreError | None = None
        self._thread = threading.Thread(target=self._run, name="clearq-listen-relay", daemon=True)
        self._thread.start()

    # ---- subscribers ----------------------------------------------------------------

    def add(self, listener: RelayListener) -> None:
        with self._lock:
            self._listeners.append(listener)
            reported = self._reported
        if reported is not None and listener.on_change is not None:
            listener.on_change(reported)

    def remove(self, listener: RelayListener) -> None:
        with _relays_lock, self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            last = not self._listeners
            if last and _relays.get(self._key) is self:
                del _relays[self._key]
        if last:
            self._stopping.set()
            self._thread.join(timeout=SETTLE_SECONDS)

    def _deliver(self, notices: Sequence[Notice]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.push(notices)

    def _tell(self, error: StoreError | None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            if listener.on_change is not None:
                listener.on_change(error)

    # ---- state ----------------------------------------------------------------------

    def _up(self) -> None:
        again = not self.live and self._ever_live
        self.live = self._ever_live = True
        self._gone_since = None
        self.settled.set()
        if again:
            self._deliver([])  # poll for what was missed while no one listened
        if self._reported is not None:
            self._reported = None
            self._tell(None)

    def _down(self, error: StoreError | None) -> None:
        """The source went (``error``: report it now; None: after the grace)."""
        was = self.live
        self.live = False
        if self._gone_since is None:
            self._gone_since = time.monotonic()
        if was:
            self._deliver([])
        if error is not None:
            self._report(error)

    def _report(self, error: StoreError) -> None:
        self.settled.set()
        if self._reported is None:
            self._reported = error
            self._tell(error)

    def _report_if_long_gone(self) -> None:
        gone = self._gone_since
        if gone is not None and time.monotonic() - gone >= HANDOVER_GRACE_SECONDS:
            self._report(
                ConnectionLost(
                    "no process on this machine relays notifications: taking over, "
                    "polling meanwhile"
                )
            )

    # ---- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._slots is None:
                while not self._stopping.is_set():
                    self._be_hub(None)
            else:
                self._serve_slots(self._slots)
        except Exception as e:  # waiters must go on polling, never hang
            log.exception("the notification relay failed; polling from now on")
            self.live = False
            self._report(ConnectionLost(f"the notification relay failed: {e}"))

    def _serve_slots(self, slots: list[tuple[Path, Path]]) -> None:
        # Slot 0 is the hub's; a client goes one slot on when its relay falls silent, and
        # back to 0 when its relay ends (a deputy ends when a slot below it answers).
        slot, tried_since = 0, time.monotonic()
        while not self._stopping.is_set():
            lock_path, socket_path = slots[slot]
            client = _dial(socket_path)
            if client is not None:
                silent = self._be_client(client)
                slot, tried_since = (slot + 1) % len(slots) if silent else 0, time.monotonic()
                continue
            lock = FileLock(lock_path, timeout=0, thread_local=False)
            try:
                lock.acquire()
            except Timeout:  # held, no socket yet: it comes soon, unless its holder froze
                self._down(None)
                self._report_if_long_gone()
                if time.monotonic() - tried_since >= SILENT_SECONDS:
                    slot, tried_since = (slot + 1) % len(slots), time.monotonic()
                self._stopping.wait(RETRY_SECONDS * (0.5 + random.random()))  # noqa: S311 - jitter
                continue
            try:
                self._be_hub(socket_path, below=[path for _, path in slots[:slot]])
            finally:
                lock.release()
            slot, tried_since = 0, time.monotonic()

    def _be_hub(self, socket_path: Path | None, *, below: Sequence[Path] = ()) -> None:
        """LISTEN and relay; a deputy (``below``: the sockets of the slots under its own)
        returns as soon as one of them answers."""
        server = None if socket_path is None else _bind(socket_path)
        source = self._source(self._source_changed)
        threads = []
        answered = threading.Event()
        try:
            if source.connected:
                self._up()
            if server is not None:  # clients connect once the first state is known
                threads.append(_thread(self._accept, server, name="clearq-listen-hub"))
            if below:
                log.warning(
                    "the process relaying notifications on this machine is silent: "
                    "relaying in its place until it answers"
                )
                threads.append(_thread(self._knock, below, answered, name="clearq-listen-knock"))
            while not self._stopping.is_set() and not answered.is_set():
                notices = source.wait(TICK_SECONDS)
                if notices:
                    self._deliver(notices)
                    self._send(b"".join(_notice_line(n) for n in notices))
        finally:
            self.live = False
            source.close()
            if server is not None:
                assert socket_path is not None
                with contextlib.suppress(OSError):
                    socket_path.unlink()
                server.close()
            answered.set()  # ends the knocking
            for thread in threads:
                thread.join(timeout=SETTLE_SECONDS)
            with self._lock:
                clients, self._clients = self._clients, []
            for client in clients:
                client.close()

    def _knock(self, below: Sequence[Path], answered: threading.Event) -> None:
        # A deputy's watch on the slots under its own: a line from one means it relays
        # (a frozen hub's kernel takes the connection; the hub answers once it thaws).
        conns: dict[Path, socket.socket] = {}
        try:
            while not answered.is_set() and not self._stopping.is_set():
                for path in below:
                    if path not in conns and (conn := _dial(path)) is not None:
                        conns[path] = conn
                if not conns:
                    answered.wait(TICK_SECONDS)
                    continue
                ready, _, _ = select.select(list(conns.values()), [], [], TICK_SECONDS)
                for path, conn in list(conns.items()):
                    if conn not in ready:
                        continue
                    try:
                        data = conn.recv(1)
                    except OSError:
                        data = b""
                    if data:
                        answered.set()
                        return
                    del conns[path]  # that relay ended: knock again
                    conn.close()
                if ready:  # only ended ones: pause before knocking again
                    answered.wait(TICK_SECONDS)
        finally:
            for conn in conns.values():
                conn.close()

    def _source_changed(self, error: StoreError | None) -> None:
        # The hub's own LISTEN connection went (error) or came back (None).
        if error is None:
            self._up()
        else:
            self._down(error)
        self._send(_state_line(error))

    def _accept(self, server: socket.socket) -> None:
        # Also the keepalive: a thread apart from the LISTEN connection's, which may block
        # in a reconnect while this one goes on saying that the hub is there.
        server.settimeout(TICK_SECONDS)
        spoke = time.monotonic()
        while not self._stopping.is_set():
            if time.monotonic() - spoke >= KEEPALIVE_SECONDS:
                self._send(b"K\n")
                spoke = time.monotonic()
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(SEND_TIMEOUT_SECONDS)
            with self._lock:
                line = _state_line(None if self.live else self._reported or ConnectionLost(""))
                try:
                    client.sendall(line)
                except OSError:
                    client.close()
                    continue
                self._clients.append(client)

    def _send(self, data: bytes) -> None:
        with self._lock:
            for client in list(self._clients):
                try:
                    client.sendall(data)
                except OSError:  # gone, or not reading: it reconnects
                    self._clients.remove(client)
                    client.close()

    def _be_client(self, client: socket.socket) -> bool:
        """Relay what the hub says until it ends; True: it fell silent (frozen?)."""
        client.settimeout(TICK_SECONDS)
        buffer = b""
        heard = time.monotonic()
        try:
            while not self._stopping.is_set():
                try:
                    data = client.recv(65536)
                except TimeoutError:
                    if time.monotonic() - heard < SILENT_SECONDS:
                        continue
                    log.warning(
                        "the process relaying notifications on this machine has said nothing "
                        "for %g s: leaving it for a deputy",
                        SILENT_SECONDS,
                    )
                    return True
                except OSError:
                    break
                if not data:
                    break  # the hub went: take over, or reach the next one
                heard = time.monotonic()
                *lines, buffer = (buffer + data).split(b"\n")
                self._read_lines(lines)
        finally:
            client.close()
            self._down(None)
        return False

    def _read_lines(self, lines: Sequence[bytes]) -> None:
        notices = []
        for line in lines:
            kind, _, rest = line.decode(errors="replace").partition("\t")
            if kind == "N":
                channel, _, payload = rest.partition("\t")
                notices.append(Notice(channel=channel, payload=payload))
            elif kind == "S" and rest.startswith("1"):
                self._up()
            elif kind == "S":
                why = rest.partition("\t")[2] or "the relaying process cannot listen"
                self._down(ConnectionLost(why))
        if notices:
            self._deliver(notices)


def _dial(path: Path) -> socket.socket | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(TICK_SECONDS)  # a frozen hub's full backlog would block a connect
    try:
        client.connect(str(path))
    except OSError:
        client.close()
        return None
    return client


def _thread(target: Callable[..., None], *args: object, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def _bind(path: Path) -> socket.socket:
    # Called holding the lock: a socket file left here is a dead hub's.
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        path.chmod(0o600)
        server.listen(128)
    except OSError:
        server.close()
        raise
    return server


def _notice_line(notice: Notice) -> bytes:
    return f"N\t{notice.channel}\t{notice.payload}\n".encode()


def _state_line(error: StoreError | None) -> bytes:
    if error is None:
        return b"S\t1\n"
    return f"S\t0\t{' '.join(str(error).split())}\n".encode()
