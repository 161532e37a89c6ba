"""The operator as a real process (`python -m channelmodel run`) against the test
Kubernetes API (tests/support/k8s.py): the real control plane, whose Job controller
and scheduler hand the Pods to the process kubelet, or the emulator with its job runner."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channelmodel.store import open_store
from tests.support.channelmodels import condition as _condition
from tests.support.channelmodels import status as _status
from tests.support.k8s import Cluster, wait_for
from tests.support.processes import free_port
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.e2e

SPEC: dict[str, Any] = {
    "channelId": "shop-1",
    "manifest": {"url": "http://backend.test/manifest"},
    "debounceSeconds": 0,
    "cooldownSeconds": 0,
    "training": {"gpus": 1, "epochs": 7, "queueName": None},
}


def _spec(**overrides: Any) -> dict[str, Any]:
    spec = {k: v for k, v in SPEC.items() if k != "training"} | {
        "training": {"gpus": 1, "epochs": 7}
    }
    spec.update(overrides)
    return spec


def _version_is(k8s: Cluster, version: str, name: str = "shop-1") -> dict[str, Any] | None:
    status = _status(k8s, name)
    return (
        status
        if status.get("modelVersion") == version and status.get("trainingStatus") == "Succeeded"
        else None
    )


def test_first_training_publishes_1_0_0(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="1"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec())
    store = open_store(f"file://{tmp_path / 'store'}")
    # while the first model trains, the store says nothing is served (no fallback)
    wait_for(
        lambda: _status(k8s).get("trainingStatus") == "Training", timeout=30, message="Training"
    )
    assert store.get_pointer("shop-1") == {"version": None}

    status = wait_for(lambda: _version_is(k8s, "1.0.0"), timeout=60, message="version 1.0.0")
    jobs = k8s.jobs()
    assert len(jobs) == 1
    job = jobs[0]
    assert job["metadata"]["name"] == "shop-1-train-1"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ChannelModel"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["args"][container["args"].index("--epochs") + 1] == "7"

    assert status["modelBaseUrl"] == "http://models.test/assets/ml-models/shop-1/v1.0.0/"
    assert status["lastRun"]["accuracy"] == 0.9
    assert status["lastTrained"]
    ready = _condition(status, "Ready")
    assert ready["status"] == "True" and ready["reason"] == "ModelServed"
    assert ready["observedGeneration"] == k8s.get_channelmodel("shop-1")["metadata"]["generation"]
    reasons = {e.get("reason") for e in k8s.events()}
    assert {"TrainingStarted", "TrainingSucceeded"} <= reasons
    assert store.list_versions("shop-1") == ["1.0.0"]
    assert store.get_pointer("shop-1") == {"version": "1.0.0", "pinned": False}


def test_second_training_and_failure_keep_previous_model(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    runner = start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec())
    wait_for(lambda: _version_is(k8s, "1.0.0"), timeout=60, message="version 1.0.0")

    k8s.patch_channelmodel("shop-1", {"metadata": {"annotations": {
        "ml.dukarun.io/inventory-changed-at": "2026-11-21T10:00:00Z",
        "ml.dukarun.io/inventory-change": "productAdded",
    }}})  # fmt: skip
    wait_for(lambda: _version_is(k8s, "1.0.1"), timeout=60, message="version 1.0.1")

    runner.stand_in = fake_trainer(FAKE_DELAY="0.2", FAKE_ERROR="manifest lists only one product")
    k8s.patch_channelmodel("shop-1", {"metadata": {"annotations": {
        "ml.dukarun.io/inventory-changed-at": "2026-11-21T10:05:00Z",
    }}})  # fmt: skip
    status = wait_for(
        lambda: (s := _status(k8s)) and s.get("trainingStatus") == "Failed" and s,
        timeout=60,
        message="Failed",
    )
    assert status["modelVersion"] == "1.0.1"
    assert status["modelBaseUrl"].endswith("/v1.0.1/")
    failed = _condition(status, "LastRunSucceeded")
    assert failed["status"] == "False"
    assert failed["message"] == "manifest lists only one product"
    assert _condition(status, "Ready")["status"] == "True"
    assert "TrainingFailed" in {e.get("reason") for e in k8s.events()}


def test_operator_killed_mid_training_follows_the_same_job(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="4"))
    operator = operator_process()
    k8s.create_channelmodel("shop-1", _spec())
    wait_for(
        lambda: _status(k8s).get("trainingStatus") == "Training", timeout=30, message="Training"
    )
    operator.kill()
    operator.restart()
    status = wait_for(
        lambda: _version_is(k8s, "1.0.0"), timeout=60, message="version 1.0.0 after restart"
    )
    assert [j["metadata"]["name"] for j in k8s.jobs()] == ["shop-1-train-1"]
    assert status["attempts"] == 1


def test_schema_violations_are_rejected_by_the_api(k8s: Cluster) -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as excinfo:
        k8s.create_channelmodel("bad", _spec(channelId="no spaces allowed"))
    assert excinfo.value.status == 422
    assert "spec.channelId" in str(excinfo.value.body)


def test_unknown_secret_is_a_condition_not_a_crash_loop(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer())
    operator = operator_process()
    k8s.create_channelmodel(
        "shop-1",
        _spec(
            manifest={
                "url": "https://b.test/m",
                "authSecretRef": {"name": "missing", "key": "token"},
            }
        ),
    )
    status = wait_for(
        lambda: (
            (s := _status(k8s))
            and any(
                c["type"] == "SpecValid" and c["status"] == "False" for c in s.get("conditions", [])
            )
            and s
        ),
        timeout=30,
        message="SpecValid=False",
    )
    assert f"Secret {k8s.namespace}/missing not found" in _condition(status, "SpecValid")["message"]
    assert status["trainingStatus"] == "Queued"
    assert k8s.jobs() == []
    assert operator.running
    # A Secret that exists but is not opted in for this ChannelModel is not used (issue 12):
    # whoever may patch a ChannelModel must not reach every Secret of the namespace.
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {"metadata": {"name": "missing"}, "data": {"token": base64.b64encode(b"t0k").decode()}},
    )
    wait_for(
        lambda: (
            "is not opted in for ChannelModel shop-1"
            in _condition(_status(k8s), "SpecValid")["message"]
        ),
        timeout=30,
        message="SpecValid says the Secret is not opted in",
    )
    assert k8s.jobs() == []
    # opting it in (the annotation names the ChannelModel) unblocks it
    k8s.core.patch_namespaced_secret(
        "missing",
        k8s.namespace,
        {"metadata": {"annotations": {"ml.dukarun.io/channel-models": "other, shop-1"}}},
    )
    wait_for(
        lambda: _version_is(k8s, "1.0.0"),
        timeout=60,
        message="version 1.0.0 once the Secret is opted in",
    )
    assert "t0k" not in operator.log_text()


def test_deleting_the_channelmodel_removes_its_running_job(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="30"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec())
    wait_for(lambda: len(k8s.jobs()) == 1, timeout=30, message="a Job")
    k8s.delete_channelmodel("shop-1")
    wait_for(lambda: k8s.jobs() == [], timeout=30, message="Job deleted")
    wait_for(lambda: _gone(k8s), timeout=30, message="ChannelModel gone (finalizer released)")


def _gone(k8s: Cluster) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        k8s.get_channelmodel("shop-1")
    except ApiException as exc:
        return exc.status == 404
    return False


def test_webhook_events_are_signed_in_order_and_metrics_add_up(
    k8s: Cluster,
    start_job_runner: Any,
    operator_process: Any,
    fake_trainer: Any,
    webhook_receiver: WebhookReceiver,
) -> None:
    import time

    import httpx

    metrics_port = free_port()
    secret = b"webhook-key"
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {
            "metadata": {"name": "hook", "annotations": {"ml.dukarun.io/channel-models": "shop-1"}},
            "data": {"hmac": base64.b64encode(secret).decode()},
        },
    )
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process(env={"CHANNELMODEL_METRICS_PORT": str(metrics_port)})
    spec = _spec(
        debounceSeconds=2,
        notify={
            "webhookUrl": webhook_receiver.url,
            "secretRef": {"name": "hook", "key": "hmac"},
        },
    )
    k8s.create_channelmodel("shop-1", spec)
    wait_for(lambda: _version_is(k8s, "1.0.0"), timeout=60, message="1.0.0")
    for _ in range(5):  # five changes coalesced into one training
        k8s.patch_channelmodel("shop-1", {"metadata": {"annotations": {
            "ml.dukarun.io/inventory-changed-at": datetime.now(UTC).isoformat(),
            "ml.dukarun.io/inventory-change": "productAdded",
        }}})  # fmt: skip
        time.sleep(0.3)  # apart by more than kopf's 0.1 s batching window
    wait_for(lambda: _version_is(k8s, "1.0.1"), timeout=60, message="1.0.1")
    wait_for(
        lambda: len(webhook_receiver.received) >= 8, timeout=20, message="eight webhook events"
    )

    kinds = [e["type"] for e in webhook_receiver.events()]
    assert kinds == [
        "training.queued", "training.started", "training.succeeded", "version.served",
        "training.queued", "training.started", "training.succeeded", "version.served",
    ]  # fmt: skip
    assert webhook_receiver.all_signed_with(secret)
    succeeded = [e for e in webhook_receiver.events() if e["type"] == "training.succeeded"]
    assert [e["version"] for e in succeeded] == ["1.0.0", "1.0.1"]
    assert succeeded[1]["modelBaseUrl"] == "http://models.test/assets/ml-models/shop-1/v1.0.1/"

    scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert (
        f'channelmodel_trainings_total{{name="shop-1",namespace="{k8s.namespace}",result="succeeded"}} 2.0'
        in scrape
    )
    assert "channelmodel_training_duration_seconds_count 2.0" in scrape
    assert "channelmodel_changes_per_training_count 1.0" in scrape
    assert "channelmodel_changes_per_training_sum 5.0" in scrape
    assert (
        f'channelmodel_served_version_info{{channel="shop-1",name="shop-1",namespace="{k8s.namespace}",version="1.0.1"}} 1.0'
        in scrape
    )
    assert 'version="1.0.0"' not in scrape


@pytest.mark.parametrize(("policy", "kept"), [("Retain", ["1.0.0"]), ("Delete", [])])
def test_deletion_policy_decides_what_happens_to_artifacts(
    k8s: Cluster,
    start_job_runner: Any,
    operator_process: Any,
    fake_trainer: Any,
    tmp_path: Path,
    policy: str,
    kept: list[str],
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.1"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec(deletionPolicy=policy))
    wait_for(lambda: _version_is(k8s, "1.0.0"), timeout=60, message="1.0.0")
    store = open_store(f"file://{tmp_path / 'store'}")
    assert store.list_versions("shop-1") == ["1.0.0"]
    k8s.delete_channelmodel("shop-1")
    wait_for(lambda: _gone(k8s), timeout=30, message="ChannelModel gone")
    assert store.list_versions("shop-1") == kept


def test_retention_and_pinning_reach_the_store(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.1"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec(retainVersions=2))
    store = open_store(f"file://{tmp_path / 'store'}")
    for version in ("1.0.0", "1.0.1", "1.0.2"):
        wait_for(lambda v=version: _version_is(k8s, v), timeout=60, message=version)
        k8s.patch_channelmodel("shop-1", {"metadata": {"annotations": {
            "ml.dukarun.io/inventory-changed-at": datetime.now(UTC).isoformat(),
        }}})  # fmt: skip
    wait_for(lambda: _version_is(k8s, "1.0.3"), timeout=60, message="1.0.3")
    wait_for(
        lambda: store.list_versions("shop-1") == ["1.0.2", "1.0.3"], timeout=10, message="retention"
    )
    k8s.patch_channelmodel("shop-1", {"spec": {"pinnedVersion": "1.0.2"}})
    status = wait_for(
        lambda: (s := _status(k8s)).get("modelVersion") == "1.0.2" and s,
        timeout=20,
        message="pinned",
    )
    assert status["modelBaseUrl"].endswith("/v1.0.2/")
    assert _condition(status, "Ready")["reason"] == "VersionPinned"
    assert store.get_pointer("shop-1") == {"version": "1.0.2", "pinned": True}


def test_kueue_job_waits_for_admission_then_trains(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec(training={"gpus": 1, "queueName": "gpu-team"}))
    status = wait_for(
        lambda: (
            (s := _status(k8s))
            and _condition(s, "Training")["reason"] == "WaitingForAdmission"
            and s
        ),
        timeout=30,
        message="WaitingForAdmission",
    )
    assert "gpu-team" in _condition(status, "Training")["message"]
    job = k8s.jobs()[0]
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-team"
    # Kueue admits the workload by unsuspending the Job
    k8s.batch.patch_namespaced_job(
        job["metadata"]["name"], k8s.namespace, {"spec": {"suspend": False}}
    )
    wait_for(lambda: _version_is(k8s, "1.0.0"), timeout=60, message="1.0.0 after admission")
