"""A run started in the test process, as ``Task.init`` starts one (without capturing code).

The same RunLink, Reporter and Run that ``Task.init`` makes, on the test's database, with
its files under ``output``: what a training script's Logger reports through it lands where
a real run's does.
"""

from __future__ import annotations

from pathlib import Path

from clearq import Task
from clearq.models import EnvSpec, Script
from clearq.scheduler import Store
from clearq.scheduler.runlink import open_run_link
from clearq.sdk.records import StoreRecords
from clearq.sdk.reporter import Reporter
from clearq.sdk.roles import LocalRun
from clearq.sdk.run import Run


def start_run(
    url: str, output: Path, *, project: str = "p", name: str = "n", store: Store | None = None
) -> Task:
    """The task of a new run reporting into the database at ``url`` (end it with close());
    it reads back through ``store`` (else the SDK's default store)."""
    link = open_run_link(url, lease_seconds=30)
    fence = link.create_running(
        project=project,
        name=name,
        task_type="training",
        script=Script().model_dump(mode="json"),
        env=EnvSpec().model_dump(mode="json"),
        output_uri=str(output),
        max_attempts=1,
    )
    reporter = Reporter(link, fence, interval=3600)  # written on flush only
    run = Run(link, fence, reporter, under_agent=False, output_root=str(output))
    records = StoreRecords(store)
    return Task(records, task_id=fence.task_id, project=project, name=name, role=LocalRun(run))
