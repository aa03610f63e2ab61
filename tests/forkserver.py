"""Start the tests' ``clearq`` processes by forking one that has already imported clearq.

Every ``clearq`` command a test runs is a new process, as a user's is, and each used to
spend most of its CPU (0.5-0.8 s of 0.6-1.0 s here) importing SQLAlchemy, psycopg,
pydantic, typer and rich before it did anything. On 2 cores the suite is CPU-bound, so
those imports were a large share of its time. The zygote below imports them once per
test process and forks a child for each command: the child is a real process of its own
(its own pid, environment, working directory, standard streams and exit status, killed
and signalled like any other), which runs the ``clearq`` console script as a new
interpreter would (``runpy`` on the script, so ``__main__`` is the script) and ends as
an interpreter does (non-daemon threads joined, ``atexit`` functions run, streams
flushed). The one thing it shares with its siblings is the imported, not yet used
modules: nothing of clearq's runs in the zygote before a fork (its modules compute
nothing from the environment at import; the tests in test_cli_imports and test_readme
still start the real console script, so a command that does not import on its own
fails there).

``CLEARQ_TEST_FORK=0`` starts every command with ``subprocess`` instead.

The protocol, on a Unix socket: the client sends one JSON line (argv, environment,
working directory) with three descriptors (stdin, stdout, stderr) attached; the zygote
answers with the child's pid, then with its wait status when it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

CLEARQ = Path(sys.executable).with_name("clearq")
PRELOAD = (
    "clearq.cli.app",
    "clearq.scheduler.store",
    "clearq.runtime.agent",
    "clearq.runtime.executor",
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "psycopg",
    "pydantic",
    "typer._adapters",
    "rich.console",
    "rich.table",
)
"""What the zygote imports: what nearly every command would import first."""


def enabled() -> bool:
    return os.environ.get("CLEARQ_TEST_FORK", "1") != "0"


# --------------------------------------------------------------------------- the client side


class ForkedProcess:
    """A child of the zygote, with the part of ``subprocess.Popen``'s interface tests use."""

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.pid = pid
        self.returncode: int | None = None
        self.args: Sequence[str] = ()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read_status(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._read_status(timeout):
            raise subprocess.TimeoutExpired(list(self.args), timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # ended, and not yet read
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _read_status(self, timeout: float | None) -> bool:
        with self._lock:
            if self.returncode is not None:
                return True
            self._conn.settimeout(timeout)
            try:
                line = _read_line(self._conn)
            except (BlockingIOError, TimeoutError):
                return False
            finally:
                self._conn.settimeout(None)
            self._conn.close()
            self.returncode = os.waitstatus_to_exitcode(int(line))
            return True


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            raise ConnectionError("the test zygote went away")
        data += chunk
    return data


class _Zygote:
    """This test process's zygote, started on first use and stopped at its exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._path = ""

    def socket_path(self) -> str:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            return self._path

    def _start(self) -> None:
        folder = tempfile.mkdtemp(prefix="clearq-zygote-")
        path = os.path.join(folder, "sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver", path, str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a test's signal to its group is not the zygote's
        )
        deadline = time.monotonic() + 60
        while not os.path.exists(path):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test zygote did not start (exit {self._proc.poll()})")
            time.sleep(0.02)
        self._path = path
        atexit.register(self.stop)

    def stop(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
                self._proc.wait(10)


_ZYGOTE = _Zygote()


Process = ForkedProcess | subprocess.Popen[bytes]
"""A started command: the zygote's child, or a plain subprocess where forking is off."""


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> Process:
    """Start ``argv`` (the clearq console script and its arguments) as a new process.

    ``stdout`` and ``stderr`` take a file or a descriptor as ``Popen`` does, or
    ``subprocess.STDOUT`` for stderr; stdin is ``/dev/null``.
    """
    if not enabled():
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    out_fd = _fd(stdout, 1)
    err_fd = out_fd if stderr == subprocess.STDOUT else _fd(stderr, 2)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(_ZYGOTE.socket_path())
    header = json.dumps(
        {"argv": list(argv), "env": dict(env), "cwd": os.fspath(cwd or os.getcwd())}
    ).encode()
    with open(os.devnull, "rb") as null:
        socket.send_fds(conn, [header + b"\n"], [null.fileno(), out_fd, err_fd])
    proc = ForkedProcess(conn, int(_read_line(conn)))
    proc.args = list(argv)
    return proc


def _fd(stream: int | IO[Any] | None, default: int) -> int:
    if stream is None:
        return default
    if isinstance(stream, int):
        if stream < 0:
            raise ValueError("spawn takes files or descriptors, not subprocess.PIPE")
        return stream
    return stream.fileno()


@dataclass(frozen=True)
class Completed:
    """What ``subprocess.run(..., capture_output=True, text=True)`` gives back."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


Result = Completed | subprocess.CompletedProcess[str]
"""A command run to its end: the zygote's, or subprocess's where forking is off."""


def run(
    argv: Sequence[str], *, env: Mapping[str, str], timeout: float, cwd: str | None = None
) -> Result:
    """Run ``argv`` to its end and capture its output, as ``subprocess.run`` would."""
    if not enabled():
        return subprocess.run(
            list(argv),
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = spawn(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return Completed(list(argv), code, _text(out.read()), _text(err.read()))


def _text(data: bytes) -> str:
    # As text=True reads a pipe: the locale's encoding, universal newlines.
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------- the zygote side


def _serve(path: str, parent: int) -> None:
    for name in PRELOAD:
        __import__(name)
    global _SELECTOR
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(path + ".tmp")
    listening.listen(64)
    os.rename(path + ".tmp", path)  # the client waits for the name: bound and listening
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children: dict[int, socket.socket] = {}
    selector = _SELECTOR = selectors.DefaultSelector()
    selector.register(listening, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    while os.getppid() == parent:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is not listening:
                os.read(wake_r, 4096)
                continue
            conn, _ = listening.accept()
            try:
                _fork(conn, listening, wake_r, wake_w, children)
            except (OSError, ValueError) as e:  # a client that went away, or sent nonsense
                print(f"test zygote: {e}", file=sys.stderr)
                conn.close()
        _reap(children)


_SELECTOR: selectors.BaseSelector | None = None


def _fork(
    conn: socket.socket,
    listening: socket.socket,
    wake_r: int,
    wake_w: int,
    children: dict[int, socket.socket],
) -> None:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while not data.endswith(b"\n"):
        data += conn.recv(1 << 20)
    request = json.loads(data)
    pid = os.fork()
    if pid == 0:
        if _SELECTOR is not None:
            _SELECTOR.close()
        listening.close()
        os.close(wake_r)
        os.close(wake_w)
        for other in children.values():
            other.close()
        conn.close()
        _child(request, fds)  # never returns
    for fd in fds:
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    children[pid] = conn


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):  # the test that started it has gone
                conn.sendall(f"{status}\n".encode())
            conn.close()


def _child(request: dict[str, Any], fds: list[int]) -> None:
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in set(fds):
            if fd > 2:
                os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.stdin = _stream(0, "r")
        sys.stdout = _stream(1, "w")
        sys.stderr = _stream(2, "w", errors="backslashreplace")
        sys.argv = list(request["argv"])
        code = _run_script(sys.argv[0])
    except BaseException:  # before the script ran: say why on the child's stderr
        import traceback

        os.write(2, traceback.format_exc().encode())
    finally:
        os._exit(code)


def _stream(fd: int, mode: str, errors: str = "strict") -> io.TextIOWrapper:
    # As the interpreter makes its own: buffered unless PYTHONUNBUFFERED, a line at a time
    # on a terminal.
    raw = io.FileIO(fd, mode, closefd=False)
    tty = raw.isatty()
    if mode == "r":
        return io.TextIOWrapper(io.BufferedReader(raw), errors=errors)
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        errors=errors,
        line_buffering=tty,
        write_through=unbuffered,
    )


def _run_script(script: str) -> int:
    import runpy

    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:  # as the interpreter does: print it, exit 1
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own exit steps
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as the interpreter does when it cannot flush
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
