"""The orchestration page in headless Chromium, over a database a real agent works on."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.conftest import on_one_database
from tests.ui.conftest import Page
from tests.ui.helpers import UiProcess

WAIT_SECONDS = 60
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def _job(store: Store, repo: tuple[Path, str], name: str, *, sleep: float = 0.0) -> uuid.UUID:
    origin, commit = repo
    script = Script(repository=str(origin), commit=commit, entry_point="job.py")
    spec = TaskSpec(
        project="ui", name=name, script=script, parameters={"General/sleep": str(sleep)}
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    return task_id


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def _status_in(store: Store, task_id: uuid.UUID, statuses: Sequence[TaskStatus]) -> bool:
    return store.tasks.get(task_id).status in statuses


def _expect(page: Page) -> Any:
    from playwright.sync_api import expect

    return expect


@on_one_database("postgres")
def test_the_page_follows_and_steers_a_real_agent(
    store: Store,
    repo: tuple[Path, str],
    agent: Callable[..., Any],
    ui_process: UiProcess,
    page: Page,
) -> None:
    expect = _expect(page)
    tab, url = page.tab, ui_process.url
    store.queues.create("q")
    long = _job(store, repo, "long", sleep=60)
    agent("-q", "q")
    _until("the long task runs", lambda: _status_in(store, long, [TaskStatus.RUNNING]))
    worker = store.tasks.get(long).worker
    assert worker is not None

    # The worker appears, busy with its task; its machine's charts have points.
    tab.goto(f"{url}/workers")
    expect(tab.locator("#workers")).to_contain_text(worker)
    expect(tab.locator("#workers")).to_contain_text("busy")
    tab.locator("#workers a", has_text=worker).click()
    cpu = tab.locator('#worker-charts .chart[data-panel="cpu"]')
    expect(cpu).to_have_attribute("data-points", re.compile(r"^[1-9]"))
    expect(tab.locator(".chart[data-panel=activity]")).to_have_attribute(
        "data-points", re.compile(r"^[1-9]")
    )
    page.shot("workers")

    # Console output shows while the task runs.
    tab.goto(f"{url}/tasks/{long}")
    expect(tab.locator("[data-field=status]")).to_have_text("running")
    expect(tab.locator("#console")).to_contain_text("long starts")
    expect(tab.locator("#summary")).to_contain_text("loss")
    page.shot("task-running")

    # Two more wait; the later one is moved to the front from the queue's page.
    first, second = _job(store, repo, "first"), _job(store, repo, "second")
    tab.goto(f"{url}/queue?name=q")
    expect(tab.locator("#entries tbody tr").first).to_contain_text("first")
    tab.check(f"#entries input[value='{second}']")
    tab.click("#to-front")
    expect(tab.locator("#entries tbody tr").first).to_contain_text("second")
    assert store.views.queue_position(second) == (1, 2)
    page.shot("queue")
    tab.goto(f"{url}/queues")
    expect(tab.locator("#queues")).to_contain_text("q")
    page.shot("queues")

    # Abort from the page stops the running task; the page follows without a reload.
    tab.goto(f"{url}/tasks/{long}")
    tab.once("dialog", lambda dialog: dialog.accept())
    tab.click("#abort")
    expect(tab.locator("[data-field=status]")).to_have_text("stopped", timeout=WAIT_SECONDS * 1000)
    page.shot("task-stopped")

    # The task moved to the front ran first.
    done = [TaskStatus.COMPLETED]
    _until("both ran", lambda: all(_status_in(store, t, done) for t in (first, second)))
    started = {t: store.tasks.get(t).started_at for t in (first, second)}
    assert started[second] is not None
    assert started[first] is not None
    assert started[second] < started[first]

    tab.goto(f"{url}/tasks?project=ui&status=completed")
    expect(tab.locator("#tasks tbody tr")).to_have_count(2)
    page.shot("tasks")
    assert page.errors == []


@on_one_database("sqlite")
def test_hostile_names_are_shown_as_text(store: Store, ui_process: UiProcess, page: Page) -> None:
    expect = _expect(page)
    tab, url = page.tab, ui_process.url
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    store.queues.create("q")
    task_id = store.tasks.create(TaskSpec(project=HOSTILE, name=HOSTILE, tags=(HOSTILE,))).id
    store.queues.enqueue(task_id, "q")
    where = {f"/tasks/{task_id}": "#task-name", "/tasks": "#tasks", "/queue?name=q": "#entries"}
    for path, shown in where.items():
        tab.goto(url + path)
        expect(tab.locator(shown).get_by_text(HOSTILE).first).to_be_visible()
        tab.wait_for_timeout(2500)  # a poll re-renders the tables from JSON
        expect(tab.locator(shown).get_by_text(HOSTILE).first).to_be_visible()
    assert tab.locator("img[src=x]").count() == 0
    assert dialogs == []
    page.shot("hostile-names")
    assert page.errors == []
