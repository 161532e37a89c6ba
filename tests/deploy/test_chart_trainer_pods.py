"""The chart's securityContext, imagePullSecrets, GPU default, runtimeClassName,
priorityClassName and affinity reach trainer Pods: the
operator Deployment's env, exactly as rendered, starts the operator against the
emulator, and the Job it creates runs as the chart says; the trainer
ServiceAccount carries the pull secrets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart_render import (
    Values,
    helm_binary,
    only,
    render,
    rendered_operator_environment,
)
from tests.support.k8s import Cluster, wait_for

pytestmark = pytest.mark.e2e

NAMESPACE = "channelmodel"
AFFINITY = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
    {"weight": 1, "preference": {"matchExpressions": [
        {"key": "pool", "operator": "In", "values": ["training"]}]}}]}}  # fmt: skip
OVERRIDES: dict[str, Any] = {
    "securityContext": {"runAsUser": 20002, "runAsGroup": 20003, "fsGroup": 20004},
    "imagePullSecrets": [{"name": "regcred"}],
    "trainer": {
        "gpu": {"enabled": False},  # a cluster without GPUs: no GPU unless a spec asks
        "runtimeClassName": "gvisor",
        "priorityClassName": "batch-low",
        "affinity": AFFINITY,
    },
}


def test_trainer_service_account_carries_the_pull_secrets(tmp_path: Path) -> None:
    objects = render(Values("pull", OVERRIDES), tmp_path)
    account = only(objects, "ServiceAccount", "shop-channelmodel-trainer")
    assert account["imagePullSecrets"] == [{"name": "regcred"}]
    assert account["automountServiceAccountToken"] is False
    default = only(render(None, tmp_path), "ServiceAccount", "shop-channelmodel-trainer")
    assert "imagePullSecrets" not in default


def test_chart_security_context_reaches_trainer_pods(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    helm_binary()  # skips with the reason when helm is missing
    argv, env = rendered_operator_environment(OVERRIDES, tmp_path, namespace=NAMESPACE)
    argv = [sys.executable, "-m", "channelmodel", *[a for a in argv[1:] if "--liveness" not in a]]
    env["CHANNELMODEL_STORE_URI"] = f"file://{tmp_path / 'store'}"
    env["CHANNELMODEL_METRICS_PORT"] = "0"
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process(env=env, argv=argv, name="chart-operator")
    k8s.create_channelmodel(  # no spec.training.gpus: the chart-wide default applies
        "demo", {"channelId": "demo", "manifest": {"url": "http://b.test/m"}}, namespace=NAMESPACE
    )
    job = wait_for(lambda: (jobs := k8s.jobs(NAMESPACE)) and jobs[0], timeout=60, message="Job")
    pod = job["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in (pod["containers"][0]["resources"].get("limits") or {})
    assert pod["runtimeClassName"] == "gvisor" and pod["priorityClassName"] == "batch-low"
    assert pod["affinity"] == AFFINITY
    assert pod["securityContext"]["fsGroup"] == 20004
    container = pod["containers"][0]["securityContext"]
    assert (container["runAsUser"], container["runAsGroup"]) == (20002, 20003)
    assert pod["serviceAccountName"] == "shop-channelmodel-trainer"
