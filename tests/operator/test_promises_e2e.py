"""Documented behaviours, end to end: the operator process against the API
emulator, the job runner playing the Job controller, the fake trainer.

Each test is one promise from docs/operations.md or docs/architecture.md that
used to be broken (issue 15): spec changes that retry a failed run, the
Secrets a Job kind reads, store-aware version numbers, `suspend`, `lastRun`,
and the minimal example that needs no GPU, Secret or Kueue.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from channelmodel.store import open_store
from tests.support.channelmodels import condition as _condition
from tests.support.channelmodels import status as _status
from tests.support.k8s import Cluster, wait_for

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "model.json": b'{"format": "layers-model"}',
    "weights.bin": b"\0" * 16,
    "metadata.json": b'{"labels": ["a", "b"], "imageSize": 224}',
}


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "channelId": "shop-1",
        "manifest": {"url": "http://backend.test/manifest"},
        "debounceSeconds": 0,
        "cooldownSeconds": 0,
        "training": {"gpus": 1, "epochs": 7},
    }
    spec.update(overrides)
    return spec


def _training_status(k8s: Cluster, value: str) -> dict[str, Any] | None:
    status = _status(k8s)
    return status if status.get("trainingStatus") == value else None


def _job_names(k8s: Cluster) -> list[str]:
    return sorted(j["metadata"]["name"] for j in k8s.jobs())


def _arg(job: dict[str, Any], flag: str) -> str:
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return str(args[args.index(flag) + 1])


def test_changing_the_deadline_retries_a_failed_run_and_keeps_last_run(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    runner = start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2", FAKE_ACCURACY="0.8"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec())
    wait_for(lambda: _training_status(k8s, "Succeeded"), timeout=60, message="1.0.0")
    first_run = _status(k8s)["lastRun"]
    assert first_run["accuracy"] == 0.8

    # A run that fails (and, like a deadline kill, reports no metrics).
    runner.stand_in = fake_trainer(FAKE_DELAY="0.2", FAKE_ERROR="DeadlineExceeded")
    k8s.patch_channelmodel("shop-1", {"metadata": {"annotations": {
        "ml.dukarun.io/inventory-changed-at": "2026-11-21T10:00:00Z",
    }}})  # fmt: skip
    failed = wait_for(lambda: _training_status(k8s, "Failed"), timeout=60, message="Failed")
    assert failed["lastRun"] == first_run, "a run without metrics keeps the last one that had some"

    # docs/operations.md: fix a DeadlineExceeded by changing the deadline (or GPUs, resources).
    runner.stand_in = fake_trainer(FAKE_DELAY="0.2", FAKE_ACCURACY="0.85")
    k8s.patch_channelmodel(
        "shop-1", {"spec": {"training": {"activeDeadlineSeconds": 7200, "gpus": 0}}}
    )
    status = wait_for(
        lambda: (s := _status(k8s)).get("modelVersion") == "1.0.1" and s,
        timeout=60,
        message="the retried run served",
    )
    assert _job_names(k8s) == ["shop-1-train-1", "shop-1-train-2", "shop-1-train-3"]
    retry = next(j for j in k8s.jobs() if j["metadata"]["name"] == "shop-1-train-3")
    assert retry["spec"]["activeDeadlineSeconds"] == 7200
    assert retry["metadata"]["annotations"]["ml.dukarun.io/trigger"] == "spec"
    assert status["lastRun"]["accuracy"] == 0.85

    # Once a run succeeded, moving it elsewhere trains nothing new.
    k8s.patch_channelmodel("shop-1", {"spec": {"training": {"resources": {
        "requests": {"cpu": "2"}}}}})  # fmt: skip
    time.sleep(3)  # several reconcile periods
    assert len(k8s.jobs()) == 3


def test_import_jobs_check_their_own_secret_and_number_versions_from_the_store(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    # Versions already in the store (a re-created object, a hand import): never reused.
    store = open_store(f"file://{tmp_path / 'store'}")
    store.publish_version("shop-1", "1.0.0", FILES)
    store.publish_version("shop-1", "1.0.3", FILES)
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="30"))
    operator_process()
    k8s.create_channelmodel(
        "shop-1",
        _spec(
            # The import does not read the manifest's token: its absence must not block it.
            manifest={
                "url": "http://backend.test/manifest",
                "authSecretRef": {"name": "manifest-token", "key": "token"},
            },
            importFrom={
                "url": "http://tm.test/model/model.json",
                "authSecretRef": {"name": "import-token", "key": "token"},
            },
        ),
    )
    status = wait_for(
        lambda: (s := _status(k8s)) and _condition(s, "SpecValid")["status"] == "False" and s,
        timeout=30,
        message="SpecValid=False for the import Secret",
    )
    assert (
        f"Secret {k8s.namespace}/import-token not found"
        in _condition(status, "SpecValid")["message"]
    )
    assert _condition(status, "Training")["reason"] == "Blocked"
    assert k8s.jobs() == []

    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {
            # opted in for this ChannelModel (issue 12: Secrets are used only when opted in)
            "metadata": {
                "name": "import-token",
                "annotations": {"ml.dukarun.io/channel-models": "shop-1"},
            },
            "data": {"token": base64.b64encode(b"t").decode()},
        },
    )
    job = wait_for(lambda: (jobs := k8s.jobs()) and jobs[0], timeout=30, message="import Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "import"
    assert _arg(job, "--version") == "1.0.4"
    # Status follows the Job (side effects first, status last).
    current = wait_for(lambda: _status(k8s).get("currentJob"), timeout=30, message="currentJob")
    assert current["version"] == "1.0.4"


def test_suspend_stops_the_running_job_and_its_result_is_never_served(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    runner = start_job_runner(stand_in=fake_trainer(FAKE_DELAY="30"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec())
    wait_for(lambda: _training_status(k8s, "Training"), timeout=30, message="Training")
    k8s.patch_channelmodel("shop-1", {"spec": {"suspend": True}})

    wait_for(lambda: k8s.jobs() == [], timeout=30, message="the running Job deleted")
    status = wait_for(lambda: _training_status(k8s, "Queued"), timeout=30, message="Queued")
    assert status.get("modelVersion") is None and status.get("currentJob") is None
    assert _condition(status, "Training")["reason"] == "Suspended"
    # The ChannelModel's own Events (a real cluster's Job controller and scheduler post theirs).
    events = [e for e in k8s.events() if e["involvedObject"]["kind"] == "ChannelModel"]
    assert "TrainingCancelled" in {e.get("reason") for e in events}
    # `kubectl describe` shows the operator, not the framework, as the source.
    assert {e["source"]["component"] for e in events} == {"channelmodel-operator"}
    assert {e["reportingComponent"] for e in events} == {"channelmodel-operator"}
    store = open_store(f"file://{tmp_path / 'store'}")
    assert store.list_versions("shop-1") == []

    runner.stand_in = fake_trainer(FAKE_DELAY="0.2")
    k8s.patch_channelmodel("shop-1", {"spec": {"suspend": False}})
    status = wait_for(
        lambda: (s := _status(k8s)).get("modelVersion") == "1.0.0" and s,
        timeout=60,
        message="trained once suspend is lifted",
    )
    assert _job_names(k8s) == ["shop-1-train-2"]


@pytest.mark.parametrize("file", ["channelmodel.yaml", "channelmodel-cpu.yaml"])
def test_the_minimal_examples_train_without_gpu_secret_or_kueue(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, file: str
) -> None:
    example = yaml.safe_load((REPO_ROOT / "examples" / file).read_text())
    spec = example["spec"]
    assert "authSecretRef" not in spec["manifest"] and "notify" not in spec
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process()
    k8s.create_channelmodel(example["metadata"]["name"], spec)
    name = example["metadata"]["name"]
    wait_for(
        lambda: _status(k8s, name).get("modelVersion") == "1.0.0",
        timeout=60,
        message="the README's example served",
    )
    job = k8s.jobs()[0]
    assert "suspend" not in job["spec"] or job["spec"]["suspend"] is False
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
    pod = job["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in (pod["containers"][0]["resources"].get("limits") or {})
    assert "nodeSelector" not in pod and "tolerations" not in pod
