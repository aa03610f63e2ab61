"""A private git server for tests: ``git http-backend`` behind HTTPS with basic auth.

It serves the bare repositories under one folder on loopback, answers 401 to a request
without the one user and token it knows, and, while it serves each request (the
client's git is running then), reads every process's command line looking for the
token: what it finds is in ``argv_leaks``.
"""

from __future__ import annotations

import base64
import http.server
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HTTP_BACKEND = (
    Path(
        subprocess.run(
            ["git", "--exec-path"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    / "git-http-backend"
)


@dataclass
class GitServer:
    """What the server saw: authorised requests, refused ones, tokens found in argv."""

    root: Path
    user: str
    token: str
    ca_file: Path
    port: int = 0
    served: int = 0
    refused: int = 0
    argv_leaks: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        """The repository ``name``'s URL, with no credentials in it."""
        return f"https://127.0.0.1:{self.port}/{name}"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _scan_cmdlines(token: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        if token.encode() in argv:
            found.append(argv.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _handler(server: GitServer) -> type[http.server.BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{server.user}:{server.token}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return  # quiet

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            server.argv_leaks.extend(_scan_cmdlines(server.token))
            if self.headers.get("Authorization") != expected:
                server.refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            server.served += 1
            self._backend()

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while (size := int(self.rfile.readline().strip(), 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _backend(self) -> None:
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ.get("PATH", os.defpath),
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "REMOTE_USER": server.user,
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }
            if encoding := self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = encoding
            done = subprocess.run(
                [str(HTTP_BACKEND)], input=self._body(), env=env, capture_output=True, check=False
            )
            head, _, body = done.stdout.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def git_server(root: Path, folder: Path, *, user: str, token: str) -> Iterator[GitServer]:
    """Serve the bare repositories in ``root`` over HTTPS on loopback until the block ends."""
    cert, key = _self_signed(folder)
    state = GitServer(root=root, user=user, token=token, ca_file=cert)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
