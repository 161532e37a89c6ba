"""Progress webhooks from the trainer: signed, in order, never in the way."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from channelmodel.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from channelmodel_trainer.notify_progress import (
    SECRET_ENV,
    SIGNED_ENV,
    URL_ENV,
    WebhookProgress,
    with_webhook,
)
from channelmodel_trainer.progress import LogProgress

SECRET = b"progress-key"


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.received.append(
                    (dict(self.headers), self.rfile.read(int(self.headers["Content-Length"])))
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_stages_and_quarters_are_posted_signed_and_in_order(receiver: Receiver) -> None:
    progress = WebhookProgress(
        LogProgress(), f"http://127.0.0.1:{receiver.server_port}/hook", SECRET, "shop-1", "1.0.4"
    )
    progress.start("embedding", 8)
    for _ in range(8):
        progress.advance("embedding")
    progress.finish("embedding", "8 photos")
    progress.close()
    events = [json.loads(body) for _, body in receiver.received]
    assert [(e["stage"], e["state"], e.get("done")) for e in events] == [
        ("embedding", "started", None),
        ("embedding", "running", 2),
        ("embedding", "running", 4),
        ("embedding", "running", 6),
        ("embedding", "finished", None),
    ]
    assert {(e["type"], e["channelId"], e["version"]) for e in events} == {
        ("training.progress", "shop-1", "1.0.4")
    }
    for headers, body in receiver.received:
        assert verify(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])


def test_a_dead_receiver_costs_nothing() -> None:
    progress = WebhookProgress(LogProgress(), "http://127.0.0.1:9/hook", None, "shop-1", "1.0.0")
    progress.start("epochs", 4)
    progress.advance("epochs", 4)
    progress.finish("epochs", "done")
    progress.close()  # returns: failures are swallowed


def test_environment_switches_it_on_and_never_sends_unsigned_when_a_key_is_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner = LogProgress()
    monkeypatch.delenv(URL_ENV, raising=False)
    assert with_webhook(inner, "c", "1.0.0") is inner
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9/hook")
    monkeypatch.setenv(SIGNED_ENV, "true")
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert with_webhook(inner, "c", "1.0.0") is inner  # the optional Secret is missing
    monkeypatch.setenv(SECRET_ENV, "k")
    wrapped = with_webhook(inner, "c", "1.0.0")
    assert isinstance(wrapped, WebhookProgress)
    wrapped.close()
