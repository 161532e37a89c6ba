"""Retraining triggers end to end: the operator process on the test API, short
real durations. Exact timings are the planner tests' job (fake clock); here the
properties are "exactly one Job", "never before the window ends" and "survives
a restart". The operator starts a Job up to 5 s (at most half the debounce)
before the window ends (CHANNELMODEL_JOB_LEAD_SECONDS); the Job's trainer then
waits for the end (`--not-before`, status.currentJob.notBefore)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.k8s import Cluster, wait_for

pytestmark = pytest.mark.e2e
MS = timedelta(milliseconds=1)  # status times are written to the millisecond


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "channelId": "shop-1",
        "manifest": {"url": "http://backend.test/manifest"},
        "debounceSeconds": 0,
        "cooldownSeconds": 0,
        "training": {"gpus": 0},
    }
    spec.update(overrides)
    return spec


def _status(k8s: Cluster, name: str = "shop-1") -> dict[str, Any]:
    return dict(k8s.get_channelmodel(name).get("status") or {})


def _at_version(k8s: Cluster, version: str, name: str = "shop-1") -> dict[str, Any] | None:
    s = _status(k8s, name)
    return s if s.get("modelVersion") == version and not s.get("currentJob") else None


def _change(k8s: Cluster, at: datetime, name: str = "shop-1", kind: str = "productAdded") -> None:
    k8s.patch_channelmodel(name, {"metadata": {"annotations": {
        "ml.dukarun.io/inventory-changed-at": at.isoformat().replace("+00:00", "Z"),
        "ml.dukarun.io/inventory-change": kind,
    }}})  # fmt: skip


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _job_times(k8s: Cluster, version: str, name: str = "shop-1") -> tuple[datetime, datetime]:
    """When the operator started the Job for `version` (its own clock, in status), and
    when its trainer's run begins (notBefore; the start itself when it has none)."""
    status = wait_for(
        lambda: (s := _status(k8s, name)).get("currentJob", {}).get("version") == version and s,
        timeout=60,
        message=f"the Job for {version}",
    )
    job = status["currentJob"]
    return _time(job["startedAt"]), _time(job.get("notBefore") or job["startedAt"])


def _run_began(store_dir: Path, version: str) -> datetime:
    """When the stand-in trainer of `version` began its run (after its wait)."""
    model = json.loads((store_dir / "shop-1" / f"v{version}" / "model.json").read_text())
    return _time(model["readManifestAt"])


def _serving_first_version(k8s: Cluster, **spec: Any) -> dict[str, Any]:
    """Create shop-1 and wait until 1.0.0 is trained and served; its status."""
    k8s.create_channelmodel("shop-1", _spec(**spec))
    return wait_for(lambda: _at_version(k8s, "1.0.0"), timeout=60, message="1.0.0")


def _start(
    start_job_runner: Any, operator_process: Any, fake_trainer: Any, delay: str = "0.3", **env: str
) -> Any:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY=delay))
    return operator_process(env=env)


def test_burst_of_50_changes_gives_one_job_after_the_debounce(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    _start(start_job_runner, operator_process, fake_trainer)
    _serving_first_version(k8s, debounceSeconds=3)

    begin = time.monotonic()
    last = datetime.now(UTC)
    for i in range(50):  # 50 changes spread over 10 s
        time.sleep(max(0.0, begin + i * 10 / 49 - time.monotonic()))
        last = datetime.now(UTC)
        _change(k8s, last)
        assert len(k8s.jobs()) == 1, f"a Job started during the burst, at change {i}"
    started, run_from = _job_times(k8s, "1.0.1")
    # Half the debounce ahead at most (1.5 s), and the run waits for the window's end.
    assert started >= last + timedelta(seconds=1.5), "started before the last half of the window"
    assert run_from >= last + timedelta(seconds=3) - MS, "reads the manifest in the window"
    assert started <= last + timedelta(seconds=10)
    wait_for(lambda: _at_version(k8s, "1.0.1"), timeout=60, message="1.0.1")
    assert _run_began(tmp_path / "store", "1.0.1") >= last + timedelta(seconds=3)
    time.sleep(2)
    assert len(k8s.jobs()) == 2


def test_a_change_during_the_jobs_wait_restarts_it_and_one_run_covers_both(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any, tmp_path: Path
) -> None:
    _start(start_job_runner, operator_process, fake_trainer)
    _serving_first_version(k8s, debounceSeconds=8)

    first = datetime.now(UTC)
    _change(k8s, first)
    started, run_from = _job_times(k8s, "1.0.1")  # 4 s ahead (half the debounce)
    assert first + timedelta(seconds=4) - MS <= started < run_from
    assert abs(run_from - (first + timedelta(seconds=8))) <= MS
    job = k8s.jobs()[-1]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert _time(args[args.index("--not-before") + 1]) - run_from < MS
    assert datetime.now(UTC) < run_from - timedelta(seconds=1), "too slow to change in the wait"
    second = datetime.now(UTC)
    _change(k8s, second, kind="imageChanged")

    wait_for(
        lambda: job["metadata"]["name"] not in _job_names(k8s),
        timeout=10,
        message="the waiting Job deleted",
    )
    wait_for(
        lambda: "TrainingRestarted" in {e.get("reason") for e in k8s.events()},
        timeout=10,
        message="the TrainingRestarted Event",
    )
    started, run_from = _job_times(k8s, "1.0.1")
    assert started >= second + timedelta(seconds=4) - MS
    assert run_from >= second + timedelta(seconds=8) - MS
    status = wait_for(lambda: _at_version(k8s, "1.0.1"), timeout=60, message="1.0.1")
    assert status["coveredChangeAt"].startswith(second.isoformat()[:19])
    assert _run_began(tmp_path / "store", "1.0.1") >= second + timedelta(seconds=8)
    time.sleep(2)
    assert _job_names(k8s) == ["shop-1-train-1", "shop-1-train-3"]  # train-2 was deleted


def _job_names(k8s: Cluster) -> list[str]:
    return sorted(j["metadata"]["name"] for j in k8s.jobs())


def test_change_during_cooldown_starts_when_it_ends(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    _start(start_job_runner, operator_process, fake_trainer)
    status = _serving_first_version(k8s, cooldownSeconds=8)
    trained = datetime.fromisoformat(status["lastTrained"].replace("Z", "+00:00"))
    time.sleep(1)
    _change(k8s, datetime.now(UTC))
    queued = wait_for(
        lambda: (s := _status(k8s)).get("trainingStatus") == "Queued" and s,
        timeout=10,
        message="Queued",
    )
    assert queued["trainAfter"].startswith((trained + timedelta(seconds=8)).isoformat()[:19])
    started, run_from = _job_times(k8s, "1.0.1")  # the Job 5 s ahead, its run at the end
    assert started >= trained + timedelta(seconds=3) - MS
    assert run_from >= trained + timedelta(seconds=8) - MS


def test_manual_retrain_skips_cooldown_but_not_suspend(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    _start(start_job_runner, operator_process, fake_trainer)
    _serving_first_version(k8s, cooldownSeconds=3600)
    cli = [
        sys.executable,
        "-m",
        "channelmodel",
        "retrain",
        "shop-1",
        "--kubeconfig",
        str(k8s.kubeconfig),
        "-n",
        k8s.namespace,
    ]
    out = subprocess.run(cli, capture_output=True, text=True, check=True)
    assert "ml.dukarun.io/retrain-requested-at=" in out.stdout
    wait_for(lambda: _at_version(k8s, "1.0.1"), timeout=30, message="1.0.1 from the manual trigger")

    k8s.patch_channelmodel("shop-1", {"spec": {"suspend": True}})
    time.sleep(0.1)
    subprocess.run(cli, capture_output=True, text=True, check=True)
    time.sleep(3)
    assert len(k8s.jobs()) == 2
    training = next(c for c in _status(k8s)["conditions"] if c["type"] == "Training")
    assert training["reason"] == "Suspended"


def test_notify_change_cli_patches_the_annotations(k8s: Cluster) -> None:
    k8s.create_channelmodel("shop-1", _spec())
    subprocess.run(
        [sys.executable, "-m", "channelmodel", "notify-change", "shop-1", "--kind", "imageChanged",
         "--at", "2026-11-21T10:00:00Z", "--kubeconfig", str(k8s.kubeconfig), "-n", k8s.namespace],
        check=True, capture_output=True,
    )  # fmt: skip
    annotations = k8s.get_channelmodel("shop-1")["metadata"]["annotations"]
    assert annotations["ml.dukarun.io/inventory-change"] == "imageChanged"
    assert annotations["ml.dukarun.io/inventory-changed-at"] == "2026-11-21T10:00:00.000Z"
    missing = subprocess.run(
        [sys.executable, "-m", "channelmodel", "notify-change", "nope", "--kubeconfig", str(k8s.kubeconfig), "-n", k8s.namespace],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 3  # ExitCode.NOT_FOUND
    assert f"ChannelModel {k8s.namespace}/nope: not found" in missing.stderr


def test_concurrency_cap_across_channels(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    _start(
        start_job_runner,
        operator_process,
        fake_trainer,
        delay="1.5",
        CHANNELMODEL_MAX_CONCURRENT_TRAININGS="2",
    )
    names = [f"shop-{i}" for i in range(5)]
    for name in names:
        k8s.create_channelmodel(name, _spec(channelId=name))
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            running = [j for j in k8s.jobs() if not (j.get("status") or {}).get("conditions")]
            peak = max(peak, len(running))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for name in names:
            wait_for(
                lambda n=name: _at_version(k8s, "1.0.0", n), timeout=90, message=f"{name} at 1.0.0"
            )
    finally:
        stop.set()
        sampler.join()
    assert peak == 2
    assert len(k8s.jobs()) == 5


def test_restart_during_debounce_and_cooldown_still_runs_once(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    operator = _start(start_job_runner, operator_process, fake_trainer)
    _serving_first_version(k8s, debounceSeconds=4, cooldownSeconds=0)

    last = datetime.now(UTC)
    _change(k8s, last)
    wait_for(lambda: _status(k8s).get("trainingStatus") == "Queued", timeout=10, message="Queued")
    operator.kill()  # inside the debounce window
    operator.restart()
    started, run_from = _job_times(k8s, "1.0.1")
    assert started >= last + timedelta(seconds=2) and run_from >= last + timedelta(seconds=4) - MS
    status = wait_for(lambda: _at_version(k8s, "1.0.1"), timeout=60, message="1.0.1")

    k8s.patch_channelmodel("shop-1", {"spec": {"debounceSeconds": 0, "cooldownSeconds": 12}})
    trained = datetime.fromisoformat(status["lastTrained"].replace("Z", "+00:00"))
    _change(k8s, datetime.now(UTC))
    wait_for(
        lambda: _status(k8s).get("trainingStatus") == "Queued",
        timeout=10,
        message="Queued in cooldown",
    )
    operator.kill()  # inside the cooldown
    time.sleep(1)
    operator.restart()
    _, run_from = _job_times(k8s, "1.0.2")  # the Job may start 5 s ahead
    assert run_from >= trained + timedelta(seconds=12) - MS
    wait_for(lambda: _at_version(k8s, "1.0.2"), timeout=60, message="1.0.2")
    time.sleep(2)
    assert len(k8s.jobs()) == 3


@pytest.mark.both_backends  # request counts: the emulator's log, the API server's audit log
def test_change_storm_is_coalesced_into_a_few_status_writes(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator_process()
    _serving_first_version(k8s, debounceSeconds=30)
    time.sleep(1.5)
    mark = k8s.request_mark()
    for _ in range(40):  # 40 patches in ~2 s
        _change(k8s, datetime.now(UTC))
        time.sleep(0.05)
    time.sleep(1.5)
    writes = sum(
        k8s.count_requests(
            since=mark, verbs={"create", "patch", "update", "delete"}, user_agent=agent
        )
        for agent in ("channelmodel-operator", "kopf")
    )
    # The first change replans at once; the rest join a plan at most a second later.
    assert 1 <= writes <= 8, f"{writes} operator writes for 40 change patches"
