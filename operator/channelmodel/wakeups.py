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

# A channel's own object changing again and again (an annotation storm from its
# backend, the echo of our status writes) replans it at most this often; a freed
# slot, its Job and its deadlines are not held back.
CHANGE_COALESCE_SECONDS = 1.0


class Sleeper:
    """Where one channel's loop sleeps between plans."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._urgent = False
        self.stopped = False

    def wake(self, urgent: bool) -> None:
        self._urgent = self._urgent or urgent
        self._event.set()

    def stop(self) -> None:
        """The loop ends after its current plan (kopf stops it: the object went, or the
        operator stops): it exits by itself, so kopf need not cancel it."""
        self.stopped = True
        self.wake(urgent=True)

    async def sleep(self, seconds: float | None, planned_at: float) -> None:
        """Until `seconds` after `planned_at` (a loop time) pass, or a wake-up.

        A wake-up by a change of the object itself ends the sleep no sooner than
        CHANGE_COALESCE_SECONDS after the last plan: further changes meanwhile join it.
        """
        deadline = None if seconds is None else planned_at + seconds
        calm = planned_at + CHANGE_COALESCE_SECONDS
        until = deadline
        while not self._urgent:
            if self._event.is_set():  # the object changed
                if asyncio.get_running_loop().time() >= calm:
                    break
                self._event.clear()
                until = calm if deadline is None else min(calm, deadline)
            if not await self._wait(until):
                break  # the deadline, or the end of the calm after a change
        self._event.clear()
        self._urgent = False

    async def _wait(self, until: float | None) -> bool:
        """True when woken before `until` (a loop time; None: no limit)."""
        try:
            if until is None:
                await self._event.wait()
            else:
                async with asyncio.timeout_at(until):
                    await self._event.wait()
        except TimeoutError:
            return False
        return True


class Wakeups:
    """The sleeping channels: `wake` rouses one."""

    def __init__(self) -> None:
        self._sleepers: dict[Hashable, Sleeper] = {}

    def register(self, key: Hashable) -> Sleeper:
        sleeper = self._sleepers.get(key)
        if sleeper is None:
            sleeper = self._sleepers[key] = Sleeper()
        return sleeper

    def unregister(self, key: Hashable, sleeper: Sleeper) -> None:
        if self._sleepers.get(key) is sleeper:
            del self._sleepers[key]

    def wake(self, key: Hashable, *, urgent: bool = True) -> bool:
        """Make `key` plan again now (after its current plan if one runs).

        Not urgent: a change of the object itself, coalesced (CHANGE_COALESCE_SECONDS).
        """
        sleeper = self._sleepers.get(key)
        if sleeper is None:
            return False  # no loop (yet): its first plan is still to come
        sleeper.wake(urgent)
        return True

    def __len__(self) -> int:
        return len(self._sleepers)
