"""Secrets kept out of what clearq stores: credentials in URLs, and values to mask in logs.

A URL's userinfo (``https://user:token@host/...``, ``https://token@host/...``) is a
credential wherever it appears: in a requirement (``pkg @ git+https://user:tok@host/x``),
an index URL, a lock file's sources, a repository URL. :func:`strip_url_credentials`
removes it from any text and says what it removed, so the caller can warn where and
mask the value in logs; an ssh user without a password (``ssh://git@host/...``) is a
name, not a secret, and stays. Standard library only: the SDK's light path imports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "MIN_SECRET_LENGTH",
    "known_secrets",
    "scrub_env_fields",
    "scrub_text",
    "strip_url_credentials",
    "url_secrets",
    "without_short",
]

MIN_SECRET_LENGTH = 4
"""Shorter values are not masked in logs: masking ``ab`` would mangle every line."""

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#\"'<>\[\]]+)@")
_SSH_SCHEMES = ("ssh://", "git+ssh://")


def strip_url_credentials(text: str) -> tuple[str, tuple[str, ...]]:
    """``text`` with the userinfo of every URL in it removed, and what was removed."""
    removed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        scheme, userinfo = match.group("scheme"), match.group("userinfo")
        if scheme.lower() in _SSH_SCHEMES and ":" not in userinfo:
            return match.group(0)
        removed.append(userinfo)
        return scheme

    return _USERINFO.sub(replace, text), tuple(removed)


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret parts of ``url``'s userinfo: its password, or a token given as its user."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found = [parts.password] if parts.password else []
    if parts.username and not parts.password and parts.scheme not in ("ssh", "git+ssh"):
        found.append(parts.username)  # https://TOKEN@host: the name is the secret
    values = {v for f in found for v in (f, unquote(f))}
    return tuple(sorted(v for v in values if len(v) >= MIN_SECRET_LENGTH))


def scrub_env_fields(env: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """An env spec's JSON fields without URL credentials, and a warning for each removal.

    ``where`` names the task (or capture) in the warnings.
    """
    clean = dict(env)
    warnings: list[str] = []
    for field in ("requirements", "index_urls", "install_first", "no_build_isolation"):
        values = clean.get(field) or ()
        clean[field] = [
            scrub_text(str(v), f"{where}: {field}[{i}]", warnings) for i, v in enumerate(values)
        ]
    for field in ("lock_file", "project_file"):
        if isinstance(clean.get(field), str):
            clean[field] = scrub_text(clean[field], f"{where}: {field}", warnings)
    return clean, warnings


def scrub_text(text: str, where: str, warnings: list[str]) -> str:
    """``text`` without URL credentials; a warning naming ``where`` when any were there."""
    clean, removed = strip_url_credentials(text)
    if removed:
        shown = clean if len(clean) <= 120 else clean[:117] + "..."
        warnings.append(
            f"credentials removed from a URL in {where} (now {shown!r}): clearq never "
            "stores them; give the agent its credentials another way (a netrc file, a "
            "keyring, or clearq agent --secret-env)"
        )
    return clean


def without_short(values: Iterable[str]) -> tuple[str, ...]:
    """``values`` long enough to mask, longest first, each once."""
    kept = {v for v in values if len(v) >= MIN_SECRET_LENGTH}
    return tuple(sorted(kept, key=lambda v: (-len(v), v)))


URL_VARIABLES = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
"""The agent's variables that hold URLs, whose credentials are secrets too."""


def known_secrets(
    database_url: str, environ: Mapping[str, str], extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """What an agent masks in task logs: the database's password, the credentials in its
    package index and proxy URLs, and the operator's secret values (``extra``)."""
    found = list(url_secrets(database_url))
    for name in URL_VARIABLES:
        for url in environ.get(name, "").split():
            found.extend(url_secrets(url))
    found.extend(extra)
    return without_short(found)
