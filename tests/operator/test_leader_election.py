"""Leader election without a cluster: settings, the Lease lock's fixes, the watchdog and
the health endpoint (channelmodel/leader.py). On the real API server:
tests/operator/test_leader_election_e2e.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pydantic
import pytest
import urllib3
from kubernetes import client
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord

from channelmodel.leader import (
    LEADER,
    HealthServer,
    LeaderElector,
    OperatorLeaseLock,
    default_identity,
)
from channelmodel.settings import OperatorSettings


def settings(**values: Any) -> OperatorSettings:
    return OperatorSettings(leader_election=True, **values)


def test_defaults_take_over_within_about_ten_seconds() -> None:
    s = OperatorSettings()
    assert s.leader_election is False  # one replica, as before, unless asked
    lease, renew, retry = (
        s.leader_election_lease_duration_seconds,
        s.leader_election_renew_deadline_seconds,
        s.leader_election_retry_period_seconds,
    )
    assert (lease, renew, retry) == (8, 6, 2)
    # A standby acts at most a lease duration plus two retry periods after the last renewal.
    assert lease + 2 * retry <= 12


@pytest.mark.parametrize(
    ("lease", "renew", "retry"), [(6, 6, 2), (8, 9, 2), (8, 6, 5), (8, 2, 2), (3, 2, 0)]
)
def test_unsafe_timings_are_refused(lease: int, renew: int, retry: int) -> None:
    with pytest.raises(pydantic.ValidationError):
        settings(
            leader_election_lease_duration_seconds=lease,
            leader_election_renew_deadline_seconds=renew,
            leader_election_retry_period_seconds=retry,
        )


def test_lease_namespace_is_the_pods_then_the_first_watched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHANNELMODEL_LEADER_ELECTION_NAMESPACE", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert OperatorSettings().lease_namespace == "default"
    assert OperatorSettings(namespaces=["shop-a", "shop-b"]).lease_namespace == "shop-a"
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    assert OperatorSettings(namespaces=["shop-a"]).lease_namespace == "ops"
    monkeypatch.setenv("CHANNELMODEL_LEADER_ELECTION_NAMESPACE", "leases")
    assert OperatorSettings().lease_namespace == "leases"


def test_identity_is_the_pod_name_and_unique_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "op-7f9-abc")
    one, two = default_identity(), default_identity()
    assert one.startswith("op-7f9-abc_") and two.startswith("op-7f9-abc_")
    assert one != two


class FakeLeases:
    """CoordinationV1Api stand-in: records calls, can fail like a dead network."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[dict[str, Any]] = []  # the bodies, as they go on the wire
        self.error: BaseException | None = None
        self.lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name="op", resource_version="1"),
            spec=client.V1LeaseSpec(
                holder_identity="me",
                lease_duration_seconds=8,
                acquire_time=datetime(2026, 1, 1, tzinfo=UTC),
                renew_time=datetime(2026, 1, 1, tzinfo=UTC),
            ),
        )

    def _call(self, name: str, **kwargs: Any) -> Any:
        self.calls.append((name, kwargs))
        if self.error is not None:
            raise self.error
        return self.lease

    def read_namespaced_lease(self, name: str, namespace: str, **kw: Any) -> Any:
        return self._call("read", **kw)

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **kw: Any) -> Any:
        self._call("replace", **kw)
        return self._store(body, None)

    def create_namespaced_lease(self, namespace: str, body: Any, **kw: Any) -> Any:
        self._call("create", **kw)
        return self._store(body, None)

    def _store(self, body: Any, answer: Any) -> Any:
        self.sent.append(client.ApiClient().sanitize_for_serialization(body))
        self.lease = body
        return body


def record(identity: str = "me", when: str = "2026-01-01 10:00:00") -> LeaderElectionRecord:
    return LeaderElectionRecord(identity, "8", when, when)  # type: ignore[no-untyped-call]


def test_lock_writes_micro_time_with_six_digits_and_times_out_requests() -> None:
    api = FakeLeases()
    lock = OperatorLeaseLock("op", "ns", "me", request_timeout=2, api=api)  # type: ignore[arg-type]
    assert lock.get("op", "ns")[0] is True
    # A whole second: isoformat() would drop the fraction, which the API server refuses.
    assert lock.update("op", "ns", record(when="2026-01-01 10:00:00")) is True
    (wire,) = api.sent
    assert wire["spec"]["renewTime"].endswith(":00.000000+00:00")
    assert wire["spec"]["acquireTime"].endswith(":00.000000+00:00")
    assert wire["spec"]["holderIdentity"] == "me"
    assert all(kwargs["_request_timeout"] == 2 for _, kwargs in api.calls)
    assert lock.renewed_at is not None


def test_network_errors_are_failed_attempts_not_a_dead_election_thread() -> None:
    api = FakeLeases()
    lock = OperatorLeaseLock("op", "ns", "me", request_timeout=2, api=api)  # type: ignore[arg-type]
    lock.get("op", "ns")
    api.error = urllib3.exceptions.MaxRetryError(None, "/", "connection refused")  # type: ignore[arg-type]
    found, error = lock.get("op", "ns")
    assert found is False and error is api.error
    assert lock.update("op", "ns", record()) is False
    assert lock.create("op", "ns", record()) is False
    assert lock.renewed_at is None


def test_release_gives_the_lease_up_and_stops_all_writes() -> None:
    api = FakeLeases()
    lock = OperatorLeaseLock("op", "ns", "me", request_timeout=2, api=api)  # type: ignore[arg-type]
    assert lock.release() is True
    (wire,) = api.sent
    assert wire["spec"].get("holderIdentity") is None
    assert wire["spec"]["leaseDurationSeconds"] == 1
    assert len(wire["spec"]["renewTime"]) == len("2026-01-01T10:00:00.000000+00:00")
    assert lock.get("op", "ns")[0] is True
    assert lock.update("op", "ns", record()) is False  # a late renewal cannot take it back
    assert [name for name, _ in api.calls] == ["read", "replace", "read"]


def test_release_leaves_someone_elses_lease_alone() -> None:
    api = FakeLeases()
    api.lease.spec.holder_identity = "other"
    lock = OperatorLeaseLock("op", "ns", "me", request_timeout=2, api=api)  # type: ignore[arg-type]
    assert lock.release() is False
    assert api.lease.spec.holder_identity == "other"


def elector(exits: list[int], **values: Any) -> LeaderElector:
    s = settings(
        leader_election_identity="me",
        leader_election_lease_duration_seconds=3,
        leader_election_renew_deadline_seconds=2,
        leader_election_retry_period_seconds=1,
        **values,
    )
    return LeaderElector(s, api=FakeLeases(), exit=exits.append)  # type: ignore[arg-type]


def test_leader_exits_when_renewals_stop_whatever_the_renew_loop_does() -> None:
    exits: list[int] = []
    e = elector(exits)
    e._started_leading()
    assert LEADER._value.get() == 1
    assert e.leading.is_set()
    e.lock.renewed_at = time.monotonic()
    time.sleep(1)
    assert exits == []
    time.sleep(1.6)  # past the renew deadline (2 s) without a renewal
    assert exits == [1]
    assert LEADER._value.get() == 0


def test_lost_lease_exits_at_once() -> None:
    exits: list[int] = []
    e = elector(exits)
    e._started_leading()
    e._stopped_leading()
    assert exits[:1] == [1]
    e.lock.released = True  # stops the watchdog thread


def test_health_answers_for_standby_and_leader() -> None:
    exits: list[int] = []
    e = elector(exits)
    kopf = HealthServer("http://127.0.0.1:0/kopf", elector(exits), None).start()
    try:
        # Stand-in for kopf's own liveness endpoint: the standby's HealthServer, which answers 200.
        kopf.elector.thread.start = lambda: None  # type: ignore[method-assign]
        kopf.elector.thread.is_alive = lambda: True  # type: ignore[method-assign]
        health = HealthServer(
            "http://127.0.0.1:0/healthz", e, f"http://127.0.0.1:{kopf.port}/kopf"
        ).start()
        url = f"http://127.0.0.1:{health.port}"
        # The election thread is not running: neither live nor ready.
        assert httpx.get(f"{url}/healthz").status_code == 503
        e.thread.is_alive = lambda: True  # type: ignore[method-assign]
        for path in ("/healthz", "/readyz"):
            answer = httpx.get(url + path)
            assert (answer.status_code, answer.json()) == (200, {"role": "standby"})
        e._started_leading()
        e.lock.renewed_at = time.monotonic() + 3600  # no watchdog exit in this test
        assert httpx.get(f"{url}/readyz").json() == {"role": "leader"}
        kopf.close()  # kopf stops answering
        assert httpx.get(f"{url}/readyz").status_code == 503
        # ... which liveness forgives while a new leader's kopf starts, not after.
        assert httpx.get(f"{url}/healthz").json() == {"role": "leader", "kopf": "starting"}
        e.leading_since = time.monotonic() - 3600
        assert httpx.get(f"{url}/healthz").status_code == 503
        assert httpx.get(f"{url}/other").status_code == 404
        health.close()
    finally:
        e.lock.released = True  # stops the watchdog thread
