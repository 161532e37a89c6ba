"""kopf handlers: gather observations (observe.py), call the planner, execute
its plan, report it (reporting.py).

One level-triggered timer per ChannelModel does all the work (like a
controller-runtime Reconcile): it reads the object kopf already holds, so a
channel with nothing to do costs no API request and writes nothing. Jobs and
the fleet's queue are seen through kopf indexes fed by watches. See
docs/decisions/0005-debounce-state-and-timer.md.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from channelmodel import conditions as cond
from channelmodel.api.annotations import INVENTORY_CHANGED_AT
from channelmodel.api.models import (
    GROUP,
    PLURAL,
    VERSION,
    ChannelModelSpec,
    ChannelModelStatus,
    DeletionPolicy,
)
from channelmodel.jobs import (
    CHANNEL_MODEL_LABEL,
    JOB_NAME_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    VERSION_LABEL,
    build_job,
    job_phase,
    unschedulable_reason,
)
from channelmodel.observe import fleet_view, observe_job, secret_problem
from channelmodel.plan_types import Plan, PlanInput
from channelmodel.planner import plan
from channelmodel.policy import channel_claim_problem, spec_problem
from channelmodel.reporting import notify, record_telemetry
from channelmodel.runtime import Runtime

STALE_WRITE_TIMEOUT = 15.0
EVENT_COMPONENT = "channelmodel-operator"


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """Register every handler on `registry` (tests use their own registry)."""

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A private registry has none of kopf's default login handlers.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING  # only our explicit Events, not log lines
        # `kubectl describe chm` shows "From: channelmodel-operator", not "kopf".
        settings.posting.reporting_component = EVENT_COMPONENT
        settings.posting.reporting_instance = socket.gethostname()  # the Pod's name
        settings.persistence.finalizer = f"{GROUP}/cleanup"
        # kopf stores a diff base for change handlers; annotation storms must not
        # rewrite it on every backend patch (we have no on.update handler to feed).
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            ignored_fields=["metadata.annotations", "status"]
        )
        settings.watching.server_timeout = 300
        # About two minutes of retries before kopf gives up on a request: an API server
        # restart or a control-plane upgrade must not need an operator restart.
        settings.networking.error_backoffs = [1, 2, 5, 10, 20, 30, 60]
        # Namespaced installs get no cluster-wide rights: no namespace/CRD scanning.
        settings.scanning.disabled = not rt.settings.cluster_wide

    @kopf.index(
        "batch",
        "v1",
        "jobs",
        id="training_jobs",
        labels={MANAGED_BY_LABEL: MANAGED_BY},
        registry=registry,
    )
    def training_jobs(
        name: str, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[tuple[str | None, str], dict[str, Any]]:
        phase, reason = job_phase(body)
        return {
            (namespace, name): {
                "owner": labels.get(CHANNEL_MODEL_LABEL),
                "phase": phase,
                "reason": reason,
                "suspended": bool((body.get("spec") or {}).get("suspend")),
            }
        }

    @kopf.index(
        "", "v1", "pods", id="training_pods", labels={MANAGED_BY_LABEL: MANAGED_BY},
        registry=registry,
    )  # fmt: skip
    def training_pods(
        namespace: str | None, labels: Mapping[str, str], status: Mapping[str, Any], **_: Any
    ) -> dict[tuple[str | None, str], str]:
        # Only what the scheduler says of a Pod it cannot place (resources, node selectors,
        # taints): a Job waiting for it shows it in the Training condition.
        return {(namespace, labels.get(JOB_NAME_LABEL, "")): unschedulable_reason(status)}

    @kopf.index(GROUP, VERSION, PLURAL, id="channel_queue", registry=registry)
    def channel_queue(
        name: str, namespace: str | None, status: Mapping[str, Any], **_: Any
    ) -> dict[tuple[str | None, str], tuple[str, str, str]]:
        return {
            (namespace, name): (
                status.get("trainingStatus", ""),
                status.get("queuedAt", ""),
                status.get("trainAfter", ""),
            )
        }

    @kopf.index(GROUP, VERSION, PLURAL, id="channel_owners", registry=registry)
    def channel_owners(
        name: str, namespace: str | None, spec: Mapping[str, Any], meta: kopf.Meta, **_: Any
    ) -> dict[str, tuple[str, str, str]]:
        # Which ChannelModels claim each channelId: the store is shared by all of them.
        channel_id = spec.get("channelId")
        if not isinstance(channel_id, str):
            return {}
        created = str(meta.get("creationTimestamp") or "")
        return {channel_id: (created, namespace or "default", name)}

    @kopf.timer(
        GROUP, VERSION, PLURAL, id="reconcile", interval=rt.settings.reconcile_interval_seconds,
        backoff=5, registry=registry,
    )  # fmt: skip
    async def reconcile(
        body: kopf.Body,
        name: str,
        namespace: str | None,
        meta: kopf.Meta,
        patch: kopf.Patch,
        logger: kopf.Logger,
        **kwargs: Any,  # the indexes arrive by their names
    ) -> None:
        await reconcile_channel(
            rt, body, name, namespace or "default", meta, patch, logger,
            kwargs["training_jobs"], kwargs["channel_queue"], kwargs["training_pods"],
            kwargs["channel_owners"],
        )  # fmt: skip

    @kopf.on.event(GROUP, VERSION, PLURAL, id="count_changes", registry=registry)
    def count_changes(
        name: str, namespace: str | None, annotations: Mapping[str, str], **_: Any
    ) -> None:
        # Every watch event, for the coalescing metric; writes nothing.
        rt.telemetry.change_seen(
            (namespace or "default", name), annotations.get(INVENTORY_CHANGED_AT)
        )

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="cleanup", backoff=5, registry=registry)
    async def cleanup(
        body: kopf.Body,
        name: str,
        namespace: str | None,
        logger: kopf.Logger,
        **kwargs: Any,  # the indexes arrive by their names
    ) -> None:
        channel_owners: Mapping[str, Any] = kwargs["channel_owners"]
        rt.telemetry.forget((namespace or "default", name))
        rt.pending_writes.pop((namespace or "default", name), None)
        deleted = await rt.kube.delete_jobs(namespace or "default", f"{CHANNEL_MODEL_LABEL}={name}")
        if deleted:
            logger.info("deleted training Jobs %s", ", ".join(deleted))
        try:
            spec = ChannelModelSpec.model_validate(dict(body.get("spec") or {}))
        except ValidationError:
            return  # never valid, never trained: nothing stored
        if spec.deletionPolicy == DeletionPolicy.DELETE:
            others = [
                f"{ns}/{other}"
                for _, ns, other in channel_owners.get(spec.channelId, [])
                if (ns, other) != (namespace or "default", name)
            ]
            if others:
                # Another ChannelModel serves this channel: its models are not ours to delete.
                logger.warning(
                    "kept the stored versions of channel %s: ChannelModel %s uses it too",
                    spec.channelId,
                    ", ".join(sorted(others)),
                )
                return
            await asyncio.to_thread(rt.store.delete_channel, spec.channelId)
            logger.info(
                "deleted stored versions of channel %s (deletionPolicy: Delete)", spec.channelId
            )


async def reconcile_channel(
    rt: Runtime,
    body: kopf.Body,
    name: str,
    namespace: str,
    meta: kopf.Meta,
    patch: kopf.Patch,
    logger: kopf.Logger,
    training_jobs: Mapping[tuple[str, str], Any],
    channel_queue: Mapping[tuple[str, str], Any],
    training_pods: Mapping[tuple[str, str], Any],
    channel_owners: Mapping[str, Any] | None = None,
) -> None:
    now = rt.clock()
    raw_status = dict(body.get("status") or {})
    if _is_stale(rt, (namespace, name), raw_status):
        return
    status = _parse_status(raw_status, logger)
    try:
        spec = ChannelModelSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        _report_invalid_spec(body, raw_status, status, patch, exc, now, meta.get("generation"))
        return

    job_obs = None
    if status.currentJob is not None:
        job_obs = await observe_job(
            rt,
            namespace,
            spec.channelId,
            status.currentJob.name,
            status.currentJob.version,
            training_jobs,
            training_pods,
        )

    claimed = channel_claim_problem(spec.channelId, namespace, name, channel_owners or {})
    inp = PlanInput(
        name=name,
        spec=spec,
        status=status,
        annotations=dict(meta.get("annotations") or {}),
        now=now,
        fleet=fleet_view(rt, namespace, name, status, now, training_jobs, channel_queue),
        model_base_url=rt.settings.model_base_url,
        generation=meta.get("generation"),
        job=job_obs,
        quality_margin=rt.settings.quality_margin,
        # A spec asking for more than the operator's policy allows is never trained.
        blocked=spec_problem(spec, rt.settings) or claimed,
    )
    decision = _plan(inp, claimed)
    if not decision.start_job:
        await _execute(rt, decision, body, namespace, name, spec, raw_status, patch, logger)
        return

    # Starts are serialised so the concurrency cap sees every Job created before.
    async with rt.start_lock:
        inp = replace(
            inp, fleet=fleet_view(rt, namespace, name, status, now, training_jobs, channel_queue)
        )
        decision = _plan(inp, claimed)
        if decision.start_job:
            # A re-created ChannelModel (Retain, GitOps restore) finds its channel's
            # versions in the store: numbering continues after the newest one.
            stored = await asyncio.to_thread(rt.store.list_versions, spec.channelId)
            listed = {v.version for v in status.versions}
            if any(version not in listed for version in stored):
                inp = replace(inp, store_latest=stored[-1], store_versions=tuple(stored))
                decision = _plan(inp, claimed)
        if decision.start_job:
            problem = await secret_problem(rt, namespace, name, spec, decision.start_job)
            if problem:
                decision = _plan(replace(inp, blocked=problem), claimed)
        await _execute(rt, decision, body, namespace, name, spec, raw_status, patch, logger)


def _plan(inp: PlanInput, claimed: str | None) -> Plan:
    decision = plan(inp)
    if claimed:
        # The channel belongs to another ChannelModel: never touch its pointer or versions.
        decision.serve_version = None
        decision.delete_versions = []
    return decision


async def _execute(
    rt: Runtime,
    decision: Plan,
    body: kopf.Body,
    namespace: str,
    name: str,
    spec: ChannelModelSpec,
    raw_status: Mapping[str, Any],
    patch: kopf.Patch,
    logger: kopf.Logger,
) -> None:
    # Order matters for crash safety: side effects first, status last, so a
    # crash in between re-plans the same decision and the effects are idempotent.
    if decision.cancel_job:
        selector = f"{CHANNEL_MODEL_LABEL}={name},{VERSION_LABEL}={decision.cancel_job.version}"
        deleted = await rt.kube.delete_jobs(namespace, selector)
        logger.info("spec.suspend: deleted training Job(s) %s", ", ".join(deleted) or "-")
    if decision.serve_version:
        pointer = {
            "version": decision.serve_version,
            "pinned": spec.pinnedVersion == decision.serve_version,
        }
        await asyncio.to_thread(rt.store.set_pointer, spec.channelId, pointer)
    for version in decision.delete_versions:
        await asyncio.to_thread(rt.store.delete_version, spec.channelId, version)
        logger.info("retention: deleted version %s", version)
    # Nothing served yet: until the operator accepts this first model, the server
    # must not fall back to whatever version the trainer committed.
    if (
        decision.start_job
        and decision.status.modelVersion is None
        and await asyncio.to_thread(rt.store.get_pointer, spec.channelId) is None
    ):
        await asyncio.to_thread(rt.store.set_pointer, spec.channelId, {"version": None})
    if decision.start_job:
        job = build_job(
            name=name, namespace=namespace, uid=body.get("metadata", {}).get("uid", ""),
            spec=spec, start=decision.start_job, settings=rt.settings,
        )  # fmt: skip
        created = await rt.kube.create_job(namespace, job)
        rt.recent_starts[(namespace, decision.start_job.name)] = time.monotonic()
        logger.info(
            "%s Job %s for %s",
            "created" if created else "adopted",
            decision.start_job.name,
            decision.start_job.version,
        )
    written = _patch_status(raw_status, decision.status, patch)
    if written:
        rt.pending_writes[(namespace, name)] = (written, time.monotonic())
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    record_telemetry(rt, (namespace, name), spec, decision)
    if spec.notify and decision.events:
        await notify(rt, namespace, name, spec, decision, logger)


def _parse_status(raw: Mapping[str, Any], logger: kopf.Logger) -> ChannelModelStatus:
    try:
        return ChannelModelStatus.model_validate(raw)
    except ValidationError as exc:
        # Someone edited status by hand: keep what parses rather than crash-loop.
        logger.warning("status does not parse, ignoring invalid fields: %s", exc.errors()[:3])
        valid = {}
        for key, value in raw.items():
            try:
                ChannelModelStatus.model_validate({key: value})
                valid[key] = value
            except ValidationError:
                continue
        return ChannelModelStatus.model_validate(valid)


def _status_json(status: ChannelModelStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", exclude_none=True)


def _patch_status(
    raw: Mapping[str, Any], new: ChannelModelStatus, patch: kopf.Patch
) -> dict[str, Any]:
    """Write only the top-level status fields that changed (nothing when idle)."""
    wanted = _status_json(new)
    changed: dict[str, Any] = {key: value for key, value in wanted.items() if raw.get(key) != value}
    changed |= {
        key: None for key in ChannelModelStatus.model_fields if key in raw and key not in wanted
    }
    for key, value in changed.items():
        patch.status[key] = value
    return changed


def _is_stale(rt: Runtime, key: tuple[str, str], raw_status: Mapping[str, Any]) -> bool:
    """True while the body kopf hands us predates our own last status write.

    kopf's timers run on the latest object the watch delivered; under load that
    can be older than what we wrote a moment ago, and planning from it would
    repeat the last decision (a second Job create, a second success).
    """
    pending = rt.pending_writes.get(key)
    if pending is None:
        return False
    expected, written_at = pending
    if all(raw_status.get(field) == value for field, value in expected.items()):
        del rt.pending_writes[key]
        return False
    if time.monotonic() - written_at > STALE_WRITE_TIMEOUT:
        del rt.pending_writes[key]  # the write was lost or overwritten: plan afresh
        return False
    return True


def _report_invalid_spec(
    body: kopf.Body,
    raw_status: Mapping[str, Any],
    status: ChannelModelStatus,
    patch: kopf.Patch,
    exc: ValidationError,
    now: datetime,
    generation: int | None,
) -> None:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = f"spec.{where}: {first['msg']}"
    before = cond.get_condition(status.conditions, cond.SPEC_VALID)
    status.conditions = cond.set_condition(
        status.conditions, cond.SPEC_VALID, False, "InvalidSpec", message, now, generation
    )
    status.observedGeneration = generation
    _patch_status(raw_status, status, patch)
    if before is None or before.message != message:
        kopf.event(body, type="Warning", reason="InvalidSpec", message=message)
