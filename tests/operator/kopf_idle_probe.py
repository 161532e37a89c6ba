"""A throwaway kopf operator for test_kopf_timer_idle.py (not product code): two
timers that write status on every run, one with `idle=`, one without."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import kopf

OUT = Path(os.environ["PROBE_OUT"])
GVP = ("ml.dukarun.io", "v1alpha1", "channelmodels")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False


def _record(name: str, patch: kopf.Patch, status: kopf.Status) -> None:
    with OUT.open("a") as out:
        out.write(f"{name} {time.time():.3f}\n")
    patch.status["fired"] = int(status.get("fired", 0)) + 1  # a status write on every run


@kopf.timer(*GVP, id="with_idle", interval=0.2, idle=1.5, when=lambda name, **_: name == "idle")
def with_idle(name: str, patch: kopf.Patch, status: kopf.Status, **_: Any) -> None:
    _record(name, patch, status)


@kopf.timer(*GVP, id="without_idle", interval=0.2, when=lambda name, **_: name == "plain")
def without_idle(name: str, patch: kopf.Patch, status: kopf.Status, **_: Any) -> None:
    _record(name, patch, status)
