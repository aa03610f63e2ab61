"""What an agent's operator puts in every task's environment (``clearq agent --env``).

``--env NAME=VALUE`` and ``--secret-env NAME=VALUE`` (repeatable) and ``--env-file
PATH`` (lines ``NAME=VALUE``; ``secret NAME=VALUE`` marks a secret; blank lines and
``#`` comments are skipped) are read into a :class:`ForcedEnvironment`. Its values win
over the task's own ``environment``; secret ones are also masked in every task's stored
log. ``CLEARQ_*`` names are the agent's own and are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clearq.errors import ConfigError

__all__ = ["ForcedEnvironment", "parse_forced_environment"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_MARK = "secret "  # noqa: S105 (the marker word, not a password)


@dataclass(frozen=True)
class ForcedEnvironment:
    """The operator's variables for every task; ``secret_names`` are masked in logs."""

    values: Mapping[str, str] = field(default_factory=dict)
    secret_names: frozenset[str] = frozenset()

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values."""
        return tuple(self.values[name] for name in sorted(self.secret_names))


def parse_forced_environment(
    pairs: Iterable[str] = (), secret_pairs: Iterable[str] = (), files: Iterable[Path] = ()
) -> ForcedEnvironment:
    """The operator's ``--env``, ``--secret-env`` and ``--env-file`` values, checked.

    Raises ConfigError naming the bad entry. Later entries win over earlier ones.
    """
    values: dict[str, str] = {}
    secret: set[str] = set()

    def put(text: str, where: str, *, is_secret: bool) -> None:
        name, value = _pair(text, where)
        values[name] = value
        (secret.add if is_secret else secret.discard)(name)

    for path in files:
        for number, line in enumerate(_read(path).splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            marked = stripped.startswith(_SECRET_MARK)
            text = stripped.removeprefix(_SECRET_MARK).lstrip() if marked else stripped
            put(text, f"{path}:{number}", is_secret=marked)
    for text in pairs:
        put(text, "--env", is_secret=False)
    for text in secret_pairs:
        put(text, "--secret-env", is_secret=True)
    return ForcedEnvironment(values, frozenset(secret))


def _pair(text: str, where: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: {text.split('=', 1)[0]!r} is not NAME=VALUE")
    if name.upper().startswith("CLEARQ_"):
        raise ConfigError(f"{where}: {name} is the agent's own (CLEARQ_* cannot be forced)")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return name, value


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the env file {path}: {e.strerror}") from e
