"""A tiny driver that feeds planner decisions back into status, with a fake clock.

It plays the handler's part (apply the plan, observe Jobs) so tests can walk
through minutes of debounce, cooldown and schedules in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from channelmodel.api import annotations as ann
from channelmodel.api.job_result import JobResult
from channelmodel.api.models import ChannelModelSpec, ChannelModelStatus
from channelmodel.plan_types import Fleet, JobObservation, JobPhase, Plan, PlanInput, StartJob
from channelmodel.planner import plan

T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def base_url(channel: str, version: str) -> str:
    return f"http://models.test/assets/ml-models/{channel}/v{version}/"


def make_spec(**overrides: Any) -> ChannelModelSpec:
    raw: dict[str, Any] = {
        "channelId": "shop-1",
        "manifest": {"url": "http://backend.test/manifest"},
    }
    raw.update(overrides)
    return ChannelModelSpec.model_validate(raw)


@dataclass
class Sim:
    spec: ChannelModelSpec = field(default_factory=make_spec)
    now: datetime = T0
    status: ChannelModelStatus = field(default_factory=ChannelModelStatus)
    annotations: dict[str, str] = field(default_factory=dict)
    job_phase: JobPhase | None = None
    job_result: dict[str, Any] | JobResult | None = None
    fleet: Fleet = field(default_factory=lambda: Fleet(cap=10))
    started: list[tuple[datetime, StartJob]] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    job_lead: timedelta = timedelta(0)

    def tick(self, blocked: str | None = None) -> Plan:
        job = None
        if self.status.currentJob is not None:
            result = (
                JobResult.model_validate(self.job_result)
                if isinstance(self.job_result, dict)
                else self.job_result
            )
            job = JobObservation(phase=self.job_phase or JobPhase.RUNNING, result=result)
        p = plan(
            PlanInput(
                name="shop-1",
                spec=self.spec,
                status=self.status,
                annotations=self.annotations,
                now=self.now,
                fleet=self.fleet,
                model_base_url=base_url,
                generation=1,
                job=job,
                blocked=blocked,
                job_lead=self.job_lead,
            )
        )
        self.status = p.status
        if p.start_job:
            self.started.append((self.now, p.start_job))
            self.job_phase, self.job_result = JobPhase.RUNNING, None
        self.plans.append(p)
        return p

    def advance(self, seconds: float) -> None:
        """Move the clock as the operator lives it: plan now (the watch event that
        came before), then only at the deadlines the plans name (`Plan.wake_at`)."""
        end = self.now + timedelta(seconds=seconds)
        woken = self.tick()
        while woken.wake_at is not None and woken.wake_at <= end:
            assert woken.wake_at > self.now, "a deadline in the past would spin"
            self.now = woken.wake_at
            woken = self.tick()
        self.now = end

    def finish(self, ok: bool = True, accuracy: float = 0.9, error: str = "boom") -> Plan:
        if ok:
            self.job_phase = JobPhase.SUCCEEDED
            self.job_result = {
                "ok": True,
                "metrics": {"accuracy": accuracy, "classes": 3, "images": 30},
            }
        else:
            self.job_phase = JobPhase.FAILED
            self.job_result = {"ok": False, "error": error}
        return self.tick()

    def change(self, kind: str = "productAdded", at: datetime | None = None) -> None:
        self.annotations[ann.INVENTORY_CHANGED_AT] = (at or self.now).isoformat()
        self.annotations[ann.INVENTORY_CHANGE] = kind

    def request_retrain(self) -> None:
        self.annotations[ann.RETRAIN_REQUESTED_AT] = self.now.isoformat()

    def trained_once(self) -> None:
        """Run the initial training to success."""
        self.tick()
        assert self.started, "initial training did not start"
        self.now += timedelta(seconds=10)
        self.finish()
