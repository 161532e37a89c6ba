"""The trainer's result as JSON in the container's termination message.

Kubernetes keeps at most 4096 bytes of it, so the lists of products (without
images, with skipped images) are cut to fit and `truncated` says so; every
skipped image is logged with its product and reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

TERMINATION_LOG_ENV = "CHANNELMODEL_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
MAX_BYTES = 4096
_MARGIN = 32  # room for the "truncated" flag


def success_result(
    *,
    channel_id: str,
    version: str,
    metrics: Mapping[str, object],
    skipped: Mapping[str, int],
    timings: Mapping[str, float],
    without_images: Sequence[str] = (),
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    kept_without: list[str] = []
    kept_skipped: dict[str, int] = {}
    result: dict[str, object] = {
        "ok": True,
        "channelId": channel_id,
        "version": version,
        "metrics": dict(metrics),
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        **(extra or {}),
        "productsWithoutImages": kept_without,
        "skipped": kept_skipped,
    }
    # A product the model cannot recognise matters most; then the most-skipped ones.
    for product_id in without_images:
        kept_without.append(product_id)
        if len(encode(result)) > MAX_BYTES - _MARGIN:
            kept_without.pop()
            result["truncated"] = True
            return result
    for product_id, count in sorted(skipped.items(), key=lambda item: (-item[1], item[0])):
        kept_skipped[product_id] = count
        if len(encode(result)) > MAX_BYTES - _MARGIN:
            del kept_skipped[product_id]
            result["truncated"] = True
            return result
    return result


def failure_result(reason: str) -> dict[str, object]:
    line = " ".join(reason.split())
    return {"ok": False, "error": line[: MAX_BYTES - 64]}


def encode(result: Mapping[str, object]) -> bytes:
    return json.dumps(result, separators=(",", ":")).encode()


def write_result(result: Mapping[str, object], path: str | None = None) -> Path | None:
    """Write the result where Kubernetes reads it; None when that path is not writable."""
    target = Path(path or os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG)
    try:
        target.write_bytes(encode(result))
    except OSError:
        return None  # local runs have no /dev/termination-log; stdout has the result
    return target
