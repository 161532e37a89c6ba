"""Change storm: 1000 inventory-change patches to one ChannelModel in 30 s.

    .venv/bin/python bench/operator_storm.py [--patches 1000] [--seconds 30]
                                             [--debounce 3] [--keep] [--no-write]

After the channel's initial training (1.0.0), the script patches
`ml.dukarun.io/inventory-changed-at` (= now) and `inventory-change: productAdded`
at an even pace, as a backend reports a bulk import. Expected: exactly one new
Job, started once the channel has been quiet for `debounceSeconds`. Reported:
the operator's API requests (all, and writes) per change patch, over the storm
and over storm + the retrain it caused (target <= 2 per patch), and how long
after debounce expiry the Job was created.
"""

from __future__ import annotations

import argparse
import sys
import time

from _operator_env import (
    OPERATOR_ARGV,
    OperatorEnv,
    Request,
    breakdown,
    machine,
    now_utc,
    operator_environment,
    stamp,
    wait_for,
    write_section,
)

NAME = "shop-1"
# kopf's record of the last handled object "essence" (spec, labels, annotations)
KOPF_DIFFBASE = "kopf.zalando.org/last-handled-configuration"
TARGET_PER_PATCH = 2.0


def spec(debounce: int) -> dict[str, object]:
    return {
        "channelId": NAME,
        "manifest": {"url": "http://backend.test/manifest"},
        "debounceSeconds": debounce,
        "cooldownSeconds": 0,
    }


def storm(env: OperatorEnv, patches: int, seconds: float) -> tuple[float, float]:
    """Send the patches at an even pace; returns (wall seconds, time of the last change)."""
    start = time.monotonic()
    last_change = 0.0
    for i in range(patches):
        delay = start + i * seconds / patches - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        changed = now_utc()
        env.annotate_change(NAME, changed)
        last_change = changed.timestamp()
    return time.monotonic() - start, last_change


def per_patch(requests: list[Request], patches: int) -> str:
    writes = sum(r.is_write for r in requests)
    return f"{len(requests)} requests ({len(requests) / patches:.3f}/patch), {writes} writes ({writes / patches:.3f}/patch)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the storm")
    parser.add_argument("--debounce", type=int, default=3, help="debounceSeconds")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (operator log)")
    parser.add_argument("--no-write", action="store_true", help="do not update the results file")
    parser.add_argument(
        "--operator-argv",
        nargs="+",
        default=list(OPERATOR_ARGV),
        help="run another operator command line (to compare a variant; implies --no-write)",
    )
    args = parser.parse_args()
    if args.operator_argv != list(OPERATOR_ARGV):
        args.no_write = True

    settings = {"CHANNELMODEL_MAX_CONCURRENT_TRAININGS": "2"}
    with operator_environment(
        settings, {"FAKE_DELAY": "0.2"}, keep=args.keep, argv=args.operator_argv
    ) as env:
        env.create_channelmodel(NAME, spec(args.debounce))
        env.wait_served(NAME, "1.0.0")
        time.sleep(2)  # let the last status write and Event of training 1 land
        jobs_before = env.job_names()
        mark = env.mark()

        print(f"storm: {args.patches} patches over {args.seconds:.0f} s ...", flush=True)
        storm_seconds, last_change = storm(env, args.patches, args.seconds)
        storm_end = env.mark()
        debounce_expiry = last_change + args.debounce

        wait_for(
            lambda: len(env.job_names()) > len(jobs_before),
            timeout=args.debounce + 30,
            message="the retrain Job",
        )
        env.wait_served(NAME, "1.0.1")
        time.sleep(args.debounce + 3)  # a second Job would show up in here
        settled = env.mark()
        new_jobs = [name for name in env.job_names() if name not in jobs_before]

        everything = env.requests(mark, settled)
        bench_patches = [r for r in everything if r.user_agent == "channelmodel-bench"]
        sent = sum(r.verb == "patch" for r in bench_patches)
        during = [r for r in everything if r.by_operator and r.seq < storm_end]
        total = [r for r in everything if r.by_operator]
        creates = [
            r for r in total if r.verb == "create" and r.resource == "jobs.batch" and r.status < 300
        ]
        job_latency = creates[0].time - debounce_expiry if creates else float("nan")
        problems = env.log_problems()
        storm_writes = [r for r in during if r.is_write]
        diffbase = [r for r in total if r.is_write and KOPF_DIFFBASE.encode() in r.body]

    ok_jobs = len(new_jobs) == 1
    ratio = len(total) / sent
    print(f"machine: {machine()}")
    print(f"patches sent: {sent} in {storm_seconds:.1f} s ({sent / storm_seconds:.0f}/s)")
    print(f"new Jobs: {len(new_jobs)} {new_jobs}  (expected exactly 1)")
    print(f"operator during the storm: {per_patch(during, sent)}")
    print(f"operator storm + retrain:  {per_patch(total, sent)}")
    print(f"  by kind: {breakdown(total)}")
    print(f"  of the writes, kopf's {KOPF_DIFFBASE} annotation: {len(diffbase)}")
    print(f"requests per change patch: {ratio:.3f} (target <= {TARGET_PER_PATCH:g})")
    print(f"Job created {job_latency:+.2f} s after debounce expiry")
    print(f"operator log warnings/errors: {len(problems)}")
    for line in problems[:20]:
        print(f"  {line}")
    if not ok_jobs:
        print("MISBEHAVIOUR: expected exactly one new Job")
    if storm_writes:
        print(f"operator writes during the storm ({len(storm_writes)}), first ones:")
        for request in storm_writes[:3]:
            print(f"  {request.describe()}")

    if not args.no_write:
        write_section(
            "operator_storm",
            f"""
## Change storm (`bench/operator_storm.py`)

{sent} `inventory-changed-at`/`inventory-change: productAdded` merge patches to one
ChannelModel in {storm_seconds:.1f} s after its first training; `debounceSeconds: {args.debounce}`,
`cooldownSeconds: 0`, event-driven planning. Measured {stamp()} on {machine()}.

| figure | value |
|---|---|
| new Jobs | **{len(new_jobs)}** (expected 1) |
| operator requests during the storm | {len(during)} ({len(during) / sent:.3f} per patch), {len(storm_writes)} writes |
| operator requests, storm + the retrain it caused | {len(total)} ({len(total) / sent:.3f} per patch), {sum(r.is_write for r in total)} writes |
| **requests per change patch** | **{ratio:.3f}** (target <= {TARGET_PER_PATCH:g}) |
| Job created after debounce expiry | {job_latency:+.2f} s |
| operator log warnings/errors | {len(problems)} |

Requests by kind (storm + retrain): {", ".join(f"`{k}` {v}" for k, v in breakdown(total).items())}.
Of the writes, {len(diffbase)} are kopf's own `{KOPF_DIFFBASE}` annotation:
kopf counts annotations in the object "essence" it diffs for change handlers, so
each change patch makes it store a new diff base (the operator has no update
handler that needs it). The operator's own status writes are the
`channelmodels/status` patches: `trainAfter` moving on, at most once a second
(a channel's changes are coalesced into a plan a second).
""",
        )
    return 0 if ok_jobs and ratio <= TARGET_PER_PATCH and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
