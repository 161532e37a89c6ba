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
    """`{"ok": false, "error": ...}` whose encoding fits MAX_BYTES, cut with an ellipsis.

    The limit is on encoded bytes: one non-ASCII character encodes as up to 12
    (a `\\ud83d\\ude00` pair), so the cut is found by encoding, not by counting.
    """
    line = " ".join(reason.split())
    result: dict[str, object] = {"ok": False, "error": line}
    if len(encode(result)) <= MAX_BYTES:
        return result
    low, high = 0, len(line)  # the longest prefix that fits
    while low < high:
        middle = (low + high + 1) // 2
        if len(encode({"ok": False, "error": line[:middle] + "…"})) <= MAX_BYTES:
            low = middle
        else:
            high = middle - 1
    return {"ok": False, "error": line[:low] + "…"}


def encode(result: Mapping[str, object]) -> bytes:
    return json.dumps(result, separators=(",", ":")).encode()


def write_result(result: Mapping[str, object], path: str | None = None) -> Path | None:
    """Write the result where Kubernetes reads it; None when that path is not writable."""
    target = Path(path or os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG)
    data = encode(result)
    if len(data) > MAX_BYTES:  # the kubelet would cut it into invalid JSON
        if result.get("ok"):
            kept = ("ok", "channelId", "version", "metrics")
            data = encode({k: result[k] for k in kept if k in result} | {"truncated": True})
        if not result.get("ok") or len(data) > MAX_BYTES:
            data = encode(failure_result(str(result.get("error") or "result too large")))
    try:
        target.write_bytes(data)
    except OSError:
        return None  # local runs have no /dev/termination-log; stdout has the result
    return target
