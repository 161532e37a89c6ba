"""Prometheus metrics of the operator (served on CHANNELMODEL_METRICS_PORT)."""

from __future__ import annotations

import contextlib
import time

from prometheus_client import Counter, Gauge, Histogram

from channelmodel.plan_types import Outcome

TRAININGS = Counter(
    "channelmodel_trainings_total",
    "Finished training runs by result.",
    ["namespace", "name", "result"],
)
TRAINING_DURATION = Histogram(
    "channelmodel_training_duration_seconds",
    "From Job creation to the operator seeing it finish.",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
QUEUE_LENGTH = Gauge("channelmodel_queue_length", "Channels queued for training, waiting or ready.")
TRAININGS_RUNNING = Gauge(
    "channelmodel_trainings_running", "Training Jobs in flight across all channels."
)
CHANGES_PER_TRAINING = Histogram(
    "channelmodel_changes_per_training",
    "Catalog change notifications coalesced into one event-triggered training (debounce).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 500, 1000, 5000),
)
CHANGES_SEEN = Counter(
    "channelmodel_changes_seen_total", "Distinct catalog change notifications seen."
)
LAST_SUCCESS = Gauge(
    "channelmodel_last_success_timestamp_seconds",
    "Unix time of the last successful training.",
    ["namespace", "name"],
)
SINCE_LAST_SUCCESS = Gauge(
    "channelmodel_seconds_since_last_success",
    "Seconds since the last successful training.",
    ["namespace", "name"],
)
SERVED_VERSION = Gauge(
    "channelmodel_served_version_info",
    "The version each channel serves (value 1).",
    ["namespace", "name", "channel", "version"],
)
RECONCILES = Counter(
    "channelmodel_reconciles_total",
    "Plans made, one per channel wake-up (a change, its Job, a freed slot, a deadline).",
)
NOTIFICATIONS = Counter(
    "channelmodel_notifications_total", "Webhook deliveries by outcome.", ["outcome"]
)


class ChannelTelemetry:
    """Turns successive plans of each channel into metric updates (in memory:
    metrics restart with the process, like every Prometheus exporter)."""

    def __init__(self) -> None:
        self._last_change: dict[tuple[str, str], str | None] = {}
        self._changes_pending: dict[tuple[str, str], int] = {}
        self._served: dict[tuple[str, str], tuple[str, str]] = {}

    def change_seen(self, key: tuple[str, str], changed_at: str | None) -> None:
        if key not in self._last_change:  # first sight (or a restart): not a new change
            self._last_change[key] = changed_at
        elif changed_at and self._last_change[key] != changed_at:
            CHANGES_SEEN.inc()
            self._changes_pending[key] = self._changes_pending.get(key, 0) + 1
            self._last_change[key] = changed_at

    def training_started(self, key: tuple[str, str], trigger: str) -> None:
        pending = self._changes_pending.pop(key, 0)
        if trigger == "event" and pending:
            CHANGES_PER_TRAINING.observe(pending)

    def training_finished(self, key: tuple[str, str], result: Outcome, seconds: float) -> None:
        TRAININGS.labels(key[0], key[1], result.value).inc()
        TRAINING_DURATION.observe(max(0.0, seconds))

    def serving(self, key: tuple[str, str], channel: str, version: str | None) -> None:
        previous = self._served.get(key)
        if previous == (channel, version or ""):
            return
        if previous:
            SERVED_VERSION.remove(key[0], key[1], *previous)
        if version:
            SERVED_VERSION.labels(key[0], key[1], channel, version).set(1)
            self._served[key] = (channel, version)

    def last_success(self, key: tuple[str, str], at: float | None) -> None:
        if at is not None:
            LAST_SUCCESS.labels(*key).set(at)
            # Computed when scraped: an idle channel is not planned again to refresh it.
            SINCE_LAST_SUCCESS.labels(*key).set_function(lambda: time.time() - at)

    def forget(self, key: tuple[str, str]) -> None:
        self.serving(key, "", None)
        self._served.pop(key, None)
        for gauge in (LAST_SUCCESS, SINCE_LAST_SUCCESS):
            with contextlib.suppress(KeyError):
                gauge.remove(*key)
