"""The planner's decisions, driven by a fake clock (see sim.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from channelmodel import conditions as cond
from channelmodel.api.job_result import JobResult
from channelmodel.api.models import ConditionStatus, TrainingStatus, VersionState
from channelmodel.conditions import get_condition
from channelmodel.plan_types import Fleet, JobPhase, Outcome, Reason, Trigger
from channelmodel.planner import job_name

from .sim import T0, Sim, make_spec


def test_new_channel_trains_first_version_at_once() -> None:
    sim = Sim()
    p = sim.tick()
    assert p.start_job is not None
    assert p.start_job.version == "1.0.0"
    assert p.start_job.trigger == Trigger.INITIAL
    assert p.start_job.name == "shop-1-train-1"
    assert sim.status.trainingStatus == TrainingStatus.TRAINING
    assert get_condition(sim.status.conditions, "Training").status == ConditionStatus.TRUE  # type: ignore[union-attr]


def test_success_publishes_version_url_and_ready_condition() -> None:
    sim = Sim()
    sim.tick()
    sim.now += timedelta(seconds=30)
    p = sim.finish(accuracy=0.8)
    assert sim.status.modelVersion == "1.0.0"
    assert sim.status.modelBaseUrl == "http://models.test/assets/ml-models/shop-1/v1.0.0/"
    assert sim.status.trainingStatus == TrainingStatus.SUCCEEDED
    assert sim.status.lastTrained == sim.now
    assert sim.status.lastRun is not None and sim.status.lastRun.accuracy == 0.8
    assert p.serve_version == "1.0.0"
    ready = get_condition(sim.status.conditions, "Ready")
    assert (
        ready is not None and ready.status == ConditionStatus.TRUE and ready.reason == "ModelServed"
    )
    assert [e.reason for e in p.events] == ["TrainingSucceeded", "VersionServed"]


def test_steady_state_plans_no_change() -> None:
    sim = Sim()
    sim.trained_once()
    before = sim.status.model_dump(mode="json")
    sim.now += timedelta(hours=1)
    p = sim.tick()
    assert p.start_job is None and not p.events and p.serve_version is None
    assert p.status.model_dump(mode="json") == before


def test_second_training_bumps_patch_and_failure_keeps_previous_model() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0))
    sim.trained_once()
    sim.change()
    sim.tick()
    assert sim.started[-1][1].version == "1.0.1"
    sim.finish()
    assert sim.status.modelVersion == "1.0.1"
    sim.now += timedelta(seconds=1)
    sim.change()
    sim.tick()
    assert sim.started[-1][1].version == "1.0.2"
    sim.finish(ok=False, error="manifest has a single product")
    assert sim.status.trainingStatus == TrainingStatus.FAILED
    assert sim.status.modelVersion == "1.0.1"
    assert sim.status.lastError == "manifest has a single product"
    last = get_condition(sim.status.conditions, "LastRunSucceeded")
    assert last is not None and last.status == ConditionStatus.FALSE
    assert last.message == "manifest has a single product"
    # a failed run is not retried in a loop: the same change is already attempted
    sim.advance(30)
    assert len(sim.started) == 3
    # and the failed version number is reused by the next attempt
    sim.change()
    sim.tick()
    assert sim.started[-1][1].version == "1.0.2"
    assert sim.started[-1][1].name == "shop-1-train-4"


def test_burst_of_changes_is_debounced_into_one_run() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=3, cooldownSeconds=0))
    sim.trained_once()
    start = sim.now
    for i in range(50):  # 50 changes spread over 10 s
        sim.now = start + timedelta(seconds=i * 10 / 49)
        sim.change()
        sim.tick()
        assert sim.status.trainingStatus == TrainingStatus.QUEUED
    last_change = sim.now
    assert sim.status.trainAfter == last_change + timedelta(seconds=3)
    sim.advance(10)
    assert len(sim.started) == 2
    started_at, job = sim.started[-1]
    assert job.trigger == Trigger.EVENT
    assert started_at == last_change + timedelta(seconds=3)  # at the deadline, not a tick after


def test_cooldown_delays_the_next_run_to_its_end() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=5))
    sim.trained_once()
    finished = sim.status.lastTrained
    assert finished is not None
    sim.now += timedelta(seconds=1)
    sim.change()
    sim.tick()
    assert sim.status.trainAfter == finished + timedelta(seconds=5)
    sim.advance(3.5)
    assert len(sim.started) == 1
    for _ in range(3):  # more changes during the cooldown: still one run
        sim.change()
        sim.advance(0.5)
    sim.advance(3)
    assert len(sim.started) == 2
    assert sim.started[-1][0] == finished + timedelta(seconds=5)


def test_change_during_training_queues_exactly_one_follow_up() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=2, cooldownSeconds=0))
    sim.tick()  # initial run in flight
    for _ in range(5):
        sim.now += timedelta(seconds=1)
        sim.change()
        sim.tick()
    assert len(sim.started) == 1
    sim.finish()
    sim.advance(10)
    assert len(sim.started) == 2
    sim.finish()
    sim.advance(60)
    assert len(sim.started) == 2


def test_manual_retrain_skips_cooldown_but_not_suspend_or_cap() -> None:
    sim = Sim(spec=make_spec(cooldownSeconds=3600))
    sim.trained_once()
    sim.now += timedelta(seconds=5)
    sim.request_retrain()
    sim.fleet = Fleet(cap=1, running=1)
    sim.tick()
    assert len(sim.started) == 1 and sim.status.trainingStatus == TrainingStatus.QUEUED
    sim.fleet = Fleet(cap=1)
    sim.tick()
    assert len(sim.started) == 2 and sim.started[-1][1].trigger == Trigger.MANUAL
    sim.finish()
    sim.spec = make_spec(cooldownSeconds=3600, suspend=True)
    sim.now += timedelta(seconds=5)
    sim.request_retrain()
    sim.advance(5)
    assert len(sim.started) == 2
    training = get_condition(sim.status.conditions, "Training")
    assert training is not None and training.reason == "Suspended"
    sim.spec = make_spec(cooldownSeconds=3600)  # unsuspend: the request was kept
    sim.tick()
    assert len(sim.started) == 3


def test_auto_retrain_off_and_disabled_kinds_do_not_queue() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0, autoRetrain=False))
    sim.trained_once()
    sim.change()
    sim.advance(5)
    assert len(sim.started) == 1
    sim.spec = make_spec(debounceSeconds=0, cooldownSeconds=0, retrainTriggers=["productAdded"])
    sim.change("imageChanged")
    sim.advance(5)
    assert len(sim.started) == 1
    sim.change("productAdded")
    sim.advance(1)
    assert len(sim.started) == 2


def test_schedule_runs_only_when_inventory_changed() -> None:
    spec = make_spec(
        retrainTriggers=["productAdded", "schedule"],
        cooldownSeconds=0,
        schedule={"cron": "0 2 * * *"},
    )
    sim = Sim(spec=spec, now=datetime(2026, 11, 20, 1, 0, tzinfo=UTC))
    sim.trained_once()
    sim.advance(3600)  # 02:00 passes without changes
    assert len(sim.started) == 1
    sim.change("imageChanged")  # not an event trigger, but remembered for the schedule
    sim.advance(3600 * 20)
    assert len(sim.started) == 1
    sim.advance(3600 * 4)  # the next 02:00
    assert len(sim.started) == 2
    started_at, job = sim.started[-1]
    assert job.trigger == Trigger.SCHEDULE
    fire = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    assert started_at == fire  # the fire is the deadline its plan named: no tick in between


def test_missed_schedule_fires_during_downtime_run_once() -> None:
    spec = make_spec(
        retrainTriggers=["schedule"], cooldownSeconds=0, schedule={"cron": "0 * * * *"}
    )
    sim = Sim(spec=spec)
    sim.trained_once()
    sim.change("productAdded")
    sim.now += timedelta(hours=5)  # operator down across five fires
    sim.tick()
    assert len(sim.started) == 2
    sim.finish()
    sim.advance(600)
    assert len(sim.started) == 2


@pytest.mark.parametrize(
    ("day", "expected_utc"),
    [
        # Europe/Berlin springs forward at 02:00 on 2026-03-29: 02:30 does not exist.
        (datetime(2026, 3, 28, 22, 0, tzinfo=UTC), [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]),
        # ... and falls back on 2026-10-25: 02:30 happens twice, the run happens once.
        (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]),
    ],
)
def test_schedule_is_dst_correct(day: datetime, expected_utc: list[datetime]) -> None:
    spec = make_spec(
        retrainTriggers=["schedule"],
        cooldownSeconds=0,
        schedule={"cron": "30 2 * * *", "timeZone": "Europe/Berlin"},
    )
    sim = Sim(spec=spec, now=day)
    sim.trained_once()
    trained_before = len(sim.started)
    for _ in range(6 * 60):  # six hours of a change every minute
        if sim.status.currentJob is None:
            sim.change("productAdded")
        sim.advance(60)  # the change's event, then the deadlines it names (the fire)
        if sim.status.currentJob is not None:
            sim.finish()
    runs = [at for at, _ in sim.started[trained_before:]]
    assert runs == expected_utc


def test_concurrency_cap_blocks_start_until_slot_and_turn() -> None:
    sim = Sim(fleet=Fleet(cap=2, running=2))
    sim.tick()
    assert not sim.started and sim.status.trainingStatus == TrainingStatus.QUEUED
    sim.fleet = Fleet(cap=2, running=1, queued_ahead=1)  # someone older goes first
    sim.tick()
    assert not sim.started
    sim.fleet = Fleet(cap=2, running=1, queued_ahead=0)
    sim.tick()
    assert len(sim.started) == 1


def test_waiting_for_a_slot_changes_nothing_in_status() -> None:
    # A ready channel is re-planned whenever a slot frees and someone else takes it (and
    # by the echo of its own writes): those plans must not write, or it loops on itself.
    sim = Sim(spec=make_spec(debounceSeconds=5, cooldownSeconds=0))
    sim.trained_once()
    sim.finish()
    sim.now += timedelta(seconds=60)
    sim.change()
    sim.fleet = Fleet(cap=1, running=1)
    sim.tick()
    ready_at = sim.now + timedelta(seconds=5)
    assert sim.status.trainAfter == ready_at
    sim.now = ready_at + timedelta(seconds=1)
    sim.tick()  # its debounce ended, no slot: now waiting for capacity
    waiting = sim.status.model_copy(deep=True)
    for _ in range(5):
        sim.now += timedelta(seconds=1.5)
        p = sim.tick()
        assert sim.status == waiting and not p.events and not sim.started[1:]
    assert sim.status.trainAfter == ready_at  # ready since then: its place in line
    sim.fleet = Fleet(cap=1)
    sim.tick()
    assert len(sim.started) == 2


def test_quality_gate_rejects_and_keeps_served_model() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0, minAccuracy=0.5))
    sim.trained_once()
    sim.change()
    sim.tick()
    p = sim.finish(accuracy=0.3)
    assert sim.status.modelVersion == "1.0.0"
    assert sim.status.latestVersion == "1.0.1"
    rejected = next(v for v in sim.status.versions if v.version == "1.0.1")
    assert rejected.state == VersionState.REJECTED and "minAccuracy" in (rejected.reason or "")
    assert "ModelRejected" in [e.reason for e in p.events]
    sim.now += timedelta(seconds=1)
    sim.change()
    sim.tick()
    assert sim.started[-1][1].version == "1.0.2"  # a stored version number is never reused
    sim.finish(accuracy=0.7)  # more than 0.05 below 0.9 served: rejected by the margin
    assert sim.status.modelVersion == "1.0.0"


def test_the_last_run_condition_tells_a_rejection_from_a_failure() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0, minAccuracy=0.5))
    sim.trained_once()
    assert sim.plans[-1].outcome == Outcome.SUCCEEDED

    def last_run() -> str:
        condition = cond.get_condition(sim.status.conditions, cond.LAST_RUN_SUCCEEDED)
        assert condition is not None and condition.status == "False"
        return condition.reason

    sim.change()
    sim.tick()
    assert sim.finish(accuracy=0.3).outcome == Outcome.REJECTED
    assert last_run() == "QualityGateRejected"
    sim.now += timedelta(seconds=30)
    assert sim.tick().outcome is None  # no run finished: the condition keeps its reason
    assert last_run() == "QualityGateRejected"

    sim.change()
    sim.tick()
    # The reason comes from how the run ended, not from the words of its error.
    assert (
        sim.finish(ok=False, error="the quality gate service timed out").outcome == Outcome.FAILED
    )
    assert last_run() == "TrainingFailed"
    assert [e.reason for e in sim.plans[-1].events] == [Reason.TRAINING_FAILED]


def test_retention_pinning_and_rollback() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0, retainVersions=2))
    sim.trained_once()
    deleted: list[str] = []
    for _ in range(3):
        sim.now += timedelta(seconds=1)
        sim.change()
        sim.tick()
        deleted += sim.finish().delete_versions
    assert [v.version for v in sim.status.versions] == ["1.0.3", "1.0.2"]
    assert deleted == ["1.0.0", "1.0.1"]
    sim.spec = make_spec(
        debounceSeconds=0, cooldownSeconds=0, retainVersions=2, pinnedVersion="1.0.2"
    )
    p = sim.tick()
    assert p.serve_version == "1.0.2" and sim.status.modelVersion == "1.0.2"
    assert sim.status.modelBaseUrl is not None and sim.status.modelBaseUrl.endswith("/v1.0.2/")
    # newer versions keep coming; the pinned one is retained and stays served
    for _ in range(3):
        sim.now += timedelta(seconds=1)
        sim.change()
        sim.tick()
        sim.finish()
    assert sim.status.modelVersion == "1.0.2"
    assert {v.version for v in sim.status.versions} == {"1.0.6", "1.0.5", "1.0.2"}
    p = sim.tick()
    sim.spec = make_spec(
        debounceSeconds=0, cooldownSeconds=0, retainVersions=2, pinnedVersion="0.9.0"
    )
    p = sim.tick()
    ready = get_condition(sim.status.conditions, "Ready")
    assert ready is not None and ready.reason == "PinnedVersionMissing"
    assert sim.status.modelVersion == "1.0.2"
    sim.spec = make_spec(debounceSeconds=0, cooldownSeconds=0, retainVersions=2)
    p = sim.tick()
    assert p.serve_version == "1.0.6"


def test_spec_change_retrains_and_blocked_start_reports_condition() -> None:
    sim = Sim()
    sim.trained_once()
    sim.spec = make_spec(training={"epochs": 5})
    p = sim.tick(blocked="Secret shop-token not found")
    assert p.start_job is None and sim.status.trainingStatus == TrainingStatus.QUEUED
    valid = get_condition(sim.status.conditions, "SpecValid")
    assert valid is not None and valid.status == ConditionStatus.FALSE
    assert "shop-token" in valid.message
    p = sim.tick()
    assert p.start_job is not None and p.start_job.trigger == Trigger.SPEC


def test_invalid_time_zone_is_a_condition_not_a_crash() -> None:
    sim = Sim(spec=make_spec(schedule={"timeZone": "Mars/Olympus"}))
    sim.tick()
    valid = get_condition(sim.status.conditions, "SpecValid")
    assert (
        valid is not None
        and valid.status == ConditionStatus.FALSE
        and "Mars/Olympus" in valid.message
    )


def test_a_malformed_result_fails_the_run_with_a_readable_reason() -> None:
    sim = Sim()
    sim.tick()
    sim.job_phase = JobPhase.SUCCEEDED  # the container exited 0, but its message is no result
    sim.job_result = JobResult.from_message('{"ok": true, "metrics": {"accuracy": "high"}}')
    p = sim.tick()
    assert p.outcome == Outcome.FAILED
    assert sim.status.trainingStatus == TrainingStatus.FAILED
    assert sim.status.modelVersion is None and sim.status.versions == []
    assert (sim.status.lastError or "").startswith(
        "malformed result from the Job: metrics.accuracy"
    )


def test_missing_job_counts_as_failure() -> None:
    sim = Sim()
    sim.tick()
    sim.job_phase = JobPhase.MISSING
    sim.tick()
    assert sim.status.trainingStatus == TrainingStatus.FAILED
    assert "disappeared" in (sim.status.lastError or "")


def test_job_names_are_deterministic_and_short() -> None:
    assert job_name("shop-1", 3) == "shop-1-train-3"
    long = job_name("a" * 80, 12)
    assert len(long) <= 63 and long.endswith("-train-12") and long == job_name("a" * 80, 12)
    assert job_name("a" * 80, 12) != job_name("a" * 79 + "b", 12)


def test_restart_replans_identically() -> None:
    """Whatever the planner decided is in status: a fresh process decides the same."""
    sim = Sim(spec=make_spec(debounceSeconds=30, cooldownSeconds=0))
    sim.trained_once()
    sim.change()
    sim.tick()
    queued = sim.status.model_copy(deep=True)
    restarted = Sim(
        spec=sim.spec,
        now=sim.now + timedelta(seconds=31),
        status=queued,
        annotations=dict(sim.annotations),
    )
    restarted.tick()
    assert len(restarted.started) == 1 and restarted.started[0][1].version == "1.0.1"
    assert restarted.started[0][0] > T0


def test_declarative_import_runs_first_and_once() -> None:
    sim = Sim(spec=make_spec(importFrom={"url": "https://old.example/tm/model.json"}))
    p = sim.tick()
    assert p.start_job is not None
    assert p.start_job.trigger == Trigger.IMPORT
    assert p.start_job.version == "1.0.0"
    sim.job_phase = JobPhase.SUCCEEDED
    sim.job_result = {"ok": True, "origin": "imported:https://old.example/tm/model.json",
                      "labelsLookLikeProductIds": False, "metrics": {"classes": 3}}  # fmt: skip
    sim.tick()
    assert sim.status.modelVersion == "1.0.0"
    record = sim.status.versions[0]
    assert record.origin == "imported:https://old.example/tm/model.json"
    assert record.labelsLookLikeProductIds is False
    sim.advance(30)
    assert len(sim.started) == 1  # no training on top of the import until something changes


def test_manually_imported_version_is_adopted() -> None:
    sim = Sim()
    sim.trained_once()
    sim.annotations["ml.dukarun.io/imported-version"] = "1.0.1"
    sim.annotations["ml.dukarun.io/imported-origin"] = "imported:shop-42.zip"
    p = sim.tick()
    assert sim.status.modelVersion == "1.0.1"
    assert sim.status.latestVersion == "1.0.1"
    assert sim.status.versions[0].origin == "imported:shop-42.zip"
    assert "VersionImported" in [e.reason for e in p.events]
    sim.spec = make_spec(pinnedVersion="1.0.0")  # rollback works like for trained versions
    sim.tick()
    assert sim.status.modelVersion == "1.0.0"


def test_only_model_shaping_spec_changes_retrain() -> None:
    sim = Sim()
    sim.trained_once()
    sim.spec = make_spec(
        training={"tolerations": [{"key": "gpu", "operator": "Exists"}], "gpus": 2}
    )
    sim.advance(5)
    assert len(sim.started) == 1
    sim.spec = make_spec(manifest={"url": "http://backend.test/v2/manifest"})
    sim.tick()
    assert len(sim.started) == 2
    assert sim.started[-1][1].trigger == Trigger.SPEC


def test_recreated_channel_model_continues_the_stores_numbering() -> None:
    sim = Sim()
    p = plan_with_store(sim, "1.0.7")
    assert p.start_job is not None
    assert p.start_job.version == "1.0.8"


def plan_with_store(sim: Sim, store_latest: str) -> Any:
    from channelmodel.plan_types import PlanInput
    from channelmodel.planner import plan

    from .sim import base_url

    return plan(
        PlanInput(name="shop-1", spec=sim.spec, status=sim.status, annotations={}, now=sim.now,
                  fleet=sim.fleet, model_base_url=base_url, store_latest=store_latest)
    )  # fmt: skip


def test_blocked_start_says_why_in_the_training_condition() -> None:
    sim = Sim()
    sim.tick(blocked="Secret default/tok not found")
    training = get_condition(sim.status.conditions, "Training")
    assert training is not None
    assert training.reason == "Blocked"
    assert training.message == "Secret default/tok not found"


def test_failed_run_without_metrics_keeps_the_last_run_that_reported_some() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0))
    sim.trained_once()
    before = sim.status.lastRun
    assert before is not None
    sim.change()
    sim.tick()
    p = sim.finish(ok=False)
    assert sim.status.lastRun == before
    assert p.finished_job is not None
    assert p.finished_job.version == "1.0.1"


@pytest.mark.parametrize(
    "training",
    [
        {"gpus": 0},
        {"resources": {"limits": {"memory": "16Gi"}}},
        {"activeDeadlineSeconds": 7200},
        {"image": "registry.example/trainer:2"},
        {"nodeSelector": {"pool": "gpu"}},
        {"tolerations": [{"key": "gpu", "operator": "Exists"}]},
        {"queueName": "other"},
        {"backoffLimit": 3},
    ],
)
def test_a_run_shaping_change_retries_a_failed_run(training: dict[str, Any]) -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0))
    sim.tick()
    sim.finish(ok=False, error="DeadlineExceeded")
    sim.tick()
    assert len(sim.started) == 1, "a failed run is not retried by itself"
    sim.spec = make_spec(debounceSeconds=0, cooldownSeconds=0, training=training)
    p = sim.tick()
    assert p.start_job is not None and p.start_job.trigger == Trigger.SPEC
    sim.finish(ok=False)
    sim.tick()
    assert len(sim.started) == 2, "the same spec failing again is not retried in a loop"


def test_a_run_shaping_change_does_not_retrain_a_served_model() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0))
    sim.trained_once()
    sim.spec = make_spec(debounceSeconds=0, cooldownSeconds=0, training={"gpus": 0})
    assert sim.tick().start_job is None


def test_a_changed_secret_reference_retries_a_failed_run() -> None:
    sim = Sim()
    sim.tick()
    sim.finish(ok=False, error="401 from the manifest")
    sim.spec = make_spec(manifest={
        "url": "http://backend.test/manifest", "authSecretRef": {"name": "new", "key": "token"},
    })  # fmt: skip
    assert sim.tick().start_job is not None


def test_status_from_before_run_hashes_adopts_the_current_spec() -> None:
    sim = Sim()
    sim.tick()
    sim.finish(ok=False)
    sim.status.attemptedRunHash = None  # written by an older operator
    assert sim.tick().start_job is None
    assert sim.status.attemptedRunHash is not None
    sim.spec = make_spec(training={"gpus": 0})
    assert sim.tick().start_job is not None


def test_suspend_cancels_the_running_job_and_requeues_it_on_resume() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0))
    sim.trained_once()
    sim.change()
    sim.tick()
    running = sim.status.currentJob
    assert running is not None
    sim.spec = make_spec(debounceSeconds=0, cooldownSeconds=0, suspend=True)
    sim.job_phase = JobPhase.SUCCEEDED  # finished meanwhile: still not served
    p = sim.tick()
    assert p.cancel_job == running
    assert p.serve_version is None and sim.status.modelVersion == "1.0.0"
    assert sim.status.currentJob is None
    assert sim.status.trainingStatus == TrainingStatus.QUEUED
    assert "TrainingCancelled" in [e.reason for e in p.events]
    training = get_condition(sim.status.conditions, "Training")
    assert training is not None and training.reason == "Suspended"
    assert sim.tick().start_job is None
    sim.spec = make_spec(debounceSeconds=0, cooldownSeconds=0)
    p = sim.tick()
    assert p.start_job is not None and p.start_job.name == "shop-1-train-3"


def test_disabled_kind_after_an_enabled_one_keeps_the_queued_retrain() -> None:
    sim = Sim(
        spec=make_spec(debounceSeconds=5, cooldownSeconds=0, retrainTriggers=["productAdded"])
    )
    sim.trained_once()
    sim.change("productAdded")
    sim.tick()
    assert sim.status.queuedTrigger == "event"
    sim.now += timedelta(seconds=2)
    sim.change("imageChanged")  # overwrites the kind annotation
    sim.advance(10)
    assert len(sim.started) == 2
    assert sim.started[-1][1].trigger == Trigger.EVENT


def test_a_job_waiting_for_kueue_admission_says_so() -> None:
    from channelmodel.plan_types import JobObservation, PlanInput
    from channelmodel.planner import plan

    from .sim import base_url

    sim = Sim(spec=make_spec(training={"queueName": "gpu-team"}))
    sim.tick()
    suspended = plan(
        PlanInput(name="shop-1", spec=sim.spec, status=sim.status, annotations={}, now=sim.now,
                  fleet=sim.fleet, model_base_url=base_url,
                  job=JobObservation(phase=JobPhase.RUNNING, suspended=True))
    )  # fmt: skip
    training = get_condition(suspended.status.conditions, "Training")
    assert training is not None
    assert training.reason == "WaitingForAdmission"
    assert "gpu-team" in training.message
    assert suspended.status.trainingStatus == TrainingStatus.TRAINING


def test_a_job_the_scheduler_cannot_place_says_why() -> None:
    from channelmodel.plan_types import JobObservation, PlanInput
    from channelmodel.planner import plan

    from .sim import base_url

    sim = Sim(spec=make_spec(training={"gpus": 8}))
    sim.tick()
    message = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."

    def planned(job: JobObservation) -> Any:
        return plan(
            PlanInput(name="shop-1", spec=sim.spec, status=sim.status, annotations={},
                      now=sim.now, fleet=sim.fleet, model_base_url=base_url, job=job)
        )  # fmt: skip

    pending = planned(JobObservation(phase=JobPhase.RUNNING, unschedulable=message))
    training = get_condition(pending.status.conditions, "Training")
    assert training is not None
    assert (training.status, training.reason) == ("False", "Unschedulable")
    assert message in training.message and sim.status.currentJob is not None
    assert sim.status.currentJob.name in training.message
    assert pending.status.trainingStatus == TrainingStatus.TRAINING  # the Job stays; no new one
    assert not pending.start_job
    placed = planned(JobObservation(phase=JobPhase.RUNNING))
    placed_training = get_condition(placed.status.conditions, "Training")
    assert placed_training is not None and placed_training.reason == "JobRunning"


def _recreated(store_versions: tuple[str, ...], **spec: Any) -> tuple[Sim, Any]:
    """A ChannelModel with empty status whose channel has versions in the store."""
    from channelmodel.plan_types import PlanInput
    from channelmodel.planner import plan

    from .sim import base_url

    sim = Sim(spec=make_spec(**spec))
    p = plan(
        PlanInput(name="shop-1", spec=sim.spec, status=sim.status, annotations={}, now=sim.now,
                  fleet=sim.fleet, model_base_url=base_url, store_latest=store_versions[-1],
                  store_versions=store_versions)
    )  # fmt: skip
    sim.status = p.status
    if p.start_job:
        sim.started.append((sim.now, p.start_job))
        sim.job_phase, sim.job_result = JobPhase.RUNNING, None
    return sim, p


def test_stored_versions_of_a_recreated_channel_are_listed_not_served_nor_deleted() -> None:
    # Issue 12: the versions appear in status.versions with their origin.
    sim, p = _recreated(("1.0.0", "1.0.1", "1.0.2"), retainVersions=1)
    assert p.start_job is not None and p.start_job.version == "1.0.3"
    assert [(v.version, v.state.value, v.origin) for v in sim.status.versions] == [
        ("1.0.2", "Stored", "store"),
        ("1.0.1", "Stored", "store"),
        ("1.0.0", "Stored", "store"),
    ]
    assert sim.status.latestVersion == "1.0.2"
    assert p.serve_version is None and sim.status.modelVersion is None  # no guess
    assert p.delete_versions == []
    assert any(e.reason == "VersionsFound" for e in p.events)

    sim.now += timedelta(seconds=10)
    done = sim.finish(accuracy=0.9)
    assert done.serve_version == "1.0.3"
    assert done.delete_versions == []  # retainVersions=1 counts managed versions only
    assert [(v.version, v.state.value) for v in sim.status.versions] == [
        ("1.0.3", "Served"), ("1.0.2", "Stored"), ("1.0.1", "Stored"), ("1.0.0", "Stored"),
    ]  # fmt: skip


def test_a_stored_version_is_served_when_pinned_and_managed_when_adopted() -> None:
    sim, _ = _recreated(("1.0.0", "1.0.1"), suspend=True)
    sim.spec = make_spec(suspend=True, pinnedVersion="1.0.0")
    pinned = sim.tick()
    assert pinned.serve_version == "1.0.0"
    assert sim.status.modelVersion == "1.0.0"

    sim.annotations["ml.dukarun.io/imported-version"] = "1.0.1"
    adopted = sim.tick()
    record = next(v for v in sim.status.versions if v.version == "1.0.1")
    assert (record.state.value, record.origin) == ("Retained", "imported")
    assert any(e.reason == "VersionImported" for e in adopted.events)


def test_an_idle_trained_channel_names_no_deadline() -> None:
    sim = Sim(spec=make_spec(retrainTriggers=["productAdded", "schedule"]))
    sim.trained_once()
    assert sim.plans[-1].wake_at is None  # nothing wakes it but a change
    sim.advance(3 * 24 * 3600)  # three days, three schedule fires
    assert len(sim.plans) == 3  # trained_once's two plans and advance's first: none at the fires


def test_a_waiting_channel_names_its_deadlines() -> None:
    spec = make_spec(
        debounceSeconds=30,
        cooldownSeconds=0,
        retrainTriggers=["productAdded", "schedule"],
        schedule={"cron": "0 2 * * *"},
    )
    sim = Sim(spec=spec, now=datetime(2026, 11, 20, 1, 0, tzinfo=UTC))
    sim.trained_once()
    sim.change("productAdded")
    assert sim.tick().wake_at == sim.now + timedelta(seconds=30)  # the debounce's end
    sim.advance(30)
    assert len(sim.started) == 2
    sim.finish()
    sim.change("imageChanged")  # not an event trigger here: left to the schedule
    woken = sim.tick()
    assert woken.wake_at == datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # the next fire
    sim.fleet = Fleet(cap=1, running=1)
    sim.now = woken.wake_at
    full = sim.tick()
    assert full.status.trainingStatus == TrainingStatus.QUEUED
    assert full.wake_at is None  # ready, waiting for a slot: a freed slot wakes it, not the clock


def _finish_with(sim: Sim, **metrics: object) -> None:
    sim.job_phase = JobPhase.SUCCEEDED
    sim.job_result = {"ok": True, "metrics": {"classes": 3, "images": 30, **metrics}}
    sim.tick()


def _gate_sim() -> Sim:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=0))
    sim.trained_once()  # 1.0.0 served at 0.9 on its own held-out photos
    sim.change()
    sim.tick()
    return sim


def test_gate_compares_with_the_served_model_on_the_same_photos() -> None:
    sim = _gate_sim()
    # 0.8 is far below the served 0.9 of its own run, but the served model scores
    # 0.79 on this run's (harder) held-out photos: like with like, it is better.
    _finish_with(sim, accuracy=0.8, servedAccuracy=0.79, servedVersion="1.0.0",
                 validationImages=200)  # fmt: skip
    assert sim.status.modelVersion == "1.0.1"
    record = next(v for v in sim.status.versions if v.version == "1.0.1")
    assert record.accuracy == 0.8 and record.servedAccuracy == 0.79
    assert sim.status.lastRun is not None and sim.status.lastRun.servedAccuracy == 0.79


def test_gate_rejects_a_worse_model_on_the_same_photos() -> None:
    sim = _gate_sim()
    _finish_with(sim, accuracy=0.7, servedAccuracy=0.8, servedVersion="1.0.0",
                 validationImages=200)  # fmt: skip
    assert sim.status.modelVersion == "1.0.0"
    rejected = next(v for v in sim.status.versions if v.version == "1.0.1")
    assert rejected.state == VersionState.REJECTED
    assert "same held-out photos" in (rejected.reason or "")


def test_gate_tolerates_one_held_out_photo() -> None:
    sim = _gate_sim()
    # 10 held-out photos: one photo is 0.1, beyond the 0.05 margin but not beyond one photo.
    _finish_with(sim, accuracy=0.7, servedAccuracy=0.8, servedVersion="1.0.0",
                 validationImages=10)  # fmt: skip
    assert sim.status.modelVersion == "1.0.1"


def test_gate_falls_back_when_the_served_figure_is_for_another_version() -> None:
    sim = _gate_sim()
    _finish_with(sim, accuracy=0.8, servedAccuracy=0.79, servedVersion="0.9.0",
                 validationImages=200)  # fmt: skip
    assert sim.status.modelVersion == "1.0.0"  # 0.8 vs the served 0.9 of its own run


# --- a Job started ahead of its debounce's end (settings.job_lead_seconds) ---------


def test_a_job_starts_its_lead_before_the_debounce_ends_and_waits_for_the_end() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=60, cooldownSeconds=0), job_lead=timedelta(seconds=5))
    sim.trained_once()
    changed = sim.now
    sim.change()
    p = sim.tick()
    assert p.start_job is None and sim.status.trainAfter == changed + timedelta(seconds=60)
    assert p.wake_at == changed + timedelta(seconds=55)  # woken at the lead, not the end
    sim.advance(70)
    started_at, job = sim.started[-1]
    assert started_at == changed + timedelta(seconds=55)
    assert job.trigger == Trigger.EVENT and job.not_before == changed + timedelta(seconds=60)
    assert sim.status.currentJob is not None
    assert sim.status.currentJob.notBefore == changed + timedelta(seconds=60)
    assert sim.status.currentJob.changeAt == changed
    started = [e for p in sim.plans for e in p.events if e.reason == Reason.TRAINING_STARTED]
    assert "reads the manifest from 2026-11-20T12:01:10Z" in started[-1].message
    training = get_condition(sim.status.conditions, "Training")
    assert training is not None and "reads the manifest from" in training.message


def test_without_a_lead_or_a_wait_the_job_gets_no_not_before() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=60, cooldownSeconds=0))
    sim.trained_once()
    sim.change()
    sim.advance(70)
    assert sim.started[-1][1].not_before is None  # lead 0: started at the end itself
    sim.finish()
    sim.job_lead = timedelta(seconds=5)
    sim.request_retrain()  # ready at once: nothing to wait for
    sim.tick()
    assert sim.started[-1][1].trigger == Trigger.MANUAL
    assert sim.started[-1][1].not_before is None
    assert sim.status.currentJob is not None and sim.status.currentJob.notBefore is None


def test_a_change_during_the_jobs_wait_restarts_the_debounce() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=10, cooldownSeconds=0), job_lead=timedelta(seconds=5))
    sim.trained_once()
    first = sim.now
    sim.change()
    sim.advance(6)  # started at +5, waits until +10
    waiting = sim.status.currentJob
    assert waiting is not None and waiting.notBefore == first + timedelta(seconds=10)
    sim.change("imageChanged")  # +6: before the trainer reads the manifest
    p = sim.tick()
    assert p.cancel_job == waiting
    assert [e.reason for e in p.events] == [Reason.TRAINING_RESTARTED, Reason.QUEUED]
    assert sim.status.currentJob is None and sim.status.trainingStatus == TrainingStatus.QUEUED
    assert sim.status.trainAfter == sim.now + timedelta(seconds=10)
    assert sim.status.modelVersion == "1.0.0" and sim.status.attemptedChangeAt is None
    sim.advance(30)
    assert len(sim.started) == 3  # the initial run, the restarted one, the one that counts
    started_at, job = sim.started[-1]
    assert started_at == first + timedelta(seconds=6 + 10 - 5)
    assert job.version == waiting.version and job.name != waiting.name


def test_a_disabled_kind_during_the_wait_restarts_it_and_keeps_the_run() -> None:
    sim = Sim(
        spec=make_spec(debounceSeconds=10, cooldownSeconds=0, retrainTriggers=["productAdded"]),
        job_lead=timedelta(seconds=5),
    )
    sim.trained_once()
    sim.change("productAdded")
    sim.advance(6)
    assert sim.status.currentJob is not None
    sim.change("imageChanged")  # not a trigger, but it moves the debounce as before
    assert sim.tick().cancel_job is not None
    sim.advance(30)
    assert len(sim.started) == 3 and sim.started[-1][1].trigger == Trigger.EVENT


def test_a_change_at_the_end_of_the_wait_is_left_to_the_next_run() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=10, cooldownSeconds=0), job_lead=timedelta(seconds=5))
    sim.trained_once()
    sim.change()
    sim.advance(9.5)  # the trainer may already read the manifest: no restart
    job = sim.status.currentJob
    second = sim.now
    sim.change()
    p = sim.tick()
    assert p.cancel_job is None and sim.status.currentJob == job
    sim.now += timedelta(seconds=2)
    sim.finish()  # it covered the first change only: the second queues a run
    assert sim.status.trainingStatus == TrainingStatus.QUEUED
    assert sim.status.trainAfter == second + timedelta(seconds=10)
    sim.advance(30)
    assert len(sim.started) == 3
    assert sim.status.currentJob is not None and sim.status.currentJob.changeAt == second


def test_a_finished_job_is_followed_not_restarted_whatever_the_clock_says() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=10, cooldownSeconds=0), job_lead=timedelta(seconds=5))
    sim.trained_once()
    sim.change()
    sim.advance(6)
    sim.change()
    sim.job_phase = JobPhase.FAILED  # a trainer on a fast clock, failed early
    sim.job_result = {"ok": False, "error": "manifest: 503"}
    p = sim.tick()
    assert p.cancel_job is None and p.outcome == Outcome.FAILED


def test_a_channel_waiting_for_its_cooldown_starts_its_lead_early_too() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=0, cooldownSeconds=30), job_lead=timedelta(seconds=5))
    sim.trained_once()
    end = sim.status.lastTrained + timedelta(seconds=30)  # type: ignore[operator]
    sim.now += timedelta(seconds=1)
    sim.change()
    sim.advance(60)
    started_at, job = sim.started[-1]
    assert started_at == end - timedelta(seconds=5) and job.not_before == end


def test_a_change_during_a_cooldown_wait_is_covered_by_the_waiting_job() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=2, cooldownSeconds=30), job_lead=timedelta(seconds=5))
    sim.trained_once()
    sim.now += timedelta(seconds=1)
    sim.change()
    sim.advance(25.5)  # the Job started at the cooldown's end less 5 s
    job = sim.status.currentJob
    assert job is not None and job.notBefore is not None
    later = sim.now
    sim.change()  # its debounce ends before the Job reads the manifest
    p = sim.tick()
    assert p.cancel_job is None and sim.status.currentJob is not None
    assert sim.status.currentJob.changeAt == later and sim.status.currentJob.name == job.name
    sim.now = job.notBefore + timedelta(seconds=3)
    sim.finish()
    assert sim.status.coveredChangeAt == later
    sim.advance(3600)
    assert len(sim.started) == 2  # nothing left to train


def test_a_burst_closer_than_half_the_debounce_creates_no_job() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=4, cooldownSeconds=0), job_lead=timedelta(seconds=5))
    sim.trained_once()
    for _ in range(20):
        sim.change()
        sim.advance(1.9)
    assert len(sim.started) == 1 and not any(p.cancel_job for p in sim.plans)
    last = sim.now - timedelta(seconds=1.9)
    sim.advance(10)
    started_at, job = sim.started[-1]
    assert started_at == last + timedelta(seconds=2) and job.not_before == last + timedelta(
        seconds=4
    )


def test_no_slot_in_the_lead_wakes_the_channel_again_when_its_wait_ends() -> None:
    sim = Sim(spec=make_spec(debounceSeconds=60, cooldownSeconds=0), job_lead=timedelta(seconds=5))
    sim.trained_once()
    changed = sim.now
    sim.change()
    sim.fleet = Fleet(cap=1, running=1)  # every slot taken
    sim.now = changed + timedelta(seconds=55)
    p = sim.tick()
    assert p.start_job is None
    # From the debounce's end the fleet counts it ready; that needs a wake-up then.
    assert p.wake_at == changed + timedelta(seconds=60)
    sim.now = changed + timedelta(seconds=60)
    assert sim.tick().wake_at is None  # ready: a freed slot wakes it now
    sim.fleet = Fleet(cap=1)
    sim.now += timedelta(seconds=1)
    assert sim.tick().start_job is not None
    assert sim.started[-1][1].not_before is None  # the wait is over: nothing to wait for


def test_a_future_dated_change_never_makes_a_job_wait_longer_than_its_lead() -> None:
    # The change annotation is the backend's word: a far-future time must not hold a
    # Job (and its GPU) idle for a day; the Job starts a lead before the end at most.
    sim = Sim(spec=make_spec(debounceSeconds=60, cooldownSeconds=0), job_lead=timedelta(seconds=5))
    sim.trained_once()
    future = sim.now + timedelta(days=1)
    sim.change(at=future)
    p = sim.tick()
    assert p.start_job is None and p.wake_at == future + timedelta(seconds=55)
    sim.advance(2 * 86400)
    started_at, job = sim.started[-1]
    assert job.not_before is not None
    assert job.not_before - started_at <= timedelta(seconds=5)
