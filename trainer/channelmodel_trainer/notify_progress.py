"""Progress as webhook events (`training.progress`), signed like the operator's.

Best effort and never in the way: posts go out from one background thread in
order, each with a short timeout and no retry; a receiver that is down costs
the training nothing. Events: each stage's start and end, and every 25%.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import httpx

from channelmodel.egress import EgressPolicy, guarded_transport
from channelmodel.webhook_signature import new_message_id, signing_keys, webhook_headers
from channelmodel_trainer.progress import Progress

log = logging.getLogger(__name__)

URL_ENV = "CHANNELMODEL_NOTIFY_URL"
SECRET_ENV = "CHANNELMODEL_NOTIFY_SECRET"
SIGNED_ENV = "CHANNELMODEL_NOTIFY_SIGNED"  # "true": a secret is expected; never send unsigned
EVENT_TYPE = "training.progress"


class WebhookProgress:
    """Wraps another Progress (the log or the terminal) and also tells the backend."""

    def __init__(
        self, inner: Progress, url: str, secret: bytes | None, channel_id: str, version: str
    ) -> None:
        self._inner = inner
        self._url = url
        self._secret = secret
        self._base = {"type": EVENT_TYPE, "channelId": channel_id, "version": version}
        self._totals: dict[str, int | None] = {}
        self._done: dict[str, int] = {}
        self._next_percent: dict[str, int] = {}
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="progress-webhook")
        self._pending: list[Any] = []
        self._client = httpx.Client(
            timeout=3.0,
            follow_redirects=False,
            transport=guarded_transport(EgressPolicy.from_env()),
        )

    def start(self, stage: str, total: int | None) -> None:
        self._inner.start(stage, total)
        self._totals[stage], self._done[stage], self._next_percent[stage] = total, 0, 25
        self._post({"stage": stage, "state": "started", "total": total})

    def advance(self, stage: str, amount: int = 1) -> None:
        self._inner.advance(stage, amount)
        self._done[stage] = self._done.get(stage, 0) + amount
        total = self._totals.get(stage)
        if total:
            percent = 100 * self._done[stage] // total
            if self._next_percent.get(stage, 25) <= percent < 100:
                self._next_percent[stage] = (percent // 25 + 1) * 25
                self._post(
                    {"stage": stage, "state": "running", "done": self._done[stage], "total": total}
                )

    def finish(self, stage: str, summary: str) -> None:
        self._inner.finish(stage, summary)
        self._post({"stage": stage, "state": "finished", "summary": summary})

    def close(self) -> None:
        self._inner.close()
        wait(self._pending, timeout=5)
        self._sender.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _post(self, fields: dict[str, Any]) -> None:
        payload = {**self._base, **fields, "at": time.time()}
        self._pending.append(self._sender.submit(self._send, payload))

    def _send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        # Signed like the operator's events: Standard Webhooks, every active key.
        headers = webhook_headers(signing_keys(self._secret), new_message_id(), EVENT_TYPE, body)
        try:
            self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.debug("progress webhook not delivered: %s", type(exc).__name__)


def with_webhook(inner: Progress, channel_id: str, version: str) -> Progress:
    """`inner`, plus progress webhooks when the Job's environment asks for them."""
    url = os.environ.get(URL_ENV)
    if not url:
        return inner
    secret = os.environ.get(SECRET_ENV, "").encode() or None
    if secret is None and os.environ.get(SIGNED_ENV) == "true":
        log.warning("progress webhooks off: the signing Secret is not available to the trainer")
        return inner
    return WebhookProgress(inner, url, secret, channel_id, version)
