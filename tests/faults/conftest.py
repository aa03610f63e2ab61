"""Fixtures of the fault suite: a PostgreSQL cluster of its own, fleets, the fault table.

Set ``CLEARQ_FAULT_REPORT=path.jsonl`` to have every fault's verdict appended there
(``benchmarks/fault_table.py`` does, and prints the table).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.scheduler import Store
from tests.conftest import REQUIRE_POSTGRES
from tests.faults.cluster import FaultCluster
from tests.faults.fleet import LEASE_SECONDS, Fleet
from tests.faults.history import Verdict
from tests.faults.proxy import BlackholeProxy
from tests.pgserver import ServerUnavailable, unique_database_name

REPORT_VARIABLE = "CLEARQ_FAULT_REPORT"


@pytest.fixture(scope="module")
def cluster() -> Iterator[FaultCluster]:
    """A throwaway cluster the tests restart, stop and start (never the shared server)."""
    try:
        started = FaultCluster.start()
    except ServerUnavailable as e:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required (CLEARQ_REQUIRE_POSTGRES) but: {e}")
        pytest.skip(f"no throwaway PostgreSQL cluster: {e}")
    with started.server:
        yield started


class PgFleet(Fleet):
    """A fleet on a database of the fault cluster, reached through a blackhole proxy."""

    def __init__(self, cluster: FaultCluster, home: Path, **kw: object) -> None:
        self.cluster = cluster
        self.database = unique_database_name("clearq_fault")
        self.direct_url = cluster.server.create_database(self.database)
        self.proxy = BlackholeProxy(cluster.port)
        via = self.direct_url.replace(f":{cluster.port}/", f":{self.proxy.port}/")
        super().__init__(via, home, **kw)  # type: ignore[arg-type]


@pytest.fixture
def pg_fleet(cluster: FaultCluster, tmp_path: Path) -> Iterator[PgFleet]:
    fleet = PgFleet(cluster, tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop()
        fleet.proxy.close()


@pytest.fixture
def sqlite_fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(f"sqlite:///{tmp_path / 'clearq.db'}", tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop()


def open_store(url: str, home: Path, lease: float = LEASE_SECONDS) -> Store:
    """The test's own store (direct, not through the proxy), queue ``q`` created."""
    store = Store(url, settings=Settings(home=home / "test-side", lease_seconds=lease))
    if not any(q.name == "q" for q in store.queues.list()):
        store.queues.create("q")
    return store


def record(verdict: Verdict) -> None:
    """Append the verdict to the fault table, when one is being made."""
    path = os.environ.get(REPORT_VARIABLE)
    if path:
        with Path(path).open("a") as f:
            f.write(json.dumps(verdict.row()) + "\n")
