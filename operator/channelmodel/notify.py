"""Webhook notifications: JSON events, signed by the Standard Webhooks scheme,
retried, never blocking.

Headers (https://www.standardwebhooks.com): `webhook-id` (one per event, the
same on every retry: receivers de-duplicate on it), `webhook-timestamp` (Unix
seconds of this attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256>`
over `<id>.<timestamp>.<body>`, one per active key, space-separated, so keys
rotate without downtime. The official verifiers (`standardwebhooks` on PyPI
and npm) accept them. The Secret's value is either several `whsec_<base64>`
keys separated by whitespace, or (the 0.1 format) one raw key used as is.

Deprecated, sent alongside until the next minor release (docs/migration.md):
`X-Channelmodel-Signature: sha256=<hex>` over `<timestamp>.<body>` with the
first key, `X-Channelmodel-Timestamp`. `X-Channelmodel-Event` names the type.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import stamina

from channelmodel.egress import REFUSED_REASON, EgressPolicy, guarded_async_transport, is_refusal
from channelmodel.logs import object_extra
from channelmodel.metrics import NOTIFICATIONS
from channelmodel.plan_types import Reason

WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"
SECRET_PREFIX = "whsec_"
EVENT_HEADER = "X-Channelmodel-Event"
# The 0.1 scheme, deprecated: still sent so receivers can move over without downtime.
SIGNATURE_HEADER = "X-Channelmodel-Signature"
TIMESTAMP_HEADER = "X-Channelmodel-Timestamp"
REPLAY_WINDOW_SECONDS = 300

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


def signing_keys(secret: bytes | None) -> tuple[bytes, ...]:
    """The active keys in a Secret's value.

    Whitespace-separated `whsec_<base64>` keys: all of them (rotation: add the
    new key, move receivers over, drop the old one). Anything else: the whole
    value is one raw key (the 0.1 format), so existing Secrets keep working.
    """
    if not secret:
        return ()
    tokens = secret.split()
    if tokens and all(t.startswith(SECRET_PREFIX.encode()) for t in tokens):
        try:
            keys = tuple(
                base64.b64decode(t[len(SECRET_PREFIX) :] + b"==", validate=False) for t in tokens
            )
        except (binascii.Error, ValueError):
            return (secret,)
        return tuple(k for k in keys if k)
    return (secret,)


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def sign_standard(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """One Standard Webhooks signature: `v1,<base64 HMAC-SHA256(id.timestamp.body)>`."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def webhook_headers(
    keys: Sequence[bytes], msg_id: str, event_type: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """Every header of one delivery attempt (signed when there are keys)."""
    timestamp = str(int(time.time() if now is None else now))
    headers = {
        "Content-Type": "application/json",
        WEBHOOK_ID: msg_id,
        WEBHOOK_TIMESTAMP: timestamp,
        EVENT_HEADER: event_type,
        TIMESTAMP_HEADER: timestamp,
    }
    if keys:
        headers[WEBHOOK_SIGNATURE] = " ".join(
            sign_standard(key, msg_id, timestamp, body) for key in keys
        )
        headers[SIGNATURE_HEADER] = sign(keys[0], timestamp, body)
    return headers


def verify_standard(
    key: bytes, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> bool:
    """What a receiver does (the official libraries do the same): any signature of
    the header matches this key, and the timestamp is within the replay window."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, timestamp = lower[WEBHOOK_ID], lower[WEBHOOK_TIMESTAMP]
        age = (time.time() if now is None else now) - int(timestamp)
    except (KeyError, ValueError):
        return False
    if abs(age) > REPLAY_WINDOW_SECONDS:
        return False
    expected = sign_standard(key, msg_id, timestamp, body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in lower.get(WEBHOOK_SIGNATURE, "").split()
    )


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The deprecated 0.1 signature (X-Channelmodel-Signature)."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, now: float | None = None
) -> bool:
    """The deprecated 0.1 check: constant-time compare, and refuse stale timestamps."""
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
