"""The process kubelet as the real control plane sees it: Nodes that are Ready with
GPU capacity and a fresh Lease, Pods run with their volumes and working directory,
and the graceful stop of a deleted Pod (SIGTERM, grace period, SIGKILL)."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.support.k8s import RealCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.real_only]


def test_nodes_are_ready_with_gpu_capacity_taint_and_a_fresh_lease(k8s: RealCluster) -> None:
    nodes = {node.metadata.name: node for node in k8s.core.list_node().items}
    assert {"cpu-node-1", "gpu-node-1"} <= set(nodes)
    for node in nodes.values():
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True"
    gpu = nodes["gpu-node-1"]
    assert gpu.status.allocatable["nvidia.com/gpu"] == "2"
    assert [(t.key, t.effect) for t in gpu.spec.taints] == [("nvidia.com/gpu", "NoSchedule")]
    assert gpu.metadata.labels["nvidia.com/gpu.present"] == "true"
    assert not nodes["cpu-node-1"].spec.taints
    coordination = kubernetes.client.CoordinationV1Api(k8s.api_client)
    lease = coordination.read_namespaced_lease("gpu-node-1", "kube-node-lease")
    assert lease.spec.holder_identity == "gpu-node-1"
    age = datetime.now(UTC) - lease.spec.renew_time
    assert age.total_seconds() < 30  # renewed every 10 s


def _pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "python:local",
        "command": [sys.executable, "-c", script],
        **spec.pop("container", {}),
    }
    return {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def _terminated(k8s: RealCluster, name: str) -> dict[str, Any] | None:
    pod = k8s.api_client.sanitize_for_serialization(
        k8s.core.read_namespaced_pod(name, k8s.namespace)
    )
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state = statuses[0]["state"] if statuses else {}
    return dict(pod) if "terminated" in state else None


def test_volumes_and_working_directory(
    k8s: RealCluster, start_job_runner: Any, tmp_path: Path
) -> None:
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {"metadata": {"name": "files"}, "data": {"key.txt": base64.b64encode(b"s3cret").decode()}},
    )
    host = tmp_path / "host"
    host.mkdir()
    work = tmp_path / "work"
    start_job_runner()
    script = (
        "import json, os, pathlib, tempfile\n"
        "out = {'cwd': os.getcwd(), 'tmp': tempfile.gettempdir()}\n"
        f"pathlib.Path({str(host)!r}, 'written').write_text('from the pod')\n"
        "open(os.environ['CHANNELMODEL_TERMINATION_LOG'], 'w').write(json.dumps(out))\n"
    )
    k8s.core.create_namespaced_pod(
        k8s.namespace,
        _pod(
            "volumes",
            script,
            container={
                "workingDir": str(work),
                "volumeMounts": [
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "host", "mountPath": str(host)},
                    {"name": "files", "mountPath": "/etc/files"},
                ],
            },
            volumes=[
                {"name": "tmp", "emptyDir": {}},
                {"name": "host", "hostPath": {"path": str(host)}},
                {"name": "files", "secret": {"secretName": "files"}},
            ],
        ),
    )
    pod = wait_for(lambda: _terminated(k8s, "volumes"), timeout=30, message="the Pod to finish")
    assert pod["status"]["phase"] == "Succeeded"
    seen = json.loads(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert seen["cwd"] == str(work)
    assert seen["tmp"] != "/tmp" and seen["tmp"].endswith("/volumes/tmp")  # the emptyDir
    assert (host / "written").read_text() == "from the pod"  # hostPath is the folder itself


def test_a_deleted_pod_gets_sigterm_then_sigkill_after_its_grace_period(
    k8s: RealCluster, start_job_runner: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "sigterm"
    pid_file = tmp_path / "pid"
    # Notes SIGTERM and keeps running: only SIGKILL after the grace period ends it.
    script = (
        "import os, signal, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        f"signal.signal(signal.SIGTERM, lambda *_: open({str(marker)!r}, 'w').write('x'))\n"
        "while True: time.sleep(0.1)\n"
    )
    start_job_runner()
    k8s.core.create_namespaced_pod(
        k8s.namespace, _pod("stubborn", script, terminationGracePeriodSeconds=2)
    )
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30))
    began = time.monotonic()
    k8s.core.delete_namespaced_pod("stubborn", k8s.namespace)

    wait_for(lambda: marker.exists(), timeout=10, message="SIGTERM to reach the process")

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=15, message="SIGKILL after the grace period")
    assert time.monotonic() - began >= 1.5  # not before the grace period
    # ... and the kubelet's final delete removes the Pod from the API.
    wait_for(
        lambda: "stubborn" not in [p["metadata"]["name"] for p in k8s.pods()],
        timeout=15,
        message="the Pod object to be removed",
    )
