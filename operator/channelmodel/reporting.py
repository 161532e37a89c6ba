"""What a plan tells the outside world besides Kubernetes: metrics and webhooks."""

from __future__ import annotations

from typing import Any

import kopf

from channelmodel.api.models import ChannelModelSpec
from channelmodel.notify import EVENT_TYPES, Delivery
from channelmodel.observe import usable_secret_value
from channelmodel.plan_types import Outcome, Plan
from channelmodel.rfc3339 import format_time
from channelmodel.runtime import Runtime


def record_telemetry(
    rt: Runtime, key: tuple[str, str], spec: ChannelModelSpec, decision: Plan
) -> None:
    now = rt.clock()
    status = decision.status
    finished = decision.finished_job
    if finished is not None:
        outcome = decision.outcome or Outcome.FAILED
        rt.telemetry.training_finished(key, outcome, (now - finished.startedAt).total_seconds())
    if decision.start_job:
        rt.telemetry.training_started(key, decision.start_job.trigger.value)
    rt.telemetry.serving(key, spec.channelId, status.modelVersion)
    rt.telemetry.last_success(key, status.lastTrained.timestamp() if status.lastTrained else None)


async def notify(
    rt: Runtime,
    namespace: str,
    name: str,
    spec: ChannelModelSpec,
    decision: Plan,
    logger: kopf.Logger,
) -> None:
    assert spec.notify is not None
    secret = None
    if spec.notify.secretRef:
        ref = spec.notify.secretRef
        value = await usable_secret_value(rt, namespace, name, ref)
        if isinstance(value, str):  # fail closed: never send unsigned what should be signed
            logger.warning("webhook not sent: %s", value)
            return
        secret = value
    status = decision.status
    for event in decision.events:
        kind = EVENT_TYPES.get(event.reason)
        if kind is None:
            continue
        payload: dict[str, Any] = {
            "type": kind,
            "channelId": spec.channelId,
            "namespace": namespace,
            "name": name,
            "message": event.message,
            "at": format_time(rt.clock(), "auto"),
            "modelVersion": status.modelVersion,
            "modelBaseUrl": status.modelBaseUrl,
        }
        if decision.start_job and kind == "training.started":
            payload["version"] = decision.start_job.version
            payload["trigger"] = decision.start_job.trigger.value
        elif kind in ("training.succeeded", "training.rejected", "training.failed"):
            payload["version"] = decision.finished_job.version if decision.finished_job else None
            payload["metrics"] = (
                status.lastRun.model_dump(exclude_none=True) if status.lastRun else None
            )
            payload["error"] = status.lastError
        rt.notifier.submit(Delivery(url=spec.notify.webhookUrl, payload=payload, secret=secret))
