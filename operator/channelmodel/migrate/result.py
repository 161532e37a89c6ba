"""The import's result (channelmodel.api.job_result.JobResult), the trainer's model,
so the operator follows an import Job exactly like a training Job."""

from __future__ import annotations

from channelmodel.api.job_result import JobResult, failure_result, write_result
from channelmodel.api.models import RunMetrics

__all__ = ["JobResult", "failure_result", "success_result", "write_result"]


def success_result(
    *,
    channel_id: str,
    version: str,
    origin: str,
    labels: list[str],
    labels_look_like_product_ids: bool,
) -> JobResult:
    return JobResult(
        ok=True,
        channelId=channel_id,
        version=version,
        origin=origin[:1024],
        labels=len(labels),
        labelsLookLikeProductIds=labels_look_like_product_ids,
        metrics=RunMetrics(classes=len(labels)),
    )
