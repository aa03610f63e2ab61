"""The page's actions over real HTTP, on both dialects: what each POST does to the store."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.ui.security import SESSION_COOKIE
from tests.ui.helpers import InProcessUi, Reply, fetch


@dataclass
class Browser:
    """A session on the UI: its cookie and form token, as a page would send them."""

    url: str
    session: str = ""
    csrf: str = ""

    def get(self, path: str) -> Reply:
        reply = fetch(
            "GET", self.url + path, headers={"Cookie": f"{SESSION_COOKIE}={self.session}"}
        )
        if not self.session:
            self.session = reply.cookies[0].split(";", 1)[0].split("=", 1)[1]
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', reply.body)
        self.csrf = found.group(1) if found else self.csrf
        return reply

    def post(self, path: str, fields: list[tuple[str, str]]) -> Reply:
        assert self.csrf, "get a page with a form first"
        headers = {
            "Cookie": f"{SESSION_COOKIE}={self.session}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.url,
        }
        body = urlencode([*fields, ("csrf", self.csrf)])
        return fetch("POST", self.url + path, headers=headers, body=body)


@pytest.fixture
def browser(store: Store) -> Iterator[Browser]:
    with InProcessUi(store) as ui:
        session = Browser(ui.url)
        session.get("/workers")
        yield session


def _queued(store: Store, queue: str, *names: str) -> list[uuid.UUID]:
    ids = []
    for name in names:
        task_id = store.tasks.create(TaskSpec(project="p", name=name)).id
        store.queues.enqueue(task_id, queue)
        ids.append(task_id)
    return ids


def _order(store: Store, queue: str) -> list[str]:
    return [e.task_name for e in store.queues.entries(queue)]


def test_several_tasks_move_to_the_front_in_their_order(store: Store, browser: Browser) -> None:
    store.queues.create("q")
    ids = _queued(store, "q", "a", "b", "c", "d")
    browser.get("/queue?name=q")
    picked = [("name", "q"), ("action", "front"), ("task", str(ids[3])), ("task", str(ids[1]))]
    reply = browser.post("/queue/entries", picked)
    assert reply.status == 303
    assert reply.headers["location"] == "/queue?name=q"
    assert _order(store, "q") == ["b", "d", "a", "c"]
    browser.post("/queue/entries", [("name", "q"), ("action", "back"), ("task", str(ids[1]))])
    assert _order(store, "q") == ["d", "a", "c", "b"]


def test_remove_move_and_clear(store: Store, browser: Browser) -> None:
    store.queues.create("q")
    store.queues.create("other")
    a, b, c = _queued(store, "q", "a", "b", "c")
    browser.get("/queue?name=q")
    browser.post("/queue/entries", [("name", "q"), ("action", "remove"), ("task", str(a))])
    assert store.tasks.get(a).status is TaskStatus.CREATED
    move = [("name", "q"), ("action", "move"), ("target", "other"), ("task", str(b))]
    browser.post("/queue/entries", move)
    assert store.tasks.get(b).queue == "other"
    assert _order(store, "q") == ["c"]
    browser.post("/queue/clear", [("name", "q")])
    assert _order(store, "q") == []
    assert store.tasks.get(c).status is TaskStatus.CREATED
    nothing = browser.post("/queue/entries", [("name", "q"), ("action", "front")])
    assert nothing.status == 400
    assert "select at least one task" in nothing.body


def test_clone_edit_enqueue_abort_reset(store: Store, browser: Browser) -> None:
    store.queues.create("q")
    source = store.tasks.create(TaskSpec(project="p", name="base", parameters={"Args/lr": "1"}))
    browser.get(f"/tasks/{source.id}")
    cloned = browser.post(f"/tasks/{source.id}/clone", [])
    assert cloned.status == 303
    clone_id = uuid.UUID(cloned.headers["location"].rsplit("/", 1)[1])
    clone = store.tasks.get(clone_id)
    assert (clone.name, clone.parent_id, clone.parameters) == (
        "base (clone)",
        source.id,
        {"Args/lr": "1"},
    )

    params = [("param_name", "Args/lr"), ("param_value", "0.1"), ("param_name", "Args/new")]
    params += [("param_value", "x"), ("param_name", ""), ("param_value", "ignored")]
    browser.post(f"/tasks/{clone_id}/parameters", params)
    assert store.tasks.get(clone_id).parameters == {"Args/lr": "0.1", "Args/new": "x"}

    browser.post(f"/tasks/{clone_id}/enqueue", [("queue", "q"), ("priority", "5")])
    assert store.queues.entries("q")[0].priority == 5
    browser.post(f"/tasks/{clone_id}/abort", [])  # a queued task leaves its queue
    assert store.tasks.get(clone_id).status is TaskStatus.CREATED

    fence = store.tasks.start(clone_id)
    browser.post(f"/tasks/{clone_id}/abort", [])
    assert store.tasks.get(clone_id).stop_requested_at is not None
    store.leases.finish(fence, TaskStatus.STOPPED)
    browser.post(f"/tasks/{clone_id}/reset", [])
    assert store.tasks.get(clone_id).status is TaskStatus.CREATED
    assert browser.post(f"/tasks/{clone_id}/explode", []).status == 404


def test_a_drafts_environment_variables_are_set_on_the_page(store: Store, browser: Browser) -> None:
    task = store.tasks.create(TaskSpec(project="p", name="envs", environment={"OLD": "1"}))
    page = browser.get(f"/tasks/{task.id}")
    assert 'id="environment-form"' in page.body
    fields = [("env_name", "OLD"), ("env_value", "2"), ("env_name", "NEW"), ("env_value", "x")]
    fields += [("env_name", ""), ("env_value", "ignored")]
    assert browser.post(f"/tasks/{task.id}/environment", fields).status == 303
    assert store.tasks.get(task.id).environment == {"OLD": "2", "NEW": "x"}
    refused = browser.post(
        f"/tasks/{task.id}/environment", [("env_name", "CLEARQ_HOME"), ("env_value", "/tmp")]
    )
    assert refused.status == 400
    assert "CLEARQ_* variables are set by the agent only" in refused.body


def test_a_task_is_archived_unarchived_and_deleted_on_the_page(
    store: Store, browser: Browser
) -> None:
    kept = store.tasks.create(TaskSpec(project="p", name="kept"))
    task = store.tasks.create(TaskSpec(project="p", name="old"))
    page = browser.get(f"/tasks/{task.id}")
    assert 'id="archive"' in page.body
    assert browser.post(f"/tasks/{task.id}/archive", []).status == 303
    assert store.tasks.get(task.id).archived
    assert 'id="unarchive"' in browser.get(f"/tasks/{task.id}").body
    listed = browser.get("/tasks").body
    assert str(kept.id) in listed
    assert str(task.id) not in listed
    assert str(task.id) in browser.get("/tasks?archived=1").body
    assert str(kept.id) not in browser.get("/api/tasks?archived=1").body
    browser.post(f"/tasks/{task.id}/unarchive", [])
    assert not store.tasks.get(task.id).archived

    fence = store.tasks.start(task.id)
    refused = browser.post(f"/tasks/{task.id}/delete", [])
    assert refused.status == 400
    assert "is running: abort it first" in refused.body
    store.leases.finish(fence, TaskStatus.FAILED)
    deleted = browser.post(f"/tasks/{task.id}/delete", [])
    assert (deleted.status, deleted.headers["location"]) == (303, "/tasks")
    assert browser.get(f"/tasks/{task.id}").status == 404
    assert store.tasks.get(kept.id).name == "kept"


def test_a_task_enqueued_where_no_worker_claims_says_so(store: Store, browser: Browser) -> None:
    store.queues.create("q")
    task = store.tasks.create(TaskSpec(project="p", name="lonely"))
    browser.get(f"/tasks/{task.id}")
    assert 'id="unserved"' not in browser.get(f"/tasks/{task.id}").body  # a draft: no word
    browser.post(f"/tasks/{task.id}/enqueue", [("queue", "q"), ("priority", "0")])
    page = browser.get(f"/tasks/{task.id}").body
    assert 'id="unserved"' in page
    assert "no live worker serves queue &#39;q&#39;" in page
    store.workers.register("w", host="h", pid=1, queues=["q"])
    assert 'id="unserved"' not in browser.get(f"/tasks/{task.id}").body
