"""Run git for capture: read-only, never the training script's stdin, git's words kept.

``git_run`` / ``git_out`` run one command and wait; ``git_start`` starts one and
``git_done`` / ``git_output`` collect it, so that commands that do not need each other's
output run at the same time (on a loaded machine each git process waits its turn for a
core: the waits overlap instead of adding up).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from clearq.errors import ClearqError

__all__ = [
    "CaptureError",
    "Started",
    "git_done",
    "git_out",
    "git_output",
    "git_run",
    "git_said",
    "git_start",
    "git_text",
    "strip_credentials",
]

Started = subprocess.Popen[bytes]
"""A git command started by :func:`git_start`, to collect with :func:`git_done`."""

_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
"""Capture only reads: take no optional locks the user's own git commands could trip on."""
_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?:(?P<userinfo>[^/?#]*)@)?(?P<rest>[^?#]*)"
)
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})


class CaptureError(ClearqError):
    """Git failed while capturing a script's code; the message keeps git's own words."""


def git_run(
    cwd: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``cwd``; its completed process, whatever its exit status."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=b"" if stdin is None else stdin,  # never the training script's own stdin
        capture_output=True,
        check=False,
        env={**os.environ, **_GIT_ENV},
    )


def git_start(cwd: Path, *args: str) -> Started:
    """Start git in ``cwd`` without waiting for it (FileNotFoundError: no git on PATH)."""
    return subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,  # never the training script's own stdin
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **_GIT_ENV},
    )


def git_done(started: Started) -> subprocess.CompletedProcess[bytes]:
    """Wait for a started git command; its completed process, whatever its exit status."""
    out, err = started.communicate()
    return subprocess.CompletedProcess(started.args, started.returncode, out, err)


def git_output(started: Started, cwd: Path) -> bytes:
    """A started git command's output; CaptureError with git's message when it failed."""
    done = git_done(started)
    if done.returncode != 0:
        args = " ".join(str(a) for a in done.args[1:])
        raise CaptureError(f"git {args} failed in {cwd}: {git_said(done)}")
    return done.stdout


def git_said(done: subprocess.CompletedProcess[bytes]) -> str:
    """What git said on stderr, or its exit status when it said nothing."""
    return done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"


def git_out(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Git's output; CaptureError with git's message when it fails."""
    try:
        done = git_run(cwd, *args, stdin=stdin)
    except OSError as error:
        raise CaptureError(f"cannot run git {args[0]}: {error}") from error
    if done.returncode != 0:
        raise CaptureError(f"git {' '.join(args)} failed in {cwd}: {git_said(done)}")
    return done.stdout


def git_text(cwd: Path, *args: str) -> str:
    """Git's output as stripped text; CaptureError when it fails."""
    return git_out(cwd, *args).decode().strip()


def strip_credentials(url: str) -> str:
    """``url`` without passwords, tokens or query strings.

    ``https://user:token@host/x.git?token=t`` becomes ``https://host/x.git``. A user name
    alone is kept for ssh (``ssh://git@host/x``), where it carries no secret; scp-like
    ``git@host:x.git`` forms and local paths are returned unchanged.
    """
    match = _URL.match(url)
    if match is None:
        return url
    scheme, userinfo, rest = match.group("scheme", "userinfo", "rest")
    keep_user = userinfo and scheme.lower() in _SSH_SCHEMES and ":" not in userinfo
    return f"{scheme}://{userinfo}@{rest}" if keep_user else f"{scheme}://{rest}"
