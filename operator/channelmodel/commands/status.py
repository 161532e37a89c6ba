"""`channelmodel status NAME`: one channel as a person wants to read it.

What is served (version, URL), what the last run did, what happens next and
why it waits (debounce, cooldown, the concurrency cap, a Kueue queue, a
missing Secret, `suspend`), and the retained versions. `-o json|yaml` prints
the same summary for scripts; `kubectl get chm NAME -o yaml` has everything.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from channelmodel.api.models import GROUP, PLURAL, VERSION
from channelmodel.commands.annotate import Target, add_target_arguments, run_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)


def run(args: argparse.Namespace) -> int:
    def fetch(target: Target) -> dict[str, Any]:
        obj: Mapping[str, Any] = target.api.get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, target.namespace, PLURAL, target.name
        )
        return summarize(obj)

    return run_command("status", args, fetch, render)


def _condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    return next((dict(c) for c in status.get("conditions") or [] if c.get("type") == type_), {})


def summarize(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The summary both outputs print: a pure function of the object."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ready, training = _condition(status, "Ready"), _condition(status, "Training")
    last_run, spec_valid = _condition(status, "LastRunSucceeded"), _condition(status, "SpecValid")
    job = status.get("currentJob") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "channelId": spec.get("channelId"),
        "ready": ready.get("status", "Unknown"),
        "readyReason": ready.get("reason"),
        "served": {"version": status.get("modelVersion"), "url": status.get("modelBaseUrl")},
        "pinnedVersion": spec.get("pinnedVersion"),
        "trainingStatus": status.get("trainingStatus", "Idle"),
        "next": {
            "reason": training.get("reason"),
            "message": training.get("message"),
            "trigger": status.get("queuedTrigger"),
            "trainAfter": status.get("trainAfter"),
            "queueName": (spec.get("training") or {}).get("queueName"),
            "suspended": bool(spec.get("suspend")),
        },
        "job": {"name": job.get("name"), "version": job.get("version"),
                "trigger": job.get("trigger"), "startedAt": job.get("startedAt")} if job else None,
        "lastRun": {
            "succeeded": last_run.get("status"),
            "reason": last_run.get("reason"),
            "metrics": status.get("lastRun"),
            "lastTrained": status.get("lastTrained"),
            "error": status.get("lastError"),
        },
        "specValid": {"status": spec_valid.get("status"), "message": spec_valid.get("message")},
        "versions": [
            {k: v.get(k) for k in ("version", "state", "accuracy", "origin", "reason")}
            for v in status.get("versions") or []
        ],
    }  # fmt: skip


def _metrics_text(metrics: Mapping[str, Any] | None) -> str:
    if not metrics:
        return "no metrics reported"
    parts = []
    if metrics.get("accuracy") is not None:
        parts.append(f"accuracy {metrics['accuracy']:.3f}")
    if metrics.get("classes") is not None:
        parts.append(f"{metrics['classes']} classes")
    if metrics.get("images") is not None:
        skipped = metrics.get("skippedImages")
        parts.append(f"{metrics['images']} images" + (f" ({skipped} skipped)" if skipped else ""))
    if metrics.get("seconds") is not None:
        parts.append(f"{metrics['seconds']:.1f} s")
    return ", ".join(parts)


def render(s: Mapping[str, Any]) -> str:
    served, nxt, run = s["served"], s["next"], s["lastRun"]
    lines = [f"{s['namespace']}/{s['name']}  channel {s['channelId']}"]
    if served["version"]:
        pinned = " (pinned)" if s["pinnedVersion"] == served["version"] else ""
        lines.append(f"  Serving:     {served['version']}{pinned}  {served['url']}")
    else:
        lines.append("  Serving:     nothing yet")
    lines.append(f"  Ready:       {s['ready']} ({s['readyReason'] or '-'})")
    state = s["trainingStatus"]
    if s["job"]:
        job = s["job"]
        lines.append(
            f"  Training:    {job['version']} in Job {job['name']} ({job['trigger']}, since {job['startedAt']})"
        )
    else:
        lines.append(f"  Training:    {state}")
    if nxt["reason"] not in (None, "Idle", "JobRunning"):
        why = nxt["message"] or nxt["reason"]
        lines.append(f"  Waiting:     {nxt['reason']}: {why}")
    if nxt["queueName"]:
        lines.append(f"  Kueue queue: {nxt['queueName']}")
    if run["succeeded"]:
        outcome = "succeeded" if run["succeeded"] == "True" else f"failed ({run['reason']})"
        lines.append(f"  Last run:    {outcome}; {_metrics_text(run['metrics'])}")
    if run["lastTrained"]:
        lines.append(f"  Trained at:  {run['lastTrained']}")
    if run["error"]:
        lines.append(f"  Last error:  {run['error']}")
    if s["specValid"]["status"] == "False":
        lines.append(f"  Spec:        invalid: {s['specValid']['message']}")
    if s["versions"]:
        lines.append("  Versions:")
        for v in s["versions"]:
            accuracy = f"  accuracy {v['accuracy']:.3f}" if v["accuracy"] is not None else ""
            reason = f"  ({v['reason']})" if v["reason"] else ""
            lines.append(f"    {v['version']:<10} {v['state']:<9}{accuracy}  {v['origin']}{reason}")
    return "\n".join(lines)
