"""Progress webhooks from the trainer: signed, in order, never in the way."""

from __future__ import annotations

import pytest

from channelmodel_trainer.notify_progress import (
    SECRET_ENV,
    SIGNED_ENV,
    URL_ENV,
    WebhookProgress,
    with_webhook,
)
from channelmodel_trainer.progress import LogProgress
from tests.support.webhook import WebhookReceiver

SECRET = b"progress-key"


def test_stages_and_quarters_are_posted_signed_and_in_order(
    webhook_receiver: WebhookReceiver,
) -> None:
    progress = WebhookProgress(LogProgress(), webhook_receiver.url, SECRET, "shop-1", "1.0.4")
    progress.start("embedding", 8)
    for _ in range(8):
        progress.advance("embedding")
    progress.finish("embedding", "8 photos")
    progress.close()
    events = webhook_receiver.events()
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
    assert webhook_receiver.all_signed_with(SECRET)


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
