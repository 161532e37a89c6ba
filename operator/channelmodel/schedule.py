"""Cron schedules read in an IANA time zone (DST-correct, via croniter on aware datetimes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter


class ScheduleError(ValueError):
    """The cron expression or time zone is not usable."""


def validate(cron: str, time_zone: str) -> None:
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {time_zone!r}") from exc
    if not croniter.is_valid(cron):
        raise ScheduleError(f"invalid cron expression {cron!r}")


def last_fire_at_or_before(cron: str, time_zone: str, now: datetime) -> datetime:
    """The most recent time the schedule fired, at or before `now` (UTC result)."""
    validate(cron, time_zone)
    # get_prev() is strictly before its start: start one second later to include `now`.
    local_start = (now + timedelta(seconds=1)).astimezone(ZoneInfo(time_zone))
    try:
        fired: datetime = croniter(cron, local_start).get_prev(datetime)
    except CroniterBadCronError as exc:
        raise ScheduleError(str(exc)) from exc
    return fired.astimezone(UTC)


def next_fire_after(cron: str, time_zone: str, now: datetime) -> datetime:
    """The first time the schedule fires strictly after `now` (UTC result)."""
    validate(cron, time_zone)
    try:
        fires: datetime = croniter(cron, now.astimezone(ZoneInfo(time_zone))).get_next(datetime)
    except CroniterBadCronError as exc:
        raise ScheduleError(str(exc)) from exc
    return fires.astimezone(UTC)


def same_wall_clock(a: datetime, b: datetime, time_zone: str) -> bool:
    """True when two instants read the same local time: the repeated hour of a
    DST fall-back, which cron semantics run once, not twice."""
    zone = ZoneInfo(time_zone)
    return a.astimezone(zone).replace(tzinfo=None) == b.astimezone(zone).replace(tzinfo=None)
