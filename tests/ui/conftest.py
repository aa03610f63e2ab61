"""Fixtures for the orchestration page: a live ``clearq ui``, a real agent, and Chromium.

The browser is Debian's ``chromium`` (``CLEARQ_TEST_CHROMIUM`` names another binary),
driven by Playwright for Python; Playwright's own browser downloads are never used.
Without either the browser tests skip with the reason; with ``CLEARQ_REQUIRE_BROWSER=1``
(CI sets it) they fail instead. Screenshots go to ``tests/ui/artifacts/<test>/`` (or
under ``CLEARQ_TEST_ARTIFACTS``); each test prints where.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import forkserver
from tests.acceptance.conftest import CLEARQ, Cli
from tests.gitrepo import published
from tests.ui.helpers import UiProcess

REQUIRE_BROWSER = os.environ.get("CLEARQ_REQUIRE_BROWSER", "") not in ("", "0", "false")
CHROMIUM = Path(os.environ.get("CLEARQ_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("CLEARQ_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))

JOB = """
import sys, time
from clearq import Task

task = Task.init()
params = task.connect({"sleep": 0.0})
print(f"{task.name} starts", flush=True)
for step in range(3):
    task.get_logger().report_scalar("loss", "train", 1.0 / (step + 1), step)
task.flush()
time.sleep(params["sleep"])
print(f"{task.name} ends", flush=True)
"""


def _no_browser(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"a browser is required (CLEARQ_REQUIRE_BROWSER) but: {reason}")
    pytest.skip(f"no browser for the UI tests: {reason}")


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    """The ``clearq`` command on this test's database (the ``store`` fixture's)."""
    return Cli.for_database(store_url, tmp_path / "home")


@pytest.fixture
def ui_process(cli: Cli, tmp_path: Path) -> Iterator[UiProcess]:
    """A live ``clearq ui`` on this test's database."""
    ui = UiProcess(cli, tmp_path / "ui.log")
    try:
        ui.wait_ready()
        yield ui
    finally:
        ui.stop()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A bare origin holding job.py (prints, reports a scalar, sleeps); (origin, commit)."""
    repository = published(tmp_path, {"job.py": JOB}, message="job")
    return repository.origin, repository.commit


@pytest.fixture
def agent(cli: Cli, tmp_path: Path) -> Iterator[Any]:
    """A function starting ``clearq agent --skip-env ARGS``; the agent is killed at the end."""
    started: list[forkserver.Process] = []

    def start(*args: str) -> forkserver.Process:
        with (tmp_path / f"agent-{len(started)}.log").open("wb") as log:
            proc = forkserver.spawn(
                [str(CLEARQ), "agent", "--skip-env", *args],
                env=cli.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium under Playwright, for the whole session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists() and shutil.which(str(CHROMIUM)) is None:
        _no_browser(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@dataclass
class Page:
    """A browser tab plus what went wrong in it (script errors, refused resources)."""

    tab: Any
    errors: list[str]
    shots: Path

    def shot(self, name: str) -> Path:
        """Save a full-page screenshot as a test artifact."""
        path = self.shots / f"{name}.png"
        self.tab.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and tab; screenshots go to a folder named after the test."""
    shots = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield Page(tab, errors, shots)
    finally:
        context.close()
