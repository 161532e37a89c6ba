"""The fleet as the operator sees it: running training Jobs, unschedulable Pods,
the queue of channels waiting to train, and which ChannelModels claim each
channelId; and the concurrency cap read from them.

One in-memory index (`FleetIndex`), the way a client-go informer keeps its
cache: filled by one list of each kind when the operator starts (before kopf
starts any handler, so the cap holds from the first plan of a restarted or
newly elected operator), then kept current by the watch events kopf delivers
(handlers.py). kopf's own indexes would do the same, but make every object of an
indexed kind wait for every other at start-up (a per-object toggle in one
shared condition): 12 s for 1,000 ChannelModels, quadratic beyond
(docs/decisions/0014-event-driven-planning.md).

An entry from the start-up list that no watch event confirms within
SEED_HORIZON seconds belonged to an object deleted between the list and kopf's
own listing, and is dropped. Nothing here makes an API request after start-up,
and an idle fleet (nothing queued, nothing running) costs nothing to look at.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channelmodel import conditions as cond
from channelmodel.api.models import TrainingStatus
from channelmodel.jobs import CHANNEL_MODEL_LABEL, JOB_NAME_LABEL, job_phase, unschedulable_reason
from channelmodel.metrics import QUEUE_LENGTH, TRAININGS_RUNNING
from channelmodel.plan_types import Fleet, JobPhase
from channelmodel.rfc3339 import parse_time_or_none

Key = tuple[str, str]  # (namespace, name)

# A Job this process created is counted until the watch shows it (or this long).
RECENT_START_HORIZON = 30.0
# An entry of the start-up list not confirmed by the watch by then is gone.
SEED_HORIZON = 60.0


@dataclass(frozen=True)
class QueueEntry:
    """A queued channel."""

    queued_at: datetime
    ready_at: datetime
    waiting: bool  # False while blocked or suspended: it holds no place in line

    @property
    def place(self) -> datetime:
        return place_in_line(self.queued_at, self.ready_at)


def place_in_line(queued_at: datetime, ready_at: datetime) -> datetime:
    """Where a ready channel stands in the fleet's line: first ready, first served.

    Readiness comes from the backend's change time (plus debounce), so the line
    follows the order of the changes, not the order the operator happened to plan
    them in under load; never earlier than the operator first queued it, so a
    backdated change annotation cannot jump the line of other channels.
    """
    return max(queued_at, ready_at)


def queue_entry(status: Mapping[str, Any]) -> QueueEntry | None:
    """What the queue keeps of a ChannelModel's raw status (None: not queued)."""
    queued_at = parse_time_or_none(status.get("queuedAt"))
    if status.get("trainingStatus") != TrainingStatus.QUEUED.value or queued_at is None:
        return None
    training: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or () if c.get("type") == cond.TRAINING), {}
    )
    return QueueEntry(
        queued_at=queued_at,
        ready_at=parse_time_or_none(status.get("trainAfter")) or queued_at,
        waiting=training.get("reason") not in ("Blocked", "Suspended"),
    )


@dataclass
class FleetIndex:
    """Running Jobs, unschedulable Pods, queued channels, channelId claims."""

    running: dict[Key, bool] = field(default_factory=dict)  # Job -> suspended
    unschedulable: dict[Key, str] = field(default_factory=dict)  # (namespace, Job) -> why
    queue: dict[Key, QueueEntry] = field(default_factory=dict)
    claims: dict[str, dict[Key, str]] = field(default_factory=dict)  # channelId -> {key: created}
    # Jobs created by this process that the watch has not shown yet, and when.
    recent_starts: dict[Key, float] = field(default_factory=dict)
    # Start-up entries no watch event has confirmed yet, and when they were listed.
    _seeded: set[tuple[str, Key]] = field(default_factory=set)
    _seeded_at: float = 0.0
    _claimed: dict[Key, str] = field(default_factory=dict)  # ChannelModel -> its channelId

    # --- feeding: the start-up list, then every watch event ---------------------------
    def seed(self, kind: str, objects: Iterable[Mapping[str, Any]]) -> None:
        """A page of the start-up list ("channel", "job" or "pod"); the watch confirms it."""
        if not self._seeded_at:
            self._seeded_at = time.monotonic()
        for obj in objects:
            if kind == "pod":
                self.pod_seen(obj)
                continue
            key = _key(obj)
            if kind == "channel":
                self.channel_seen(key, obj, confirmed=False)
            else:
                self.job_seen(key, obj, confirmed=False)
            self._seeded.add((kind, key))

    def channel_seen(
        self, key: Key, obj: Mapping[str, Any], deleted: bool = False, confirmed: bool = True
    ) -> None:
        if confirmed:
            self._seeded.discard(("channel", key))
        entry = None if deleted else queue_entry(obj.get("status") or {})
        if entry is None:
            self.queue.pop(key, None)
        else:
            self.queue[key] = entry
        channel_id = (obj.get("spec") or {}).get("channelId")
        previous = self._claimed.pop(key, None)
        if previous is not None:
            self._unclaim(previous, key)
        if not deleted and isinstance(channel_id, str):
            created = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
            self.claims.setdefault(channel_id, {})[key] = created
            self._claimed[key] = channel_id

    def job_seen(
        self, key: Key, obj: Mapping[str, Any], deleted: bool = False, confirmed: bool = True
    ) -> None:
        if confirmed:
            self._seeded.discard(("job", key))
            self.recent_starts.pop(key, None)
        phase, _reason = job_phase(obj)
        if deleted or phase != JobPhase.RUNNING:
            self.running.pop(key, None)
            self.unschedulable.pop(key, None)
        else:
            self.running[key] = bool((obj.get("spec") or {}).get("suspend"))

    def pod_seen(self, obj: Mapping[str, Any], deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        job = (meta.get("labels") or {}).get(JOB_NAME_LABEL)
        if not job:
            return
        key = (str(meta.get("namespace") or "default"), str(job))
        reason = "" if deleted else unschedulable_reason(obj.get("status") or {})
        if reason:
            self.unschedulable[key] = reason
        else:
            self.unschedulable.pop(key, None)

    def started(self, key: Key) -> None:
        """This process starts Job `key`: count it until the watch shows it."""
        self.recent_starts[key] = time.monotonic()

    def start_failed(self, key: Key) -> bool:
        """Job `key` was not started after all (unless the watch has shown it): True when
        that freed its slot."""
        return self.recent_starts.pop(key, None) is not None and key not in self.running

    def _unclaim(self, channel_id: str, key: Key) -> None:
        owners = self.claims.get(channel_id)
        if owners is not None:
            owners.pop(key, None)
            if not owners:
                del self.claims[channel_id]

    def _expire(self) -> None:
        """Drop start-up entries no watch event confirmed: their objects are gone."""
        if not self._seeded or time.monotonic() < self._seeded_at + SEED_HORIZON:
            return
        for kind, key in self._seeded:
            if kind == "job":
                self.running.pop(key, None)
            else:
                self.queue.pop(key, None)
                channel_id = self._claimed.pop(key, None)
                if channel_id is not None:
                    self._unclaim(channel_id, key)
        self._seeded.clear()

    # --- reading ---------------------------------------------------------------------
    def running_trainings(self) -> int:
        """Training Jobs in flight: the watched ones, plus Jobs created a moment ago."""
        self._expire()
        horizon = time.monotonic() - RECENT_START_HORIZON
        for key, started in list(self.recent_starts.items()):
            if key in self.running or started < horizon:
                del self.recent_starts[key]
        return len(self.running) + len(self.recent_starts)

    def owners(self, channel_id: str) -> list[tuple[str, str, str]]:
        """(creationTimestamp, namespace, name) of every ChannelModel claiming `channel_id`."""
        self._expire()
        return [
            (created, ns, name) for (ns, name), created in self.claims.get(channel_id, {}).items()
        ]

    def fleet_view(
        self,
        cap: int,
        key: Key,
        queued_at: datetime | None,
        ready_at: datetime | None,
        now: datetime,
    ) -> Fleet:
        """The cap as seen by channel `key`: Jobs running, and ready channels ahead of it."""
        running = self.running_trainings()
        TRAININGS_RUNNING.set(running)
        QUEUE_LENGTH.set(len(self.queue))
        free = cap - running
        if free <= 0:
            return Fleet(cap=cap, running=running)  # no slot: who is ahead does not matter
        mine = (place_in_line(queued_at or now, ready_at or queued_at or now), key)
        ahead = 0
        for other, entry in self.queue.items():
            if (
                other != key
                and entry.waiting
                and entry.ready_at <= now
                and (entry.place, other) < mine
            ):
                ahead += 1
                if ahead >= free:
                    break  # enough to know this channel may not start
        return Fleet(cap=cap, running=running, queued_ahead=ahead)

    def next_in_line(self, cap: int, now: datetime) -> list[Key]:
        """The oldest ready channels that the free training slots can take, oldest first."""
        free = cap - self.running_trainings()
        if free <= 0 or not self.queue:
            return []
        ready = (
            (entry.place, key)
            for key, entry in self.queue.items()
            if entry.waiting and entry.ready_at <= now
        )
        return [key for _, key in heapq.nsmallest(free, ready)]


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name")))


def owner_of(obj: Mapping[str, Any]) -> Key | None:
    """The ChannelModel a managed Job or Pod belongs to."""
    meta = obj.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(CHANNEL_MODEL_LABEL)
    return (str(meta.get("namespace") or "default"), str(owner)) if owner else None
