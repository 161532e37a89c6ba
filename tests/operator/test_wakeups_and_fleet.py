"""The pieces of event-driven planning on their own: a channel's sleep and its
wake-ups (wakeups.py), the fleet's queue and cap read from the indexes (fleet.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from channelmodel.fleet import SEED_HORIZON, FleetIndex, QueueEntry, queue_entry
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


def test_the_queue_keeps_only_queued_channels() -> None:
    assert queue_entry({}) is None
    assert queue_entry({"trainingStatus": "Succeeded"}) is None
    entry = queue_entry(_queued(T0, T0 + timedelta(seconds=5)))
    assert entry == QueueEntry(queued_at=T0, ready_at=T0 + timedelta(seconds=5), waiting=True)
    blocked = queue_entry(_queued(T0, T0, reason="Blocked"))
    suspended = queue_entry(_queued(T0, T0, reason="Suspended"))
    assert blocked is not None and not blocked.waiting
    assert suspended is not None and not suspended.waiting


def _channel(
    name: str, status: dict[str, Any] | None = None, channel_id: str = ""
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "creationTimestamp": f"2026-12-01T08:00:{len(name):02d}Z",
        },
        "spec": {"channelId": channel_id or name},
        "status": status or {},
    }


def _job(name: str, done: bool = False, suspend: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Complete", "status": "True"}] if done else []
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "labels": {"ml.dukarun.io/channel-model": "x"},
        },
        "spec": {"suspend": suspend},
        "status": {"conditions": conditions},
    }


def _fleet(**queued: tuple[int, int, bool]) -> FleetIndex:
    """name -> (queued at T0 + s, ready at T0 + s, waiting)."""
    fleet = FleetIndex()
    for name, (q, r, waiting) in queued.items():
        status = _queued(
            T0 + timedelta(seconds=q), T0 + timedelta(seconds=r), "Queued" if waiting else "Blocked"
        )
        fleet.channel_seen(("ns", name), _channel(name, status))
    return fleet


@pytest.mark.parametrize(
    ("cap", "running", "may_start"),
    [(2, 0, False), (3, 0, True), (3, 1, False), (1, 0, False)],
)
def test_a_channel_starts_only_when_the_ready_channels_ahead_leave_a_slot(
    cap: int, running: int, may_start: bool
) -> None:
    fleet = _fleet(
        oldest=(-9, 0, True),  # ahead and ready
        old=(0, 0, True),  # ahead and ready
        older_blocked=(-5, 0, False),  # holds no place in line
        old_not_ready=(1, 999, True),  # ahead, but its debounce runs
        mine=(2, 2, True),
        newer=(3, 3, True),
    )
    for i in range(running):
        fleet.job_seen(("ns", f"job-{i}"), _job(f"job-{i}"))
    now = T0 + timedelta(seconds=10)
    view = fleet.fleet_view(cap, ("ns", "mine"), T0 + timedelta(seconds=2), now)
    assert view.running == running
    assert view.may_start is may_start


def test_a_freed_slot_goes_to_the_oldest_ready_waiting_channels() -> None:
    fleet = _fleet(
        c=(3, 3, True), a=(1, 1, True), blocked=(0, 0, False), later=(2, 99, True), b=(2, 2, True)
    )
    fleet.job_seen(("ns", "job-a"), _job("job-a"))
    now = T0 + timedelta(seconds=10)
    assert fleet.next_in_line(3, now) == [("ns", "a"), ("ns", "b")]
    fleet.job_seen(("ns", "job-b"), _job("job-b"))
    fleet.job_seen(("ns", "job-c"), _job("job-c", suspend=True))  # waiting for Kueue counts
    assert fleet.next_in_line(3, now) == []  # no slot
    fleet.job_seen(("ns", "job-a"), _job("job-a", done=True))
    assert fleet.next_in_line(3, now) == [("ns", "a")]
    fleet.channel_seen(("ns", "a"), _channel("a", {"trainingStatus": "Training"}))  # it started
    assert fleet.next_in_line(3, now) == [("ns", "b")]


def test_a_job_created_a_moment_ago_holds_its_slot_until_the_watch_shows_it() -> None:
    fleet = _fleet(a=(1, 1, True))
    fleet.started(("ns", "job-new"))
    assert fleet.next_in_line(1, T0 + timedelta(seconds=10)) == []
    fleet.job_seen(("ns", "job-new"), _job("job-new"))  # counted once, not twice
    assert fleet.running_trainings() == 1
    fleet.job_seen(("ns", "job-new"), _job("job-new", done=True))
    assert fleet.running_trainings() == 0


def test_the_start_up_list_counts_until_the_watch_confirms_or_time_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = FleetIndex()
    fleet.seed("channel", [_channel("a", channel_id="shop"), _channel("gone", channel_id="shop")])
    fleet.seed("job", [_job("running"), _job("deleted-meanwhile"), _job("finished", done=True)])
    fleet.seed("pod", [])
    assert fleet.running_trainings() == 2  # before kopf's watch: the cap holds at once
    assert [name for _, _, name in sorted(fleet.owners("shop"))] == ["a", "gone"]
    fleet.job_seen(("ns", "running"), _job("running"))  # the watch confirms these
    fleet.channel_seen(("ns", "a"), _channel("a", channel_id="shop"))
    later = time.monotonic() + SEED_HORIZON + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert fleet.running_trainings() == 1  # the unconfirmed Job was deleted in between
    assert [name for _, _, name in fleet.owners("shop")] == ["a"]


def test_claims_follow_a_changed_channel_id_and_a_deletion() -> None:
    fleet = FleetIndex()
    fleet.channel_seen(("ns", "a"), _channel("a", channel_id="one"))
    fleet.channel_seen(("ns", "a"), _channel("a", channel_id="two"))
    assert fleet.owners("one") == [] and len(fleet.owners("two")) == 1
    fleet.channel_seen(("ns", "a"), _channel("a", channel_id="two"), deleted=True)
    assert fleet.owners("two") == [] and fleet.claims == {}


def test_an_unschedulable_pod_is_known_by_its_job() -> None:
    fleet = FleetIndex()
    pod = {
        "metadata": {"namespace": "ns", "labels": {"batch.kubernetes.io/job-name": "j"}},
        "status": {"conditions": [{"type": "PodScheduled", "status": "False",
                                   "reason": "Unschedulable", "message": "0/2 nodes"}]},
    }  # fmt: skip
    fleet.pod_seen(pod)
    assert fleet.unschedulable[("ns", "j")]
    fleet.pod_seen(pod, deleted=True)
    assert ("ns", "j") not in fleet.unschedulable
