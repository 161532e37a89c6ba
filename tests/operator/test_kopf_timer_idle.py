"""How kopf's timer `idle=` interacts with status writes, found out by test
before relying on it (issue 3). The findings are in docs/decisions/0005:

- `idle=N` waits until kopf has seen no change to the object for N seconds;
  any change counts, including the status patches of the timer itself, so a
  timer that writes status fires at most every N s, not every `interval`;
- a stream of annotation patches postpones an idle timer for as long as it
  lasts: idle is a debounce, but its clock lives only in the operator's memory
  and restarts with the process, so channelmodel does not use it for debounce;
- a plain `interval=` timer is not affected by its own status writes.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import pytest

from tests.support.k8s import Cluster, wait_for
from tests.support.operator import OperatorFactory

PROBE = Path(__file__).with_name("kopf_idle_probe.py")
SPEC = {"channelId": "probe", "manifest": {"url": "http://backend.test/manifest"}}

pytestmark = pytest.mark.e2e


def _fires(out: Path, name: str) -> list[float]:
    return [
        float(line.split()[1])
        for line in out.read_text().splitlines()
        if line.startswith(name + " ")
    ]


def test_idle_timer_is_reset_by_every_change_including_its_own_status_writes(
    k8s: Cluster, operator_process: OperatorFactory, tmp_path: Path
) -> None:
    out = tmp_path / "fires.txt"
    out.touch()
    argv = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", str(PROBE)]
    operator_process(env={"PROBE_OUT": str(out)}, argv=argv, name="kopf-idle")
    k8s.create_channelmodel("plain", SPEC)
    k8s.create_channelmodel("idle", SPEC)

    storm_start = time.time()
    for i in range(10):  # an annotation patch every 0.4 s for 4 s
        k8s.patch_channelmodel("idle", {"metadata": {"annotations": {"storm": str(i)}}})
        last_patch = time.time()
        time.sleep(0.4)
    storm_end = time.time()
    assert _fires(out, "idle") == [], "an idle timer fired during a patch storm"

    wait_for(lambda: len(_fires(out, "idle")) >= 3, timeout=30, message="three idle-timer runs")
    idle = _fires(out, "idle")
    assert idle[0] >= last_patch + 1.4  # not before the object was quiet for idle=1.5 s
    gaps = [b - a for a, b in itertools.pairwise(idle)]
    assert min(gaps) >= 1.4, f"own status writes did not reset idle: gaps {gaps}"

    plain = [t for t in _fires(out, "plain") if storm_start <= t <= storm_end]
    # interval=0.2 keeps firing although every run writes status (~20 in 4 s)
    assert len(plain) >= 8
