"""Job IDs of the compatibility API and the state a ChannelModel's status gives them.

A job ID is `<namespace>/<name>/<request time>`: the time written into the
`inventory-changed-at` annotation by that request. Every training records the
inventory change it covers (`currentJob.changeAt`, then `coveredChangeAt` or
`attemptedChangeAt`), so a request is covered by the first run whose change is
at or after its time; requests merged by the debounce share that run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from channelmodel.api.models import ChannelModelStatus, TrainingStatus
from channelmodel.rfc3339 import format_time, parse_time


class JobState(StrEnum):
    QUEUED = "queued"
    TRAINING = "training"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class JobId:
    namespace: str
    name: str
    requested_at: datetime

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}/{format_time(self.requested_at)}"

    @classmethod
    def parse(cls, text: str) -> JobId | None:
        parts = text.split("/")
        if len(parts) != 3 or not all(parts):
            return None
        try:
            requested_at = parse_time(parts[2])
        except ValueError:
            return None
        return cls(parts[0], parts[1], requested_at)


def request_time(now: datetime, previous: str | None) -> datetime:
    """Now, at millisecond precision, never before the change already recorded."""
    stamp = parse_time(format_time(now))
    try:
        earlier = parse_time(previous) if previous else None
    except ValueError:
        earlier = None
    return max(stamp, earlier) if earlier else stamp


def job_view(job: JobId, channel_model: dict[str, Any]) -> dict[str, Any]:
    """What GET /v1/jobs/<id> answers."""
    status = ChannelModelStatus.model_validate(channel_model.get("status") or {})
    at = job.requested_at
    view: dict[str, Any] = {
        "jobId": str(job),
        "channelId": (channel_model.get("spec") or {}).get("channelId"),
    }
    current = status.currentJob
    if status.coveredChangeAt is not None and status.coveredChangeAt >= at:
        view["state"] = JobState.SUCCEEDED.value
        view["version"] = status.modelVersion
        view["modelBaseUrl"] = status.modelBaseUrl
    elif current is not None and current.changeAt is not None and current.changeAt >= at:
        view["state"] = JobState.TRAINING.value
        view["version"] = current.version
    elif (
        status.attemptedChangeAt is not None
        and status.attemptedChangeAt >= at
        and status.trainingStatus == TrainingStatus.FAILED
    ):
        view["state"] = JobState.FAILED.value
        view["error"] = status.lastError
    else:
        view["state"] = JobState.QUEUED.value
        if status.trainAfter is not None:
            view["trainAfter"] = format_time(status.trainAfter)
    return view
