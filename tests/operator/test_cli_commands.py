"""The ChannelModel commands as a person runs them, against the API emulator:
`status`, `retrain`, `notify-change` with `-o json|yaml`, `--context`, the
context's namespace as the default, the documented exit codes, `--version`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from channelmodel import __version__
from tests.support.k8s import Cluster

pytestmark = pytest.mark.e2e

SPEC: dict[str, Any] = {
    "channelId": "shop-1",
    "manifest": {"url": "http://backend.test/manifest"},
    "training": {"gpus": 0, "queueName": "gpu-queue"},
}
STATUS: dict[str, Any] = {
    "modelVersion": "1.0.1",
    "modelBaseUrl": "http://models.test/assets/ml-models/shop-1/v1.0.1/",
    "latestVersion": "1.0.2",
    "trainingStatus": "Queued",
    "queuedTrigger": "event",
    "trainAfter": "2026-11-21T10:01:00Z",
    "lastTrained": "2026-11-21T09:00:00Z",
    "lastRun": {"accuracy": 0.91, "classes": 4, "images": 48, "skippedImages": 2, "seconds": 11.5},
    "lastError": "1.0.2 rejected by the quality gate: accuracy 0.500 is below minAccuracy 0.600",
    "versions": [
        {"version": "1.0.2", "createdAt": "2026-11-21T09:30:00Z", "accuracy": 0.5,
         "state": "Rejected", "origin": "trained", "reason": "accuracy 0.500 is below 0.600"},
        {"version": "1.0.1", "createdAt": "2026-11-21T09:00:00Z", "accuracy": 0.91,
         "state": "Served", "origin": "trained"},
    ],
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "ModelServed", "message": "serving 1.0.1",
         "lastTransitionTime": "2026-11-21T09:00:00Z"},
        {"type": "Training", "status": "False", "reason": "Queued",
         "message": "event retrain waiting for debounce/cooldown until 2026-11-21T10:01:00Z",
         "lastTransitionTime": "2026-11-21T10:00:00Z"},
        {"type": "LastRunSucceeded", "status": "False", "reason": "QualityGateRejected",
         "message": "rejected", "lastTransitionTime": "2026-11-21T09:30:00Z"},
    ],
}  # fmt: skip


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "channelmodel", *args], capture_output=True, text=True, timeout=60
    )


def _kubeconfig_with_contexts(k8s: Cluster, path: Path) -> Path:
    """The test's kubeconfig with the current context in `shops` and a second one."""
    for namespace in ("shops", "other"):
        k8s.ensure_namespace(namespace)
    config = yaml.safe_load(k8s.kubeconfig.read_text())
    context = config["contexts"][0]
    context["context"]["namespace"] = "shops"
    other = {"name": "other", "context": {**context["context"], "namespace": "other"}}
    config["contexts"].append(other)
    path.write_text(yaml.safe_dump(config))
    return path


def _create_with_status(k8s: Cluster, namespace: str) -> None:
    k8s.ensure_namespace(namespace)
    k8s.create_channelmodel("shop-1", SPEC, namespace=namespace)
    k8s.custom.patch_namespaced_custom_object_status(
        "ml.dukarun.io", "v1alpha1", namespace, "channelmodels", "shop-1", {"status": STATUS}
    )


def test_status_shows_what_is_served_and_why_it_waits(k8s: Cluster, tmp_path: Path) -> None:
    _create_with_status(k8s, "shops")
    kubeconfig = str(_kubeconfig_with_contexts(k8s, tmp_path / "kubeconfig"))

    text = cli("status", "shop-1", "--kubeconfig", kubeconfig)  # namespace from the context
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert out.splitlines()[0] == "shops/shop-1  channel shop-1"
    assert "Serving:     1.0.1  http://models.test/assets/ml-models/shop-1/v1.0.1/" in out
    assert "Waiting:     Queued: event retrain waiting for debounce/cooldown" in out
    assert "Kueue queue: gpu-queue" in out
    assert "failed (QualityGateRejected); accuracy 0.910, 4 classes, 48 images (2 skipped)" in out
    assert "1.0.2      Rejected   accuracy 0.500  trained  (accuracy 0.500 is below 0.600)" in out

    as_json = json.loads(cli("status", "shop-1", "--kubeconfig", kubeconfig, "-o", "json").stdout)
    assert as_json["served"] == {"version": "1.0.1", "url": STATUS["modelBaseUrl"]}
    assert as_json["next"]["reason"] == "Queued" and as_json["next"]["queueName"] == "gpu-queue"
    assert as_json["lastRun"]["metrics"]["images"] == 48
    assert [v["version"] for v in as_json["versions"]] == ["1.0.2", "1.0.1"]
    as_yaml = yaml.safe_load(
        cli("status", "shop-1", "--kubeconfig", kubeconfig, "-o", "yaml").stdout
    )
    assert as_yaml == as_json


def test_context_and_namespace_choose_the_object_and_exit_codes_say_what_failed(
    k8s: Cluster, tmp_path: Path
) -> None:
    kubeconfig = str(_kubeconfig_with_contexts(k8s, tmp_path / "kubeconfig"))
    k8s.create_channelmodel("shop-1", SPEC, namespace="other")  # namespaces made above

    missing = cli("retrain", "shop-1", "--kubeconfig", kubeconfig)  # looks in `shops`
    assert missing.returncode == 3, missing.stderr
    assert "ChannelModel shops/shop-1: not found" in missing.stderr

    done = cli("retrain", "shop-1", "--kubeconfig", kubeconfig, "--context", "other", "-o", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["namespace"] == "other"
    requested = result["annotations"]["ml.dukarun.io/retrain-requested-at"]
    annotations = k8s.get_channelmodel("shop-1", "other")["metadata"]["annotations"]
    assert annotations["ml.dukarun.io/retrain-requested-at"] == requested

    explicit = cli("notify-change", "shop-1", "-n", "other", "--kubeconfig", kubeconfig,
                   "--at", "2026-11-21T10:00:00Z", "-o", "yaml")  # fmt: skip
    assert explicit.returncode == 0, explicit.stderr
    assert yaml.safe_load(explicit.stdout)["annotations"] == {
        "ml.dukarun.io/inventory-changed-at": "2026-11-21T10:00:00.000Z",
        "ml.dukarun.io/inventory-change": "productAdded",
    }

    unknown_context = cli("status", "shop-1", "--kubeconfig", kubeconfig, "--context", "nope")
    assert unknown_context.returncode == 4, unknown_context.stderr
    assert cli("status", "shop-1", "-o", "xml").returncode == 2


def test_version_and_help() -> None:
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"channelmodel {__version__}"
    help_text = cli("--help").stdout
    assert "Exit status: 0 ok, 1 API error, 2 usage error, 3 no such ChannelModel" in help_text
    assert "status" in help_text and "Teachable Machine" in help_text
