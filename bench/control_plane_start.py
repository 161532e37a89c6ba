"""Start time of the test control plane, against the API emulator, same run.

    .venv/bin/python bench/control_plane_start.py [--repeats 3]

Each repeat starts, alternately, the in-repo API emulator (the baseline: what the
tests used before) and the real control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler; `scripts/control-plane.sh` builds it)
until each answers; for the real one, until /readyz is ok and the controller
manager has made the `default` ServiceAccount, then until the ChannelModel CRD is
established and a first Pod of a Job has run on the process kubelet (what a test
session waits for before its first test). Prints each figure and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.k8s import RealCluster, RealControlPlane, start_emulator, wait_for  # noqa: E402

from channelmodel_sandbox.controlplane import ControlPlane, find_binaries  # noqa: E402
from channelmodel_sandbox.jobrunner import stand_in_script  # noqa: E402


def emulator_start(work: Path) -> float:
    began = time.monotonic()
    cluster = start_emulator(work)
    cluster.core.list_namespaced_pod("default")
    elapsed = time.monotonic() - began
    cluster.close()
    return elapsed


def real_start(binaries: Path, work: Path) -> tuple[float, float]:
    """(control plane ready, first Job's Pod run on the process kubelet)."""
    began = time.monotonic()
    plane = ControlPlane(binaries=binaries, work_dir=work / "plane").start()
    ready = time.monotonic() - began
    control = RealControlPlane(plane, work)
    try:
        control.apply_crd()
        (work / "ns").mkdir()
        cluster = RealCluster(control, "bench", work / "ns")
        cluster.admit(stand_in_script({"ok": True}))
        cluster.batch.create_namespaced_job(
            "bench",
            {
                "metadata": {"name": "first"},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                        }
                    },
                },
            },
        )
        wait_for(
            lambda: (
                (cluster.batch.read_namespaced_job("first", "bench").status.succeeded or 0) == 1
            ),
            timeout=60,
        )
        first_job = time.monotonic() - began
        cluster.close()
    finally:
        control.close()
    return ready, first_job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    binaries = find_binaries(REPO_ROOT)
    if binaries is None:
        print("the control plane is not built: run scripts/control-plane.sh", file=sys.stderr)
        return 2
    emulator, ready, first = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            emulator.append(emulator_start(Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            r, f = real_start(binaries, Path(tmp))
            ready.append(r)
            first.append(f)
    median = statistics.median
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"emulator answering (baseline):            median {median(emulator):6.2f} s  {emulator}")
    print(f"control plane ready:                      median {median(ready):6.2f} s  {ready}")
    print(f"+ CRD established, first Job's Pod run:   median {median(first):6.2f} s  {first}")
    print(f"ratio ready / emulator: {median(ready) / median(emulator):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
