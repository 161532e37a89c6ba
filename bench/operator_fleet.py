"""Fleet scale on the real control plane: idle fleets, a restart, debounce
latency, the morning rush (issue 16). Figures go to docs/benchmarks/operator.md.

    .venv/bin/python bench/operator_fleet.py                       # everything
    .venv/bin/python bench/operator_fleet.py --sizes 200,1000 --window 60 --rush 200

One control plane (bench/_fleet_env.py) for the whole run, so every figure has
its baseline from the same run: an operator with no ChannelModel, and for the
latency figures the API server's own round trip for a Job create by this
script. In order:

1. baseline: the operator watching an empty namespace, `--small-window` s;
2. for each size N (ascending): seed N trained channels (status from the
   planner), start the operator, let it settle, measure an idle window (the
   largest size gets `--window` s, the others `--small-window`), restart it and
   measure until it settles again;
3. latency: `--latency-runs` changes to one channel with `debounceSeconds: 1`,
   Job create (audit log) minus (change + 1 s);
4. the rush: `--rush` of the channels each get one change at a random moment
   within 60 s (`debounceSeconds: 5`), cap `--rush-cap`, the fake trainer
   `--trainer-delay` s.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import kubernetes  # noqa: E402
from bench._fleet_env import (  # noqa: E402
    AuditEvent,
    FleetEnv,
    Operator,
    cpu_seconds,
    fleet_environment,
    rss_mb,
    wait_for,
)
from bench._operator_env import machine, percentile, stamp, write_section  # noqa: E402

from channelmodel.api.models import GROUP, PLURAL, VERSION  # noqa: E402

JOB_OWNER = "ml.dukarun.io/channel-model"
LATENCY_CHANNEL = "latency"


@dataclass
class Window:
    """What one operator did in a window of wall time."""

    seconds: float
    cpu: float
    rss_peak: float
    events: list[AuditEvent]

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu / self.seconds

    @property
    def operator_requests(self) -> list[AuditEvent]:
        return [e for e in self.events if e.by_operator]

    @property
    def writes(self) -> int:
        return sum(1 for e in self.operator_requests if e.is_write)

    @property
    def per_channel(self) -> int:
        """Requests naming one ChannelModel or Job (watches and lists name none)."""
        return sum(1 for e in self.operator_requests if e.name)

    def kinds(self) -> str:
        counts = Counter(f"{e.verb} {e.resource}" for e in self.operator_requests)
        return ", ".join(f"`{k}` {n}" for k, n in counts.most_common()) or "none"


def measure(env: FleetEnv, operator: Operator, seconds: float) -> Window:
    env.audit.read()  # drop what came before
    cpu0, began = cpu_seconds(operator.pid), time.monotonic()
    peak = rss_mb(operator.pid)
    while time.monotonic() - began < seconds:
        time.sleep(1)
        peak = max(peak, rss_mb(operator.pid))
    wall = time.monotonic() - began
    return Window(wall, cpu_seconds(operator.pid) - cpu0, peak, env.audit.read())


@dataclass
class Restart:
    settle: float
    writes: int
    jobs: int
    rss: float


def start_and_settle(
    env: FleetEnv, channels: int, extra: dict[str, str], quiet: float = 3.0
) -> tuple[Operator, Restart]:
    """Start an operator on the existing fleet; what it took until it settled."""
    jobs_before = len(env.jobs())
    env.audit.read()
    operator = env.start_operator(extra)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(OSError):
                peak = max(peak, rss_mb(operator.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        settle = operator.wait_settled(at_least=channels, quiet=quiet)
    finally:
        done.set()
        sampler.join()
    events = env.audit.read()
    writes = sum(1 for e in events if e.by_operator and e.is_write)
    return operator, Restart(settle, writes, len(env.jobs()) - jobs_before, peak)


# --- latency ----------------------------------------------------------------------------


def suspended_job(name: str) -> dict[str, Any]:
    """A Job nothing runs and the operator ignores (no labels): for baselines."""
    return {
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "none", "command": ["true"]}]}},
        },
    }  # fmt: skip


def api_create_round_trip(env: FleetEnv, runs: int) -> list[float]:
    """The baseline: this script creating (suspended) Jobs, create to response."""
    batch = env.cluster.batch
    times = []
    for i in range(runs):
        began = time.monotonic()
        batch.create_namespaced_job("fleet-baseline", suspended_job(f"baseline-{i}"))
        times.append(time.monotonic() - began)
    return times


def debounce_latency(env: FleetEnv, runs: int) -> list[float]:
    latencies = []
    for run in range(runs):
        time.sleep(random.uniform(0.0, 1.0))
        env.audit.read()
        changed = datetime.now(UTC)
        env.annotate_change(LATENCY_CHANNEL, changed)
        version = f"1.0.{run + 1}"
        wait_for(
            lambda v=version: env.status(LATENCY_CHANNEL).get("modelVersion") == v,
            timeout=60, interval=0.1, message=f"{LATENCY_CHANNEL} at {version}",
        )  # fmt: skip
        creates = [
            e.at for e in env.audit.read()
            if e.by_operator and e.verb == "create" and e.resource == "jobs"
        ]  # fmt: skip
        assert len(creates) == 1, f"run {run}: {len(creates)} Job creates"
        latencies.append(creates[0] - (changed.timestamp() + 1.0))
    return latencies


# --- the rush ---------------------------------------------------------------------------


@dataclass
class JobWatch:
    """Job creations and completions in the fleet namespace, as the watch delivers them."""

    api: kubernetes.client.BatchV1Api
    namespace: str
    created: dict[str, tuple[float, str]] = field(default_factory=dict)  # job -> (t, owner)
    finished: dict[str, float] = field(default_factory=dict)
    echoes: dict[str, float] = field(default_factory=dict)  # this script's echo Jobs, seen
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            self._watch()
        except Exception:  # the API server going away at the end of the run
            if not self.stop.is_set():
                raise

    def _watch(self) -> None:
        watch = kubernetes.watch.Watch()
        for event in watch.stream(self.api.list_namespaced_job, self.namespace, timeout_seconds=0):
            now = time.time()
            job = event["object"]
            name = job.metadata.name
            owner = (job.metadata.labels or {}).get(JOB_OWNER, "")
            if name.startswith(ECHO_PREFIX):
                self.echoes.setdefault(name, now)
                continue
            if name not in self.created and not name.startswith("baseline-"):
                self.created[name] = (now, owner)
            done = any(
                c.type in ("Complete", "Failed") and c.status == "True"
                for c in (job.status.conditions or [])
            )
            if done and name not in self.finished:
                self.finished[name] = now
            if self.stop.is_set():
                watch.stop()


ECHO_PREFIX = "echo-"


def echo(env: FleetEnv, watcher: JobWatch, sent: dict[str, float]) -> None:
    """The baseline under the rush's load: this script creates a (suspended, unowned)
    Job every second and its own Job watch sees it; request to sight, like a
    controller's reaction without the controller."""
    i = 0
    while not watcher.stop.is_set():
        name = f"{ECHO_PREFIX}{i}"
        sent[name] = time.time()
        with contextlib.suppress(kubernetes.client.ApiException):
            env.cluster.batch.create_namespaced_job(env.namespace, suspended_job(name))
        i += 1
        watcher.stop.wait(1.0)


def rush(
    env: FleetEnv,
    names: list[str],
    spread: float,
    debounce: float,
    cap: int,
    operator_pid: int | None = None,
) -> dict[str, Any]:
    watcher = JobWatch(env.cluster.batch, env.namespace)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    echo_sent: dict[str, float] = {}
    threading.Thread(target=echo, args=(env, watcher, echo_sent), daemon=True).start()
    time.sleep(1)
    env.audit.read()
    began = time.time()
    cpu_before = cpu_seconds(operator_pid) if operator_pid else 0.0
    offsets = sorted(random.uniform(0, spread) for _ in names)
    order = list(names)
    random.shuffle(order)
    changed: dict[str, float] = {}
    for name, offset in zip(order, offsets, strict=True):
        delay = began + offset - time.time()
        if delay > 0:
            time.sleep(delay)
        at = datetime.now(UTC)
        env.annotate_change(name, at)
        changed[name] = at.timestamp()
    wanted = set(names)
    wait_for(
        lambda: sum(1 for _, owner in watcher.created.values() if owner in wanted) >= len(names)
        and all(job in watcher.finished for job, (_, owner) in watcher.created.items() if owner in wanted),
        timeout=3600, interval=1.0, message="every rushed channel's Job to finish",
    )  # fmt: skip
    time.sleep(5)  # any extra Job would show now
    watcher.stop.set()
    # The operator's share of a core over the rush: a saturated event loop queues every start.
    operator_cpu = (
        100 * (cpu_seconds(operator_pid) - cpu_before) / (time.time() - began)
        if operator_pid
        else float("nan")
    )
    events = env.audit.read()
    # When each Job was created: its first watch event (the audit log's create names no object).
    creates = {job: t for job, (t, _) in watcher.created.items()}
    owners = {job: owner for job, (_, owner) in watcher.created.items() if owner in wanted}
    per_channel = Counter(owners.values())

    # Concurrency from the Job watch: +1 at creation, -1 when Complete/Failed.
    timeline = sorted(
        [(t, 1) for job, (t, _) in watcher.created.items() if job in owners]
        + [(watcher.finished[job], -1) for job in owners if job in watcher.finished]
    )
    running = peak = 0
    for _, step in timeline:
        running += step
        peak = max(peak, running)

    # Latency: Job created (watch) - the moment the channel may start in a first-in,
    # first-out line with `cap` slots, given the completions this run saw: channels
    # in order of readiness (change + debounce); the k-th may start at its readiness
    # or when the (k - cap)-th slot of the run freed, whichever is later. An operator
    # slow to react to a freed slot or a deadline, or one that starts out of order,
    # shows here; a backlog of capacity (slow Jobs) does not.
    completions = sorted(watcher.finished[job] for job in owners if job in watcher.finished)
    started = {owner: creates[job] for job, owner in owners.items() if job in creates}
    ordered = sorted(names, key=lambda n: changed[n])
    latencies: list[float] = []
    may_starts: dict[str, float] = {}
    for k, owner in enumerate(ordered):
        if owner not in started:
            continue
        may_start = may_starts[owner] = changed[owner] + debounce
        if k >= cap:
            may_start = may_starts[owner] = max(may_start, completions[k - cap])
        latencies.append(started[owner] - may_start)
    echo_times = [watcher.echoes[n] - t for n, t in echo_sent.items() if n in watcher.echoes]
    inversions = close_inversions = 0
    starts = [started.get(n, float("inf")) for n in ordered]
    for i in range(len(ordered)):
        for j in range(i + 1, len(ordered)):
            if starts[j] < starts[i] and changed[ordered[j]] + debounce <= starts[j]:
                if changed[ordered[j]] - changed[ordered[i]] >= 1.0:
                    inversions += 1
                else:
                    close_inversions += 1
    lost = [
        n
        for n in names
        if env.status(n).get("coveredChangeAt") is None
        or env.status(n).get("modelVersion") != "1.0.1"
    ]
    return {
        "channels": len(names),
        "jobs": len(owners),
        "exactly_once": sum(1 for n in names if per_channel[n] == 1),
        "duplicates": sum(max(0, k - 1) for k in per_channel.values()),
        "peak": peak,
        "lost": len(lost),
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "echo_p50": percentile(echo_times, 50),
        "echo_p95": percentile(echo_times, 95),
        "latency_max": max(latencies),
        "inversions": inversions,
        "close_inversions": close_inversions,
        "duration": max(watcher.finished.values()) - began,
        "operator_cpu_percent": operator_cpu,
        "requests": len([e for e in events if e.by_operator]),
        "writes": len([e for e in events if e.by_operator and e.is_write]),
        "may_start": may_starts,  # per channel, for a closer look
        "job_of": {owner: job for job, owner in owners.items()},
        "writes_by_kind": Counter(
            f"{e.verb} {e.resource}{'/' + e.subresource if e.subresource else ''}"
            for e in events
            if e.by_operator and e.is_write
        ).most_common(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200,1000,10000")
    parser.add_argument("--window", type=float, default=300.0)
    parser.add_argument("--small-window", type=float, default=60.0)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--rush", type=int, default=2000)
    parser.add_argument("--rush-cap", type=int, default=20)
    parser.add_argument("--trainer-delay", default="0.1")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--rush-only", action="store_true", help="seed --rush channels; only the rush"
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    random.seed(16)
    extra = {"CHANNELMODEL_MAX_CONCURRENT_TRAININGS": str(args.rush_cap)}

    if args.rush_only:
        with fleet_environment(trainer_delay=args.trainer_delay, keep=args.keep) as env:
            names = [f"shop-{i:05d}" for i in range(args.rush)]
            env.seed_trained(names)
            operator, _ = start_and_settle(env, len(names), extra)
            result = rush(
                env, names, spread=60.0, debounce=5.0, cap=args.rush_cap, operator_pid=operator.pid
            )
            print(
                "  " + ", ".join(f"{k} {v}" for k, v in result.items() if not isinstance(v, dict))
            )
            problems = [
                line for line in operator.process.log_text().splitlines()
                if " ERROR " in line or "Traceback" in line
            ]  # fmt: skip
        write_rush(args, result, problems)
        return 0
    with fleet_environment(trainer_delay=args.trainer_delay, keep=args.keep) as env:
        env.cluster.ensure_namespace("fleet-baseline")
        print("baseline: an operator with no ChannelModel")
        operator = env.start_operator(extra)
        operator.wait_settled(at_least=0, quiet=5)
        baseline = measure(env, operator, args.small_window)
        operator.stop()
        print(
            f"  cpu {baseline.cpu_percent:.2f}% rss {baseline.rss_peak:.0f} MB requests {len(baseline.operator_requests)}"
        )

        idle: dict[int, tuple[Window, Restart]] = {}
        adoption: dict[int, Restart] = {}
        existing = 0
        operator = None
        for size in sizes:
            names = [f"shop-{i:05d}" for i in range(existing, size)]
            if existing == 0:
                names.append(LATENCY_CHANNEL)
            began = time.monotonic()
            first_size = existing == 0
            # The first fleet as nobody ran it yet (kopf adds its finalizer to each object
            # once); the rest as a fleet an operator has run before.
            env.seed_trained(names, adopted=not first_size)
            if first_size:
                env.cluster.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, env.namespace, PLURAL, LATENCY_CHANNEL, {"spec": {"debounceSeconds": 1}}
                )  # fmt: skip
            existing = size
            total = size + 1
            print(f"{size} channels seeded in {time.monotonic() - began:.0f} s")
            if first_size:
                operator, first = start_and_settle(env, total, extra, quiet=10.0)
                operator.stop()
                adoption[size] = first
                print(f"  first sight settled in {first.settle:.1f} s, {first.writes} writes, peak RSS {first.rss:.0f} MB")  # fmt: skip
            operator, again = start_and_settle(env, total, extra)
            print(
                f"  restart settled in {again.settle:.1f} s, {again.writes} writes, {again.jobs} Jobs, peak RSS {again.rss:.0f} MB"
            )
            window = measure(env, operator, args.window if size == sizes[-1] else args.small_window)
            print(f"  idle {window.seconds:.0f} s: cpu {window.cpu_percent:.2f}% rss {window.rss_peak:.0f} MB "
                  f"writes {window.writes} requests {len(window.operator_requests)} per-channel {window.per_channel}")  # fmt: skip
            idle[size] = (window, again)
            if size != sizes[-1]:
                operator.stop()
        assert operator is not None

        print("latency: debounce expiry to Job create")
        baseline_create = api_create_round_trip(env, args.latency_runs)
        latencies = debounce_latency(env, args.latency_runs)
        print(
            f"  p95 {percentile(latencies, 95):.3f} s (API create round trip p95 {percentile(baseline_create, 95):.3f} s)"
        )

        rushed = [
            f"shop-{i:05d}" for i in random.sample(range(sizes[-1]), min(args.rush, sizes[-1]))
        ]
        print(f"rush: {len(rushed)} channels, cap {args.rush_cap}")
        result = rush(
            env, rushed, spread=60.0, debounce=5.0, cap=args.rush_cap, operator_pid=operator.pid
        )
        print(
            "  "
            + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in result.items()
                if not isinstance(v, dict)
            )
        )
        problems = [
            line
            for line in operator.process.log_text().splitlines()
            if " ERROR " in line or "Traceback" in line
        ]

    write_results(
        args, sizes, baseline, idle, adoption, latencies, baseline_create, result, problems
    )
    return 0


def write_results(
    args: argparse.Namespace,
    sizes: list[int],
    baseline: Window,
    idle: dict[int, tuple[Window, Restart]],
    adoption: dict[int, Restart],
    latencies: list[float],
    baseline_create: list[float],
    rush_result: dict[str, Any],
    problems: list[str],
) -> None:
    largest = sizes[-1]
    window, again = idle[largest]
    base_rss = baseline.rss_peak
    rows = "\n".join(
        f"| {size:,} | {w.seconds:.0f} s | {w.cpu_percent:.2f}% ({w.cpu_percent - baseline.cpu_percent:+.2f} vs empty) "
        f"| {w.rss_peak:.0f} MB ({w.rss_peak / base_rss:.2f}x) | {w.writes} | {len(w.operator_requests)} | {w.per_channel} "
        f"| {r.settle:.1f} s | {r.writes} | {r.jobs} |"
        for size, (w, r) in idle.items()
    )
    first_rows = "\n".join(
        f"| {size:,} | {a.settle:.1f} s | {a.writes:,} ({a.writes / (size + 1):.1f} per channel) | {a.rss:.0f} MB |"
        for size, a in adoption.items()
    )
    r = rush_result
    p95, base95 = percentile(latencies, 95), percentile(baseline_create, 95)
    markdown = f"""
## Fleet scale (`bench/operator_fleet.py`, real control plane)

On the tests' real control plane (etcd {""}, kube-apiserver, controller-manager,
scheduler, the process kubelets; bench/_fleet_env.py), the operator as a real
process (`python -m channelmodel run`), requests from the API server's audit log
(the operator's carry the User-Agent `channelmodel-operator` or `kopf`). Trained
channels are seeded with the planner's own status after a first run; the rush
trains for real with the fake trainer ({args.trainer_delay} s). Baseline: the
same operator watching an empty namespace in the same run
({baseline.cpu_percent:.2f}% of a core, {base_rss:.0f} MB RSS,
{len(baseline.operator_requests)} requests in {baseline.seconds:.0f} s). Measured
{stamp()} on {machine()}. Reproduce: `.venv/bin/python bench/operator_fleet.py`.

### Idle fleets and a restart

| channels | idle window | operator CPU | RSS peak | API writes | API requests | requests naming a channel | restart: settled after | restart: writes | restart: Jobs |
|---|---|---|---|---|---|---|---|---|---|
{rows}

Targets at {largest:,}: CPU <= 3% of one core (**{window.cpu_percent:.2f}%**), 0 writes
(**{window.writes}**), 0 requests per channel (**{window.per_channel}**), RSS <= 400 MB
(**{window.rss_peak:.0f} MB**); restart settled <= 60 s (**{again.settle:.1f} s**), 0 writes
(**{again.writes}**), no Job (**{again.jobs}**). Requests in the {largest:,} window, by kind:
{window.kinds()}. "Settled" is when `channelmodel_reconciles_total` reached the
number of channels and then stayed flat for 3 s (the wait not counted). Each
window is measured on the restarted operator: the fleet as a running operator
holds it.

Each size's figures are those of an operator (re)started on a fleet that an
operator has run before (the objects carry its finalizer). The very first
sight of objects no operator has handled yet is heavier: kopf adds its
finalizer to each object (two writes per channel, once in the life of an
object), and the peak memory of its per-object workers stays with the process
until the next restart (measured separately, with the earlier daemon per
channel: 60-84 s and ~470 MB at 1,000 channels; at 10,000 still going after 5
minutes at 3.3 GB; an install over an existing large fleet should expect a
heavy first start once):

| channels | first start settled after | writes | peak RSS |
|---|---|---|---|
{first_rows}

### Debounce expiry to Job creation

{len(latencies)} runs on one channel of the fleet (`debounceSeconds: 1`), each a
random 0-1 s pause, a change at T, its Job and success; latency = the Job create's
arrival at the API server (audit log) - (T + 1 s). Baseline: this script's own
Job create round trip in the same run.

| figure | measured | API create round trip (baseline) |
|---|---|---|
| p50 | {percentile(latencies, 50):.3f} s | {percentile(baseline_create, 50):.3f} s |
| **p95** | **{p95:.3f} s** (target <= 1 s) | {base95:.3f} s ({p95 / base95:.1f}x) |
| min / max | {min(latencies):.3f} s / {max(latencies):.3f} s | |

### Morning rush

{r["channels"]:,} of the {largest:,} channels each get one change at a random
moment within 60 s (`debounceSeconds: 5`), cap {args.rush_cap}.

{rush_table(r, args.rush_cap, problems, base95)}

{may_start_note(args.rush_cap)}
"""
    write_section("operator_fleet", markdown)


def rush_table(
    r: dict[str, Any], cap: int, problems: list[str], baseline: float | None = None
) -> str:
    """The rush's figures as a markdown table (one home for both sections)."""
    versus = f"; baseline create round trip {baseline:.3f} s" if baseline is not None else ""
    by_kind = ", ".join(f"{kind} {n / r['channels']:.1f}" for kind, n in r["writes_by_kind"])
    return f"""| figure | value |
|---|---|
| channels trained exactly once | **{r["exactly_once"]:,} / {r["channels"]:,}** |
| duplicate Jobs | **{r["duplicates"]}** |
| changes lost (not covered by 1.0.1) | **{r["lost"]}** |
| peak Jobs running (cap {cap}) | **{r["peak"]}** |
| started out of queue order (ready >= 1 s apart) | **{r["inversions"]}** ({r["close_inversions"]} more within 1 s of each other) |
| Job created after the channel may start: p50 / **p95** / max | {r["latency_p50"]:.3f} s / **{r["latency_p95"]:.3f} s** (target <= 1 s{versus}) / {r["latency_max"]:.3f} s |
| baseline under the same load: a Job create until its watch event, p50 / p95 | {r["echo_p50"]:.3f} s / {r["echo_p95"]:.3f} s (the operator's p95 is {r["latency_p95"] / r["echo_p95"]:.1f}x) |
| first change to last Job finished | {r["duration"]:.0f} s |
| operator CPU over the rush | {r["operator_cpu_percent"]:.0f}% of a core |
| operator requests / writes | {r["requests"]:,} / {r["writes"]:,} |
| writes per training, by kind | {r["writes"] / r["channels"]:.1f}: {by_kind} |
| operator log errors | {len(problems)} |"""


def may_start_note(cap: int) -> str:
    return f""""May start": in a first-in, first-out line with {cap} slots, given this
run's Job completions: channels in order of readiness (change + debounce), the
k-th at its readiness or when the (k - {cap})-th slot freed, whichever is later.
A slow reaction to a freed slot or a deadline, or a start out of order, shows as
latency; slow Jobs (capacity) do not. Job creation and completion times from
this script's Job watch."""


def write_rush(args: argparse.Namespace, r: dict[str, Any], problems: list[str]) -> None:
    markdown = f"""
## Morning rush (`bench/operator_fleet.py --rush-only`, real control plane)

{r["channels"]:,} seeded, trained channels each get one change at a random
moment within 60 s (`debounceSeconds: 5`), cap {args.rush_cap}, the fake trainer
({args.trainer_delay} s) run by the process kubelets. Measured {stamp()} on
{machine()}. Reproduce: `.venv/bin/python bench/operator_fleet.py --rush-only`.

{rush_table(r, args.rush_cap, problems)}

{may_start_note(args.rush_cap)}
"""
    write_section("operator_rush", markdown)


if __name__ == "__main__":
    sys.exit(main())
