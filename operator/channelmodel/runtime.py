"""What the operator's handlers share: settings, clients, the clock, caches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from channelmodel.fleet import FleetIndex
from channelmodel.kube import KubeApi
from channelmodel.metrics import ChannelTelemetry
from channelmodel.notify import Notifier
from channelmodel.settings import OperatorSettings
from channelmodel.store import ArtifactStore
from channelmodel.wakeups import Channels, Workers

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What the handlers share: settings, clients, the clock."""

    settings: OperatorSettings
    store: ArtifactStore
    kube: KubeApi
    clock: Clock = utc_now
    # Running Jobs, the queue, channelId claims: listed at start, then kept by watches.
    fleet: FleetIndex = field(default_factory=FleetIndex)
    # Status fields written last, per object, until the watch shows them back.
    pending_writes: dict[tuple[str, str], tuple[dict[str, Any], float]] = field(
        default_factory=dict
    )
    # The channels' latest bodies and when each plans next; the workers that plan them.
    channels: Channels = field(default_factory=Channels)
    workers: Workers = field(init=False)
    notifier: Notifier = field(default_factory=Notifier)
    telemetry: ChannelTelemetry = field(default_factory=ChannelTelemetry)
    # Secret checks are rate-limited per object (a cache, not state).
    # (checked at, problem, the Secrets checked)
    secret_checks: dict[tuple[str, str], tuple[float, str | None, list[str]]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        self.workers = Workers(self.channels)
