"""Leader election over a coordination.k8s.io Lease, and the health endpoint of a replica.

Several replicas of `channelmodel run` may run; only the one holding the Lease runs
kopf (docs/decisions/0015-leader-election-lease.md). The protocol is the official
client's `kubernetes.leaderelection` (the one client-go and controller-runtime
use): a standby takes the Lease when it has not seen it renewed for the lease
duration; the leader renews it every retry period.

Like controller-runtime, a leader that cannot renew does not try to stop cleanly:
the process exits at once (`os._exit`), so two replicas never act together, and
Kubernetes restarts it as a standby. One more guard than the library has: a
watchdog ends the leader when its last successful renewal is older than the renew
deadline, whatever the renew loop is doing (a hung request, a dead thread). The
standby waits the lease duration since it *saw* that renewal, so the gap between
the two (lease duration - renew deadline, 2 s by default) separates the old leader's
end from the new leader's start.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock
from prometheus_client import Gauge

from channelmodel.settings import OperatorSettings

logger = logging.getLogger(__name__)

LEADER = Gauge("channelmodel_leader", "1 while this replica holds the Lease and acts, else 0.")

# Seconds a new leader's kopf may take to answer its liveness probe before /healthz fails.
KOPF_STARTUP_GRACE_SECONDS = 60.0


def exit_now(code: int) -> NoReturn:  # pragma: no cover - replaced in tests
    """Leave at once: no cleanup handler, no kopf shutdown that could still act."""
    logging.shutdown()
    os._exit(code)


def default_identity() -> str:
    """The Pod's name plus a random suffix (controller-runtime's `<hostname>_<uuid>`):
    a restarted container is a new candidate, and two processes never share one."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{secrets.token_hex(4)}"


class _WithTimeout:
    """CoordinationV1Api whose every call carries `_request_timeout`."""

    def __init__(self, api: client.CoordinationV1Api, timeout: float) -> None:
        self._api = api
        self._timeout = timeout

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._api, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("_request_timeout", self._timeout)
            return method(*args, **kwargs)

        return call


class MicroTime(datetime):
    """A datetime that serializes with six fractional digits even when they are 0.

    The client's models go out via `datetime.isoformat()`, which drops the fraction
    when the microsecond is 0, and the API server refuses such a MicroTime (400,
    seen on the real control plane): one renewal in a million would fail.
    """

    def isoformat(self, sep: str = "T", timespec: str = "microseconds") -> str:
        return super().isoformat(sep, timespec)

    @classmethod
    def of(cls, value: Any) -> Any:
        if isinstance(value, datetime) and not isinstance(value, cls):
            return cls.combine(value.date(), value.timetz())
        return value


class OperatorLeaseLock(LeaseLock):
    """The client's LeaseLock, with what it lacks against a real API server (1.37):

    - Times go out via `datetime.isoformat()`, which drops the fraction when the
      microsecond is 0; the API server refuses such a MicroTime (400, seen on the
      real control plane). Here they are always written with six digits (MicroTime).
    - Only ApiException is caught: a connection error escapes and ends the election
      thread, and a leader would then go on acting without renewing. Here every
      error is a failed attempt, retried like an API error.
    - Requests have no timeout: a hung connection would stall the renew loop past
      the lease. Here each request times out after `request_timeout`.

    It also records when the last successful write of our own record started (the
    watchdog's clock), and refuses writes once the Lease was released.
    """

    def __init__(
        self,
        name: str,
        namespace: str,
        identity: str,
        request_timeout: float,
        api: client.CoordinationV1Api | None = None,
    ) -> None:
        super().__init__(name, namespace, identity)  # type: ignore[no-untyped-call]
        self.api_instance: Any = _WithTimeout(api or client.CoordinationV1Api(), request_timeout)
        self.renewed_at: float | None = None  # time.monotonic() at the start of the write
        self.released = False
        self._failures_logged = 0

    def get(self, name: str, namespace: str) -> tuple[bool, Any]:
        try:
            return super().get(name, namespace)  # type: ignore[no-any-return,no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            self._log_failure("read", error)
            return False, error

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        create = super().create
        return self._write(lambda: create(name, namespace, election_record), election_record)  # type: ignore[no-untyped-call]

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        update = super().update
        return self._write(lambda: update(name, namespace, updated_record), updated_record)  # type: ignore[no-untyped-call]

    def _write(self, write: Callable[[], bool], record: Any) -> bool:
        if self.released:
            return False
        started = time.monotonic()
        try:
            ok = write()
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            self._log_failure("write", error)
            return False
        if ok and record.holder_identity == self.identity:
            self.renewed_at = started
            self._failures_logged = 0
        return ok

    def _log_failure(self, what: str, error: BaseException) -> None:
        # The library logs API errors at INFO; network errors, once per streak, here.
        if self._failures_logged == 0:
            logger.warning("lease %s/%s: %s failed: %s", self.namespace, self.name, what, error)
        self._failures_logged += 1

    def get_lease_spec(self, leader_election_record: Any, current_spec: Any = None) -> Any:
        spec = super().get_lease_spec(leader_election_record, current_spec)  # type: ignore[no-untyped-call]
        spec.acquire_time = MicroTime.of(spec.acquire_time)
        spec.renew_time = MicroTime.of(spec.renew_time)
        return spec

    def release(self) -> bool:
        """Give the Lease up (graceful stop): a standby takes it at its next attempt
        instead of waiting for it to expire. No write of ours follows."""
        self.released = True
        try:
            lease = self.api_instance.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return False
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.acquire_time = MicroTime.of(lease.spec.acquire_time)
            lease.spec.renew_time = MicroTime.now(UTC)
            self.api_instance.replace_namespaced_lease(self.name, self.namespace, lease)
            return True
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            logger.warning("could not release lease %s/%s: %s", self.namespace, self.name, error)
            return False


class LeaderElector:
    """Runs the election in a daemon thread; `wait_until_leading()` blocks the caller."""

    def __init__(
        self,
        settings: OperatorSettings,
        *,
        api: client.CoordinationV1Api | None = None,
        exit: Callable[[int], None] = exit_now,
    ) -> None:
        self.identity = settings.leader_election_identity or default_identity()
        self.lease_duration = settings.leader_election_lease_duration_seconds
        self.renew_deadline = settings.leader_election_renew_deadline_seconds
        self.retry_period = settings.leader_election_retry_period_seconds
        self.lock = OperatorLeaseLock(
            settings.leader_election_lease_name,
            settings.lease_namespace,
            self.identity,
            request_timeout=self.retry_period,
            api=api,
        )
        self._exit = exit
        self.leading = threading.Event()
        self.leading_since: float | None = None
        self.config = electionconfig.Config(  # type: ignore[no-untyped-call]
            self.lock,
            self.lease_duration,
            self.renew_deadline,
            self.retry_period,
            onstarted_leading=self._started_leading,
            onstopped_leading=self._stopped_leading,
        )
        self.thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        LEADER.set(0)

    @property
    def lease(self) -> str:
        return f"{self.lock.namespace}/{self.lock.name}"

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def start(self) -> LeaderElector:
        # The library logs every renewal and every attempt at INFO: transitions only, here.
        logging.getLogger("leaderelection").setLevel(logging.WARNING)
        logger.info("standing by for lease %s as %s", self.lease, self.identity)
        self.thread.start()
        return self

    def wait_until_leading(self, timeout: float | None = None) -> bool:
        return self.leading.wait(timeout)

    def release(self) -> None:
        """After kopf stopped: hand the Lease over now (a standby need not wait it out)."""
        if self.leading.is_set() and self.lock.release():
            logger.info("released lease %s", self.lease)
        LEADER.set(0)

    def _run(self) -> None:
        try:
            leaderelection.LeaderElection(self.config).run()  # type: ignore[no-untyped-call]
        except BaseException:
            logger.exception("leader election failed")
        # run() returns only after leadership was lost; either way nothing guards us now.
        self._stop("leader election ended")

    def _started_leading(self) -> None:
        self.leading_since = time.monotonic()
        self.lock.renewed_at = self.lock.renewed_at or self.leading_since
        LEADER.set(1)
        logger.info("acquired lease %s as %s: this replica acts now", self.lease, self.identity)
        threading.Thread(target=self._watchdog, name="leader-watchdog", daemon=True).start()
        self.leading.set()

    def _stopped_leading(self) -> None:
        self._stop(f"lost lease {self.lease}: not renewed within {self.renew_deadline} s")

    def _watchdog(self) -> None:
        while True:
            renewed = self.lock.renewed_at
            if self.lock.released:
                return
            if renewed is not None and time.monotonic() - renewed > self.renew_deadline:
                self._stop(f"lease {self.lease} not renewed for {self.renew_deadline} s")
                return
            time.sleep(0.2)

    def _stop(self, reason: str) -> None:
        if self.lock.released:
            return  # a graceful stop in progress: the main thread exits
        LEADER.set(0)
        logger.error("%s; exiting so that no two replicas act", reason)
        self._exit(1)


class HealthServer:
    """The replica's probe endpoint, up from process start (kopf's is up only once it runs).

    `<path>` (liveness, /healthz in the chart) and /readyz answer 200 for a standby whose
    election thread runs, and for a leader whose kopf answers its own liveness endpoint
    (`kopf_url`, on loopback). While a new leader's kopf starts, /healthz stays 200 for
    KOPF_STARTUP_GRACE_SECONDS; /readyz does not.
    """

    def __init__(self, endpoint: str, elector: LeaderElector, kopf_url: str | None) -> None:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme != "http":
            raise ValueError(f"health endpoint must be http://HOST:PORT/PATH, not {endpoint!r}")
        self.path = parts.path or "/healthz"
        self.elector = elector
        self.kopf_url = kopf_url
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == health.path:
                    code, body = health.check(ready=False)
                elif self.path == "/readyz":
                    code, body = health.check(ready=True)
                else:
                    code, body = 404, {"error": "not found"}
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds: not worth a log line

        self.server = ThreadingHTTPServer(
            (parts.hostname or "0.0.0.0", 80 if parts.port is None else parts.port), Handler
        )
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        threading.Thread(target=self.server.serve_forever, name="health", daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def check(self, *, ready: bool) -> tuple[int, dict[str, Any]]:
        elector = self.elector
        if not elector.alive and not elector.lock.released:
            return 503, {"role": "none", "problem": "leader election stopped"}
        if not elector.leading.is_set():
            return 200, {"role": "standby"}
        if self._kopf_answers():
            return 200, {"role": "leader"}
        since = elector.leading_since or 0.0
        if not ready and time.monotonic() - since < KOPF_STARTUP_GRACE_SECONDS:
            return 200, {"role": "leader", "kopf": "starting"}
        return 503, {"role": "leader", "problem": "kopf does not answer its liveness probe"}

    def _kopf_answers(self) -> bool:
        if self.kopf_url is None:
            return True
        try:
            with urllib.request.urlopen(self.kopf_url, timeout=3) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False


def loopback_url(path: str = "/healthz") -> str:
    """A free loopback port for kopf's own liveness endpoint, behind HealthServer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
