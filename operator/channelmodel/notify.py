"""Webhook notifications: JSON events, HMAC-SHA256 signed, retried, never blocking.

Signature: `X-Channelmodel-Signature: sha256=<hex>` over `<timestamp>.<body>`
with the Secret's key; `X-Channelmodel-Timestamp` is the Unix time of sending.
Receivers reject timestamps older than 5 minutes (replay window) and compare
signatures in constant time. See docs/integration.md for a TypeScript verifier.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from channelmodel.egress import REFUSED_REASON, EgressPolicy, guarded_async_transport, is_refusal
from channelmodel.metrics import NOTIFICATIONS

SIGNATURE_HEADER = "X-Channelmodel-Signature"
TIMESTAMP_HEADER = "X-Channelmodel-Timestamp"
EVENT_HEADER = "X-Channelmodel-Event"
REPLAY_WINDOW_SECONDS = 300

logger = logging.getLogger(__name__)

# Planner event reasons that are transitions worth telling the backend about.
EVENT_TYPES = {
    "Queued": "training.queued",
    "TrainingStarted": "training.started",
    "TrainingSucceeded": "training.succeeded",
    "TrainingFailed": "training.failed",
    "ModelRejected": "training.rejected",
    "VersionPinned": "version.pinned",
    "VersionServed": "version.served",
}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, now: float | None = None
) -> bool:
    """What a receiver does: constant-time compare, and refuse stale timestamps."""
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return False
    if abs(age) > REPLAY_WINDOW_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True)
class Delivery:
    url: str
    payload: Mapping[str, Any]
    secret: bytes | None


class Notifier:
    """One background worker, deliveries in order, retried with backoff."""

    def __init__(
        self,
        *,
        attempts: int = 5,
        backoff: float = 1.0,
        timeout: float = 10.0,
        policy: EgressPolicy | None = None,
    ) -> None:
        # Webhook URLs come from the spec: only where the egress policy allows.
        self._policy = policy if policy is not None else EgressPolicy.from_env()
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=10000)
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = timeout
        self._worker: asyncio.Task[None] | None = None

    def submit(self, delivery: Delivery) -> None:
        """Never blocks: a full queue drops the event (and counts it)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            NOTIFICATIONS.labels("dropped").inc()

    async def drain(self) -> None:
        await self._queue.join()

    async def close(self) -> None:
        if self._worker:
            self._worker.cancel()

    async def _run(self) -> None:
        transport = guarded_async_transport(self._policy)
        async with httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, transport=transport
        ) as client:
            while True:
                delivery = await self._queue.get()
                try:
                    await self._deliver(client, delivery)
                finally:
                    self._queue.task_done()

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        for attempt in range(1, self._attempts + 1):
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                       EVENT_HEADER: str(delivery.payload.get("type", ""))}  # fmt: skip
            if delivery.secret:
                headers[SIGNATURE_HEADER] = sign(delivery.secret, timestamp, body)
            try:
                response = await client.post(delivery.url, content=body, headers=headers)
                if response.status_code < 300:
                    NOTIFICATIONS.labels("delivered").inc()
                    return
                retryable = response.status_code >= 500 or response.status_code == 429
                outcome = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                if is_refusal(exc):
                    retryable, outcome = False, REFUSED_REASON
                else:
                    retryable, outcome = True, type(exc).__name__
            if not retryable or attempt == self._attempts:
                break
            await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        NOTIFICATIONS.labels("failed").inc()
        logger.warning(
            "webhook %s for %s not delivered: %s",
            delivery.payload.get("type"),
            _host(delivery.url),
            outcome,
        )


def _host(url: str) -> str:
    return httpx.URL(url).host  # never log paths or query strings: they may carry tokens
