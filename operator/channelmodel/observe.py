"""What the handlers observe before planning: the Job and Secrets (the fleet: fleet.py)."""

from __future__ import annotations

import asyncio
import time

from channelmodel.api.models import ChannelModelSpec, SecretKeyRef
from channelmodel.jobs import JOB_NAME_LABEL, job_phase, observe
from channelmodel.kube import SecretView
from channelmodel.plan_types import JobObservation, JobPhase, StartJob
from channelmodel.policy import job_secret_refs, secret_opt_in_problem, token_origin_problem
from channelmodel.runtime import Runtime

SECRET_RECHECK_SECONDS = 10.0


async def observe_job(
    rt: Runtime, namespace: str, channel_id: str, job_name: str, version: str
) -> JobObservation:
    key = (namespace, job_name)
    pending = rt.fleet.unschedulable.get(key, "")
    if key in rt.fleet.running:  # watched: it runs (or waits for admission)
        return JobObservation(
            phase=JobPhase.RUNNING, suspended=rt.fleet.running[key], unschedulable=pending
        )
    job = await rt.kube.get_job(namespace, job_name)  # not indexed yet, or finished
    if job is None:
        return JobObservation(phase=JobPhase.MISSING)
    phase, _ = job_phase(job)
    if phase == JobPhase.RUNNING:
        return JobObservation(
            phase=JobPhase.RUNNING,
            suspended=bool(job["spec"].get("suspend")),
            unschedulable=pending,
        )
    pods = await rt.kube.list_pods(namespace, f"{JOB_NAME_LABEL}={job_name}")
    published = await asyncio.to_thread(rt.store.has_version, channel_id, version)
    return observe(job, pods, published)


async def secret_problem(
    rt: Runtime, namespace: str, name: str, spec: ChannelModelSpec, start: StartJob
) -> str | None:
    """Why the Job `start` would read a Secret it may not, or one that is unusable.

    A missing one would leave its Pod in CreateContainerConfigError until the Job's
    deadline; checked before the Job starts, it blocks the start instead. The notify
    key is optional in the Pod (a webhook must not stop training). The store's S3
    credentials (the operator's own Secret) must exist.
    """
    refs = job_secret_refs(spec, start)
    s3 = rt.settings.s3_credentials_secret if rt.settings.store_uri.startswith("s3://") else None
    if not refs and not s3:
        return None
    needed = [ref.name for ref, _ in refs] + ([s3] if s3 else [])
    key = (namespace, name)
    checked = rt.secret_checks.get(key)
    if (
        checked
        and checked[1]
        and checked[2] == needed
        and time.monotonic() - checked[0] < SECRET_RECHECK_SECONDS
    ):
        return checked[1]
    problem = None
    notify_ref = spec.notify.secretRef if spec.notify else None
    for ref, url in refs:
        secret = await rt.kube.read_secret(namespace, ref.name)
        if isinstance(secret, str):
            if ref is notify_ref and secret.endswith("not found"):
                continue  # the webhook key is optional for the trainer (progress events)
            problem = secret
            break
        problem = _opt_in_problem(rt, namespace, name, ref, secret)
        if problem is None and url is not None:
            problem = token_origin_problem(
                {"annotations": secret.annotations}, namespace=namespace, secret=ref.name, url=url
            )
        if problem is None and ref is not notify_ref and ref.key not in secret.data:
            problem = f"Secret {namespace}/{ref.name} has no key {ref.key!r}"
        if problem:
            break
    if problem is None and s3:
        credentials = await rt.kube.read_secret(namespace, s3)
        problem = credentials if isinstance(credentials, str) else None
    rt.secret_checks[key] = (time.monotonic(), problem, needed)
    return problem


async def usable_secret_value(
    rt: Runtime, namespace: str, name: str, ref: SecretKeyRef
) -> bytes | str:
    """The value of a Secret key the ChannelModel `name` may use, or why not (never logged)."""
    secret = await rt.kube.read_secret(namespace, ref.name)
    if isinstance(secret, str):
        return secret
    problem = _opt_in_problem(rt, namespace, name, ref, secret)
    if problem:
        return problem
    value = secret.data.get(ref.key)
    return value if value else f"Secret {namespace}/{ref.name} has no key {ref.key!r}"


def _opt_in_problem(
    rt: Runtime, namespace: str, name: str, ref: SecretKeyRef, secret: SecretView
) -> str | None:
    """Why ChannelModel `name` may not use this Secret (not opted in for it), or None."""
    return secret_opt_in_problem(
        {"annotations": secret.annotations},
        namespace=namespace,
        secret=ref.name,
        channel_model=name,
        settings=rt.settings,
    )
