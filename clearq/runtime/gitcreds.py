"""The agent's git credentials and preferred transport, from its operator's environment.

``CLEARQ_GIT_CREDENTIALS`` names a file in git's credential-store format: one
``https://user:token@host[:port]`` line per host, readable by the agent's user only
(mode 0600; a looser mode is refused). git gets it through a credential helper set in
its environment (``GIT_CONFIG_COUNT``/``KEY``/``VALUE``), which answers ``get`` only:
the token is never in a URL, an argument list, a stored row or a log, and git never
writes to the file (no ``store`` or ``erase`` after a fetch).

``CLEARQ_GIT_PREFER=ssh|https`` rewrites a task's remote between ``git@host:org/repo``
(or ``ssh://git@host/org/repo``) and ``https://host/org/repo`` before the agent fetches it.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from clearq.errors import ConfigError

__all__ = [
    "CREDENTIALS_VARIABLE",
    "PREFER_VARIABLE",
    "check_git_settings",
    "credential_config",
    "preferred_url",
]

CREDENTIALS_VARIABLE = "CLEARQ_GIT_CREDENTIALS"
PREFER_VARIABLE = "CLEARQ_GIT_PREFER"
_PREFERENCES = ("ssh", "https")
_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?!/)(?P<path>.+)$")


def check_git_settings(environ: Mapping[str, str]) -> None:
    """Raise ConfigError when ``environ``'s credentials file or preference cannot work."""
    credential_config(environ)
    preferred_url("", environ)


def credential_config(environ: Mapping[str, str]) -> dict[str, str]:
    """git config variables for the credentials file ``environ`` names; {} without one.

    Raises ConfigError when the file is missing, not private (mode 0600) or malformed.
    """
    name = environ.get(CREDENTIALS_VARIABLE, "").strip()
    if not name:
        return {}
    path = Path(name).expanduser().resolve()
    _check_file(path)
    # The helper list is cleared first, then ours: only ``get`` reaches credential-store.
    helper = (
        '!f() { if [ "$1" = get ]; then exec git credential-store '
        f"--file={shlex.quote(str(path))} get; fi; }}; f"
    )
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": "credential.helper",
        "GIT_CONFIG_VALUE_1": helper,
    }


def _check_file(path: Path) -> None:
    where = f"{CREDENTIALS_VARIABLE}={path}"
    try:
        info = path.stat()
    except OSError as error:
        raise ConfigError(f"{where}: cannot read the file ({error.strerror})") from error
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{where} is not a file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{where} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"it holds tokens; run chmod 600 {shlex.quote(str(path))}"
        )
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where}: cannot read the file ({error})") from error
    for number, line in enumerate(lines, start=1):
        if line.strip() and (reason := _bad_line(line.strip())) is not None:
            # Never the line itself: it holds a token.
            raise ConfigError(
                f"{where}, line {number}: {reason}; each line is https://user:token@host[:port]"
            )


def _bad_line(line: str) -> str | None:
    try:
        parts = urlsplit(line)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("https", "http"):
        return "not an https URL"
    if not parts.hostname:
        return "no host"
    if not parts.username or not parts.password:
        return "no user and token"
    return None


def preferred_url(url: str, environ: Mapping[str, str] | None = None) -> str:
    """``url`` in the transport ``CLEARQ_GIT_PREFER`` asks for (unchanged without one).

    Raises ConfigError for a preference other than ``ssh`` or ``https``.
    """
    environ = os.environ if environ is None else environ
    prefer = environ.get(PREFER_VARIABLE, "").strip().lower()
    if not prefer:
        return url
    if prefer not in _PREFERENCES:
        raise ConfigError(f"{PREFER_VARIABLE} must be ssh or https, not {prefer!r}")
    if prefer == "https":
        return _to_https(url)
    return _to_ssh(url)


def _to_https(url: str) -> str:
    if match := _SCP_LIKE.match(url):
        return f"https://{match['host']}/{match['path']}"
    parts = urlsplit(url)
    if parts.scheme == "ssh" and parts.hostname:
        return f"https://{parts.hostname}{parts.path}"
    return url


def _to_ssh(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname and parts.path.strip("/"):
        return f"git@{parts.hostname}:{parts.path.lstrip('/')}"
    return url
