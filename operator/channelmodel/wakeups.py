"""Wake-ups: when a channel plans, and who plans it.

The watch handlers (handlers.py) keep each ChannelModel's latest body here and
wake the channel: at once for its Job, its Pod, a freed training slot; a moment
later for a change of its own object (CHANGE_COALESCE_SECONDS, so an annotation
storm or the echo of our own status write costs one plan). A few workers take
due channels from one deadline heap (workqueue.py), plan each from its latest
body and put it back at the deadline its plan named (`Plan.wake_at`). A channel
with nothing to do costs one cached body: no task, no timer, no API request.
See docs/decisions/0014-event-driven-planning.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from channelmodel.workqueue import FIRST, ReconcileQueue

logger = logging.getLogger(__name__)

Key = tuple[str, str]

# A channel's own object changing again and again (an annotation storm from its
# backend, the echo of our status writes) replans it at most this often; a freed
# slot, its Job and its deadlines are not held back.
CHANGE_COALESCE_SECONDS = 1.0
# A plan that raised is tried again after this long (kopf's handler backoff).
ERROR_BACKOFF_SECONDS = 5.0

# Parts of a body no plan reads that can be large: the server-side apply
# bookkeeping, and copies of the object (kubectl's, kopf's diff base).
_UNREAD_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kopf.zalando.org/last-handled-configuration",
)


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a plan reads of a ChannelModel: a fleet keeps 10,000 of these in memory."""
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k not in _UNREAD_ANNOTATIONS}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": meta,
        "spec": body.get("spec"),
        "status": body.get("status"),
    }


class Channels:
    """The ChannelModels seen by the watch: their latest bodies, and when each plans."""

    def __init__(self, queue: ReconcileQueue[Key] | None = None) -> None:
        self.queue: ReconcileQueue[Key] = ReconcileQueue() if queue is None else queue
        self._bodies: dict[Key, dict[str, Any]] = {}
        self._planned_at: dict[Key, float] = {}  # loop time of each channel's last plan

    def seen(self, key: Key, body: Mapping[str, Any]) -> None:
        """Its object changed (or was listed): plan it, coalesced with further changes."""
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            # Being deleted: the cleanup handler has it now; no plan may start a Job.
            self.forget(key)
            return
        self._bodies[key] = slim(body)
        planned_at = self._planned_at.get(key)
        now = self.queue.now()
        self.queue.add(
            key, None if planned_at is None else max(now, planned_at + CHANGE_COALESCE_SECONDS)
        )

    def wake(self, key: Key, *, first: bool = False) -> None:
        """Plan it now (after the plan under way, if one is); `first`: ahead of every
        channel already due (a start into a freed slot)."""
        if key in self._bodies:
            self.queue.add(key, FIRST if first else None)

    def wake_at(self, key: Key, seconds: float) -> None:
        if key in self._bodies:
            self.queue.add(key, self.queue.now() + seconds)

    def forget(self, key: Key) -> None:
        self._bodies.pop(key, None)
        self._planned_at.pop(key, None)
        self.queue.forget(key)

    def body(self, key: Key) -> dict[str, Any] | None:
        """Its latest body, for a plan starting now."""
        return self._bodies.get(key)

    def planning(self, key: Key) -> None:
        self._planned_at[key] = self.queue.now()

    def __len__(self) -> int:
        return len(self._bodies)


Planner = Callable[[Key], Awaitable[float | None]]


class Workers:
    """A few tasks that plan due channels, one plan per channel at a time."""

    def __init__(self, channels: Channels) -> None:
        self.channels = channels
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    def start(self, count: int, plan: Planner) -> None:
        self._tasks = [
            asyncio.create_task(self._work(plan), name=f"reconcile-{i}") for i in range(count)
        ]

    async def stop(self, grace: float) -> None:
        """No new plan starts; those under way get `grace` seconds, then are cancelled."""
        self.channels.queue.close()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []

    async def _work(self, plan: Planner) -> None:
        queue = self.channels.queue
        while (key := await queue.get()) is not None:
            try:
                self.channels.planning(key)
                wake_in = await plan(key)
            except Exception:
                logger.exception(
                    "planning %s/%s failed; again in %s s", *key, ERROR_BACKOFF_SECONDS
                )
                wake_in = ERROR_BACKOFF_SECONDS
            try:
                if wake_in is not None:
                    self.channels.wake_at(key, wake_in)
            finally:
                queue.done(key)
