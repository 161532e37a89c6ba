"""The chart and the code cannot drift apart: the operator Deployment's command
and env, exactly as `helm template` renders them, start the operator against
the test API, train a first version and answer kopf's liveness probe."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.chart_render import helm_binary, rendered_operator_environment
from tests.support.k8s import Cluster, RealCluster, bind_claim_to_folder, wait_for
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e

NAMESPACE = "channelmodel"


def test_rendered_operator_deployment_runs_the_operator(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    helm_binary()  # skips with the reason when helm is missing
    argv, env = rendered_operator_environment({}, tmp_path, namespace=NAMESPACE)
    assert argv[:2] == ["channelmodel", "run"]
    liveness = next(a for a in argv if a.startswith("--liveness="))
    port = free_port()
    # The only substitutions: this machine's interpreter, free ports, a writable store.
    argv = [sys.executable, "-m", "channelmodel", *argv[1:]]
    argv = [a.replace(liveness, f"--liveness=http://127.0.0.1:{port}/healthz") for a in argv]
    env["CHANNELMODEL_STORE_URI"] = f"file://{tmp_path / 'store'}"
    env["CHANNELMODEL_METRICS_PORT"] = "0"
    assert env["CHANNELMODEL_NAMESPACES"] == NAMESPACE

    for namespace in (NAMESPACE, "elsewhere"):
        k8s.ensure_namespace(namespace, env["CHANNELMODEL_TRAINER_SERVICE_ACCOUNT"])
    if isinstance(k8s, RealCluster):
        # The chart's claim, bound to a hostPath volume at the store's folder: the Pod
        # mounts it for real (the scheduler waits for an unbound claim).
        claim = env["CHANNELMODEL_STORE_VOLUME_CLAIM"]
        bind_claim_to_folder(k8s, NAMESPACE, claim, tmp_path / "store")
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process(env=env, argv=argv, name="chart-operator")
    spec = {
        "channelId": "demo",
        "manifest": {"url": "http://backend.test/manifest"},
        "training": {"gpus": 0},
    }
    k8s.create_channelmodel("ignored", spec, namespace="elsewhere")  # not a watched namespace
    k8s.create_channelmodel("demo", spec, namespace=NAMESPACE)

    status = wait_for(
        lambda: (
            (s := k8s.get_channelmodel("demo", NAMESPACE).get("status") or {}).get("modelVersion")
            == "1.0.0"
            and s
        ),
        timeout=60,
        message="1.0.0 from the chart-configured operator",
    )
    assert status["modelBaseUrl"].endswith("/assets/ml-models/demo/v1.0.0/")
    job = k8s.jobs(NAMESPACE)[0]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == env["CHANNELMODEL_TRAINER_SERVICE_ACCOUNT"]
    assert pod["containers"][0]["image"] == env["CHANNELMODEL_TRAINER_IMAGE"]
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert not k8s.get_channelmodel("ignored", "elsewhere").get("status")
