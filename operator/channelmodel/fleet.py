"""The fleet's training queue and the concurrency cap, read from kopf indexes.

Two indexes feed it: `training_jobs` holds only the Jobs that run (or wait for
admission), `channel_queue` only the channels queued for training, each with
its times already parsed. Both are filled from watches before any handler runs
(kopf waits for the initial listing), so the cap holds from the first plan of a
restarted or newly elected operator. Nothing here makes an API request, and an
idle fleet (nothing queued, nothing running) costs nothing to look at.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channelmodel import conditions as cond
from channelmodel.api.models import TrainingStatus
from channelmodel.metrics import QUEUE_LENGTH, TRAININGS_RUNNING
from channelmodel.plan_types import Fleet
from channelmodel.rfc3339 import parse_time_or_none as parse_time
from channelmodel.runtime import Runtime

Key = tuple[str, str]  # (namespace, name)

# A Job this process created is counted until the Job index shows it (or this long).
RECENT_START_HORIZON = 30.0


@dataclass(frozen=True, order=True)
class QueueEntry:
    """A queued channel as the `channel_queue` index holds it (ordered: oldest first)."""

    queued_at: datetime
    ready_at: datetime
    waiting: bool  # False while blocked or suspended: it holds no place in line


def queue_entry(status: Mapping[str, Any]) -> QueueEntry | None:
    """What the `channel_queue` index keeps of a ChannelModel's raw status (None: not queued)."""
    queued_at = parse_time(status.get("queuedAt"))
    if status.get("trainingStatus") != TrainingStatus.QUEUED.value or queued_at is None:
        return None
    training: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or () if c.get("type") == cond.TRAINING), {}
    )
    return QueueEntry(
        queued_at=queued_at,
        ready_at=parse_time(status.get("trainAfter")) or queued_at,
        waiting=training.get("reason") not in ("Blocked", "Suspended"),
    )


def _entries(channel_queue: Mapping[Key, Iterable[QueueEntry]]) -> Iterable[tuple[Key, QueueEntry]]:
    for key, entries in channel_queue.items():
        for entry in entries:
            yield key, entry


def running_trainings(rt: Runtime, training_jobs: Mapping[Key, Any]) -> int:
    """Training Jobs in flight: the index, plus Jobs created a moment ago it lacks yet."""
    horizon = time.monotonic() - RECENT_START_HORIZON
    for key, started in list(rt.recent_starts.items()):
        if key in training_jobs or started < horizon:
            del rt.recent_starts[key]
    return len(training_jobs) + len(rt.recent_starts)


def fleet_view(
    rt: Runtime,
    key: Key,
    queued_at: datetime | None,
    now: datetime,
    training_jobs: Mapping[Key, Any],
    channel_queue: Mapping[Key, Iterable[QueueEntry]],
) -> Fleet:
    """The cap as seen by channel `key`: Jobs running, and ready channels ahead of it."""
    cap = rt.settings.max_concurrent_trainings
    running = running_trainings(rt, training_jobs)
    TRAININGS_RUNNING.set(running)
    QUEUE_LENGTH.set(len(channel_queue))
    free = cap - running
    if free <= 0:
        return Fleet(cap=cap, running=running)  # no slot: who is ahead does not matter
    mine = (queued_at or now, key)
    ahead = 0
    for other, entry in _entries(channel_queue):
        if (
            other != key
            and entry.waiting
            and entry.ready_at <= now
            and (entry.queued_at, other) < mine
        ):
            ahead += 1
            if ahead >= free:
                break  # enough to know this channel may not start
    return Fleet(cap=cap, running=running, queued_ahead=ahead)


def next_in_line(
    rt: Runtime,
    now: datetime,
    training_jobs: Mapping[Key, Any],
    channel_queue: Mapping[Key, Iterable[QueueEntry]],
) -> list[Key]:
    """The oldest ready channels that the free training slots can take, oldest first."""
    free = rt.settings.max_concurrent_trainings - running_trainings(rt, training_jobs)
    if free <= 0 or not channel_queue:
        return []
    ready = (
        (entry.queued_at, key)
        for key, entry in _entries(channel_queue)
        if entry.waiting and entry.ready_at <= now
    )
    return [key for _, key in heapq.nsmallest(free, ready)]
