"""``clearq db``: the schema is created once, and a second upgrade changes nothing."""

from __future__ import annotations

from pathlib import Path

from clearq.config import Settings
from clearq.scheduler import Store, head_revision
from tests.acceptance.conftest import Cli


def test_upgrade_creates_the_schema_then_is_a_noop(empty_url: str, tmp_path: Path) -> None:
    cli = Cli.for_database(empty_url, tmp_path / "home")
    head = head_revision()
    first = cli.run("db", "upgrade").stdout
    assert "from revision none" in first
    assert first.rstrip().endswith(f"to {head}")
    second = cli.run("db", "upgrade").stdout
    assert f"already at revision {head}" in second
    assert "nothing to do" in second

    after = cli.json("db", "status")
    assert after["current_revision"] == head
    assert after["up_to_date"] is True
    settings = Settings(home=tmp_path / "home")
    with Store(empty_url, settings=settings, create_schema=False) as store:
        assert store.queues.list() == []
