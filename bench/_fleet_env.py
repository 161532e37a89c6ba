"""What the fleet benchmarks share: the real control plane of the tests (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, built by
scripts/control-plane.sh) with the process kubelets running the fake trainer,
the operator as a real process, request accounting from the API server's audit
log, Prometheus figures from the operator's /metrics, and /proc figures.

Fleets of trained channels are seeded: each ChannelModel is created, then its
status is set to what the operator's own planner writes after a successful first
run (`planner.plan` on an empty status, then on the Job's success). Running ten
thousand Jobs through the process kubelet would take hours on two cores; the
rush trains its channels for real.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import kubernetes
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench._operator_env import cpu_seconds, fake_trainer, rfc3339, rss_mb  # noqa: E402
from tests.support.k8s import RealCluster, RealControlPlane, wait_for  # noqa: E402
from tests.support.operator import OPERATOR_ARGV, OperatorProcess, operator_env  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

from channelmodel.api.job_result import JobResult  # noqa: E402
from channelmodel.api.models import (  # noqa: E402
    GROUP,
    PLURAL,
    VERSION,
    ChannelModelSpec,
    ChannelModelStatus,
)
from channelmodel.plan_types import Fleet, JobObservation, JobPhase, PlanInput  # noqa: E402
from channelmodel.planner import plan  # noqa: E402
from channelmodel.settings import OperatorSettings  # noqa: E402
from channelmodel_sandbox.controlplane import ControlPlane, find_binaries  # noqa: E402

BENCH_USER_AGENT = "channelmodel-bench"
OPERATOR_AGENTS = ("channelmodel-operator", "kopf")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
CHANGED_AT = "ml.dukarun.io/inventory-changed-at"
CHANGE_KIND = "ml.dukarun.io/inventory-change"
DIFF_BASE = "kopf.zalando.org/last-handled-configuration"
SEEDED_AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def channel_spec(name: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "channelId": name,
        "manifest": {"url": "http://backend.test/manifest"},
        "debounceSeconds": 5,
        "cooldownSeconds": 0,
        "training": {"gpus": 0},
    }
    spec.update(overrides)
    return spec


def trained_status(
    name: str, spec: Mapping[str, Any], settings: OperatorSettings
) -> dict[str, Any]:
    """The status the operator's planner writes after the channel's first run succeeded."""
    inp = PlanInput(
        name=name,
        spec=ChannelModelSpec.model_validate(dict(spec)),
        status=ChannelModelStatus(),
        annotations={},
        now=SEEDED_AT,
        fleet=Fleet(cap=1),
        model_base_url=settings.model_base_url,
        generation=1,
    )
    started = plan(inp)
    assert started.start_job is not None
    report = JobResult.model_validate(
        {"ok": True, "metrics": {"accuracy": 0.9, "classes": 3, "images": 30}}
    )
    finished = plan(
        replace(
            inp,
            status=started.status,
            now=SEEDED_AT + timedelta(seconds=30),
            job=JobObservation(phase=JobPhase.SUCCEEDED, result=report),
        )
    )
    return finished.status.model_dump(mode="json", exclude_none=True)


@dataclass
class AuditEvent:
    at: float  # requestReceivedTimestamp, epoch seconds
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    user_agent: str

    @property
    def by_operator(self) -> bool:
        return any(agent in self.user_agent for agent in OPERATOR_AGENTS)

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS


@dataclass
class AuditLog:
    """The API server's audit log, read incrementally."""

    path: Path
    namespaces: set[str]
    offset: int = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def read(self) -> list[AuditEvent]:
        """Events of the watched namespaces since the last mark or read."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        events = []
        for line in data[:end].splitlines():
            raw = json.loads(line)
            ref = raw.get("objectRef") or {}
            if ref.get("namespace") not in self.namespaces:
                continue
            received = datetime.fromisoformat(
                raw["requestReceivedTimestamp"].replace("Z", "+00:00")
            )
            events.append(
                AuditEvent(
                    at=received.timestamp(),
                    verb=str(raw.get("verb", "")),
                    resource=str(ref.get("resource", "")),
                    subresource=str(ref.get("subresource", "")),
                    namespace=str(ref.get("namespace", "")),
                    name=str(ref.get("name", "")),
                    user_agent=str(raw.get("userAgent", "")),
                )
            )
        return events


@dataclass
class Operator:
    process: OperatorProcess
    metrics_port: int
    started: float

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        return 0.0

    def wait_settled(self, at_least: float, quiet: float = 3.0, timeout: float = 600) -> float:
        """Seconds from start until `channelmodel_reconciles_total` reached `at_least`
        and then stayed flat for `quiet` seconds (the flat wait is not counted)."""
        deadline = time.monotonic() + timeout
        reached: float | None = None
        last, last_change = -1.0, time.monotonic()
        while time.monotonic() < deadline:
            try:
                value = self.metric("channelmodel_reconciles_total")
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            now = time.monotonic()
            if value != last:
                last, last_change = value, now
            if value >= at_least and reached is None:
                reached = now
            if reached is not None and now - last_change >= quiet:
                return last_change - self.started
            time.sleep(0.2)
        raise TimeoutError(f"operator did not settle: {last} reconciles, wanted {at_least}")

    def stop(self, kill: bool = False) -> None:
        if kill and self.process.process is not None:
            self.process.process.kill()
            self.process.process.wait()
            return
        self.process.stop(timeout=30)


@dataclass
class FleetEnv:
    """A real control plane with one fleet namespace, the kubelets running the fake trainer."""

    work_dir: Path
    control: RealControlPlane
    cluster: RealCluster
    audit: AuditLog
    operators: list[Operator] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    def settings(self, extra: Mapping[str, str] | None = None) -> OperatorSettings:
        env = operator_env(self.cluster, self.work_dir, dict(extra or {}))
        return OperatorSettings.model_validate(
            {
                k.removeprefix("CHANNELMODEL_").lower(): v
                for k, v in env.items()
                if k.startswith("CHANNELMODEL_")
            }
        )

    def start_operator(
        self, extra: Mapping[str, str] | None = None, name: str = "operator"
    ) -> Operator:
        port = free_port()
        env = operator_env(
            self.cluster, self.work_dir, {"CHANNELMODEL_METRICS_PORT": str(port), **(extra or {})}
        )
        log = self.work_dir / f"{name}-{len(self.operators)}.log"
        started = time.monotonic()
        process = OperatorProcess(OPERATOR_ARGV, env, log).start()
        operator = Operator(process, port, started)
        self.operators.append(operator)
        return operator

    # --- objects ----------------------------------------------------------------------
    def channel_names(self) -> set[str]:
        items = self.cluster.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )
        return {item["metadata"]["name"] for item in items["items"]}

    def seed_trained(
        self,
        names: list[str],
        spec_overrides: Mapping[str, Any] | None = None,
        adopted: bool = True,
    ) -> None:
        """Create these ChannelModels with the status of a successful first run.

        `adopted`: with what an operator adds when it first sees an object (kopf's
        finalizer and its diff base), as a fleet that an operator has run before
        looks. Without, the first operator start adds them (two writes each).
        """
        finalizers = [f"{GROUP}/cleanup"] if adopted else []
        settings = self.settings()
        custom = self.cluster.custom

        def seed(name: str) -> None:
            spec = channel_spec(name, **dict(spec_overrides or {}))
            created = custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL,
                {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ChannelModel",
                 "metadata": {"name": name, "finalizers": finalizers}, "spec": spec},
            )  # fmt: skip
            if adopted:
                # kopf's diff base of the (server-defaulted) spec, as kopf writes it on first sight.
                essence = json.dumps(
                    {"spec": created["spec"]}, separators=(",", ":"), sort_keys=True
                )
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name,
                    {"metadata": {"annotations": {DIFF_BASE: essence + "\n"}}},
                )  # fmt: skip
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, name,
                {"status": trained_status(name, spec, settings)},
                _content_type="application/merge-patch+json",
            )  # fmt: skip

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(seed, names))

    def annotate_change(self, name: str, at: datetime, kind: str = "productAdded") -> None:
        self.cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name,
            {"metadata": {"annotations": {CHANGED_AT: rfc3339(at), CHANGE_KIND: kind}}},
        )  # fmt: skip

    def status(self, name: str) -> dict[str, Any]:
        obj = self.cluster.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return dict(obj.get("status") or {})

    def jobs(self) -> list[dict[str, Any]]:
        return self.cluster.jobs()

    def close(self) -> None:
        for operator in self.operators:
            with contextlib.suppress(Exception):
                operator.stop()
        self.cluster.close()
        self.control.close()


@contextlib.contextmanager
def fleet_environment(trainer_delay: str = "0.1", keep: bool = False) -> Iterator[FleetEnv]:
    binaries = find_binaries(REPO_ROOT)
    if binaries is None:
        raise SystemExit("the control plane is not built: run scripts/control-plane.sh")
    work_dir = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    plane = ControlPlane(binaries=binaries, work_dir=work_dir / "plane").start()
    control = RealControlPlane(plane, work_dir)
    env: FleetEnv | None = None
    try:
        control.apply_crd()
        (work_dir / "ns").mkdir()
        cluster = RealCluster(control, "fleet", work_dir / "ns")
        cluster.api_client.user_agent = BENCH_USER_AGENT
        cluster.admit(fake_trainer(FAKE_DELAY=trainer_delay))
        env = FleetEnv(work_dir, control, cluster, AuditLog(plane.audit_log, {"fleet"}))
        yield env
    finally:
        if env is not None:
            env.close()
        else:
            control.close()
        if keep:
            print(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


__all__ = ["cpu_seconds", "kubernetes", "rss_mb", "wait_for"]
