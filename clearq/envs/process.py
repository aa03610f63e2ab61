"""Run an installer: argv only (never a shell), its output streamed and kept.

The installer's environment is the agent's own, so corporate proxy and certificate
settings reach it, with two changes: variables that would point it at another Python
(``VIRTUAL_ENV``, ``PYTHONPATH``, ...) are dropped, and pip's index and certificate
settings are given to uv under uv's names (uv reads neither pip's variables nor its
config files), and uv's to pip, where the other's is not set.
"""

from __future__ import annotations

import collections
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from clearq.deathsig import die_with_parent
from clearq.envs.failures import installer_error
from clearq.envs.progress import BuildProgress
from clearq.errors import EnvBuildError, EnvFailure

__all__ = ["installer_env", "run_installer"]

_KEPT_LINES = 200
_DROPPED = (
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "UV_PYTHON",
    "__PYVENV_LAUNCHER__",
)
_ALIASES = (
    # (set this, from the first of these that is set)
    ("UV_INDEX_URL", ("PIP_INDEX_URL",)),
    ("UV_EXTRA_INDEX_URL", ("PIP_EXTRA_INDEX_URL",)),
    ("PIP_INDEX_URL", ("UV_INDEX_URL", "UV_DEFAULT_INDEX")),
    ("PIP_EXTRA_INDEX_URL", ("UV_EXTRA_INDEX_URL",)),
    ("SSL_CERT_FILE", ("PIP_CERT", "REQUESTS_CA_BUNDLE")),
    ("PIP_CERT", ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")),
)


def installer_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment an installer runs with (from ``base``, default ``os.environ``)."""
    source = dict(os.environ if base is None else base)
    env = {k: v for k, v in source.items() if k not in _DROPPED}
    for target, sources in _ALIASES:
        if target in source:
            continue
        value = next((source[name] for name in sources if source.get(name)), None)
        if value is not None:
            env[target] = value
    env["PIP_NO_INPUT"] = "1"
    return env


def run_installer(
    argv: Sequence[str],
    *,
    manager: str,
    step: str,
    progress: BuildProgress,
    requirements: Sequence[str] = (),
    cwd: Path | None = None,
    variables: Mapping[str, str] | None = None,
) -> str:
    """Run ``argv``; return its output, or raise EnvBuildError with the installer's words.

    ``step`` names what the command does in the error; ``requirements`` are the lines
    the command installs, so the error can name the one the installer complains about.
    ``variables`` are set on top of the installer's environment (the agent's, never a
    task's values).
    """
    kept: collections.deque[str] = collections.deque(maxlen=_KEPT_LINES)
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**installer_env(), **(variables or {})},
            cwd=cwd,
            preexec_fn=die_with_parent(),  # an installer ends with a SIGKILLed agent
        )
    except OSError as exc:
        raise EnvBuildError(
            EnvFailure.TOOL if isinstance(exc, FileNotFoundError) else EnvFailure.SYSTEM,
            f"{step}: cannot start {argv[0]}: {exc}",
            manager=manager,
        ) from exc
    with process:
        try:
            assert process.stdout is not None
            for line in process.stdout:
                kept.append(line)
                progress.output(line)
            code = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
    output = "".join(kept)
    if code != 0:
        raise installer_error(manager, step, output, requirements)
    return output
