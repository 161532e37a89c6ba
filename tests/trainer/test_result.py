"""The result JSON fits a Kubernetes termination message and is written safely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channelmodel_trainer.result import (
    MAX_BYTES,
    JobResult,
    failure_result,
    success_result,
    write_result,
)

METRICS = {"accuracy": 0.91, "classes": 3, "images": 30, "skippedImages": 2, "seconds": 12.5}


def test_success_result_lists_most_skipped_first() -> None:
    result = success_result(
        channel_id="c",
        version="1.0.0",
        metrics=METRICS,
        skipped={"a": 1, "b": 5, "c": 2},
        timings={"train": 1.23456},
        without_images=["z"],
    )
    assert list(result.skipped or {}) == ["b", "c", "a"]
    assert result.timings == {"train": 1.235}
    assert result.productsWithoutImages == ["z"]
    assert result.truncated is None and "truncated" not in json.loads(result.encode())


def test_long_lists_are_truncated_to_fit_4096_bytes() -> None:
    skipped = {f"product-with-a-long-identifier-{i:05d}": i % 7 + 1 for i in range(2000)}
    without = [f"empty-product-{i:04d}" for i in range(50)]

    result = success_result(
        channel_id="c",
        version="1.0.0",
        metrics=METRICS,
        skipped=skipped,
        timings={},
        without_images=without,
    )

    assert len(result.encode()) <= MAX_BYTES
    assert result.truncated is True
    assert result.productsWithoutImages == without  # these come first: they matter most
    assert result.skipped is not None and 0 < len(result.skipped) < len(skipped)
    assert set(result.skipped.values()) == {7}


def test_failure_is_one_bounded_line() -> None:
    result = failure_result("cannot fetch\nmanifest   " + "x" * 10_000)
    assert result.ok is False
    assert "\n" not in str(result.error)
    assert str(result.error).startswith("cannot fetch manifest x")
    assert len(result.encode()) <= MAX_BYTES


def test_written_to_env_path_and_silently_skipped_when_unwritable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "termination-log"
    monkeypatch.setenv("CHANNELMODEL_TERMINATION_LOG", str(target))
    assert write_result(JobResult(ok=True)) == target
    assert json.loads(target.read_text()) == {"ok": True}

    monkeypatch.setenv(
        "CHANNELMODEL_TERMINATION_LOG", str(tmp_path / "no" / "such" / "dir" / "log")
    )
    assert write_result(JobResult(ok=True)) is None


def test_the_trainer_signs_and_reports_without_the_operators_modules() -> None:
    """The result model and webhook signing are light: no Prometheus metrics, no kopf."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, channelmodel_trainer.notify_progress, channelmodel_trainer.result\n"
        "heavy = {'prometheus_client', 'kopf', 'channelmodel.notify', 'channelmodel.planner'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
