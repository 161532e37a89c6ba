"""Idle fleet: 200 trained ChannelModels with nothing to do; the operator must write nothing.

    .venv/bin/python bench/operator_idle_fleet.py [--channels 200] [--window 120]
                                                  [--baseline-window 30] [--show-writes]
                                                  [--keep] [--no-write]

First, as the baseline, the operator runs with no ChannelModel for
`--baseline-window` seconds (its RSS and CPU with nothing to watch). Then
`--channels` ChannelModels are created and trained to 1.0.0 by the fake trainer
(cap raised to 50, 0.1 s per training), and once every one is at rest the
script watches the operator for `--window` seconds: API writes (target 0), all
its requests, RSS (target <= 250 MB) and CPU seconds, against the baseline.
It also reports how the fleet's trainings went (Jobs adopted on a 409, Events
repeated per channel); --show-writes prints the operator's writes about the
channel with the most repeated Events.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from typing import Any

from _operator_env import (
    OperatorEnv,
    breakdown,
    cpu_seconds,
    machine,
    operator_environment,
    raise_if_failed,
    rss_mb,
    stamp,
    write_section,
)

TARGET_RSS_MB = 250.0
INTERVAL = 1.0  # CHANNELMODEL_RECONCILE_INTERVAL_SECONDS (the default)


def spec(channel: str) -> dict[str, object]:
    return {
        "channelId": channel,
        "manifest": {"url": f"http://backend.test/{channel}/manifest"},
        "debounceSeconds": 3,
        "cooldownSeconds": 0,
    }


def at_rest(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return bool(
        status.get("modelVersion") == "1.0.0"
        and status.get("trainingStatus") == "Succeeded"
        and not status.get("currentJob")
    )


def observe(env: OperatorEnv, seconds: float) -> dict[str, Any]:
    """Watch the operator for `seconds`: its requests, peak RSS, CPU time."""
    pid = env.operator.pid
    mark, cpu_before = env.mark(), cpu_seconds(pid)
    started = time.monotonic()
    peak = rss_mb(pid)
    while (left := started + seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        peak = max(peak, rss_mb(pid))
    cpu = cpu_seconds(pid) - cpu_before
    elapsed = time.monotonic() - started
    requests = env.operator_requests(mark)
    return {
        "seconds": elapsed,
        "requests": requests,
        "writes": [r for r in requests if r.is_write],
        "cpu": cpu,
        "cpu_share": cpu / elapsed,
        "rss_end": rss_mb(pid),
        "rss_peak": peak,
    }


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Which top-level status fields and annotations of each object changed."""
    found = []
    for name, old in before.items():
        new = after.get(name) or {}
        for part in ("status", "annotations"):
            a, b = old.get(part) or {}, new.get(part) or {}
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    found.append(
                        f"{name} {part}.{key}: {json.dumps(a.get(key))[:200]} -> {json.dumps(b.get(key))[:200]}"
                    )
    return found


def state_of(env: OperatorEnv) -> dict[str, Any]:
    return {
        obj["metadata"]["name"]: {
            "status": obj.get("status"),
            "annotations": obj["metadata"].get("annotations"),
        }
        for obj in env.channelmodels()
    }


def wait_trained(env: OperatorEnv, names: list[str], timeout: float) -> None:
    """Until every channel serves 1.0.0 at rest; stop at the first failed training."""
    deadline = time.monotonic() + timeout
    while True:
        objects = env.channelmodels()
        for obj in objects:
            raise_if_failed(obj["metadata"]["name"], obj.get("status") or {})
        done = sum(at_rest(obj) for obj in objects)
        if done == len(names):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done}/{len(names)} channels trained after {timeout} s")
        time.sleep(1.0)


def training_phase(env: OperatorEnv) -> dict[str, Any]:
    """How the fleet's first trainings went: Job creates vs adoptions, repeated Events.

    "adopted Job" means a timer run planned a Job that already existed (409): it
    planned from an object whose status did not yet show that Job.
    """
    log = env.operator.log_text()
    per_channel = collections.Counter(
        (e.get("involvedObject", {}).get("name"), e.get("reason")) for e in env.cluster.events()
    )
    repeated = {key: n for key, n in per_channel.items() if n > 1}
    # The channel with the most repeated Events: its writes show what was re-planned.
    worst = max(repeated, key=repeated.__getitem__)[0] if repeated else None
    history = [
        r.describe(limit=1200)
        for r in env.operator_requests()
        if worst and r.is_write and (r.name == worst or f'"name": "{worst}"'.encode() in r.body)
    ]
    return {
        "worst": worst,
        "worst_writes": history,
        "created": log.count("created Job"),
        "adopted": log.count("adopted Job"),
        "adopted_lines": [line for line in log.splitlines() if "adopted Job" in line],
        "repeated_events": repeated,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--window", type=float, default=120.0, help="idle window, seconds")
    parser.add_argument("--baseline-window", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (operator log)")
    parser.add_argument(
        "--show-writes",
        action="store_true",
        help="print every operator write about the channel with the most repeated Events",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update the results file")
    args = parser.parse_args()

    settings = {
        "CHANNELMODEL_MAX_CONCURRENT_TRAININGS": "50",
        "CHANNELMODEL_RECONCILE_INTERVAL_SECONDS": str(INTERVAL),
    }
    with operator_environment(settings, {"FAKE_DELAY": "0.1"}, keep=args.keep) as env:
        time.sleep(3)  # startup: watches established
        print(
            f"baseline: operator with no ChannelModel for {args.baseline_window:.0f} s ...",
            flush=True,
        )
        baseline = observe(env, args.baseline_window)

        names = [f"fleet-{i:03d}" for i in range(args.channels)]
        train_start = time.monotonic()
        for name in names:
            env.create_channelmodel(name, spec(name))
        print(f"training {len(names)} channels to 1.0.0 ...", flush=True)
        wait_trained(env, names, timeout=900)
        train_seconds = time.monotonic() - train_start
        jobs = len(env.job_names())
        time.sleep(5)  # the last Events and status writes of the final trainings
        training = training_phase(env)

        print(f"idle window: {args.window:.0f} s ...", flush=True)
        before = state_of(env)
        idle = observe(env, args.window)
        changes = changed_fields(before, state_of(env))
        problems = env.log_problems()

    writes = idle["writes"]
    print(f"machine: {machine()}")
    print(f"trained {len(names)} channels ({jobs} Jobs) in {train_seconds:.0f} s")
    print(
        f"  operator log: {training['created']} 'created Job', {training['adopted']} 'adopted Job' "
        f"(a timer run re-planned a Job that already existed)"
    )
    for line in training["adopted_lines"][:5]:
        print(f"    {line}")
    if training["worst"] and args.show_writes:
        print(f"  operator writes about {training['worst']} (most repeated Events):")
        for line in training["worst_writes"]:
            print(f"    {line}")
    repeated = training["repeated_events"]
    print(f"  channels with a repeated Event reason: {len({name for name, _ in repeated})}")
    for (name, reason), count in sorted(repeated.items())[:10]:
        print(f"    {name}: {reason} x{count}")
    for label, fig in (
        ("baseline (0 channels)", baseline),
        (f"idle ({len(names)} channels)", idle),
    ):
        print(
            f"{label}: {fig['seconds']:.0f} s, operator requests {len(fig['requests'])}, "
            f"writes {len(fig['writes'])}, CPU {fig['cpu']:.1f} s ({fig['cpu_share']:.1%} of a core), "
            f"RSS end {fig['rss_end']:.0f} MB, peak {fig['rss_peak']:.0f} MB"
        )
    print(f"  idle requests by kind: {breakdown(idle['requests'])}")
    # Per timer run: what one idle ChannelModel costs each reconcile interval.
    ms_per_run = 1000 * (idle["cpu"] - baseline["cpu_share"] * idle["seconds"])
    ms_per_run /= len(names) * idle["seconds"] / INTERVAL
    rss_ratio = idle["rss_peak"] / baseline["rss_peak"]
    print(
        f"vs baseline: RSS {rss_ratio:.2f}x (+{idle['rss_peak'] - baseline['rss_peak']:.0f} MB), "
        f"CPU +{idle['cpu_share'] - baseline['cpu_share']:.1%} of a core = "
        f"{ms_per_run:.2f} ms per idle timer run"
    )
    print(
        f"target: writes 0 -> {len(writes)}; RSS <= {TARGET_RSS_MB:g} MB -> {idle['rss_peak']:.0f} MB"
    )
    print(f"operator log warnings/errors: {len(problems)}")
    for line in problems[:20]:
        print(f"  {line}")
    if writes:
        print(f"MISBEHAVIOUR: {len(writes)} writes while idle; first ones:")
        for request in writes[:5]:
            print(f"  {request.describe()}")
        print("changed in the objects:")
        for line in changes[:20]:
            print(f"  {line}")

    if not args.no_write:
        write_section(
            "operator_idle_fleet",
            f"""
## Idle fleet (`bench/operator_idle_fleet.py`)

{len(names)} ChannelModels, each trained to 1.0.0 first ({jobs} Jobs in {train_seconds:.0f} s,
cap 50, fake trainer 0.1 s), then a {idle["seconds"]:.0f} s window with nothing to do;
reconcile interval {INTERVAL:g} s (so {len(names) / INTERVAL:.0f} timer runs per second). Baseline: the same
operator process with no ChannelModel, {baseline["seconds"]:.0f} s, before the fleet was
created. Measured {stamp()} on {machine()}.

| figure | no ChannelModel (baseline) | {len(names)} idle ChannelModels |
|---|---|---|
| **API writes** (create/update/patch/delete) | {len(baseline["writes"])} | **{len(writes)}** (target 0) |
| API requests, all verbs | {len(baseline["requests"])} | {len(idle["requests"])} |
| **RSS, peak** | {baseline["rss_peak"]:.0f} MB | **{idle["rss_peak"]:.0f} MB** (target <= {TARGET_RSS_MB:g}; {rss_ratio:.2f}x) |
| CPU | {baseline["cpu"]:.1f} s ({baseline["cpu_share"]:.1%} of a core) | {idle["cpu"]:.1f} s ({idle["cpu_share"]:.1%} of a core; {ms_per_run:.2f} ms per timer run) |
| status/annotation fields changed in the window | - | {len(changes)} |
| operator log warnings/errors | {len(problems)} (whole run) | |

Requests in the idle window, by kind: {", ".join(f"`{k}` {v}" for k, v in breakdown(idle["requests"]).items()) or "none"}.

While the fleet trained (all {len(names)} created at once, on 2 shared cores), the
operator logged {training["created"]} `created Job` and {training["adopted"]} `adopted Job` lines. An
adoption is a timer run that planned a Job which already existed (HTTP 409): it
planned from kopf's copy of an object whose own earlier status write had not
come back through the watch yet. {len({name for name, _ in training["repeated_events"]})} channels got an Event reason more than
once (at most {max(training["repeated_events"].values(), default=1)} times: a finished Job accepted again on the same stale
copy). `--show-writes` prints one such channel's writes.

Each timer run plans from the object kopf already holds and patches status only
when the plan changed it, so an idle fleet costs CPU (the timers) but no requests.
""",
        )
    ok = not writes and idle["rss_peak"] <= TARGET_RSS_MB and not problems
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
