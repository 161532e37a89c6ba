"""The pieces of event-driven planning on their own: the deadline heap
(workqueue.py), the channels' wake-ups and workers (wakeups.py), the fleet's
queue and cap read from the indexes (fleet.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from channelmodel.fleet import SEED_HORIZON, FleetIndex, QueueEntry, queue_entry
from channelmodel.wakeups import CHANGE_COALESCE_SECONDS, Channels, Workers
from channelmodel.workqueue import FIRST, ReconcileQueue

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class FakeTime:
    """A loop clock the test moves: the queue's order and deadlines without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _queue() -> tuple[ReconcileQueue[str], FakeTime]:
    clock = FakeTime()
    return ReconcileQueue(clock), clock


async def _next(queue: ReconcileQueue[str]) -> str | None:
    """The key due now, without waiting (None: nothing due)."""
    try:
        return await asyncio.wait_for(queue.get(), timeout=0.05)
    except TimeoutError:
        return None


async def test_keys_come_out_when_due_in_deadline_order() -> None:
    queue, clock = _queue()
    queue.add("late", clock.now + 60)
    queue.add("soon", clock.now + 5)
    queue.add("now")
    assert await _next(queue) == "now"
    assert await _next(queue) is None  # nothing else is due yet
    clock.now += 5
    assert await _next(queue) == "soon"
    clock.now += 3600
    assert await _next(queue) == "late"


async def test_the_earlier_time_wins_and_the_heap_stays_the_fleet_size() -> None:
    queue, clock = _queue()
    queue.add("shop-1", clock.now + 3600)  # a far deadline (the next cron fire)
    for second in range(500):  # then a storm of changes, each due a moment later
        queue.add("shop-1", clock.now + 1 + second / 1000)
        queue.add("shop-1", clock.now + 3600)  # a later time does not postpone it
    assert len(queue) == 1 and queue.due_at("shop-1") == clock.now + 1
    assert len(queue._heap) <= 2 * len(queue) + 65  # outdated entries are compacted away
    clock.now += 1
    assert await _next(queue) == "shop-1"
    queue.done("shop-1")
    clock.now += 3600
    assert await _next(queue) is None  # its outdated entries do not plan it again


async def test_a_first_key_goes_ahead_of_a_backlog_of_due_keys_in_the_order_added() -> None:
    queue, clock = _queue()
    for i in range(3):  # a backlog: due a while ago, no worker free yet
        queue.add(f"echo-{i}", clock.now - 2 + i)
    queue.add("freed-slot-a", FIRST)
    queue.add("freed-slot-b", FIRST)
    queue.add("echo-0", clock.now)  # a later time does not move a due key back
    order = [await _next(queue) for _ in range(5)]
    assert order == ["freed-slot-a", "freed-slot-b", "echo-0", "echo-1", "echo-2"]


async def test_a_key_added_while_it_plans_plans_again_after_and_never_twice_at_once() -> None:
    queue, clock = _queue()
    queue.add("shop-1")
    assert await _next(queue) == "shop-1"
    queue.add("shop-1")  # its Job changed while it planned
    queue.add("shop-1", clock.now + 60)
    assert await _next(queue) is None  # not handed to a second worker meanwhile
    queue.done("shop-1")
    assert await _next(queue) == "shop-1"  # the earlier of the two


async def test_a_far_deadline_wakes_a_waiting_worker_when_due_without_polling() -> None:
    queue: ReconcileQueue[str] = ReconcileQueue()  # the real loop clock
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    queue.add("shop-1", started + 0.3)
    assert await asyncio.wait_for(getter, timeout=5) == "shop-1"
    waited = asyncio.get_running_loop().time() - started
    assert 0.3 <= waited < 0.3 + CHANGE_COALESCE_SECONDS  # at the deadline, not a tick later


async def test_a_forgotten_key_and_a_closed_queue_hand_out_nothing() -> None:
    queue, _ = _queue()
    queue.add("gone")
    queue.forget("gone")
    assert await _next(queue) is None and len(queue) == 0
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.close()
    assert await asyncio.wait_for(getter, timeout=5) is None


def _body(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "channelmodel.io/v1alpha1",
        "kind": "ChannelModel",
        "metadata": {"name": name, "namespace": "shops", **metadata},
        "spec": {"channelId": name},
        "status": {},
    }


async def test_changes_of_the_object_are_coalesced_after_the_last_plan() -> None:
    queue, clock = _queue()
    channels = Channels(queue)
    key = ("shops", "shop-1")
    channels.seen(key, _body("shop-1"))  # first sight: planned at once
    assert await _next(queue) == key
    channels.planning(key)
    queue.done(key)
    for _ in range(5):  # a storm of changes (or the echo of our own status write)
        clock.now += 0.1
        channels.seen(key, _body("shop-1"))
    assert await _next(queue) is None
    clock.now += CHANGE_COALESCE_SECONDS
    assert await _next(queue) == key  # one plan for the storm
    channels.wake(key)  # a freed slot or its Job is never held back
    queue.done(key)
    assert await _next(queue) == key


async def test_the_cache_keeps_what_a_plan_reads_and_drops_the_bulk() -> None:
    channels = Channels(_queue()[0])
    key = ("shops", "shop-1")
    body = _body(
        "shop-1",
        uid="u-1",
        managedFields=[{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        annotations={
            "channelmodel.io/inventory-changed-at": "2026-12-01T08:00:00Z",
            "kubectl.kubernetes.io/last-applied-configuration": "{...a copy...}",
            "kopf.zalando.org/last-handled-configuration": "{...a copy...}",
        },
    )
    channels.seen(key, body)
    cached = channels.body(key)
    assert cached is not None
    assert cached["metadata"]["uid"] == "u-1" and cached["spec"] == {"channelId": "shop-1"}
    assert "managedFields" not in cached["metadata"]
    assert cached["metadata"]["annotations"] == {
        "channelmodel.io/inventory-changed-at": "2026-12-01T08:00:00Z"
    }
    assert "managedFields" in body["metadata"]  # kopf's body is not changed


async def test_a_channel_being_deleted_or_gone_is_never_planned() -> None:
    queue, _ = _queue()
    channels = Channels(queue)
    key = ("shops", "shop-1")
    channels.seen(key, _body("shop-1"))
    channels.seen(key, _body("shop-1", deletionTimestamp="2026-12-01T08:00:00Z"))
    assert channels.body(key) is None and await _next(queue) is None
    channels.wake(key)  # its Job's deletion event arrives later
    assert await _next(queue) is None and len(channels) == 0


async def test_workers_plan_at_the_deadline_the_plan_named_and_retry_a_failed_plan() -> None:
    channels = Channels()
    workers = Workers(channels)
    planned: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()

    async def plan(key: tuple[str, str]) -> float | None:
        planned.append((key[1], loop.time()))
        if key[1] == "boom" and len([p for p in planned if p[0] == "boom"]) == 1:
            raise RuntimeError("the API server went away")
        return 0.2 if len([p for p in planned if p[0] == key[1]]) == 1 else None

    channels.seen(("shops", "a"), _body("a"))
    channels.seen(("shops", "boom"), _body("boom"))
    workers.start(2, plan)
    try:
        await asyncio.sleep(0.6)
        a_times = [t for name, t in planned if name == "a"]
        assert len(a_times) == 2 and a_times[1] - a_times[0] >= 0.2  # its deadline, once
        assert [name for name, _ in planned].count("boom") == 1  # retried only after backoff
        assert channels.queue.due_at(("shops", "boom")) is not None
    finally:
        await workers.stop(grace=1)
    assert all(task.done() for task in workers._tasks) and not workers._tasks


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
    mine = T0 + timedelta(seconds=2)
    view = fleet.fleet_view(cap, ("ns", "mine"), mine, mine, now)
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


def test_the_line_follows_readiness_not_the_order_the_operator_queued_in() -> None:
    # Planned late under load, queued first: `late` changed later (ready at 9 s) than
    # `early` (ready at 6 s), whose first plan came after it.
    fleet = _fleet(late=(1, 9, True), early=(3, 6, True))
    assert fleet.next_in_line(1, T0 + timedelta(seconds=10)) == [("ns", "early")]
    view = fleet.fleet_view(1, ("ns", "late"), T0 + timedelta(seconds=1), T0 + timedelta(seconds=9), T0 + timedelta(seconds=10))  # fmt: skip
    assert not view.may_start and view.queued_ahead == 1


def test_a_backdated_change_does_not_jump_the_line() -> None:
    # `sly`'s backend wrote a change time an hour old: ready "before" everyone, but it
    # stands where the operator first queued it.
    fleet = _fleet(honest=(1, 2, True), sly=(5, -3600, True))
    assert fleet.next_in_line(1, T0 + timedelta(seconds=10)) == [("ns", "honest")]


def test_a_start_that_did_not_happen_gives_its_slot_back() -> None:
    fleet = _fleet(a=(1, 1, True), b=(2, 2, True))
    now = T0 + timedelta(seconds=10)
    fleet.started(("ns", "a-train-1"))  # granted while its Secret is checked
    assert fleet.next_in_line(1, now) == []
    assert fleet.start_failed(("ns", "a-train-1"))  # blocked after all
    assert fleet.next_in_line(1, now) == [("ns", "a")] and fleet.running_trainings() == 0
    fleet.started(("ns", "b-train-1"))
    fleet.job_seen(("ns", "b-train-1"), _job("b-train-1"))  # created, and seen
    assert not fleet.start_failed(("ns", "b-train-1"))  # a running Job keeps its slot
    assert fleet.running_trainings() == 1


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
