"""Wake-ups: how a channel's reconcile loop learns that something changed.

Every ChannelModel has one kopf daemon (handlers.reconcile) that plans, carries
the plan out and then sleeps until the deadline its plan named (`Plan.wake_at`)
or until something wakes it: a watch event of its object, its Job or its Pod, or
a freed training slot (handlers.py says which). Sleeping costs no CPU and no API
request, so an idle fleet is free; deadlines are kept to the event loop's
precision, not to a tick. See docs/decisions/0014-event-driven-planning.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class Wakeups:
    """One asyncio.Event per sleeping channel; `wake` sets it."""

    def __init__(self) -> None:
        self._events: dict[Hashable, asyncio.Event] = {}

    def register(self, key: Hashable) -> asyncio.Event:
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        return event

    def unregister(self, key: Hashable, event: asyncio.Event) -> None:
        if self._events.get(key) is event:
            del self._events[key]

    def wake(self, key: Hashable) -> bool:
        """Make `key` plan again now (at once if it sleeps, after its plan if it runs)."""
        event = self._events.get(key)
        if event is None:
            return False  # no loop (yet): its first plan is still to come
        event.set()
        return True

    def __len__(self) -> int:
        return len(self._events)


async def sleep(event: asyncio.Event, seconds: float | None) -> bool:
    """Sleep until `event` is set or `seconds` pass (forever when None); True if woken.

    The event is cleared on return: a wake during the plan that follows counts.
    No task is created, so ten thousand sleeping channels cost ten thousand futures.
    """
    try:
        if seconds is None:
            await event.wait()
        elif seconds > 0:
            async with asyncio.timeout(seconds):
                await event.wait()
        woken = event.is_set()
    except TimeoutError:
        woken = False
    event.clear()
    return woken
