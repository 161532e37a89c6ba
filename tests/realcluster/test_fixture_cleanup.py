"""The control-plane fixture leaves no process and no port behind, whether the
test using it fails or the run is interrupted (Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from channelmodel_sandbox.controlplane import find_binaries
from tests.support.k8s import REPO_ROOT, wait_for

pytestmark = [pytest.mark.e2e]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; so is a recycled pid of another program.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not a listener
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("mode", ["fail", "interrupt"])
def test_no_process_or_port_is_left_behind(mode: str, tmp_path: Path) -> None:
    if find_binaries(REPO_ROOT) is None:
        pytest.skip("the real Kubernetes control plane is not built: run scripts/control-plane.sh")
    record = tmp_path / "record.json"
    env = {**os.environ, "PROBE_RECORD": str(record), "PROBE_MODE": mode}
    env.pop("CHANNELMODEL_TEST_CLUSTER", None)
    probe = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/realcluster/cleanup_probe.py", f"--basetemp={tmp_path / 'run'}"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: record.exists() or probe.poll() is not None, timeout=120)
        if mode == "interrupt":
            time.sleep(0.5)
            probe.send_signal(signal.SIGINT)
        output, _ = probe.communicate(timeout=120)
    finally:
        if probe.poll() is None:
            probe.kill()
    assert record.exists(), output
    seen = json.loads(record.read_text())
    assert probe.returncode != 0  # failed, or interrupted
    assert len(seen["pids"]) == 4, seen
    wait_for(lambda: not any(alive(pid) for pid in seen["pids"]), timeout=30,
             message=lambda: f"control-plane processes to end: {[p for p in seen['pids'] if alive(p)]}")  # fmt: skip
    assert all(port_free(port) for port in seen["ports"])
