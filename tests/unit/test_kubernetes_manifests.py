"""The Kubernetes manifests in deploy/kubernetes/ are valid resources (offline schemas).

No API server runs here, so ``kubectl --dry-run=client`` (which asks one for its API
list) cannot check them; ``kubernetes-validate`` checks each resource against the
Kubernetes 1.30 OpenAPI schemas it ships, strictly (unknown fields are errors). What the
manifests do on a real cluster is untested.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSION = "1.30.0"


def resources(name: str) -> list[dict[str, object]]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]


@pytest.mark.parametrize("name", ["agents.yaml", "task-job.yaml"])
def test_each_manifest_is_a_valid_resource(name: str) -> None:
    docs = resources(name)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, VERSION, strict=True)


def test_a_wrong_field_is_caught() -> None:
    [job] = resources("task-job.yaml")
    job["spec"]["backofLimit"] = 0  # type: ignore[index]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, VERSION, strict=True)


def test_the_job_runs_clearq_task_run_with_its_secret_url() -> None:
    [job] = resources("task-job.yaml")
    container = job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["args"][:2] == ["task", "run"]
    [env] = container["env"]
    assert env["name"] == "CLEARQ_DATABASE_URL"
    assert "secretKeyRef" in env["valueFrom"]
