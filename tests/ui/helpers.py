"""Serving the UI for a test, and plain HTTP requests to it."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path

import uvicorn

from clearq.scheduler import Store
from clearq.ui import create_app
from tests import forkserver
from tests.acceptance.conftest import CLEARQ, Cli

START_SECONDS = 30


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Reply:
    """An HTTP response, read whole."""

    status: int
    headers: Mapping[str, str]
    body: str
    cookies: list[str] = field(default_factory=list)


def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> Reply:
    """One request, redirects not followed (``url`` is ``http://host:port/path``)."""
    match = re.fullmatch(r"http://([^/]+)(/.*)", url)
    assert match, url
    conn = HTTPConnection(match.group(1), timeout=10)
    try:
        conn.request(method, match.group(2), body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        text = response.read().decode()
        cookies = response.headers.get_all("set-cookie") or []
        return Reply(response.status, dict(response.headers.items()), text, cookies)
    finally:
        conn.close()


class InProcessUi:
    """The UI app served by uvicorn in a thread of the test process."""

    def __init__(self, store: Store, token: str | None = None) -> None:
        config = uvicorn.Config(
            create_app(store, token=token), host="127.0.0.1", port=free_port(), log_level="error"
        )
        self.url = f"http://127.0.0.1:{config.port}"
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> InProcessUi:
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            assert time.monotonic() < deadline, "the UI did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class UiProcess:
    """``clearq ui`` as a user runs it: a subprocess on a free port."""

    def __init__(self, cli: Cli, log: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log
        with log.open("wb") as out:
            self.proc = forkserver.spawn(
                [str(CLEARQ), "ui", "--port", str(self.port), *args],
                env=cli.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self.proc.poll() is None, f"clearq ui exited: {self._log.read_text()}"
            try:
                fetch("GET", f"{self.url}/static/app.css")
                return
            except OSError:
                assert time.monotonic() < deadline, (
                    f"clearq ui never answered: {self._log.read_text()}"
                )
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
