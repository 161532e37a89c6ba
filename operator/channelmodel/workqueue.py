"""The fleet's reconcile queue: which channels plan now, and when each plans next.

One heap of deadlines for the whole fleet (controller-runtime's workqueue with
`AddAfter`, reduced to what the operator needs). Watch events add a channel now
or a moment later (coalesced changes); a plan adds it at the deadline it named
(`Plan.wake_at`). Workers take due channels one at a time per channel: a channel
added while it plans is planned again once that plan is done, never twice at
once. A channel with nothing to do is one dictionary entry at most: no task, no
timer. See docs/decisions/0014-event-driven-planning.md.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)

# Due before every deadline: a key added at FIRST is handed out ahead of keys that
# were due earlier but still wait for a worker (a start into a freed training slot
# must not queue behind a backlog of status echoes). Among themselves, first in, first out.
FIRST = float("-inf")


class ReconcileQueue(Generic[Key]):
    """Keys due at a time (a loop time); `get` hands out the next due key.

    Adding a key that is already due earlier keeps the earlier time: a plan runs at
    the first reason to plan, and that plan names the next deadline itself.
    """

    def __init__(self, time: Callable[[], float] | None = None) -> None:
        self._time = time
        self._due: dict[Key, float] = {}  # the one time each waiting key is due
        self._heap: list[tuple[float, int, Key]] = []  # may hold outdated entries
        self._order = itertools.count()  # equal times: first added, first out
        self._processing: set[Key] = set()
        self._again: dict[Key, float] = {}  # came due while being processed
        self._changed = asyncio.Event()
        self._closed = False

    def now(self) -> float:
        return self._time() if self._time else asyncio.get_running_loop().time()

    def add(self, key: Key, at: float | None = None) -> None:
        """Plan `key` at loop time `at` (None: now; FIRST: before all others), or sooner
        if it is due sooner."""
        when = self.now() if at is None else at
        if key in self._processing:
            self._again[key] = min(when, self._again.get(key, when))
            return
        if key in self._due and self._due[key] <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._order), key))
        if len(self._heap) > 2 * len(self._due) + 64:
            # Rescheduled keys leave outdated entries behind: keep the heap the fleet's size.
            self._heap = [(t, next(self._order), k) for k, t in self._due.items()]
            heapq.heapify(self._heap)
        self._changed.set()

    def forget(self, key: Key) -> None:
        """The object is gone: drop what is scheduled for it (a plan running now ends)."""
        self._due.pop(key, None)  # its heap entries are outdated now
        self._again.pop(key, None)

    def done(self, key: Key) -> None:
        """The plan of `key` has finished: what came up meanwhile is scheduled now."""
        self._processing.discard(key)
        again = self._again.pop(key, None)
        if again is not None:
            self.add(key, again)

    def close(self) -> None:
        """Wake every waiting `get`: they return None from now on."""
        self._closed = True
        self._changed.set()

    def due_at(self, key: Key) -> float | None:
        return self._again.get(key, self._due.get(key))

    def __len__(self) -> int:
        """Keys scheduled (due now or later), not counting those being processed."""
        return len(self._due)

    async def get(self) -> Key | None:
        """The next due key, marked processing until `done`; None once closed."""
        while not self._closed:
            wait = self._pop_outdated()
            if wait is not None and wait <= 0:
                _, _, key = heapq.heappop(self._heap)
                del self._due[key]
                self._processing.add(key)
                return key
            self._changed.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                pass
        return None

    def _pop_outdated(self) -> float | None:
        """Seconds until the head is due (None: nothing scheduled), dropping outdated entries."""
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) == when and key not in self._processing:
                return when - self.now()
            heapq.heappop(self._heap)
        return None
