"""`channelmodel train --not-before`: a Job the operator starts ahead of its
debounce's end loads its base meanwhile and reads the manifest only from then on."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from channelmodel.cli import main
from channelmodel.rfc3339 import format_time
from channelmodel_trainer import pipeline
from channelmodel_trainer.pipeline import wait_until
from tests.trainer.trainer_testlib import CatalogServer, patterned_jpeg

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_wait_until_sleeps_to_the_time_in_steps() -> None:
    clock = FakeClock()
    waited = wait_until(T0 + timedelta(seconds=2.5), lambda: clock.now, clock.sleep)
    assert waited == pytest.approx(2.5)
    assert clock.now == T0 + timedelta(seconds=2.5)
    assert max(clock.sleeps) <= 1.0  # steps: a clock set forward ends it early


def test_wait_until_a_past_time_does_not_sleep() -> None:
    clock = FakeClock()
    assert wait_until(T0 - timedelta(seconds=1), lambda: clock.now, clock.sleep) == 0.0
    assert clock.sleeps == []


def test_wait_until_ends_when_the_clock_jumps_past_the_time() -> None:
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        clock.now += timedelta(minutes=10)  # NTP set the clock forward

    assert wait_until(T0 + timedelta(minutes=5), lambda: clock.now, sleep) == pytest.approx(1.0)


def _args(catalog: CatalogServer, tmp_path: Path, reference_export: Path) -> list[str]:
    return [
        "train",
        "--manifest", catalog.url("manifest.json"),
        "--channel", "shop-1",
        "--version", "1.0.0",
        "--store", (tmp_path / "store").as_uri(),
        "--base-model", str(reference_export),
        "--epochs", "3",
        "--views", "0",
    ]  # fmt: skip


def test_a_bad_not_before_is_refused_before_anything_runs(
    catalog_server: CatalogServer,
    tmp_path: Path,
    reference_export: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*_args(catalog_server, tmp_path, reference_export), "--not-before", "in 5 s"])
    assert exited.value.code == 2
    assert "is not an RFC 3339 time" in capsys.readouterr().err
    assert catalog_server.requests == []


@pytest.mark.slow
def test_the_manifest_is_read_from_not_before_and_the_base_loads_during_the_wait(
    catalog_server: CatalogServer,
    tmp_path: Path,
    reference_export: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    products = []
    for p in range(2):
        urls = [catalog_server.add(f"p{p}-{i}.jpg", patterned_jpeg(10 * p + i)) for i in range(4)]
        products.append({"id": f"prod-{p}", "images": urls})
    manifest = {"channelId": "shop-1", "products": products}
    catalog_server.add("manifest.json", json.dumps(manifest).encode(), "application/json")
    loads: list[tuple[float, float]] = []
    real_load = pipeline.load_channel_base

    def recorded_load(*args: Any) -> Any:
        begun = time.time()
        try:
            return real_load(*args)
        finally:
            loads.append((begun, time.time()))

    monkeypatch.setattr(pipeline, "load_channel_base", recorded_load)
    result_path = tmp_path / "termination-log"
    monkeypatch.setenv("CHANNELMODEL_TERMINATION_LOG", str(result_path))
    not_before = datetime.now(UTC) + timedelta(seconds=4)

    code = main(
        [
            *_args(catalog_server, tmp_path, reference_export),
            "--not-before", format_time(not_before, "microseconds"),
        ]
    )  # fmt: skip

    assert code == 0
    result = json.loads(result_path.read_text())
    assert result["ok"] and result["version"] == "1.0.0"
    manifest_read = next(t for path, t in catalog_server.request_times if path == "/manifest.json")
    assert manifest_read >= not_before.timestamp()
    ((begun, _),) = loads
    assert begun < not_before.timestamp(), "the base did not start loading before the wait"
    assert result["timings"]["wait"] > 0
    # The run's own seconds count from the wait's end, not from the Job's start.
    assert result["metrics"]["seconds"] <= time.time() - not_before.timestamp() + 0.5
