"""Watch streams: an event history to resume from, and live fan-out to open watches.

Semantics follow kube-apiserver: without a resourceVersion (or with "0", or
with `sendInitialEvents=true`) a watch starts with ADDED for every existing
object; with one it replays what happened after it, or answers 410 Gone when
that part of the history was dropped. Selector watches see objects that enter
or leave the selection as ADDED / DELETED. Streams end after `timeoutSeconds`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp.web

from channelmodel_sandbox.apierrors import ApiError
from channelmodel_sandbox.resources import ResourceType
from channelmodel_sandbox.selectors import Matcher, object_matcher

Obj = dict[str, Any]
TypeKey = tuple[str, str, str]


@dataclass(eq=False)
class _Watcher:
    key: TypeKey
    namespace: str | None
    matcher: Matcher
    queue: asyncio.Queue[Obj]


def _namespace(obj: Obj) -> str | None:
    namespace = obj.get("metadata", {}).get("namespace")
    return str(namespace) if namespace else None


def _rv(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _seen_as(kind: str, old: Obj | None, new: Obj, matcher: Matcher) -> str | None:
    """The event a selector watch sees: objects entering or leaving the selection are ADDED/DELETED."""
    was = old is not None and matcher(old)
    now = matcher(new)
    if kind == "DELETED":
        return "DELETED" if was or now else None
    if was and now:
        return kind
    return "ADDED" if now else "DELETED" if was else None


class WatchHub:
    """The events of every write, kept for `history` writes, and the open watches."""

    def __init__(self, history: int) -> None:
        self._events: collections.deque[tuple[int, TypeKey, str, Obj | None, Obj]] = (
            collections.deque(maxlen=history)
        )
        self._watchers: set[_Watcher] = set()

    def publish(self, key: TypeKey, kind: str, old: Obj | None, new: Obj) -> None:
        self._events.append((_rv(new), key, kind, old, new))
        namespace = _namespace(new)
        for watcher in list(self._watchers):
            if watcher.key != key or watcher.namespace not in (None, namespace):
                continue
            event = _seen_as(kind, old, new, watcher.matcher)
            if event:
                watcher.queue.put_nowait({"type": event, "object": new})

    def backlog(
        self,
        rtype: ResourceType,
        namespace: str | None,
        matcher: Matcher,
        since: str | None,
        send_initial: bool,
        current: Callable[[], Iterable[Obj]],
        current_rv: int,
    ) -> list[Obj]:
        """What a new watch gets before live events: the initial state or the replayed history."""
        if since in (None, "0") or send_initial:
            events: list[Obj] = [
                {"type": "ADDED", "object": obj} for obj in current() if matcher(obj)
            ]
            if send_initial:
                bookmark = {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {
                        "resourceVersion": str(current_rv),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                events.append({"type": "BOOKMARK", "object": bookmark})
            return events
        try:
            since_rv = int(str(since))
        except ValueError:
            return [self._gone(since, current_rv)]
        oldest = self._events[0][0] if self._events else current_rv + 1
        if since_rv < oldest - 1 and since_rv < current_rv:
            return [self._gone(since, current_rv)]
        replay: list[Obj] = []
        for rv, key, kind, old, new in self._events:
            if rv <= since_rv or key != rtype.key or namespace not in (None, _namespace(new)):
                continue
            event = _seen_as(kind, old, new, matcher)
            if event:
                replay.append({"type": event, "object": new})
        return replay

    @staticmethod
    def _gone(since: str | None, current_rv: int) -> Obj:
        error = ApiError(410, "Expired", f"too old resource version: {since} ({current_rv})")
        return {"type": "ERROR", "object": error.status()}

    async def serve(
        self,
        raw: aiohttp.web.BaseRequest,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        current: Callable[[], Iterable[Obj]],
        current_rv: int,
    ) -> aiohttp.web.StreamResponse:
        """Stream one watch request as JSON lines until timeout or disconnect."""
        query = raw.query
        field_selector = query.get("fieldSelector")
        if name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        matcher = object_matcher(query.get("labelSelector"), field_selector)
        # As kube-apiserver: 0 (or none) is no client timeout, the server's own default
        # (here: the stream stays open); the python client sends timeout_seconds=0.
        timeout = float(query.get("timeoutSeconds") or 0) or None
        # Snapshot and subscription happen without an await in between: no event is lost.
        backlog = self.backlog(
            rtype,
            namespace,
            matcher,
            query.get("resourceVersion") or None,
            query.get("sendInitialEvents") == "true",
            current,
            current_rv,
        )
        watcher = _Watcher(rtype.key, namespace, matcher, asyncio.Queue())
        self._watchers.add(watcher)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await response.prepare(raw)
            for event in backlog:
                await response.write(json.dumps(event).encode() + b"\n")
            if backlog and backlog[-1]["type"] == "ERROR":
                return response
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout is not None else None
            while deadline is None or loop.time() < deadline:
                remaining = None if deadline is None else deadline - loop.time()
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                await response.write(json.dumps(event).encode() + b"\n")
        except ConnectionError:
            return response  # the client went away
        finally:
            self._watchers.discard(watcher)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response
