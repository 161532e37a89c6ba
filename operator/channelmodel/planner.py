"""The operator's decisions, as a pure function.

`plan(PlanInput) -> Plan` looks at one ChannelModel (spec, status, annotations),
the observed state of its training Job, the fleet-wide capacity and the time,
and returns the status it should have and the side effects to run. It does no
I/O and reads no clock, so debounce, cooldown, schedules and the concurrency
cap are tested with plain values (tests/operator/test_planner.py).

Every pending decision is derivable from the object itself: the change times
live in annotations, what has been covered or attempted lives in status. An
operator restarted at any point re-plans to the same result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from channelmodel import conditions as cond
from channelmodel import schedule as cron
from channelmodel.api import annotations as ann
from channelmodel.api.job_result import JobResult
from channelmodel.api.models import (
    ChannelModelSpec,
    ChannelModelStatus,
    JobRef,
    RunMetrics,
    TrainingStatus,
    VersionRecord,
    VersionState,
)
from channelmodel.plan_types import (
    Event,
    JobObservation,
    JobPhase,
    Outcome,
    Plan,
    PlanInput,
    Reason,
    StartJob,
    Trigger,
)
from channelmodel.rfc3339 import format_time, parse_time_or_none
from channelmodel.versions import is_version, newest_first, next_version
from channelmodel.versions import parse as parse_version

MAX_JOB_NAME = 63  # Job names become label values (job-name), which stop at 63
# A Job started ahead of its debounce's end is restarted by a later change only while
# its wait has this much left: its trainer, on a clock a little ahead, must not have
# read the manifest yet (the restarted run publishes the same version).
RESTART_MARGIN = timedelta(seconds=1)


# What shapes the model: a change retrains at once, whatever the last run did.
MODEL_FIELDS: dict[str, Any] = {"channelId": True, "manifest": {"url"}, "training": {"epochs"}}
# What shapes the run but not the model (where and how the Job runs, which Secrets
# it reads): a change re-queues a failed or rejected run, never a succeeded one.
# See docs/decisions/0011-spec-hash-and-suspend.md.
RUN_FIELDS: dict[str, Any] = {
    "manifest": {"authSecretRef"},
    "importFrom": {"authSecretRef"},
    "training": {
        "gpus", "image", "resources", "nodeSelector", "tolerations",
        "activeDeadlineSeconds", "backoffLimit", "queueName",
    },
}  # fmt: skip


def _hash(spec: ChannelModelSpec, include: dict[str, Any]) -> str:
    relevant = spec.model_dump(mode="json", include=include)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def spec_hash(spec: ChannelModelSpec) -> str:
    """Hash of the fields that shape a model (MODEL_FIELDS): a change retrains at once."""
    return _hash(spec, MODEL_FIELDS)


def run_hash(spec: ChannelModelSpec) -> str:
    """Hash of the fields that shape a run (RUN_FIELDS): a change retries a failed run."""
    return _hash(spec, RUN_FIELDS)


def job_name(name: str, attempt: int) -> str:
    suffix = f"-train-{attempt}"
    if len(name) + len(suffix) <= MAX_JOB_NAME:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: MAX_JOB_NAME - len(suffix) - 7].rstrip('-.')}-{digest}{suffix}"


@dataclass(frozen=True)
class _Want:
    trigger: Trigger
    ready_at: datetime  # when its debounce and cooldown end
    # When its Job may start: a job_lead early, the trainer waiting for ready_at.
    starts_at: datetime | None = None

    @property
    def job_at(self) -> datetime:
        return self.starts_at or self.ready_at


def plan(inp: PlanInput) -> Plan:
    status = inp.status.model_copy(deep=True)
    result = Plan(status=status)
    status.observedGeneration = inp.generation

    if status.currentJob is not None and inp.spec.suspend:
        _cancel_for_suspend(result, status.currentJob)
    else:
        if status.currentJob is not None:
            _change_during_wait(inp, result, status.currentJob)
        if status.currentJob is not None and inp.job is not None:
            _follow_job(inp, result, status.currentJob, inp.job)
    if status.attemptedRunHash is None and status.attempts and status.currentJob is None:
        # Status written before run hashes existed: adopt the current spec as attempted.
        status.attemptedRunHash = run_hash(inp.spec)

    _adopt_imported_version(inp, result)
    _list_stored_versions(inp, result)
    _serve(inp, result)

    want = _decide_training(inp, result) if status.currentJob is None else None

    _set_conditions(inp, result)
    result.wake_at = _next_deadline(inp, result.status, want)
    return result


# --- following a running Job -------------------------------------------------


def _cancel_for_suspend(result: Plan, job: JobRef) -> None:
    """spec.suspend stops the run in flight: its Job is deleted, its result never served.

    The run is queued again when suspend is lifted: forgetting what it attempted
    makes the spec (and an import) look untried; an inventory change it was to
    cover is still uncovered (attemptedChangeAt moves only when a run finishes).
    """
    status = result.status
    status.currentJob = None
    status.attemptedSpecHash = None
    status.attemptedRunHash = None
    if job.trigger == Trigger.IMPORT.value:
        status.importedFrom = None
    result.cancel_job = job
    result.events.append(
        Event(
            "Normal",
            Reason.TRAINING_CANCELLED,
            f"Job {job.name} ({job.version}) stopped: spec.suspend is true; "
            "the run is queued again when suspend is lifted",
        )
    )


def _change_during_wait(inp: PlanInput, result: Plan, job: JobRef) -> None:
    """A change while the Job of an event run waits to read the manifest: as without
    the early start, the change moves the debounce (the Job is deleted and the run
    queued again), unless the wait outlasts the change's debounce anyway (a cooldown):
    then the run covers it."""
    changed_at = parse_time_or_none(inp.annotations.get(ann.INVENTORY_CHANGED_AT))
    if not (
        job.trigger == Trigger.EVENT.value
        and job.notBefore is not None
        and inp.now < job.notBefore - RESTART_MARGIN
        and (inp.job is None or inp.job.phase == JobPhase.RUNNING)
        and changed_at is not None
        and (job.changeAt is None or changed_at > job.changeAt)
    ):
        return
    status = result.status
    if changed_at + timedelta(seconds=inp.spec.debounceSeconds) <= job.notBefore:
        status.currentJob = job.model_copy(update={"changeAt": changed_at})
        return
    status.currentJob = None
    # Queued for the event again, so that a disabled change kind keeps it queued.
    status.queuedTrigger = Trigger.EVENT.value
    result.cancel_job = job
    result.events.append(
        Event(
            "Normal",
            Reason.TRAINING_RESTARTED,
            f"Job {job.name} ({job.version}) deleted before it read the manifest: "
            "the inventory changed again, the debounce starts over",
        )
    )


def _follow_job(inp: PlanInput, result: Plan, job: JobRef, obs: JobObservation) -> None:
    status = result.status
    if obs.phase == JobPhase.RUNNING:
        status.trainingStatus = TrainingStatus.TRAINING
        return

    status.attemptedChangeAt = job.changeAt
    status.currentJob = None
    result.finished_job = job
    report = obs.result
    metrics = report.metrics if report else None
    if metrics is not None:
        status.lastRun = metrics  # a run that reported none keeps the last one that did

    if obs.phase == JobPhase.SUCCEEDED and (report is None or report.ok) and obs.published:
        _accept_or_reject(inp, result, job, metrics, report)
        return

    if obs.phase == JobPhase.MISSING:
        reason = f"training Job {job.name} disappeared before it finished"
    elif obs.phase == JobPhase.SUCCEEDED and not obs.published:
        reason = f"trainer reported success but version {job.version} is not in the store"
    else:
        reason = (report.error if report else None) or obs.reason or "training Job failed"
    status.trainingStatus = TrainingStatus.FAILED
    status.lastError = reason
    result.outcome = Outcome.FAILED
    result.events.append(Event("Warning", Reason.TRAINING_FAILED, f"{job.version}: {reason}"))


def _accept_or_reject(
    inp: PlanInput, result: Plan, job: JobRef, metrics: RunMetrics | None, report: JobResult | None
) -> None:
    status = result.status
    accuracy = metrics.accuracy if metrics else None
    served = next((v for v in status.versions if v.version == status.modelVersion), None)
    # Like with like: the served model scored by the trainer on this run's held-out photos.
    same_split = (
        metrics.servedAccuracy
        if metrics is not None
        and served is not None
        and metrics.servedVersion == served.version
        and metrics.servedAccuracy is not None
        else None
    )
    rejection = None
    if accuracy is not None and accuracy < inp.spec.minAccuracy:
        rejection = f"accuracy {accuracy:.3f} is below minAccuracy {inp.spec.minAccuracy:.3f}"
    elif accuracy is not None and same_split is not None and served is not None:
        # A held-out photo is the finest step the comparison can resolve.
        held = metrics.validationImages if metrics is not None else None
        margin = max(inp.quality_margin, 1 / held if held else 0.0)
        if accuracy < same_split - margin - 1e-9:
            rejection = (
                f"accuracy {accuracy:.3f} is more than {margin:.3f} below "
                f"the served {served.version} ({same_split:.3f} on the same held-out photos)"
            )
    elif (
        accuracy is not None
        and served is not None
        and served.accuracy is not None
        and accuracy < served.accuracy - inp.quality_margin
    ):
        rejection = (
            f"accuracy {accuracy:.3f} is more than {inp.quality_margin:.3f} below "
            f"the served {served.version} ({served.accuracy:.3f})"
        )
    record = VersionRecord(
        version=job.version,
        createdAt=inp.now,
        accuracy=accuracy,
        servedAccuracy=same_split,
        state=VersionState.REJECTED if rejection else VersionState.RETAINED,
        reason=rejection,
        origin=(report.origin if report else None) or "trained",
        labelsLookLikeProductIds=report.labelsLookLikeProductIds if report else None,
    )
    status.versions = [record, *(v for v in status.versions if v.version != job.version)]
    status.latestVersion = job.version
    if rejection:
        status.trainingStatus = TrainingStatus.FAILED
        status.lastError = f"{job.version} rejected by the quality gate: {rejection}"
        result.outcome = Outcome.REJECTED
        result.events.append(Event("Warning", Reason.MODEL_REJECTED, status.lastError))
        return
    status.trainingStatus = TrainingStatus.SUCCEEDED
    status.lastError = None
    status.lastTrained = inp.now
    status.coveredChangeAt = job.changeAt
    result.outcome = Outcome.SUCCEEDED
    result.events.append(Event("Normal", Reason.TRAINING_SUCCEEDED, f"trained {job.version}"))


def _adopt_imported_version(inp: PlanInput, result: Plan) -> None:
    """A version `channelmodel import --name` published by hand joins the versions."""
    status = result.status
    version = inp.annotations.get(ann.IMPORTED_VERSION)
    if not version or version == status.adoptedImport or not is_version(version):
        return
    status.adoptedImport = version
    origin = inp.annotations.get(ann.IMPORTED_ORIGIN) or "imported"
    origin = origin if origin.startswith("imported") else f"imported:{origin}"
    existing = next((v for v in status.versions if v.version == version), None)
    if existing is not None:
        if existing.state == VersionState.STORED:  # adopting a found version manages it
            status.versions = [
                v.model_copy(update={"state": VersionState.RETAINED, "origin": origin})
                if v.version == version
                else v
                for v in status.versions
            ]
            result.events.append(
                Event("Normal", Reason.VERSION_IMPORTED, f"adopted stored version {version}")
            )
        return
    record = VersionRecord(version=version, createdAt=inp.now, origin=origin)
    status.versions = sorted(
        [record, *status.versions], key=lambda v: parse_version(v.version), reverse=True
    )
    if status.latestVersion is None or parse_version(version) > parse_version(status.latestVersion):
        status.latestVersion = version
    result.events.append(
        Event("Normal", Reason.VERSION_IMPORTED, f"adopted imported version {version}")
    )


def _list_stored_versions(inp: PlanInput, result: Plan) -> None:
    """Versions of the channel in the store that status does not list (a re-created
    ChannelModel, a run that published but was not recorded): listed as Stored with
    origin `store`, so numbering continues after them and people see them. They are
    not served unless pinned, and retention leaves them alone until adopted."""
    status = result.status
    known = {v.version for v in status.versions}
    found = [v for v in inp.store_versions if v not in known and is_version(v)]
    if not found:
        return
    records = [
        VersionRecord(version=v, createdAt=inp.now, origin="store", state=VersionState.STORED)
        for v in found
    ]
    status.versions = sorted(
        [*status.versions, *records], key=lambda v: parse_version(v.version), reverse=True
    )
    newest = max(found, key=parse_version)
    if status.latestVersion is None or parse_version(newest) > parse_version(status.latestVersion):
        status.latestVersion = newest
    shown = ", ".join(sorted(found, key=parse_version)[-5:])
    result.events.append(
        Event(
            "Normal",
            Reason.VERSIONS_FOUND,
            f"{len(found)} version(s) already in the store: {shown}",
        )
    )


# --- serving, pinning, retention ---------------------------------------------


def _serve(inp: PlanInput, result: Plan) -> None:
    status = result.status
    pinned = inp.spec.pinnedVersion
    known = {v.version for v in status.versions}
    if pinned and pinned in known:
        target: str | None = pinned
    else:
        target = next(
            (
                v.version
                for v in status.versions
                if v.state not in (VersionState.REJECTED, VersionState.STORED)
            ),
            None,
        )
        if pinned and pinned not in known:
            # Pinning to something that is not there keeps the current model.
            target = status.modelVersion if status.modelVersion in known else target

    if target is not None and target != status.modelVersion:
        result.serve_version = target
        served = Reason.VERSION_PINNED if target == pinned else Reason.VERSION_SERVED
        result.events.append(Event("Normal", served, f"serving {target}"))
    status.modelVersion = target
    status.modelBaseUrl = inp.model_base_url(inp.spec.channelId, target) if target else None

    stored = {v.version for v in status.versions if v.state == VersionState.STORED}
    managed = [v.version for v in status.versions if v.version not in stored]
    keep = {target, pinned} | stored | set(newest_first(managed)[: inp.spec.retainVersions])
    result.delete_versions = [v.version for v in status.versions if v.version not in keep]
    status.versions = [
        v.model_copy(
            update={
                "state": VersionState.SERVED
                if v.version == target
                else (
                    v.state
                    if v.state in (VersionState.REJECTED, VersionState.STORED)
                    else VersionState.RETAINED
                )
            }
        )
        for v in status.versions
        if v.version in keep
    ]


# --- deciding whether to train -----------------------------------------------


def _decide_training(inp: PlanInput, result: Plan) -> _Want | None:
    """Queue, start or forget a run; the reason to train it decided on, if any."""
    status = result.status
    want = _wanted_run(inp, status)
    if want is None:
        if status.trainingStatus in (TrainingStatus.QUEUED, TrainingStatus.TRAINING):
            status.trainingStatus = (
                TrainingStatus.SUCCEEDED if status.modelVersion else TrainingStatus.IDLE
            )
        status.queuedAt = status.trainAfter = status.queuedTrigger = None
        return None

    if status.queuedAt is None:
        status.queuedAt = inp.now
        result.events.append(
            Event("Normal", Reason.QUEUED, f"{want.trigger} retrain after {_iso(want.ready_at)}")
        )
    status.trainingStatus = TrainingStatus.QUEUED
    if not (
        status.trainAfter is not None
        and status.queuedTrigger == want.trigger.value
        and status.trainAfter <= inp.now
        and want.ready_at <= inp.now
    ):
        # Ready since trainAfter: a wait for a slot keeps it (each re-plan of a waiting
        # channel would otherwise write "ready now" again, and its own echo re-plan it).
        status.trainAfter = want.ready_at
    status.queuedTrigger = want.trigger.value

    # The Job may start early: its trainer starts up while the wait ends.
    if inp.spec.suspend or inp.blocked or want.job_at > inp.now or not inp.fleet.may_start:
        return want
    not_before = want.ready_at if want.ready_at > inp.now else None

    attempt = status.attempts + 1
    known = [v for v in (status.latestVersion, inp.store_latest) if v]
    # A re-created ChannelModel finds its channel's old versions in the store: never reuse one.
    version = next_version(max(known, key=parse_version) if known else None)
    start = StartJob(
        name=job_name(inp.name, attempt),
        version=version,
        trigger=want.trigger,
        not_before=not_before,
    )
    result.start_job = start
    status.attempts = attempt
    status.attemptedSpecHash = spec_hash(inp.spec)  # an import covers the spec too
    status.attemptedRunHash = run_hash(inp.spec)
    if want.trigger == Trigger.IMPORT and inp.spec.importFrom:
        status.importedFrom = inp.spec.importFrom.url
    status.currentJob = JobRef(
        name=start.name,
        version=version,
        trigger=want.trigger.value,
        startedAt=inp.now,
        changeAt=parse_time_or_none(inp.annotations.get(ann.INVENTORY_CHANGED_AT)),
        notBefore=not_before,
    )
    requested = parse_time_or_none(inp.annotations.get(ann.RETRAIN_REQUESTED_AT))
    if requested is not None:
        status.handledRetrainRequestAt = requested  # this run covers any manual request so far
    status.trainingStatus = TrainingStatus.TRAINING
    status.queuedAt = status.trainAfter = status.queuedTrigger = None
    result.events.append(
        Event(
            "Normal",
            Reason.TRAINING_STARTED,
            f"{want.trigger} training of {version} in Job {start.name}{_waits(not_before)}",
        )
    )
    return want


def _wanted_run(inp: PlanInput, status: ChannelModelStatus) -> _Want | None:
    """The earliest-ready reason to train now or later, or None."""
    spec, now = inp.spec, inp.now
    wants: list[_Want] = []
    if spec.importFrom and status.importedFrom != spec.importFrom.url:
        wants.append(_Want(Trigger.IMPORT, now))  # first: on a tie, import before training
    cooldown_end = (
        status.lastTrained + timedelta(seconds=spec.cooldownSeconds) if status.lastTrained else now
    )

    requested = parse_time_or_none(inp.annotations.get(ann.RETRAIN_REQUESTED_AT))
    if requested and (
        status.handledRetrainRequestAt is None or requested > status.handledRetrainRequestAt
    ):
        wants.append(_Want(Trigger.MANUAL, now))  # skips debounce and cooldown

    if status.attemptedSpecHash != spec_hash(spec):
        wants.append(_Want(Trigger.INITIAL if status.attempts == 0 else Trigger.SPEC, now))
    elif (
        status.lastError is not None
        and status.attemptedRunHash is not None
        and status.attemptedRunHash != run_hash(spec)
    ):
        # A failed (or rejected) run retried with what was changed to fix it: GPUs,
        # resources, deadline, image, placement, queue or a Secret reference.
        wants.append(_Want(Trigger.SPEC, now))

    changed_at = parse_time_or_none(inp.annotations.get(ann.INVENTORY_CHANGED_AT))
    seen = max((t for t in (status.coveredChangeAt, status.attemptedChangeAt) if t), default=None)
    kind = inp.annotations.get(ann.INVENTORY_CHANGE)
    kind_enabled = (
        kind in spec.retrainTriggers
        if kind
        else any(t != ann.TriggerKind.SCHEDULE for t in spec.retrainTriggers)
    )
    # The annotation keeps only the latest kind: an enabled change already queued
    # stays queued when a disabled kind follows it inside the debounce window.
    queued_event = status.queuedTrigger == Trigger.EVENT.value
    if (
        spec.autoRetrain
        and (kind_enabled or queued_event)
        and changed_at
        and (seen is None or changed_at > seen)
    ):
        debounce_end = changed_at + timedelta(seconds=spec.debounceSeconds)
        # A Job's lead is at most half the debounce: a burst of changes less than that
        # apart creates no Job (a change during a Job's wait restarts it).
        debounce_lead = min(inp.job_lead, timedelta(seconds=spec.debounceSeconds / 2))
        wants.append(
            _Want(
                Trigger.EVENT,
                max(debounce_end, cooldown_end, now),
                max(debounce_end - debounce_lead, cooldown_end - inp.job_lead, now),
            )
        )

    schedule_want = _scheduled_run(inp, status, changed_at, cooldown_end)
    if schedule_want:
        wants.append(schedule_want)

    return min(wants, key=lambda w: w.ready_at, default=None)


def _scheduled_run(
    inp: PlanInput, status: ChannelModelStatus, changed_at: datetime | None, cooldown_end: datetime
) -> _Want | None:
    """A schedule fire since the last uncovered change that no scheduled run consumed yet.

    `lastScheduleAt` is the fire the last scheduled run was queued for, so a failed
    run is retried at the next fire, not at once. Nothing is written for a channel
    with nothing to train: an idle fleet is not planned at its schedule's fires.
    """
    spec = inp.spec
    if status.queuedTrigger == Trigger.SCHEDULE.value:  # a fired schedule stays queued
        return _schedule_want(inp, cooldown_end)
    enabled = spec.autoRetrain and ann.TriggerKind.SCHEDULE in spec.retrainTriggers
    if not enabled or changed_at is None or not _uncovered(status, changed_at):
        return None
    try:
        fired = cron.last_fire_at_or_before(spec.schedule.cron, spec.schedule.timeZone, inp.now)
    except cron.ScheduleError:
        return None  # reported as a SpecValid condition
    previous = status.lastScheduleAt
    if fired < changed_at or (
        previous is not None
        and (fired <= previous or cron.same_wall_clock(fired, previous, spec.schedule.timeZone))
    ):
        return None  # no fire since the change (or the DST fall-back repeat of the last one)
    # However many fires were missed while the operator was down, this is one decision.
    status.lastScheduleAt = fired
    return _schedule_want(inp, cooldown_end)


def _schedule_want(inp: PlanInput, cooldown_end: datetime) -> _Want:
    return _Want(
        Trigger.SCHEDULE,
        max(cooldown_end, inp.now),
        max(cooldown_end - inp.job_lead, inp.now),
    )


def _next_deadline(
    inp: PlanInput, status: ChannelModelStatus, want: _Want | None
) -> datetime | None:
    """The next time only the clock can change this plan: nothing else wakes it then.

    A Job's progress, a freed training slot, an edit or an annotation arrive as
    watch events; only a debounce or cooldown that ends and a schedule fire with an
    uncovered change to train need the clock. An idle, trained channel has none.
    """
    if status.currentJob is not None:
        return None
    if want is not None:  # queued
        # Waiting for its Job's start (a lead before the debounce or cooldown ends),
        # then for the end: from then on the fleet counts it ready, and a freed slot
        # wakes it (an event), not the clock.
        return next((t for t in (want.job_at, want.ready_at) if t > inp.now), None)
    spec = inp.spec
    changed_at = parse_time_or_none(inp.annotations.get(ann.INVENTORY_CHANGED_AT))
    if not (
        spec.autoRetrain
        and ann.TriggerKind.SCHEDULE in spec.retrainTriggers
        and _uncovered(status, changed_at)
    ):
        return None
    try:
        return cron.next_fire_after(spec.schedule.cron, spec.schedule.timeZone, inp.now)
    except cron.ScheduleError:
        return None  # reported as a SpecValid condition


def _uncovered(status: ChannelModelStatus, changed_at: datetime | None) -> bool:
    """The inventory changed since the change the served model covers (any kind)."""
    return changed_at is not None and (
        status.coveredChangeAt is None or changed_at > status.coveredChangeAt
    )


# --- conditions ----------------------------------------------------------------


def _set_conditions(inp: PlanInput, result: Plan) -> None:
    status, now, gen = result.status, inp.now, inp.generation
    conds = status.conditions

    problem = inp.blocked or _schedule_problem(inp.spec)
    if problem:
        conds = cond.set_condition(conds, cond.SPEC_VALID, False, "InvalidSpec", problem, now, gen)
        if cond.get_condition(inp.status.conditions, cond.SPEC_VALID) is None or (
            cond.get_condition(inp.status.conditions, cond.SPEC_VALID).status == "True"  # type: ignore[union-attr]
        ):
            result.events.append(Event("Warning", Reason.INVALID_SPEC, problem))
    else:
        conds = cond.set_condition(conds, cond.SPEC_VALID, True, "Valid", "", now, gen)

    if status.modelVersion:
        pinned = inp.spec.pinnedVersion
        if pinned and pinned != status.modelVersion:
            conds = cond.set_condition(
                conds,
                cond.READY,
                True,
                "PinnedVersionMissing",
                f"pinnedVersion {pinned} is not a retained version; serving {status.modelVersion}",
                now,
                gen,
            )
        else:
            reason = "VersionPinned" if pinned else "ModelServed"
            conds = cond.set_condition(
                conds, cond.READY, True, reason, f"serving {status.modelVersion}", now, gen
            )
    elif status.trainingStatus == TrainingStatus.FAILED:
        conds = cond.set_condition(
            conds, cond.READY, False, "TrainingFailed", status.lastError or "", now, gen
        )
    else:
        conds = cond.set_condition(
            conds, cond.READY, False, "NoModelYet", "no model trained yet", now, gen
        )

    if status.currentJob and inp.job is not None and inp.job.suspended:
        queue = inp.spec.training.queueName or "its queue"
        conds = cond.set_condition(
            conds, cond.TRAINING, False, "WaitingForAdmission",
            f"Job {status.currentJob.name} is suspended until Kueue admits it from {queue}", now, gen,
        )  # fmt: skip
    elif status.currentJob and inp.job is not None and inp.job.unschedulable:
        conds = cond.set_condition(
            conds, cond.TRAINING, False, "Unschedulable",
            f"Job {status.currentJob.name}: {inp.job.unschedulable}", now, gen,
        )  # fmt: skip
    elif status.currentJob:
        conds = cond.set_condition(
            conds,
            cond.TRAINING,
            True,
            "JobRunning",
            f"Job {status.currentJob.name} trains {status.currentJob.version}"
            + _waits(status.currentJob.notBefore),
            now,
            gen,
        )
    elif inp.spec.suspend:
        conds = cond.set_condition(
            conds, cond.TRAINING, False, "Suspended", "spec.suspend is true", now, gen
        )
    elif status.trainingStatus == TrainingStatus.QUEUED and inp.blocked:
        conds = cond.set_condition(conds, cond.TRAINING, False, "Blocked", inp.blocked, now, gen)
    elif status.trainingStatus == TrainingStatus.QUEUED:
        waiting = (
            "capacity" if status.trainAfter and status.trainAfter <= now else "debounce/cooldown"
        )
        conds = cond.set_condition(
            conds,
            cond.TRAINING,
            False,
            "Queued",
            f"{status.queuedTrigger} retrain waiting for {waiting} until {_iso(status.trainAfter)}",
            now,
            gen,
        )
    else:
        conds = cond.set_condition(conds, cond.TRAINING, False, "Idle", "", now, gen)

    if status.trainingStatus == TrainingStatus.FAILED and status.lastError:
        reason = "QualityGateRejected" if _last_run_rejected(inp, result) else "TrainingFailed"
        conds = cond.set_condition(
            conds, cond.LAST_RUN_SUCCEEDED, False, reason, status.lastError, now, gen
        )
    elif status.lastTrained and status.trainingStatus == TrainingStatus.SUCCEEDED:
        conds = cond.set_condition(
            conds,
            cond.LAST_RUN_SUCCEEDED,
            True,
            "TrainingSucceeded",
            f"trained {status.latestVersion}",
            now,
            gen,
        )
    status.conditions = conds


def _last_run_rejected(inp: PlanInput, result: Plan) -> bool:
    """The failed last run was trained but refused by the quality gate.

    Decided when the run finishes (the plan's outcome); until the next one
    finishes, the LastRunSucceeded condition keeps what was decided then.
    """
    if result.outcome is not None:
        return result.outcome == Outcome.REJECTED
    previous = cond.get_condition(inp.status.conditions, cond.LAST_RUN_SUCCEEDED)
    return previous is not None and previous.reason == "QualityGateRejected"


def _schedule_problem(spec: ChannelModelSpec) -> str | None:
    try:
        cron.validate(spec.schedule.cron, spec.schedule.timeZone)
    except cron.ScheduleError as exc:
        return f"spec.schedule: {exc}"
    return None


def _waits(not_before: datetime | None) -> str:
    return f" (reads the manifest from {_iso(not_before)})" if not_before else ""


def _iso(value: datetime | None) -> str:
    return format_time(value, "auto") if value else "-"
