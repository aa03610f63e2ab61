"""The page's schedules: listed with their next run, followed live, removed by a POST."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.ui.helpers import InProcessUi
from tests.ui.test_actions import Browser


@pytest.fixture
def page(store: Store) -> Iterator[Browser]:
    with InProcessUi(store) as ui:
        session = Browser(ui.url)
        session.get("/workers")
        yield session


def test_schedules_are_listed_and_removed_from_the_page(store: Store, page: Browser) -> None:
    store.queues.create("nightly")
    task = store.tasks.create(TaskSpec(project="p", name="report")).id
    every = store.schedules.add(task, "nightly", every_seconds=6 * 3600, name="six-hourly")
    trigger = store.schedules.add_trigger(
        task, "nightly", on_status=TaskStatus.COMPLETED, on_project="train"
    )
    shown = page.get("/schedules")
    assert shown.status == 200
    assert "six-hourly" in shown.body
    assert "every 6h 0m" in shown.body
    assert "when a task of project train becomes completed" in shown.body
    live = json.loads(page.get("/api/schedules").body)
    assert [row["id"] for row in live] == [str(every.id), str(trigger.id)]

    reply = page.post("/schedules/remove", [("task", str(every.id))])
    assert (reply.status, reply.headers["location"]) == (303, "/schedules")
    assert [s.id for s in store.schedules.list()] == [trigger.id]
    nothing = page.post("/schedules/remove", [])
    assert nothing.status == 400
    assert "select at least one schedule" in nothing.body
