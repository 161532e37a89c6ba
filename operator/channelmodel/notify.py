"""Webhook notifications: JSON events, signed (channelmodel.webhook_signature),
retried, never blocking.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import stamina

from channelmodel.egress import REFUSED_REASON, EgressPolicy, guarded_async_transport, is_refusal
from channelmodel.logs import object_extra
from channelmodel.metrics import NOTIFICATIONS
from channelmodel.plan_types import Reason
from channelmodel.webhook_signature import new_message_id, signing_keys, webhook_headers

logger = logging.getLogger(__name__)

# Planner event reasons that are transitions worth telling the backend about.
EVENT_TYPES: dict[Reason, str] = {
    Reason.QUEUED: "training.queued",
    Reason.TRAINING_STARTED: "training.started",
    Reason.TRAINING_SUCCEEDED: "training.succeeded",
    Reason.TRAINING_FAILED: "training.failed",
    Reason.MODEL_REJECTED: "training.rejected",
    Reason.VERSION_PINNED: "version.pinned",
    Reason.VERSION_SERVED: "version.served",
}


@dataclass(frozen=True)
class Delivery:
    url: str
    payload: Mapping[str, Any]
    secret: bytes | None  # the Secret's value: see signing_keys()
    msg_id: str = field(default_factory=new_message_id)  # the same on every retry


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
        keys = signing_keys(delivery.secret)
        event_type = str(delivery.payload.get("type", ""))
        outcome = ""
        try:
            # stamina (on tenacity): backoff * 2^n with jitter, the same id on every
            # attempt, a fresh timestamp and signature each time.
            async for attempt in stamina.retry_context(
                on=_Retryable,
                attempts=self._attempts,
                timeout=None,
                wait_initial=self._backoff,
                wait_max=self._backoff * 2 ** (self._attempts - 2) if self._attempts > 1 else 0,
                wait_jitter=self._backoff / 4,
            ):
                with attempt:
                    headers = webhook_headers(keys, delivery.msg_id, event_type, body)
                    try:
                        response = await client.post(delivery.url, content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        if is_refusal(exc):
                            # Not allowed by the egress policy: retrying changes nothing.
                            outcome = REFUSED_REASON
                            break
                        raise _Retryable(type(exc).__name__) from exc
                    if response.status_code < 300:
                        NOTIFICATIONS.labels("delivered").inc()
                        return
                    outcome = f"HTTP {response.status_code}"
                    if response.status_code >= 500 or response.status_code == 429:
                        raise _Retryable(outcome)
                    # Other 4xx: the receiver refuses it; retrying changes nothing.
        except _Retryable as exc:
            outcome = str(exc)
        NOTIFICATIONS.labels("failed").inc()
        namespace, name = delivery.payload.get("namespace"), delivery.payload.get("name")
        logger.warning(
            "webhook %s for %s not delivered: %s",
            delivery.payload.get("type"),
            _host(delivery.url),
            outcome,
            extra=object_extra(str(namespace), str(name)) if name else None,
        )


class _Retryable(Exception):
    """A 5xx, a 429, a timeout or a connection error: worth another attempt."""


def _host(url: str) -> str:
    return httpx.URL(url).host  # never log paths or query strings: they may carry tokens
