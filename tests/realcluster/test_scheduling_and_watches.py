"""What only the real scheduler, Job controller and API server can tell: a training
Job with the defaults lands on the GPU node, one asking for more GPUs than exist
stays Pending and the ChannelModel says why; watches send bookmarks and 410 Gone
like the real server does; and the operator recovers from the API server being
down for 20 s, restarted meanwhile, without a duplicate Job."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.support.k8s import RealCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.real_only]

SPEC: dict[str, Any] = {"channelId": "gpu-1", "manifest": {"url": "http://backend.test/m"}}


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def test_a_training_job_with_the_defaults_runs_on_the_gpu_node(
    k8s: RealCluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process()
    k8s.create_channelmodel("gpu-1", SPEC)  # the CRD's default: one GPU

    wait_for(
        lambda: (k8s.get_channelmodel("gpu-1").get("status") or {}).get("modelVersion") == "1.0.0",
        timeout=60,
        message="1.0.0 trained on the GPU node",
    )
    [pod] = k8s.pods()
    assert pod["spec"]["nodeName"] == "gpu-node-1"
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_more_gpus_than_any_node_has_stays_pending_and_status_says_why(
    k8s: RealCluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    # The operator's policy allows 8 GPUs; the cluster has no node with that many.
    operator_process(env={"CHANNELMODEL_MAX_GPUS": "8"})
    k8s.create_channelmodel("gpu-1", {**SPEC, "training": {"gpus": 8}})

    training = wait_for(
        lambda: (
            (c := condition(k8s.get_channelmodel("gpu-1"), "Training")).get("reason")
            == "Unschedulable"
            and c
        ),
        timeout=60,
        message="the Training condition to say Unschedulable",
    )
    assert training["status"] == "False"
    assert "Insufficient nvidia.com/gpu" in training["message"]
    [pod] = k8s.pods()
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]
    status = k8s.get_channelmodel("gpu-1")["status"]
    assert "modelVersion" not in status or not status["modelVersion"]


def _watch_lines(k8s: RealCluster, path: str, seconds: float) -> list[dict[str, Any]]:
    plane = k8s.plane
    context = plane.ssl_context()
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    with urllib.request.urlopen(plane.url + path, context=context, timeout=seconds) as response:
        for line in response:
            events.append(json.loads(line))
            if events[-1]["type"] in ("BOOKMARK", "ERROR") or time.monotonic() > deadline:
                break
    return events


def test_watches_get_bookmarks_and_410_gone_from_the_real_server(k8s: RealCluster) -> None:
    k8s.create_channelmodel("w", {**SPEC, "channelId": "w"})
    base = f"/apis/ml.dukarun.io/v1alpha1/namespaces/{k8s.namespace}/channelmodels?watch=true"
    # A watch list ends its initial events with a bookmark (what client-go's reflector uses).
    events = _watch_lines(
        k8s,
        base + "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        20,
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    annotations = events[-1]["object"]["metadata"].get("annotations") or {}
    assert annotations.get("k8s.io/initial-events-end") == "true"
    # A resourceVersion older than the watch cache window is 410 Gone: list again.
    try:
        code = _watch_lines(k8s, base + "&resourceVersion=1", 20)[-1]["object"].get("code")
    except urllib.error.HTTPError as error:
        code = error.code
    assert code == 410


def test_the_operator_restarted_while_the_api_server_is_down_makes_no_duplicate_job(
    k8s: RealCluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="25"))
    operator = operator_process()
    k8s.create_channelmodel("gpu-1", {**SPEC, "training": {"gpus": 0}})
    wait_for(lambda: k8s.jobs(), timeout=60, message="the training Job")

    plane = k8s.plane
    plane.stop_component("kube-apiserver")
    try:
        operator.kill()
        operator.start()  # comes up while the API server is gone
        time.sleep(20)
    finally:
        plane.start_component("kube-apiserver")

    wait_for(
        lambda: (k8s.get_channelmodel("gpu-1").get("status") or {}).get("modelVersion") == "1.0.0",
        timeout=120,
        message="1.0.0 after the API server came back",
    )
    jobs = k8s.jobs()
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    assert k8s.get_channelmodel("gpu-1")["status"]["versions"][0]["version"] == "1.0.0"
