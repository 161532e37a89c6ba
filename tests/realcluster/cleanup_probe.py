"""Run by test_fixture_cleanup.py in a pytest of its own: uses the control plane,
writes its processes and ports down, then fails or waits to be interrupted."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.support.k8s import RealCluster


def test_probe(k8s: RealCluster) -> None:
    plane = k8s.plane
    record = {
        "pids": [c.process.pid for c in plane.components if c.process is not None],
        "ports": [plane.api_port, plane.etcd_port],
    }
    Path(os.environ["PROBE_RECORD"]).write_text(json.dumps(record))
    if os.environ["PROBE_MODE"] == "fail":
        raise AssertionError("failing on purpose")
    time.sleep(120)  # interrupted before this ends
