"""The result a training or import Job leaves in its termination message.

One model for the three parties: the trainer (`channelmodel train`) and the
importer (`channelmodel import`) write it as JSON to the container's
termination log, the operator reads it back (`jobs.termination_result`) and
the planner decides from it. Light on purpose: pydantic and the standard
library only, so the trainer imports it without the operator's modules.

Kubernetes keeps at most 4096 bytes of a termination message: writers keep
within MAX_BYTES (`failure_result` cuts the reason, `write_result` falls back
to the essentials), since a cut message is not JSON any more.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from channelmodel.api.models import RunMetrics

TERMINATION_LOG_ENV = "CHANNELMODEL_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
MAX_BYTES = 4096  # what Kubernetes keeps of a termination message


class JobResult(BaseModel):
    """`{"ok": true, ...}` after a published version, `{"ok": false, "error": ...}` otherwise."""

    # A newer trainer may report more than this operator knows: ignored, not refused.
    model_config = ConfigDict(extra="ignore")

    ok: bool
    error: str | None = None  # why the run failed: one line
    channelId: str | None = None
    version: str | None = None
    origin: str | None = None  # "trained", or "imported:<url>" for an import
    labels: int | None = None  # an import: how many labels the model has
    labelsLookLikeProductIds: bool | None = None  # an import: the labels are product IDs
    metrics: RunMetrics | None = None
    timings: dict[str, float] | None = None  # seconds per stage
    embedded: int | None = None
    cacheHits: int | None = None
    skipReasons: dict[str, int] | None = None  # why images were skipped, most frequent first
    productsWithoutImages: list[str] | None = None
    skipped: dict[str, int] | None = None  # skipped images per product, most first
    truncated: bool | None = None  # the lists above were cut to fit MAX_BYTES

    @field_validator("metrics", mode="before")
    @classmethod
    def _known_metrics(cls, value: Any) -> Any:
        # Metrics this operator does not know are dropped, as for the result itself.
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k in RunMetrics.model_fields}
        return value

    @classmethod
    def from_message(cls, message: str) -> JobResult:
        """Parse a termination message; never raises.

        Not JSON: the log tail Kubernetes keeps of a crashed container
        (FallbackToLogsOnError), whose last line is the reason. JSON that is not
        a result: a failed run that says what was wrong with it.
        """
        try:
            parsed = json.loads(message)
        except json.JSONDecodeError:
            lines = message.strip().splitlines()
            return cls(ok=False, error=lines[-1][:500] if lines else "no result")
        try:
            return cls.model_validate(parsed)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'result'}: {error['msg']}"
                for error in exc.errors()[:3]
            )
            return cls(ok=False, error=f"malformed result from the Job: {problems}"[:500])

    def encode(self) -> bytes:
        """Compact JSON without the fields left empty: what the termination log holds."""
        fields = self.model_dump(mode="json", exclude_none=True)
        return json.dumps(fields, separators=(",", ":")).encode()


def failure_result(reason: str) -> JobResult:
    """`{"ok": false, "error": ...}` whose encoding fits MAX_BYTES, cut with an ellipsis.

    The limit is on encoded bytes: one non-ASCII character encodes as up to 12
    (a `\\ud83d\\ude00` pair), so the cut is found by encoding, not by counting.
    """
    line = " ".join(reason.split())
    result = JobResult(ok=False, error=line)
    if len(result.encode()) <= MAX_BYTES:
        return result
    low, high = 0, len(line)  # the longest prefix that fits
    while low < high:
        middle = (low + high + 1) // 2
        if len(JobResult(ok=False, error=line[:middle] + "…").encode()) <= MAX_BYTES:
            low = middle
        else:
            high = middle - 1
    return JobResult(ok=False, error=line[:low] + "…")


def write_result(result: JobResult, path: str | None = None) -> Path | None:
    """Write the result where Kubernetes reads it; None when that path is not writable
    (a run on a laptop: stdout has the result)."""
    target = Path(path or os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG)
    data = result.encode()
    if len(data) > MAX_BYTES:  # the kubelet would cut it into invalid JSON
        if result.ok:
            essentials = {
                "ok",
                "channelId",
                "version",
                "origin",
                "labelsLookLikeProductIds",
                "metrics",
            }
            data = result.model_copy(
                update={k: None for k in JobResult.model_fields if k not in essentials}
                | {"truncated": True}
            ).encode()
        if not result.ok or len(data) > MAX_BYTES:
            data = failure_result(result.error or "result too large").encode()
    try:
        target.write_bytes(data)
    except OSError:
        return None
    return target
