"""Issue 12 end to end: the operator as a real process against the emulator.

- A spec outside the operator's policy never becomes a Job.
- A re-created ChannelModel (deletionPolicy Retain) continues its channel's
  version numbers instead of failing every training on `1.0.0 already exists`.
- A second ChannelModel claiming a channelId that another one owns can neither
  publish into it, move its serving pointer, nor delete its models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from channelmodel.store import open_store
from tests.support.channelmodels import status as _status
from tests.support.k8s import Cluster, wait_for

pytestmark = pytest.mark.e2e

SPEC: dict[str, Any] = {
    "channelId": "shop-1",
    "manifest": {"url": "http://backend.test/manifest"},
    "debounceSeconds": 0,
    "cooldownSeconds": 0,
    "training": {"gpus": 1},
}


def _served(k8s: Cluster, version: str) -> bool:
    status = _status(k8s)
    return status.get("modelVersion") == version and status.get("trainingStatus") == "Succeeded"


def _gone(k8s: Cluster) -> bool:
    try:
        k8s.get_channelmodel("shop-1")
    except ApiException as exc:
        return exc.status == 404
    return False


def _spec_valid_message(k8s: Cluster) -> str:
    for condition in _status(k8s).get("conditions", []):
        if condition["type"] == "SpecValid" and condition["status"] == "False":
            return str(condition["message"])
    return ""


def test_an_image_outside_the_policy_never_runs(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.1"))
    operator_process()
    k8s.create_channelmodel(
        "shop-1", {**SPEC, "training": {"gpus": 1, "image": "attacker.example/steal:1"}}
    )
    message = wait_for(lambda: _spec_valid_message(k8s), timeout=30, message="SpecValid=False")
    assert "spec.training.image 'attacker.example/steal:1' is not allowed" in message
    assert _status(k8s)["trainingStatus"] == "Queued"
    assert k8s.jobs() == []
    # Back inside the policy, it trains.
    k8s.patch_channelmodel("shop-1", {"spec": {"training": {"image": None}}})
    wait_for(lambda: _served(k8s, "1.0.0"), timeout=60, message="1.0.0 once the image is allowed")


def test_a_recreated_channelmodel_continues_after_the_stored_versions(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.1"))
    operator_process()
    store = open_store(f"file://{tmp_path / 'store'}")
    k8s.create_channelmodel("shop-1", {**SPEC, "deletionPolicy": "Retain"})
    wait_for(lambda: _served(k8s, "1.0.0"), timeout=60, message="1.0.0")

    k8s.delete_channelmodel("shop-1")  # a GitOps restore, a namespace move...
    wait_for(lambda: _gone(k8s), timeout=30, message="ChannelModel gone")
    assert store.list_versions("shop-1") == ["1.0.0"]

    k8s.create_channelmodel("shop-1", {**SPEC, "deletionPolicy": "Retain"})
    status = wait_for(
        lambda: _served(k8s, "1.0.1") and _status(k8s),
        timeout=60,
        message="1.0.1 trained by the re-created ChannelModel",
    )
    assert status.get("lastError") is None
    assert store.list_versions("shop-1") == ["1.0.0", "1.0.1"]
    # The version it found is listed with its origin, neither served nor deleted.
    assert [(v["version"], v["state"], v["origin"]) for v in status["versions"]] == [
        ("1.0.1", "Served", "trained"),
        ("1.0.0", "Stored", "store"),
    ]
    assert store.get_pointer("shop-1") == {"version": "1.0.1", "pinned": False}
    # The RBAC the chart grants is what this used (issue 12: no `update`, no pods/log).
    for resource in ("channelmodels.ml.dukarun.io", "channelmodels.ml.dukarun.io/status"):
        assert k8s.count_requests(verbs={"update"}, resource=resource) == 0
    assert k8s.count_requests(resource="pods/log") == 0
    assert k8s.count_requests(resource="pods") > 0  # the counting itself works


def test_a_second_channelmodel_cannot_take_over_a_channel(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.1"))
    operator_process()
    store = open_store(f"file://{tmp_path / 'store'}")
    k8s.create_channelmodel("shop-1", SPEC)
    wait_for(lambda: _served(k8s, "1.0.0"), timeout=60, message="1.0.0")

    # Whoever may create ChannelModels names someone else's channel, set to Delete.
    k8s.create_channelmodel("intruder", {**SPEC, "deletionPolicy": "Delete"})

    def intruder_blocked() -> str:
        status = k8s.get_channelmodel("intruder").get("status") or {}
        for condition in status.get("conditions", []):
            if condition["type"] == "SpecValid" and condition["status"] == "False":
                return str(condition["message"])
        return ""

    message = wait_for(intruder_blocked, timeout=30, message="intruder SpecValid=False")
    assert f"channelId shop-1 belongs to ChannelModel {k8s.namespace}/shop-1" in message
    assert [job["metadata"]["name"] for job in k8s.jobs()] == ["shop-1-train-1"]

    k8s.delete_channelmodel("intruder")
    wait_for(lambda: _gone_named(k8s, "intruder"), timeout=30, message="intruder gone")
    assert store.list_versions("shop-1") == ["1.0.0"]
    assert store.get_pointer("shop-1") == {"version": "1.0.0", "pinned": False}


def _gone_named(k8s: Cluster, name: str) -> bool:
    try:
        k8s.get_channelmodel(name)
    except ApiException as exc:
        return exc.status == 404
    return False


def test_a_pinned_token_never_follows_an_edited_manifest_url(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    import base64

    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.1"))
    operator_process()
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {
            "metadata": {
                "name": "backend-token",
                "annotations": {
                    "ml.dukarun.io/channel-models": "shop-1",
                    "ml.dukarun.io/token-origins": "http://backend.test",
                },
            },
            "data": {"token": base64.b64encode(b"t0k").decode()},
        },
    )
    ref = {"name": "backend-token", "key": "token"}
    k8s.create_channelmodel(
        "shop-1",
        {**SPEC, "manifest": {"url": "http://backend.test/manifest", "authSecretRef": ref}},
    )
    wait_for(lambda: _served(k8s, "1.0.0"), timeout=60, message="1.0.0 with the pinned token")

    # Whoever may patch the ChannelModel points the manifest at their own server.
    k8s.patch_channelmodel("shop-1", {"spec": {"manifest": {"url": "http://attacker.test/m"}}})
    message = wait_for(lambda: _spec_valid_message(k8s), timeout=30, message="SpecValid=False")
    assert "may only be sent to http://backend.test" in message
    assert [job["metadata"]["name"] for job in k8s.jobs()] == ["shop-1-train-1"]
