"""What the operator benchmarks share: an emulated cluster that timestamps every
request, the local job runner with the fake trainer (tests/support/fake_trainer.py),
the operator as a real process (`python -m channelmodel run`), request accounting,
/proc figures and the results file docs/benchmarks/operator.md.

The cluster, process and waiting helpers are the ones the end-to-end tests use
(tests/support/); only the request timing is added here, because the emulator's
request log records order (seq) but not time.
"""

from __future__ import annotations

import collections
import contextlib
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kubernetes

REPO_ROOT = Path(__file__).resolve().parents[1]
# The e2e tests' helpers live in the `tests` package at the repo root, which is
# not installed; the benchmarks run from bench/, so put the root on the path.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.k8s import Cluster, wait_for  # noqa: E402
from tests.support.operator import OPERATOR_ARGV, OperatorProcess, operator_env  # noqa: E402
from tests.support.standin import FAKE_TRAINER  # noqa: E402

from channelmodel.api.crd import crd_manifest  # noqa: E402
from channelmodel.api.models import GROUP, PLURAL, VERSION  # noqa: E402
from channelmodel_sandbox.containers import StandInCommand  # noqa: E402
from channelmodel_sandbox.emulator import KubernetesAPIEmulator  # noqa: E402
from channelmodel_sandbox.jobrunner import USER_AGENT as JOBRUNNER_USER_AGENT  # noqa: E402
from channelmodel_sandbox.jobrunner import JobRunner  # noqa: E402
from channelmodel_sandbox.kubeconfig import write_kubeconfig  # noqa: E402
from channelmodel_sandbox.requests import WRITE_VERBS  # noqa: E402
from channelmodel_sandbox.runtime import EmulatorThread  # noqa: E402

RESULTS_FILE = REPO_ROOT / "docs" / "benchmarks" / "operator.md"
BENCH_USER_AGENT = "channelmodel-bench"
API_VERSION = f"{GROUP}/{VERSION}"
CHANGED_AT = "ml.dukarun.io/inventory-changed-at"
CHANGE_KIND = "ml.dukarun.io/inventory-change"

__all__ = ["OPERATOR_ARGV", "wait_for"]  # re-exported for the scripts


@attrs.define(kw_only=True)
class TimedEmulator(KubernetesAPIEmulator):
    """The emulator, plus the arrival time (and write bodies) of every request by seq."""

    arrival: dict[int, float] = attrs.field(factory=dict, init=False)
    bodies: dict[int, bytes] = attrs.field(factory=dict, init=False)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        received = time.time()
        body = await raw_request.read()
        # The parent reads the now cached body without yielding to the loop, so the
        # record it appends next gets exactly this seq.
        seq = self.requests_served
        self.arrival[seq] = received
        if raw_request.method in ("POST", "PUT", "PATCH", "DELETE"):
            self.bodies[seq] = body[:4000]
        return await super().__call__(raw_request)


@dataclass(frozen=True)
class Request:
    """One request the emulator served, with its arrival time (epoch seconds)."""

    seq: int
    time: float
    method: str
    path: str
    verb: str | None
    resource: str | None
    name: str | None
    user_agent: str
    status: int
    body: bytes

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    @property
    def by_operator(self) -> bool:
        # Everything that is neither this script's client nor the job runner: kopf
        # (kopf/x.y) and the operator's official client (OpenAPI-Generator/...).
        return self.user_agent not in (BENCH_USER_AGENT, JOBRUNNER_USER_AGENT)

    def describe(self, limit: int = 600) -> str:
        stamp = datetime.fromtimestamp(self.time, UTC).strftime("%H:%M:%S.%f")[:-3]
        text = f"#{self.seq} {stamp} {self.method} {self.path} -> {self.status} [{self.user_agent}]"
        if self.body:
            text += f"\n    body: {self.body.decode(errors='replace')[:limit]}"
        return text


def _snapshot(emulator: KubernetesAPIEmulator, since: int) -> list[Request]:
    assert isinstance(emulator, TimedEmulator)
    return [
        Request(
            seq=record.seq,
            time=emulator.arrival.get(record.seq, 0.0),
            method=record.method,
            path=record.path,
            verb=record.verb,
            resource=record.resource,
            name=record.name,
            user_agent=record.user_agent,
            status=record.status,
            body=emulator.bodies.get(record.seq, b""),
        )
        for record in emulator.request_log
        if record.seq >= since
    ]


def breakdown(requests: Iterable[Request]) -> dict[str, int]:
    """Counts by `verb resource`, most frequent first."""
    counts = collections.Counter(f"{r.verb or r.method} {r.resource or r.path}" for r in requests)
    return dict(counts.most_common())


@dataclass
class OperatorEnv:
    """A running emulator, job runner and operator process."""

    cluster: Cluster
    runner: JobRunner
    operator: OperatorProcess
    work_dir: Path

    # --- requests ----------------------------------------------------------------
    def mark(self) -> int:
        return self.cluster.request_mark()

    def requests(self, since: int = 0, until: int | None = None) -> list[Request]:
        found = self.cluster.call(lambda emulator: _snapshot(emulator, since))
        return [r for r in found if until is None or r.seq < until]

    def operator_requests(self, since: int = 0, until: int | None = None) -> list[Request]:
        return [r for r in self.requests(since, until) if r.by_operator]

    # --- objects (read straight from the emulator: no requests in the log) -------
    def channelmodels(self) -> list[dict[str, Any]]:
        return self.cluster.call(lambda emulator: emulator.list_objects(API_VERSION, PLURAL))

    def channelmodel(self, name: str) -> dict[str, Any] | None:
        return self.cluster.call(
            lambda emulator: emulator.get_object(API_VERSION, PLURAL, "default", name)
        )

    def job_names(self) -> list[str]:
        return [str(job["metadata"]["name"]) for job in self.cluster.jobs()]

    def create_channelmodel(self, name: str, spec: Mapping[str, Any]) -> None:
        self.cluster.create_channelmodel(name, dict(spec))

    def annotate_change(self, name: str, changed_at: datetime, kind: str = "productAdded") -> None:
        """What a backend does on a catalog change (CONTRACT.md): one merge patch."""
        self.cluster.patch_channelmodel(
            name,
            {"metadata": {"annotations": {CHANGED_AT: rfc3339(changed_at), CHANGE_KIND: kind}}},
        )

    def wait_served(self, name: str, version: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until `version` is served and nothing runs or waits."""

        def served() -> dict[str, Any] | None:
            obj = self.channelmodel(name) or {}
            status = obj.get("status") or {}
            at_rest = (
                status.get("modelVersion") == version
                and status.get("trainingStatus") == "Succeeded"
                and not status.get("currentJob")
            )
            return status if at_rest else None

        return wait_for(
            served,
            timeout=timeout,
            interval=0.02,
            message=lambda: (
                f"{name} serving {version}: {(self.channelmodel(name) or {}).get('status')}"
            ),
        )

    # --- the operator process -----------------------------------------------------
    def log_problems(self) -> list[str]:
        """Operator log lines at WARNING or above, and tracebacks."""
        pattern = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback")
        return [line for line in self.operator.log_text().splitlines() if pattern.search(line)]


class TrainingFailed(RuntimeError):
    """A training the benchmark needs failed: its figures would mean nothing."""


def raise_if_failed(name: str, status: Mapping[str, Any]) -> None:
    if status.get("trainingStatus") == "Failed":
        raise TrainingFailed(f"{name}: training failed: {status.get('lastError')}")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fake_trainer(**env: str) -> Callable[[dict[str, Any]], StandInCommand]:
    """The e2e tests' stand-in trainer: the Job's own args, placeholder files in the store."""

    def stand_in(pod: dict[str, Any]) -> StandInCommand:
        container = pod["spec"]["containers"][0]
        return StandInCommand([sys.executable, str(FAKE_TRAINER), *container["args"]], env=env)

    return stand_in


@contextlib.contextmanager
def operator_environment(
    operator_settings: Mapping[str, str],
    trainer_env: Mapping[str, str],
    *,
    keep: bool = False,
    argv: Sequence[str] = OPERATOR_ARGV,
) -> Iterator[OperatorEnv]:
    """Emulator + job runner (fake trainer) + `python -m channelmodel run`, torn down after."""
    work_dir = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    thread = EmulatorThread(manifests=[crd_manifest()])
    # Not via `emulator=`: EmulatorThread tests it with `or`, and an emulator that has
    # served no request is falsy (kmock views define __bool__ by their request count).
    thread.emulator = TimedEmulator()
    thread.start()
    kubeconfig = write_kubeconfig(work_dir / "kubeconfig", thread.url)
    api_client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    api_client.user_agent = BENCH_USER_AGENT  # so the operator's requests can be told apart
    cluster = Cluster(thread=thread, kubeconfig=kubeconfig, api_client=api_client)
    runner = JobRunner(
        cluster.url, stand_in=fake_trainer(**trainer_env), work_dir=work_dir / "jobrunner"
    )
    thread.spawn(runner.run)
    thread.run(runner.wait_started(), timeout=10)
    env = operator_env(cluster, work_dir, dict(operator_settings))
    operator = OperatorProcess(argv, env, work_dir / "operator.log").start()
    try:
        operator.wait_for_log("watching", timeout=30)
        yield OperatorEnv(cluster=cluster, runner=runner, operator=operator, work_dir=work_dir)
    finally:
        operator.stop(timeout=15)
        thread.run(runner.aclose(), timeout=30)
        api_client.close()
        thread.stop()
        if keep:
            print(f"kept {work_dir} (operator.log, kubeconfig, job runner logs)")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


# --- /proc figures ------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident set size of one process, from /proc/<pid>/status (VmRSS, kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


# --- the results file -----------------------------------------------------------------

_HEADER = """# Operator benchmarks

Issue 3's benchmarks, run against the Kubernetes API emulator
(`channelmodel_sandbox`) with the local job runner and the fake trainer
(tests/support/fake_trainer.py), the operator running as a real process
(`python -m channelmodel run`). Requests are counted from the emulator's request
log; the operator's are those whose User-Agent is neither the benchmark's client
(`channelmodel-bench`) nor the job runner's. Each section is rewritten by its
script; re-run with the command shown.
"""


def machine() -> str:
    # The load average says whether other processes shared the cores during the run.
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} at the end"
    )


def write_section(key: str, markdown: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks/operator.md."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else _HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(text)
    print(f"wrote {RESULTS_FILE.relative_to(REPO_ROOT)} ({key})")


def now_utc() -> datetime:
    return datetime.now(UTC)


def stamp() -> str:
    return now_utc().strftime("%Y-%m-%d %H:%M UTC")
