"""A webhook receiver on 127.0.0.1 that keeps what it got (fixture `webhook_receiver`)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from channelmodel.webhook_signature import signing_keys, verify_standard


class WebhookReceiver(http.server.ThreadingHTTPServer):
    """Answers every POST with 204 and records (headers, body)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/hook"

    def events(self, exclude: str | None = None) -> list[dict[str, Any]]:
        """The JSON payloads received, in order (optionally without one event type)."""
        payloads = [json.loads(body) for _, body in self.received]
        return [p for p in payloads if p.get("type") != exclude]

    def all_signed_with(self, secret: bytes) -> bool:
        """Every request verifies with one of the keys in `secret` (a Secret's value).

        With the official `standardwebhooks` library when it is installed, else with
        channelmodel.webhook_signature.verify_standard (the same check)."""
        keys = signing_keys(secret)
        return bool(keys) and all(
            any(_verifies(key, headers, body) for key in keys) for headers, body in self.received
        )


def _verifies(key: bytes, headers: dict[str, str], body: bytes) -> bool:
    try:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    except ImportError:
        return verify_standard(key, headers, body)
    try:
        Webhook(key).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.shutdown()
    receiver.server_close()
