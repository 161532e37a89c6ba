"""Webhook signatures, by the Standard Webhooks scheme: the operator's events and
the trainer's progress events sign the same way.

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

The standard library only: the trainer imports it without the operator's
delivery worker or its metrics.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping, Sequence

WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"
SECRET_PREFIX = "whsec_"
EVENT_HEADER = "X-Channelmodel-Event"
# The 0.1 scheme, deprecated: still sent so receivers can move over without downtime.
SIGNATURE_HEADER = "X-Channelmodel-Signature"
TIMESTAMP_HEADER = "X-Channelmodel-Timestamp"
REPLAY_WINDOW_SECONDS = 300


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
