"""The page's workers table says an operator's hold: paused or draining beside idle/busy/gone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from clearq.models import WorkerCommand, WorkerInfo, WorkerState
from clearq.ui.tables import worker_rows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _worker(name: str, **fields: object) -> WorkerInfo:
    values: dict[str, object] = {
        "id": f"h:{name}",
        "host": "h",
        "pid": 1,
        "queues": ("q",),
        "gpus": (),
        "state": WorkerState.ACTIVE,
        "started_at": NOW,
        "last_seen": NOW,
        **fields,
    }
    return WorkerInfo.model_validate(values)


def test_each_worker_shows_its_state() -> None:
    workers = [
        _worker("idle"),
        _worker("busy", tasks=(uuid.uuid4(),)),
        _worker("paused", command=WorkerCommand.PAUSE),
        _worker("draining", command=WorkerCommand.DRAIN, tasks=(uuid.uuid4(),)),
        _worker("gone", state=WorkerState.GONE, command=WorkerCommand.PAUSE),
    ]
    states = [row.cells[-1] for row in worker_rows(workers, {}, NOW, "1h")]
    assert [c.text for c in states] == ["idle", "busy", "paused", "draining", "gone"]
    assert states[2].cls == "state state-paused"
