"""The pieces of event-driven planning on their own: a channel's sleep and its
wake-ups (wakeups.py), the fleet's queue and cap read from the indexes (fleet.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from channelmodel.fleet import QueueEntry, fleet_view, next_in_line, queue_entry
from channelmodel.runtime import Runtime
from channelmodel.settings import OperatorSettings
from channelmodel.wakeups import CHANGE_COALESCE_SECONDS, Wakeups

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


async def _sleep_in_background(wakeups: Wakeups, seconds: float | None) -> asyncio.Task[float]:
    loop = asyncio.get_running_loop()
    sleeper = wakeups.register("shop-1")
    planned = loop.time()

    async def run() -> float:
        await sleeper.sleep(seconds, planned_at=planned)
        return loop.time() - planned

    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)
    return task


async def test_sleep_ends_at_the_deadline_when_nothing_wakes_it() -> None:
    loop = asyncio.get_running_loop()
    sleeper = Wakeups().register("shop-1")
    planned = loop.time()
    await sleeper.sleep(0.3, planned_at=planned)
    assert loop.time() - planned >= 0.3  # a timeout never fires early


async def test_an_urgent_wake_ends_a_long_sleep_at_once() -> None:
    wakeups = Wakeups()
    task = await _sleep_in_background(wakeups, 3600)
    assert not task.done()
    assert wakeups.wake("shop-1")
    slept = await asyncio.wait_for(task, timeout=5)  # not an hour
    assert slept < CHANGE_COALESCE_SECONDS  # not held back like a change of the object


async def test_changes_of_the_object_are_coalesced_after_the_last_plan() -> None:
    wakeups = Wakeups()
    task = await _sleep_in_background(wakeups, None)
    for _ in range(5):  # a storm of changes
        wakeups.wake("shop-1", urgent=False)
        await asyncio.sleep(0.05)
    slept = await asyncio.wait_for(task, timeout=5)
    assert slept >= CHANGE_COALESCE_SECONDS  # one plan for the storm, a second after the last


async def test_a_change_while_coalescing_does_not_hide_an_urgent_wake() -> None:
    wakeups = Wakeups()
    task = await _sleep_in_background(wakeups, None)
    wakeups.wake("shop-1", urgent=False)
    await asyncio.sleep(0.05)
    wakeups.wake("shop-1")  # a freed slot
    slept = await asyncio.wait_for(task, timeout=5)
    assert slept < CHANGE_COALESCE_SECONDS


async def test_a_wake_during_the_plan_is_not_lost() -> None:
    wakeups = Wakeups()
    sleeper = wakeups.register("shop-1")
    wakeups.wake("shop-1")  # arrives while the loop plans, before it sleeps
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(sleeper.sleep(3600, planned_at=loop.time()), timeout=5)


def test_waking_a_channel_without_a_loop_is_a_no_op() -> None:
    wakeups = Wakeups()
    assert not wakeups.wake("gone")
    sleeper = wakeups.register("shop-1")
    wakeups.unregister("shop-1", sleeper)
    assert not wakeups.wake("shop-1") and len(wakeups) == 0


# --- the fleet -----------------------------------------------------------------


def _queued(queued_at: datetime, train_after: datetime, reason: str = "Queued") -> dict[str, Any]:
    return {
        "trainingStatus": "Queued",
        "queuedAt": queued_at.isoformat(),
        "trainAfter": train_after.isoformat(),
        "conditions": [{"type": "Training", "status": "False", "reason": reason}],
    }


def test_the_queue_index_keeps_only_queued_channels() -> None:
    assert queue_entry({}) is None
    assert queue_entry({"trainingStatus": "Succeeded"}) is None
    entry = queue_entry(_queued(T0, T0 + timedelta(seconds=5)))
    assert entry == QueueEntry(queued_at=T0, ready_at=T0 + timedelta(seconds=5), waiting=True)
    blocked = queue_entry(_queued(T0, T0, reason="Blocked"))
    suspended = queue_entry(_queued(T0, T0, reason="Suspended"))
    assert blocked is not None and not blocked.waiting
    assert suspended is not None and not suspended.waiting


def _runtime(cap: int) -> Runtime:
    settings = OperatorSettings(max_concurrent_trainings=cap)
    return Runtime(settings=settings, store=None, kube=None)  # type: ignore[arg-type]


def _queue(**entries: tuple[int, int, bool]) -> dict[tuple[str, str], list[QueueEntry]]:
    """name -> (queued at T0 + s, ready at T0 + s, waiting)."""
    return {
        ("ns", name): [QueueEntry(T0 + timedelta(seconds=q), T0 + timedelta(seconds=r), waiting)]
        for name, (q, r, waiting) in entries.items()
    }


@pytest.mark.parametrize(
    ("cap", "running", "may_start"),
    [(2, 0, False), (3, 0, True), (3, 1, False), (1, 0, False)],
)
def test_a_channel_starts_only_when_the_ready_channels_ahead_leave_a_slot(
    cap: int, running: int, may_start: bool
) -> None:
    rt = _runtime(cap)
    jobs = {("ns", f"job-{i}"): [False] for i in range(running)}
    queue = _queue(
        old=(0, 0, True),  # ahead and ready
        older_blocked=(-5, 0, False),  # holds no place in line
        old_not_ready=(1, 999, True),  # ahead, but its debounce runs
        mine=(2, 2, True),
        newer=(3, 3, True),
    )
    queue[("ns", "oldest")] = [QueueEntry(T0 - timedelta(seconds=9), T0, True)]
    now = T0 + timedelta(seconds=10)
    fleet = fleet_view(rt, ("ns", "mine"), T0 + timedelta(seconds=2), now, jobs, queue)
    assert fleet.running == running
    assert fleet.may_start is may_start


def test_a_freed_slot_goes_to_the_oldest_ready_waiting_channels() -> None:
    rt = _runtime(3)
    jobs = {("ns", "job-a"): [False]}
    queue = _queue(c=(3, 3, True), a=(1, 1, True), blocked=(0, 0, False), later=(2, 99, True))
    queue |= _queue(b=(2, 2, True))
    assert next_in_line(rt, T0 + timedelta(seconds=10), jobs, queue) == [("ns", "a"), ("ns", "b")]
    jobs |= {("ns", "job-b"): [False], ("ns", "job-c"): [False]}
    assert next_in_line(rt, T0 + timedelta(seconds=10), jobs, queue) == []  # no slot


def test_a_job_created_a_moment_ago_holds_its_slot_until_the_index_shows_it() -> None:
    rt = _runtime(1)
    rt.recent_starts[("ns", "job-new")] = time.monotonic()
    queue = _queue(a=(1, 1, True))
    assert next_in_line(rt, T0 + timedelta(seconds=10), {}, queue) == []
    # the index shows it: counted once, not twice
    assert fleet_view(rt, ("ns", "a"), T0, T0, {("ns", "job-new"): [False]}, queue).running == 1
