"""kopf, as a real process, operates on the emulator: handlers, status, finalizers, events."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.k8s import Cluster, wait_for
from tests.support.operator import OperatorFactory

PROBE = Path(__file__).with_name("kopf_probe.py")
SPEC = {"channelId": "shop-a", "manifest": {"url": "http://backend.test/manifest.json"}}

pytestmark = [pytest.mark.e2e, pytest.mark.emulator]


def test_kopf_handles_create_update_delete(
    k8s: Cluster, operator_process: OperatorFactory, tmp_path: Path
) -> None:
    out = tmp_path / "probe.out"
    out.touch()
    kopf = operator_process(
        env={"PROBE_OUT": str(out)},
        argv=[
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--standalone",
            "--all-namespaces",
            "--verbose",
            str(PROBE),
        ],
        name="kopf",
    )
    k8s.create_channelmodel("probe", SPEC)

    # The create handler ran once and its status patch landed through the status subresource.
    obj = wait_for(
        lambda: (o := k8s.get_channelmodel("probe")).get("status", {}).get("created") and o,
        timeout=30,
        message=lambda: f"the create handler's result in status; log:\n{kopf.log_text()[-3000:]}",
    )
    assert obj["status"]["probe"] == {"seen": "shop-a"}
    assert obj["status"]["created"] == {"handled": True}
    # kopf added its finalizer (optimistic JSON patch with a resourceVersion test).
    assert "kopf.zalando.org/KopfFinalizerMarker" in obj["metadata"]["finalizers"]
    assert obj["metadata"]["generation"] == 1  # status and metadata writes do not bump it

    k8s.patch_channelmodel("probe", {"spec": {"minAccuracy": 0.5}})
    wait_for(
        lambda: "update probe 0.5" in out.read_text(), timeout=30, message="the update handler"
    )
    assert k8s.get_channelmodel("probe")["metadata"]["generation"] == 2

    k8s.delete_channelmodel("probe")
    wait_for(lambda: "delete probe" in out.read_text(), timeout=30, message="the delete handler")

    # The finalizer is released and the object disappears: no retry loop.
    def gone() -> bool:
        return not k8s.call(
            lambda e: e.get_object("ml.dukarun.io/v1alpha1", "channelmodels", "default", "probe")
        )

    wait_for(gone, timeout=30, message="the object to be deleted after its finalizer is removed")
    assert out.read_text().splitlines() == ["create probe", "update probe 0.5", "delete probe"]

    # kopf posted the handler's Kubernetes Event to the core/v1 API, about the object.
    events = wait_for(
        lambda: [e for e in k8s.events("default") if e["reason"] == "Probed"], message="the event"
    )
    assert events[0]["message"] == "saw channel shop-a"
    assert events[0]["involvedObject"]["name"] == "probe"
    assert events[0]["involvedObject"]["kind"] == "ChannelModel"
    kopf.stop()
    assert "Traceback" not in kopf.log_text()
