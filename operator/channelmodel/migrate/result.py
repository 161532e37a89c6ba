"""The import's result as JSON in the termination log, shaped like the trainer's,
so the operator follows an import Job exactly like a training Job."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TERMINATION_LOG_ENV = "CHANNELMODEL_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
MAX_BYTES = 4096  # what Kubernetes keeps of a termination message


def success_result(
    *,
    channel_id: str,
    version: str,
    origin: str,
    labels: list[str],
    labels_look_like_product_ids: bool,
) -> dict[str, Any]:
    return {
        "ok": True,
        "channelId": channel_id,
        "version": version,
        "origin": origin[:1024],
        "labels": len(labels),
        "labelsLookLikeProductIds": labels_look_like_product_ids,
        "metrics": {"classes": len(labels)},
    }


def failure_result(reason: str) -> dict[str, Any]:
    line = " ".join(reason.split())
    return {"ok": False, "error": line[: MAX_BYTES - 64]}


def write_result(result: Mapping[str, Any], path: str | None = None) -> Path | None:
    """Write where Kubernetes reads it; None when not writable (a run on a laptop)."""
    target = Path(path or os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG)
    try:
        target.write_bytes(json.dumps(result, separators=(",", ":")).encode())
    except OSError:
        return None
    return target
