"""Event-driven planning end to end (docs/decisions/0014): the operator process on
the test API. These check what wakes a channel, not how fast: a deadline fires
with nothing in between, a change during a wait replans at once, a freed slot
goes to the oldest waiting channel."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.channelmodels import status as _status
from tests.support.k8s import Cluster, wait_for

pytestmark = pytest.mark.e2e

OPERATOR_AGENTS = ("channelmodel-operator", "kopf")


def _spec(name: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "channelId": name,
        "manifest": {"url": "http://backend.test/manifest"},
        "debounceSeconds": 0,
        "cooldownSeconds": 0,
        "training": {"gpus": 0},
    }
    spec.update(overrides)
    return spec


def _trained(k8s: Cluster, name: str, version: str) -> bool:
    s = _status(k8s, name)
    return s.get("modelVersion") == version and not s.get("currentJob")


def _annotate(k8s: Cluster, name: str, **annotations: str) -> None:
    k8s.patch_channelmodel(name, {"metadata": {"annotations": {
        f"ml.dukarun.io/{key.replace('_', '-')}": value for key, value in annotations.items()
    }}})  # fmt: skip


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _operator_requests(k8s: Cluster, since: int) -> int:
    return sum(k8s.count_requests(since=since, user_agent=agent) for agent in OPERATOR_AGENTS)


def test_a_far_deadline_fires_with_no_request_in_between(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec("shop-1", debounceSeconds=16))
    wait_for(lambda: _trained(k8s, "shop-1", "1.0.0"), timeout=60, message="1.0.0")

    changed = datetime.now(UTC)
    _annotate(
        k8s, "shop-1", inventory_changed_at=_rfc3339(changed), inventory_change="productAdded"
    )
    wait_for(lambda: _status(k8s, "shop-1").get("trainingStatus") == "Queued", timeout=10,
             message="Queued")  # fmt: skip
    time.sleep(2)  # the echo of the Queued write is planned (and writes nothing)
    mark = k8s.request_mark()
    deadline = changed + timedelta(seconds=16)
    job_at = deadline - timedelta(seconds=5)  # the Job's lead (CHANNELMODEL_JOB_LEAD_SECONDS)
    time.sleep(max(0.0, (job_at - datetime.now(UTC)).total_seconds() - 1.0))
    # Eight seconds of waiting: no plan asks the API anything, nothing polls.
    assert _operator_requests(k8s, mark) == 0

    status = wait_for(lambda: (s := _status(k8s, "shop-1")).get("currentJob") and s,
                      timeout=30, message="the Job after the debounce")  # fmt: skip
    started = datetime.fromisoformat(status["currentJob"]["startedAt"].replace("Z", "+00:00"))
    not_before = datetime.fromisoformat(status["currentJob"]["notBefore"].replace("Z", "+00:00"))
    assert started >= job_at.replace(microsecond=0)  # woken at the lead's start, not before
    assert not_before >= deadline - timedelta(milliseconds=1)  # reads the manifest after it
    assert len(k8s.jobs()) == 2


def test_a_change_during_a_wait_replans_at_once(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process()
    k8s.create_channelmodel("shop-1", _spec("shop-1", debounceSeconds=600))
    wait_for(lambda: _trained(k8s, "shop-1", "1.0.0"), timeout=60, message="1.0.0")
    _annotate(k8s, "shop-1", inventory_changed_at=_rfc3339(datetime.now(UTC)),
              inventory_change="productAdded")  # fmt: skip
    wait_for(lambda: _status(k8s, "shop-1").get("trainingStatus") == "Queued", timeout=10,
             message="Queued for ten minutes")  # fmt: skip
    time.sleep(1.5)  # asleep until its deadline, ten minutes away

    _annotate(k8s, "shop-1", retrain_requested_at=_rfc3339(datetime.now(UTC)))
    # A manual request skips the debounce: the channel is planned at once, not a tick later.
    wait_for(lambda: _trained(k8s, "shop-1", "1.0.1"), timeout=30, message="1.0.1 at once")
    assert _status(k8s, "shop-1")["versions"][0]["version"] == "1.0.1"


def test_a_freed_slot_goes_to_the_oldest_waiting_channel(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="2"))
    operator_process(env={"CHANNELMODEL_MAX_CONCURRENT_TRAININGS": "1"})
    # Queued in this order, which is neither alphabetical nor reversed.
    names = ["first", "zeta", "alpha", "mid"]
    for name in names:
        k8s.create_channelmodel(name, _spec(name))
        wait_for(lambda n=name: _status(k8s, n).get("trainingStatus") in ("Queued", "Training"),
                 timeout=10, message=f"{name} queued")  # fmt: skip
        time.sleep(0.2)  # distinct queuedAt times
    for name in names:
        wait_for(lambda n=name: _trained(k8s, n, "1.0.0"), timeout=120, message=f"{name} 1.0.0")

    jobs = sorted(k8s.jobs(), key=lambda j: j["metadata"]["creationTimestamp"])
    assert [j["metadata"]["labels"]["ml.dukarun.io/channel-model"] for j in jobs] == names
    # One slot: each Job finished before the next one was created.
    for earlier, later in itertools.pairwise(jobs):
        assert earlier["status"]["completionTime"] <= later["metadata"]["creationTimestamp"]
