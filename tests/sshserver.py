"""A throwaway ssh git server for tests: OpenSSH's ``sshd`` on a loopback port.

It has a host key of its own and accepts one generated client key (``restrict``ed: no
pty, no forwarding) for the user running the tests, and no password; git runs
``git-upload-pack`` through it as over any ssh remote. ``git_ssh_command`` is what an
agent's operator would set (``GIT_SSH_COMMAND``): that key, this server's host key as
the only known host, no user ssh config, no prompts.

``sshd_problem()`` says why sshd cannot run here (not installed, no privilege
separation folder can be made), or None.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
_PRIVSEP = Path("/run/sshd")
_START_SECONDS = 30


@dataclass(frozen=True)
class SshServer:
    """A running sshd: its port, and what a client needs to reach it."""

    port: int
    user: str
    client_key: Path
    known_hosts: Path

    def url(self, path: Path) -> str:
        """The ssh URL of the bare repository at ``path`` (absolute)."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def git_ssh_command(self, key: Path | None = None) -> str:
        """``GIT_SSH_COMMAND`` with ``key`` (the accepted one by default)."""
        options = [
            *("-F", "/dev/null", "-i", str(key or self.client_key)),
            *("-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"),
            *("-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"),
        ]
        return shlex.join(["ssh", *options])


def sshd_problem() -> str | None:
    """Why a throwaway sshd cannot run on this machine, or None when it can."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (Debian: apt-get install openssh-server)"
    if os.geteuid() == 0 and not _PRIVSEP.is_dir():
        try:
            _PRIVSEP.mkdir(mode=0o755)  # what the Debian service makes at each start
        except OSError as error:
            return f"sshd needs {_PRIVSEP}, which cannot be made: {error}"
    return None


def keygen(path: Path) -> Path:
    """An ed25519 key pair at ``path`` (and ``path.pub``), without a passphrase."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(folder: Path, port: int, host_key: Path, authorized: Path, user: str) -> Path:
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nAllowUsers {user}\nLogLevel VERBOSE\n"
    )
    return config


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on {port}: {log.read_text()}")


@contextmanager
def ssh_server(folder: Path) -> Iterator[SshServer]:
    """Run sshd on loopback with keys made in ``folder`` until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    user = getpass.getuser()
    host_key = keygen(folder / "host_key")
    client_key = keygen(folder / "client_key")
    authorized = folder / "authorized_keys"
    authorized.write_text(f"restrict {client_key.with_suffix('.pub').read_text()}")
    port = _free_port()
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    config = _config(folder, port, host_key, authorized, user)
    log = folder / "sshd.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=output, stderr=subprocess.STDOUT
        )
    try:
        _wait_for(port, process, log)
        yield SshServer(port=port, user=user, client_key=client_key, known_hosts=known_hosts)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
