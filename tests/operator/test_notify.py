"""Webhook notifications: signatures, ordering, retries, no secrets in logs."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from channelmodel.notify import Delivery, Notifier
from channelmodel.webhook_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_ID,
    sign,
    signing_keys,
    verify,
    verify_standard,
)

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
        self.attempts: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.attempts.append(dict(request.headers))
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


OLD_KEY, NEW_KEY = b"old-key-0123456789abcdef", b"new-key-fedcba9876543210"


def _whsec(key: bytes) -> bytes:
    return b"whsec_" + base64.b64encode(key)


def test_secret_values_hold_one_raw_key_or_several_whsec_keys() -> None:
    assert signing_keys(b"plain-raw-key") == (b"plain-raw-key",)
    assert signing_keys(_whsec(OLD_KEY) + b"\n" + _whsec(NEW_KEY) + b"\n") == (OLD_KEY, NEW_KEY)
    assert signing_keys(b"") == () and signing_keys(None) == ()


async def test_the_official_standard_webhooks_library_verifies_events_during_rotation(
    receiver_server: tuple[Receiver, TestServer],
) -> None:
    standardwebhooks = pytest.importorskip(
        "standardwebhooks.webhooks", reason="pip install standardwebhooks (the test extra)"
    )
    receiver, server = receiver_server
    receiver.fail_first = 2  # retries of the first event
    notifier = Notifier(backoff=0.01)
    url = str(server.make_url("/hook"))
    rotating = _whsec(OLD_KEY) + b" " + _whsec(NEW_KEY)  # both keys active
    for kind in ("training.started", "training.succeeded"):
        notifier.submit(Delivery(url=url, payload={"type": kind}, secret=rotating))
    await asyncio.wait_for(notifier.drain(), 10)
    await notifier.close()

    ids = [headers[WEBHOOK_ID] for headers in receiver.attempts]
    assert len(ids) == 4 and ids[0] == ids[1] == ids[2] != ids[3], "one id per event, kept on retry"
    for key in (OLD_KEY, NEW_KEY):  # receivers on either key accept every event
        for headers, body in receiver.received:
            payload = standardwebhooks.Webhook(base64.b64encode(key).decode()).verify(body, headers)
            assert payload["type"] in ("training.started", "training.succeeded")
    headers, body = receiver.received[0]
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(_whsec(b"a-third-key-not-active").decode()).verify(body, headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(base64.b64encode(OLD_KEY).decode()).verify(body + b" ", headers)


async def test_a_raw_key_signs_both_schemes_for_the_migration(
    receiver_server: tuple[Receiver, TestServer],
) -> None:
    receiver, server = receiver_server
    notifier = Notifier(backoff=0.01)
    notifier.submit(
        Delivery(url=str(server.make_url("/hook")), payload={"type": "x"}, secret=SECRET)
    )
    await asyncio.wait_for(notifier.drain(), 10)
    await notifier.close()
    ((headers, body),) = receiver.received
    assert verify_standard(SECRET, headers, body)  # new receivers: the raw key as is
    assert verify(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])  # old ones
    assert not verify_standard(SECRET, headers, body, now=time.time() + 301)  # replay window
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError:
        return
    Webhook(SECRET).verify(body, headers)  # the library takes the raw key as bytes


def _stamina_retries() -> float:
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "stamina_retries"
        for sample in metric.samples
        if sample.name == "stamina_retries_total"
    )


async def test_retries_go_through_stamina_and_are_counted(
    receiver_server: tuple[Receiver, TestServer],
) -> None:
    receiver, server = receiver_server
    receiver.fail_first = 3
    before = _stamina_retries()
    notifier = Notifier(backoff=0.01)
    notifier.submit(Delivery(url=str(server.make_url("/hook")), payload={"type": "x"}, secret=None))
    await asyncio.wait_for(notifier.drain(), 10)
    await notifier.close()
    assert receiver.calls == 4 and len(receiver.received) == 1
    assert _stamina_retries() - before == 3  # stamina_retries_total on /metrics


async def test_an_undelivered_event_is_logged_with_its_channelmodel(
    receiver_server: tuple[Receiver, TestServer], caplog: pytest.LogCaptureFixture
) -> None:
    receiver, server = receiver_server
    receiver.fail_first, receiver.status_on_fail = 1, 400
    notifier = Notifier(backoff=0.01)
    payload = {"type": "training.failed", "namespace": "shops", "name": "shop-42"}
    with caplog.at_level(logging.WARNING, logger="channelmodel.notify"):
        notifier.submit(Delivery(url=str(server.make_url("/hook")), payload=payload, secret=None))
        await asyncio.wait_for(notifier.drain(), 10)
    await notifier.close()
    (record,) = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert record.k8s_ref == {"kind": "ChannelModel", "namespace": "shops", "name": "shop-42"}
    assert receiver.calls == 1  # a 400 is not retried
