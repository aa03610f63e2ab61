"""Tee a process's stdout and stderr into its task's log; the console still shows all."""

from __future__ import annotations

import io
import sys
from typing import Any, TextIO

from clearq.sdk.reporter import Reporter


class Tee(io.TextIOBase):
    """A text stream that writes through to ``original`` and copies into the log."""

    def __init__(self, original: TextIO, reporter: Reporter, stream: str) -> None:
        super().__init__()
        self._original = original
        self._reporter = reporter
        self._stream = stream

    def write(self, text: str) -> int:
        """Write to the console and queue a copy for the log."""
        written = self._original.write(text)
        self._reporter.log(self._stream, text)
        return written

    def flush(self) -> None:
        """Flush the console stream."""
        self._original.flush()

    def isatty(self) -> bool:
        """Whether the console stream is a terminal."""
        return self._original.isatty()

    def fileno(self) -> int:
        """The console stream's file descriptor."""
        return self._original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The console stream's encoding."""
        return self._original.encoding

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class ConsoleCapture:
    """Installs and removes the tees on ``sys.stdout`` and ``sys.stderr``."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._saved: tuple[TextIO, TextIO] | None = None

    def start(self) -> None:
        """Tee both streams from now on."""
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = Tee(sys.stdout, self._reporter, "stdout")
        sys.stderr = Tee(sys.stderr, self._reporter, "stderr")

    def stop(self) -> None:
        """Put the original streams back."""
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None
