"""The planner's inputs and outputs: plain values, no decisions.

`planner.plan(PlanInput) -> Plan` decides; the modules that observe the world
(`observe`, `jobs`) build the inputs and the ones that carry a plan out
(`handlers`, `reporting`) read the outputs, without importing the planner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from channelmodel.api.job_result import JobResult
from channelmodel.api.models import ChannelModelSpec, ChannelModelStatus, JobRef


class JobPhase(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    MISSING = "Missing"


class Trigger(StrEnum):
    INITIAL = "initial"
    SPEC = "spec"
    EVENT = "event"
    SCHEDULE = "schedule"
    MANUAL = "manual"
    IMPORT = "import"


@dataclass(frozen=True)
class JobObservation:
    """What the handler saw of the Job named in status.currentJob."""

    phase: JobPhase
    result: JobResult | None = None  # the trainer's termination message
    reason: str = ""  # Job failure reason (BackoffLimitExceeded, DeadlineExceeded, ...)
    published: bool = True  # the version the Job reports is committed in the store
    suspended: bool = False  # created suspended, not admitted yet (Kueue)
    unschedulable: str = ""  # the scheduler's word on a Pod it cannot place


@dataclass(frozen=True)
class Fleet:
    """The cross-channel view the concurrency cap needs."""

    cap: int
    running: int = 0  # training Jobs in flight across all channels
    queued_ahead: int = 0  # channels ready to start that were queued before this one

    @property
    def may_start(self) -> bool:
        free = self.cap - self.running
        return free > 0 and self.queued_ahead < free


@dataclass(frozen=True)
class PlanInput:
    name: str
    spec: ChannelModelSpec
    status: ChannelModelStatus
    annotations: Mapping[str, str]
    now: datetime
    fleet: Fleet
    model_base_url: Any  # Callable[[str, str], str]: (channelId, version) -> URL
    generation: int | None = None
    job: JobObservation | None = None
    quality_margin: float = 0.05
    blocked: str | None = None  # why a Job cannot be started (e.g. missing Secret)
    store_latest: str | None = None  # newest version in the store (a re-created object)
    # The channel's committed versions, when some are missing from status (a re-created object).
    store_versions: tuple[str, ...] = ()
    # A retrain waiting for its debounce or cooldown starts its Job this much earlier;
    # the Job waits for the end itself (settings.job_lead_seconds).
    job_lead: timedelta = timedelta(0)


@dataclass(frozen=True)
class StartJob:
    name: str
    version: str
    trigger: Trigger
    not_before: datetime | None = None  # the trainer reads the manifest from then on


class Reason(StrEnum):
    """Reasons of the Events a plan posts (and the webhooks some of them become)."""

    QUEUED = "Queued"
    TRAINING_STARTED = "TrainingStarted"
    TRAINING_SUCCEEDED = "TrainingSucceeded"
    TRAINING_FAILED = "TrainingFailed"
    MODEL_REJECTED = "ModelRejected"
    TRAINING_CANCELLED = "TrainingCancelled"
    TRAINING_RESTARTED = "TrainingRestarted"  # a change came before the Job's wait ended
    VERSION_IMPORTED = "VersionImported"
    VERSIONS_FOUND = "VersionsFound"
    VERSION_SERVED = "VersionServed"
    VERSION_PINNED = "VersionPinned"
    INVALID_SPEC = "InvalidSpec"


class Outcome(StrEnum):
    """How a finished run ended (the `result` label of the training metrics)."""

    SUCCEEDED = "succeeded"
    REJECTED = "rejected"  # trained, but the quality gate kept it from serving
    FAILED = "failed"


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: Reason
    message: str


@dataclass
class Plan:
    status: ChannelModelStatus
    start_job: StartJob | None = None
    delete_versions: list[str] = field(default_factory=list)
    serve_version: str | None = None  # write the store's serving pointer
    finished_job: JobRef | None = None  # the Job this plan saw finish
    outcome: Outcome | None = None  # how finished_job's run ended
    # Delete this Job: its run is discarded (spec.suspend, or a change before its wait ended).
    cancel_job: JobRef | None = None
    events: list[Event] = field(default_factory=list)
    # The next time this channel must be planned again (a debounce, cooldown or
    # schedule deadline), None when only a change to the object can matter.
    wake_at: datetime | None = None
