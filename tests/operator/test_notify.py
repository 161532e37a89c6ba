"""Webhook notifications: signatures, ordering, retries, no secrets in logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from channelmodel.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, Delivery, Notifier, sign, verify

SECRET = b"hmac-key-123"


def test_signature_verifies_and_rejects_tampering_and_replay() -> None:
    body = b'{"type":"training.succeeded"}'
    ts = str(int(time.time()))
    signature = sign(SECRET, ts, body)
    assert verify(SECRET, ts, body, signature)
    assert not verify(SECRET, ts, body + b" ", signature)
    assert not verify(b"other-key", ts, body, signature)
    assert not verify(
        SECRET, str(int(time.time()) - 301), body, sign(SECRET, str(int(time.time()) - 301), body)
    )
    assert not verify(SECRET, "not-a-time", body, signature)


class Receiver:
    def __init__(self, fail_first: int = 0, status_on_fail: int = 503) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.status_on_fail = status_on_fail
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.calls <= self.fail_first:
            return web.Response(status=self.status_on_fail)
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)


@pytest.fixture
async def receiver_server() -> AsyncIterator[tuple[Receiver, TestServer]]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield receiver, server
    await server.close()


async def test_events_are_delivered_in_order_and_signed(
    receiver_server: tuple[Receiver, TestServer],
) -> None:
    receiver, server = receiver_server
    receiver.fail_first = 2  # the first event needs two retries
    notifier = Notifier(backoff=0.01)
    url = str(server.make_url("/hook"))
    for kind in ("training.queued", "training.started", "training.succeeded"):
        notifier.submit(Delivery(url=url, payload={"type": kind, "channelId": "42"}, secret=SECRET))
    await asyncio.wait_for(notifier.drain(), 10)
    await notifier.close()
    assert [json.loads(body)["type"] for _, body in receiver.received] == [
        "training.queued", "training.started", "training.succeeded",
    ]  # fmt: skip
    for headers, body in receiver.received:
        assert verify(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])


async def test_client_errors_are_not_retried_and_urls_are_not_logged(
    receiver_server: tuple[Receiver, TestServer], caplog: pytest.LogCaptureFixture
) -> None:
    receiver, server = receiver_server
    receiver.fail_first, receiver.status_on_fail = 100, 400
    notifier = Notifier(backoff=0.01)
    url = str(server.make_url("/hook?token=sekrit"))
    with caplog.at_level(logging.WARNING):
        notifier.submit(Delivery(url=url, payload={"type": "training.failed"}, secret=None))
        await asyncio.wait_for(notifier.drain(), 10)
    await notifier.close()
    assert receiver.calls == 1
    assert "not delivered: HTTP 400" in caplog.text
    assert "sekrit" not in caplog.text
