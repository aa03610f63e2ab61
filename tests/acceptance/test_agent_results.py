"""A task run by a real agent reports plots, debug samples and models as a run by hand
does: the same rows, fenced by the agent's attempt."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents
from tests.gitrepo import published

REPORT = """
import numpy as np
from clearq import OutputModel, Task

task = Task.init()
logger = task.get_logger()
logger.report_histogram("weights", "layer1", [[1, 2, 3]], iteration=1)
logger.report_image("inputs", "first", iteration=1, image=np.full((4, 4, 3), 200, np.uint8))
with open("weights.bin", "wb") as f:
    f.write(b"w" * 64)
OutputModel(task, name="net", framework="PyTorch").update_weights("weights.bin")
print("reported", flush=True)
"""


def test_an_agents_task_reports_plots_samples_and_models(
    store: Store, agents: Agents, tmp_path: Path
) -> None:
    repository = published(tmp_path, {"report.py": REPORT}, message="report")
    script = Script(
        repository=str(repository.origin), commit=repository.commit, entry_point="report.py"
    )
    out = tmp_path / "out"
    spec = TaskSpec(project="agent", name="report", script=script, output_uri=str(out))
    task_id = store.tasks.create(spec).id
    store.queues.create("q")
    store.queues.enqueue(task_id, "q")
    agents.run("-q", "q", "--once")
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.COMPLETED, task.status_reason
    [plot] = store.reported.plots(task_id)
    assert (plot.title, plot.series, plot.kind, plot.attempt) == (
        "weights",
        "layer1",
        "histogram",
        1,
    )
    [sample] = store.reported.samples(task_id)
    path = Path(urlparse(sample.uri).path)
    assert path.is_relative_to(out / str(task_id) / "samples")
    assert path.read_bytes().startswith(b"\x89PNG")
    [model] = store.registry.of_task(task_id)
    assert (model.name, model.framework, model.size) == ("net", "PyTorch", 64)
