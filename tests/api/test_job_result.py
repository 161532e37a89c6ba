"""One JobResult model: what the trainer and the importer write is what the operator reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channelmodel.api.job_result import MAX_BYTES, JobResult
from channelmodel.api.models import RunMetrics
from channelmodel.jobs import termination_result
from channelmodel.migrate.result import success_result as import_result
from channelmodel_trainer.result import failure_result, success_result, write_result


def _pod(message: str) -> dict[str, object]:
    terminated = {"exitCode": 0, "message": message, "finishedAt": "2026-11-21T10:00:00Z"}
    return {
        "status": {"containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}]}
    }


def _through_the_termination_log(result: JobResult, tmp_path: Path) -> JobResult | None:
    target = write_result(result, str(tmp_path / "termination-log"))
    assert target is not None
    return termination_result([_pod(target.read_text())])


def test_the_trainers_result_reads_back_unchanged(tmp_path: Path) -> None:
    written = success_result(
        channel_id="shop-1",
        version="1.0.3",
        metrics={"accuracy": 0.91, "classes": 3, "images": 30, "skippedImages": 2, "seconds": 4.5},
        skipped={"apple": 2},
        timings={"train": 1.5},
        without_images=["ghost"],
        embedded=28,
        cache_hits=2,
        skip_reasons={"HTTP 404": 2},
    )
    read = _through_the_termination_log(written, tmp_path)
    assert read == written
    assert read.metrics == RunMetrics(
        accuracy=0.91, classes=3, images=30, skippedImages=2, seconds=4.5
    )


def test_the_importers_result_reads_back_unchanged(tmp_path: Path) -> None:
    written = import_result(
        channel_id="shop-1",
        version="1.0.0",
        origin="imported:https://tm.example/model.json",
        labels=["a", "b"],
        labels_look_like_product_ids=False,
    )
    read = _through_the_termination_log(written, tmp_path)
    assert read == written
    assert read is not None and read.labelsLookLikeProductIds is False and read.metrics.classes == 2  # type: ignore[union-attr]


def test_a_failure_reads_back_with_its_reason(tmp_path: Path) -> None:
    read = _through_the_termination_log(failure_result("manifest\nunreachable"), tmp_path)
    assert read == JobResult(ok=False, error="manifest unreachable")


def test_what_a_newer_trainer_adds_is_ignored() -> None:
    message = json.dumps({"ok": True, "gpuSeconds": 3, "metrics": {"accuracy": 0.8, "f1": 0.7}})
    assert JobResult.from_message(message) == JobResult(ok=True, metrics=RunMetrics(accuracy=0.8))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"ok": "maybe"}', "malformed result from the Job: ok: Input should be a valid boolean"),
        ('{"metrics": {}}', "malformed result from the Job: ok: Field required"),
        (
            '{"ok": true, "metrics": {"accuracy": "high"}}',
            "malformed result from the Job: metrics.accuracy:",
        ),
        ("[1, 2]", "malformed result from the Job: result: Input should be a valid dictionary"),
        ("Traceback ...\nMemoryError: out of memory\n", "MemoryError: out of memory"),
        ("   ", "no result"),
    ],
)
def test_a_malformed_message_is_a_failed_run_that_says_why(message: str, expected: str) -> None:
    result = JobResult.from_message(message)
    assert result.ok is False
    assert result.error is not None and result.error.startswith(expected), result.error
    assert len(result.encode()) <= MAX_BYTES


def test_an_oversized_result_keeps_its_essentials(tmp_path: Path) -> None:
    big = JobResult(
        ok=True, channelId="c", version="1.0.0", metrics=RunMetrics(accuracy=0.9),
        skipReasons={"é" * 300 + str(i): i for i in range(20)},
    )  # fmt: skip
    target = write_result(big, str(tmp_path / "log"))
    assert target is not None and len(target.read_bytes()) <= MAX_BYTES
    assert JobResult.from_message(target.read_text()) == JobResult(
        ok=True, channelId="c", version="1.0.0", metrics=RunMetrics(accuracy=0.9), truncated=True
    )
