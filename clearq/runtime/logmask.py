"""Secret values masked in a task's stored log, even when split across output chunks.

A process's output reaches the agent in chunks of whatever size the pipe gave, so a
secret may arrive in two pieces. :class:`SecretMask` keeps, per stream, the end of what
it has seen when that end could be the start of a secret, and joins it to the next
piece before masking; what it holds back is only ever a proper prefix of a secret, so a
line that ends (``\\n``) is never held. At the end of the run what is still held is
written, masked too when it is long enough to give a secret away.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from clearq.secrets import MIN_SECRET_LENGTH, without_short

__all__ = ["MASK", "SecretMask"]

MASK = "***"


class SecretMask:
    """Replaces each of ``secrets`` by ``***`` in a stream of ``(stream, text)`` pieces."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = without_short(secrets)
        self._held: dict[str, str] = {}
        # One pass over the text for all of them; longest first, so that a secret that
        # holds another is masked whole.
        self._pattern = re.compile("|".join(map(re.escape, self._secrets))) if self else None
        self._longest = max((len(s) for s in self._secrets), default=0)
        self._starts = frozenset(s[0] for s in self._secrets)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def feed(self, stream: str, text: str) -> str:
        """What of ``text`` can be written now, masked; a possible secret's start is held."""
        if not self._secrets:
            return text
        buffer = self._mask(self._held.pop(stream, "") + text)
        keep = self._partial_suffix(buffer)
        if keep:
            self._held[stream] = buffer[-keep:]
            buffer = buffer[:-keep]
        return buffer

    def drain(self) -> list[tuple[str, str]]:
        """What is still held, per stream, at the end of the output."""
        held, self._held = self._held, {}
        return [(s, MASK if len(t) >= MIN_SECRET_LENGTH else t) for s, t in held.items() if t]

    def _mask(self, text: str) -> str:
        # A substring test per secret (C speed) first: most pieces hold none.
        if any(secret in text for secret in self._secrets):
            assert self._pattern is not None
            return self._pattern.sub(MASK, text)
        return text

    def _partial_suffix(self, text: str) -> int:
        """The length of the longest end of ``text`` that begins some secret."""
        for start in range(max(0, len(text) - self._longest + 1), len(text)):
            if text[start] in self._starts:
                tail = text[start:]
                if any(s.startswith(tail) for s in self._secrets):
                    return len(text) - start
        return 0
