"""A stop request's interrupt reaches a script's main thread, whatever it is doing.

``clearq.sdk.reporter.stop_main_thread`` is how a run started by hand stops when its task
is asked to stop. Real processes: the interrupt must land once, even when the script
ignores SIGINT, and even when Python swallows the first one because the main thread
was running a callback whose exceptions it only reports (a weakref callback, as the
import system's module locks have).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import threading, time, weakref
from clearq.sdk.reporter import stop_main_thread

class Box:
    pass

box = Box()
inside = threading.Event()

def callback(_ref):
    inside.set()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # the stop's interrupt lands here: swallowed
        pass

ref = weakref.ref(box, callback)
threading.Thread(target=lambda: (inside.wait(), stop_main_thread()), daemon=True).start()
try:
    del box  # runs the callback in the main thread
    for _ in range(200):
        time.sleep(0.05)
    print("ran to its end")
except KeyboardInterrupt:
    print("stopped")
"""


@pytest.mark.parametrize("sigint", ["handled", "ignored"])
def test_a_stop_reaches_the_main_thread_even_after_python_swallowed_it(sigint: str) -> None:
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=ignore,
        check=False,
    )
    assert done.stdout.strip() == "stopped", done.stderr
    assert "KeyboardInterrupt" in done.stderr  # Python said it swallowed the first one
