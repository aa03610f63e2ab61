"""The agent's git, with a configuration no task can change.

The agent runs git on its own machine over repositories a task chose, and over cached
mirrors that outlive the task. Nothing git reads from those repositories, or from the
machine's system and global files, may decide what runs there:

- transports are an allow-list (``GIT_ALLOW_PROTOCOL``, which overrides every
  ``protocol.*.allow`` in any config): https, ssh and git; ``file`` (local paths and
  ``file://``) only where the operator allows local repositories;
- hooks are off (``core.hooksPath=/dev/null``) and so is the fsmonitor, on the command
  line, which outranks a repository's own config;
- no system or global config is read (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL``);
- the operator's credentials file (``CLEARQ_GIT_CREDENTIALS``, ``clearq.runtime.gitcreds``)
  reaches git through a credential helper in its environment, never a URL or argv; the
  operator's CA settings (``GIT_SSL_CAINFO``, ``GIT_SSL_CAPATH``) are kept;
- a cached mirror's config is rewritten by the agent before each use
  (:func:`reset_mirror_config`), so whatever a task wrote there (``url.*.insteadOf``,
  ``remote.origin.uploadpack``, ``credential.helper``, ...) is gone before git reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from clearq.runtime.gitcreds import credential_config

__all__ = [
    "REMOTE_PROTOCOLS",
    "git_argv",
    "git_environment",
    "reset_mirror_config",
]

REMOTE_PROTOCOLS = ("https", "ssh", "git")
"""Transports the agent's git may use for a task's repository."""
LOCAL_PROTOCOL = "file"
"""Local paths and ``file://`` URLs: only where the operator allows local repositories."""

_FIXED_OPTIONS = ("core.hooksPath=/dev/null", "core.fsmonitor=false")
_KEPT_GIT_VARIABLES = frozenset(
    {"GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH"}
)
"""The operator's own ssh and CA settings; every other ``GIT_*`` (config injection, another
repository's folders) is dropped."""

_MIRROR_CONFIG = """\
[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = true
[remote "origin"]
\turl = {url}
\tfetch = +refs/*:refs/*
\tmirror = true
"""


def git_environment(
    base: Mapping[str, str], *, allow_local: bool, credentials: bool = True
) -> dict[str, str]:
    """``base`` with the variables that pin git's transports and config sources, and
    the credential helper for ``base``'s ``CLEARQ_GIT_CREDENTIALS`` file (unless not
    ``credentials``: git that reaches no remote).

    Raises ConfigError when that file is missing, not private or malformed.
    """
    protocols = (*REMOTE_PROTOCOLS, LOCAL_PROTOCOL) if allow_local else REMOTE_PROTOCOLS
    env = {k: v for k, v in base.items() if not k.startswith("GIT_") or k in _KEPT_GIT_VARIABLES}
    env.update(
        GIT_ALLOW_PROTOCOL=":".join(protocols),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_TERMINAL_PROMPT="0",  # an agent has no one to type a password
        GIT_ASKPASS="/bin/false",
        SSH_ASKPASS="/bin/false",
    )
    if credentials:
        env.update(credential_config(base))
    return env


def git_argv(*args: str) -> list[str]:
    """``git`` with the command-line options that outrank any repository's config."""
    options = [part for option in _FIXED_OPTIONS for part in ("-c", option)]
    return ["git", *options, *args]


def reset_mirror_config(mirror: Path, url: str) -> None:
    """Write the mirror's config as ``git clone --mirror`` made it: ``url`` as origin."""
    if any(c in url for c in '\n\r"\\'):
        raise ValueError(f"repository URL {url!r} has a character git's config cannot hold")
    (mirror / "config").write_text(_MIRROR_CONFIG.format(url=url))
