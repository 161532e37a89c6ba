"""A minimal kopf operator used to prove kopf works against the emulator (not product code)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kopf

OUT = Path(os.environ["PROBE_OUT"])


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.server_timeout = 30


@kopf.on.create("ml.dukarun.io", "v1alpha1", "channelmodels")
def created(
    spec: kopf.Spec, name: str, body: kopf.Body, patch: kopf.Patch, **_: Any
) -> dict[str, Any]:
    patch.status["probe"] = {"seen": spec["channelId"]}
    kopf.info(body, reason="Probed", message=f"saw channel {spec['channelId']}")
    with OUT.open("a") as out:
        out.write(f"create {name}\n")
    return {"handled": True}


@kopf.on.update("ml.dukarun.io", "v1alpha1", "channelmodels", field="spec.minAccuracy")
def updated(name: str, new: Any, **_: Any) -> None:
    with OUT.open("a") as out:
        out.write(f"update {name} {new}\n")


@kopf.on.delete("ml.dukarun.io", "v1alpha1", "channelmodels")
def deleted(name: str, **_: Any) -> None:
    with OUT.open("a") as out:
        out.write(f"delete {name}\n")
