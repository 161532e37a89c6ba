"""High availability: several `channelmodel run` replicas, one Lease, exactly one acts
(channelmodel/leader.py, docs/decisions/0015-leader-election-lease.md).

On the real control plane (Leases are not in the emulator): the leader is killed
with SIGKILL mid-training and the standby takes over, follows the same Job, keeps
the concurrency cap and creates no duplicate; a standby facing a Lease someone
else keeps renewing does nothing at all until that holder stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import kubernetes
import pytest

from tests.support.channelmodels import status as _status
from tests.support.k8s import Cluster, wait_for
from tests.support.operator import OPERATOR_ARGV
from tests.support.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.real_only]

LEASE = "channelmodel-operator"


def _spec(channel: str) -> dict[str, Any]:
    return {
        "channelId": channel,
        "manifest": {"url": "http://backend.test/manifest"},
        "debounceSeconds": 0,
        "cooldownSeconds": 0,
        "training": {"gpus": 0},
    }


def _election_env(k8s: Cluster, identity: str, **extra: str) -> dict[str, str]:
    return {
        "CHANNELMODEL_LEADER_ELECTION": "true",
        "CHANNELMODEL_LEADER_ELECTION_NAMESPACE": k8s.namespace,
        "CHANNELMODEL_LEADER_ELECTION_IDENTITY": identity,
        **extra,
    }


def _coordination(k8s: Cluster) -> kubernetes.client.CoordinationV1Api:
    return kubernetes.client.CoordinationV1Api(k8s.api_client)


def _holder(k8s: Cluster) -> str | None:
    try:
        lease = _coordination(k8s).read_namespaced_lease(LEASE, k8s.namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity if lease.spec else None


def _finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


class JobWatch:
    """Polls the namespace's Jobs: the most unfinished at once, every name ever seen."""

    def __init__(self, k8s: Cluster) -> None:
        self.k8s = k8s
        self.most_running = 0
        self.names: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self.k8s.jobs()
            except Exception:  # a slow API server: try again
                continue
            self.names |= {j["metadata"]["name"] for j in jobs}
            self.most_running = max(self.most_running, sum(not _finished(j) for j in jobs))
            time.sleep(0.2)

    def __enter__(self) -> JobWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _succeeded(k8s: Cluster, name: str, version: str) -> bool:
    status = _status(k8s, name)
    return status.get("modelVersion") == version and status.get("trainingStatus") == "Succeeded"


def test_standby_takes_over_after_kill_9_without_duplicate_jobs(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    # One training at a time: "b" waits for the cap while "a" trains.
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="12"))
    common = {"CHANNELMODEL_MAX_CONCURRENT_TRAININGS": "1"}
    first = operator_process(env=_election_env(k8s, "replica-1", **common), name="replica-1")
    first.wait_for_log("acquired lease", timeout=60)
    second = operator_process(env=_election_env(k8s, "replica-2", **common), name="replica-2")
    second.wait_for_log("standing by", timeout=60)
    assert _holder(k8s) == "replica-1"

    with JobWatch(k8s) as jobs:
        k8s.create_channelmodel("a", _spec("a"))
        wait_for(lambda: k8s.jobs(), timeout=60, message="a's Job")
        k8s.create_channelmodel("b", _spec("b"))
        wait_for(
            lambda: _status(k8s, "a").get("trainingStatus") == "Training",
            timeout=30,
            message="a Training",
        )
        time.sleep(1)  # b is seen (and queued behind the cap) by the leader
        assert [j["metadata"]["name"] for j in k8s.jobs()] == ["a-train-1"]

        first.kill()  # SIGKILL: no lease release, no cleanup
        killed = time.monotonic()
        wait_for(lambda: _holder(k8s) == "replica-2", timeout=60, message="replica-2 to lead")
        takeover = time.monotonic() - killed
        second.wait_for_log("acquired lease", timeout=10)
        print(f"\ntakeover: Lease held by the standby {takeover:.1f} s after kill -9")

        for name in ("a", "b"):
            wait_for(
                lambda name=name: _succeeded(k8s, name, "1.0.0"),
                timeout=120,
                message=f"{name} 1.0.0 trained under the new leader",
            )
    assert sorted(j["metadata"]["name"] for j in k8s.jobs()) == ["a-train-1", "b-train-1"]
    assert jobs.names == {"a-train-1", "b-train-1"}, "no other Job existed, even briefly"
    assert jobs.most_running == 1, "the cap of one training held across the takeover"
    assert _status(k8s, "a")["attempts"] == 1
    assert _status(k8s, "b")["attempts"] == 1
    # The lease duration plus a retry period or two, plus this machine's slowness.
    assert takeover < 30


@pytest.fixture
def foreign_holder(k8s: Cluster) -> Iterator[threading.Event]:
    """A Lease held by someone else who renews it every second until the event is set."""
    api = _coordination(k8s)

    def now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    api.create_namespaced_lease(
        k8s.namespace,
        {
            "metadata": {"name": LEASE},
            "spec": {
                "holderIdentity": "someone-else",
                "leaseDurationSeconds": 4,
                "acquireTime": now(),
                "renewTime": now(),
            },
        },
    )
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(1):
            api.patch_namespaced_lease(LEASE, k8s.namespace, {"spec": {"renewTime": now()}})

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    yield stop
    stop.set()
    thread.join(5)


def test_a_standby_does_nothing_until_the_lease_is_free(
    k8s: Cluster,
    start_job_runner: Any,
    operator_process: Any,
    fake_trainer: Any,
    foreign_holder: threading.Event,
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    health, metrics = free_port(), free_port()
    timings = {
        "CHANNELMODEL_LEADER_ELECTION_LEASE_DURATION_SECONDS": "4",
        "CHANNELMODEL_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "3",
        "CHANNELMODEL_LEADER_ELECTION_RETRY_PERIOD_SECONDS": "1",
        "CHANNELMODEL_METRICS_PORT": str(metrics),
    }
    operator = operator_process(
        env=_election_env(k8s, "replica-1", **timings),
        argv=[*OPERATOR_ARGV, f"--liveness=http://127.0.0.1:{health}/healthz"],
    )
    operator.wait_for_log("standing by", timeout=60)
    k8s.create_channelmodel("a", _spec("a"))
    # Longer than the lease duration: only the renewals keep the standby out.
    time.sleep(8)
    assert _holder(k8s) == "someone-else"
    assert not _status(k8s, "a"), "a standby wrote status"
    assert not k8s.jobs(), "a standby created a Job"
    assert "acquired lease" not in operator.log_text()
    for path in ("/healthz", "/readyz"):
        answer = httpx.get(f"http://127.0.0.1:{health}{path}", timeout=5)
        assert (answer.status_code, answer.json()["role"]) == (200, "standby")
    assert "channelmodel_leader 0.0" in httpx.get(f"http://127.0.0.1:{metrics}/metrics").text

    foreign_holder.set()  # the holder dies
    wait_for(lambda: _holder(k8s) == "replica-1", timeout=30, message="replica-1 to lead")
    wait_for(lambda: _succeeded(k8s, "a", "1.0.0"), timeout=60, message="a 1.0.0")
    assert [j["metadata"]["name"] for j in k8s.jobs()] == ["a-train-1"]
    assert "channelmodel_leader 1.0" in httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
    wait_for(
        lambda: (
            httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=5).json() == {"role": "leader"}
        ),
        timeout=30,
        message="the leader ready once kopf answers",
    )

    # A graceful stop (SIGTERM) hands the Lease over at once.
    assert operator.stop() == 0
    assert _holder(k8s) is None
