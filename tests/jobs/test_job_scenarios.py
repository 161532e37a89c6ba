"""Job scenarios that run on both backends: the real Job controller, scheduler and
process kubelet, and the emulator's local job runner. They keep the job runner
(what `channelmodel dev` uses) from drifting away from what Kubernetes does."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from channelmodel_sandbox.containers import StandInCommand, container_argv
from channelmodel_sandbox.jobrunner import stand_in_script
from tests.support.k8s import Cluster, JobRunnerFactory, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]


def job(name: str, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "trainer",
        "image": "trainer:test",
        "command": command or ["channelmodel", "train"],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "test"}},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "metadata": {"labels": {"app": "test"}},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def finished(k8s: Cluster, name: str) -> dict[str, Any] | None:
    obj = k8s.api_client.sanitize_for_serialization(
        k8s.batch.read_namespaced_job(name, k8s.namespace)
    )
    conditions = (obj.get("status") or {}).get("conditions") or []
    done = [c for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"]
    return obj if done else None


def pods_of(k8s: Cluster, name: str) -> list[dict[str, Any]]:
    return [
        pod.to_dict()
        for pod in k8s.core.list_namespaced_pod(
            k8s.namespace, label_selector=f"job-name={name}"
        ).items
    ]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_container_command_maps_channelmodel_to_this_interpreter() -> None:
    argv = container_argv({"command": ["channelmodel"], "args": ["train", "--epochs", 3]})
    assert argv == [sys.executable, "-m", "channelmodel", "train", "--epochs", "3"]
    assert container_argv({"command": ["/bin/echo", "hi"]}) == ["/bin/echo", "hi"]


def test_stand_in_job_completes_with_its_termination_message(
    k8s: Cluster, start_job_runner: JobRunnerFactory
) -> None:
    start_job_runner(stand_in_script({"accuracy": 0.91, "classes": 3}, delay=0.2))
    k8s.batch.create_namespaced_job(k8s.namespace, job("train-1"))

    done = wait_for(lambda: finished(k8s, "train-1"), timeout=20, message="the job to finish")
    status = done["status"]
    assert [c["type"] for c in status["conditions"]][-1] == "Complete"
    assert (status["succeeded"], status.get("active")) == (1, None)  # zero counts are omitted
    assert status["startTime"] <= status["completionTime"]

    [pod] = pods_of(k8s, "train-1")
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "train-1"
    assert pod["metadata"]["labels"]["app"] == "test"
    assert pod["metadata"]["owner_references"][0]["uid"] == done["metadata"]["uid"]
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["container_statuses"][0]["state"]["terminated"]
    assert terminated["exit_code"] == 0
    assert terminated["reason"] == "Completed"
    assert json.loads(terminated["message"]) == {"accuracy": 0.91, "classes": 3}


def test_termination_message_is_capped_like_the_kubelet(
    k8s: Cluster, start_job_runner: JobRunnerFactory
) -> None:
    start_job_runner(stand_in_script({"log": "x" * 10000}))
    k8s.batch.create_namespaced_job(k8s.namespace, job("big"))
    wait_for(lambda: finished(k8s, "big"), timeout=20)
    [pod] = pods_of(k8s, "big")
    assert len(pod["status"]["container_statuses"][0]["state"]["terminated"]["message"]) == 4096


def test_failing_job_retries_then_fails_with_backoff_limit_exceeded(
    k8s: Cluster, start_job_runner: JobRunnerFactory
) -> None:
    start_job_runner(stand_in_script({"error": "manifest unreachable"}, exit_code=3))
    k8s.batch.create_namespaced_job(k8s.namespace, job("bad", backoffLimit=1))

    done = wait_for(lambda: finished(k8s, "bad"), timeout=20)
    failed = next(c for c in done["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert done["status"]["failed"] == 2
    assert "completionTime" not in done["status"]
    pods = pods_of(k8s, "bad")
    assert len(pods) == 2
    for pod in pods:
        terminated = pod["status"]["container_statuses"][0]["state"]["terminated"]
        assert (pod["status"]["phase"], terminated["exit_code"], terminated["reason"]) == (
            "Failed",
            3,
            "Error",
        )
        assert json.loads(terminated["message"]) == {"error": "manifest unreachable"}


def pid_writer(pid_file: Path, seconds: float) -> StandInCommand:
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep({seconds})"
    return StandInCommand([sys.executable, "-c", script])


def test_deadline_kills_the_process_and_fails_the_job(
    k8s: Cluster, start_job_runner: JobRunnerFactory, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    start_job_runner(lambda _job: pid_writer(pid_file, 60), kill_grace_seconds=0.5)
    k8s.batch.create_namespaced_job(k8s.namespace, job("slow", activeDeadlineSeconds=1))

    done = wait_for(lambda: finished(k8s, "slow"), timeout=20)
    assert [c["reason"] for c in done["status"]["conditions"] if c["type"] == "Failed"] == [
        "DeadlineExceeded"
    ]
    assert not alive(int(pid_file.read_text()))


def test_deleting_a_job_kills_its_process(
    k8s: Cluster, start_job_runner: JobRunnerFactory, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    start_job_runner(lambda _job: pid_writer(pid_file, 60), kill_grace_seconds=0.5)
    k8s.batch.create_namespaced_job(k8s.namespace, job("doomed"))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=20))
    assert alive(pid)

    k8s.batch.delete_namespaced_job("doomed", k8s.namespace, propagation_policy="Background")

    wait_for(lambda: not alive(pid), timeout=10, message="the job's process to be killed")
    # garbage-collected with their Job
    wait_for(lambda: pods_of(k8s, "doomed") == [], timeout=15, message="the Job's Pods to go")


def test_container_env_is_resolved_from_values_secrets_and_fields(
    k8s: Cluster, start_job_runner: JobRunnerFactory
) -> None:
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {"metadata": {"name": "creds"}, "data": {"token": base64.b64encode(b"s3cret").decode()}},
    )
    dump = (
        "import json, os; "
        "keys = ['PLAIN', 'TOKEN', 'POD_NAMESPACE']; "
        "open(os.environ['CHANNELMODEL_TERMINATION_LOG'], 'w').write(json.dumps({k: os.environ.get(k) for k in keys}))"
    )
    env = [
        {"name": "PLAIN", "value": "v"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    start_job_runner()  # the Job's own command runs, no stand-in
    k8s.batch.create_namespaced_job(
        k8s.namespace, job("env", command=[sys.executable, "-c", dump], container={"env": env})
    )

    wait_for(lambda: finished(k8s, "env"), timeout=20)
    [pod] = pods_of(k8s, "env")
    message = pod["status"]["container_statuses"][0]["state"]["terminated"]["message"]
    assert json.loads(message) == {"PLAIN": "v", "TOKEN": "s3cret", "POD_NAMESPACE": k8s.namespace}


def test_a_missing_secret_keeps_the_pod_waiting_until_the_deadline(
    k8s: Cluster, start_job_runner: JobRunnerFactory
) -> None:
    start_job_runner()
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "token"}}}]
    k8s.batch.create_namespaced_job(
        k8s.namespace, job("nosecret", activeDeadlineSeconds=1, container={"env": env})
    )

    def waiting() -> dict[str, Any] | None:
        pods = pods_of(k8s, "nosecret")
        statuses = pods[0]["status"]["container_statuses"] if pods else None
        return (
            statuses[0]["state"]["waiting"]
            if statuses and statuses[0]["state"]["waiting"]
            else None
        )

    assert wait_for(waiting, timeout=10)["reason"] == "CreateContainerConfigError"
    done = wait_for(lambda: finished(k8s, "nosecret"), timeout=20)
    assert [c["reason"] for c in done["status"]["conditions"] if c["type"] == "Failed"] == [
        "DeadlineExceeded"
    ]


def test_jobs_run_concurrently(
    k8s: Cluster, start_job_runner: JobRunnerFactory, tmp_path: Path
) -> None:
    # Each job announces itself and waits for the other: sequential execution would fail both.
    def rendezvous(pod: dict[str, Any]) -> StandInCommand:
        me = pod["metadata"]["labels"]["job-name"]
        script = (
            "import sys, time, pathlib\n"
            f"d = pathlib.Path({str(tmp_path)!r})\n"
            f"(d / {me!r}).touch()\n"
            "deadline = time.time() + 20\n"
            "while len(list(d.glob('meet-*'))) < 2:\n"
            "    if time.time() > deadline: sys.exit(1)\n"
            "    time.sleep(0.05)\n"
        )
        return StandInCommand([sys.executable, "-c", script])

    start_job_runner(rendezvous)
    k8s.batch.create_namespaced_job(k8s.namespace, job("meet-a"))
    k8s.batch.create_namespaced_job(k8s.namespace, job("meet-b"))
    for name in ("meet-a", "meet-b"):
        done = wait_for(lambda name=name: finished(k8s, name), timeout=30)
        assert done["status"].get("succeeded") == 1


def test_a_suspended_job_starts_when_resumed(
    k8s: Cluster, start_job_runner: JobRunnerFactory
) -> None:
    start_job_runner(stand_in_script({"ok": True}))
    k8s.batch.create_namespaced_job(k8s.namespace, job("queued", suspend=True))
    k8s.batch.create_namespaced_job(k8s.namespace, job("marker"))
    wait_for(lambda: finished(k8s, "marker"), timeout=20)  # the runner has seen both Jobs by now
    assert pods_of(k8s, "queued") == []
    k8s.batch.patch_namespaced_job("queued", k8s.namespace, {"spec": {"suspend": False}})
    assert wait_for(lambda: finished(k8s, "queued"), timeout=20)["status"]["succeeded"] == 1


def test_the_real_channelmodel_command_runs_as_a_module(
    k8s: Cluster, start_job_runner: JobRunnerFactory
) -> None:
    runner = start_job_runner()
    k8s.batch.create_namespaced_job(k8s.namespace, job("crd", command=["channelmodel", "crd"]))
    done = wait_for(lambda: finished(k8s, "crd"), timeout=60)
    assert done["status"].get("succeeded") == 1, runner.logs("crd")
    assert "kind: CustomResourceDefinition" in runner.logs("crd")
