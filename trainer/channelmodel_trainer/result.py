"""The trainer's result (channelmodel.api.job_result.JobResult) for a published version.

Kubernetes keeps at most 4096 bytes of the termination message, so the lists of
products (without images, with skipped images) are cut to fit and `truncated`
says so; every skipped image is logged with its product and reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from channelmodel.api.job_result import (
    MAX_BYTES,
    JobResult,
    failure_result,
    write_result,
)
from channelmodel.api.models import RunMetrics

__all__ = ["MAX_BYTES", "JobResult", "failure_result", "success_result", "write_result"]

_MARGIN = 32  # room for the "truncated" flag


def success_result(
    *,
    channel_id: str,
    version: str,
    metrics: Mapping[str, object],
    skipped: Mapping[str, int],
    timings: Mapping[str, float],
    without_images: Sequence[str] = (),
    embedded: int | None = None,
    cache_hits: int | None = None,
    skip_reasons: Mapping[str, int] | None = None,
) -> JobResult:
    result = JobResult(
        ok=True,
        channelId=channel_id,
        version=version,
        metrics=RunMetrics.model_validate(dict(metrics)),
        timings={name: round(seconds, 3) for name, seconds in timings.items()},
        embedded=embedded,
        cacheHits=cache_hits,
        skipReasons=dict(skip_reasons) if skip_reasons is not None else None,
        productsWithoutImages=[],
        skipped={},
    )
    kept_without, kept_skipped = result.productsWithoutImages, result.skipped
    assert kept_without is not None and kept_skipped is not None
    # A product the model cannot recognise matters most; then the most-skipped ones.
    for product_id in without_images:
        kept_without.append(product_id)
        if len(result.encode()) > MAX_BYTES - _MARGIN:
            kept_without.pop()
            result.truncated = True
            return result
    for product_id, count in sorted(skipped.items(), key=lambda item: (-item[1], item[0])):
        kept_skipped[product_id] = count
        if len(result.encode()) > MAX_BYTES - _MARGIN:
            del kept_skipped[product_id]
            result.truncated = True
            return result
    return result
