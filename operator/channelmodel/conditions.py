"""Conditions in Kubernetes API convention: the transition time moves only when the status does."""

from __future__ import annotations

from datetime import datetime

from channelmodel.api.models import Condition, ConditionStatus

READY = "Ready"
TRAINING = "Training"
LAST_RUN_SUCCEEDED = "LastRunSucceeded"
SPEC_VALID = "SpecValid"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Return the list with `type_` set; other conditions keep their order."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = next((c for c in conditions if c.type == type_), None)
    transition = previous.lastTransitionTime if previous and previous.status == status else now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:32768],
        lastTransitionTime=transition,
        observedGeneration=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type_ else c for c in conditions]


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
