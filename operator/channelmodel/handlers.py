"""kopf handlers: gather observations (observe.py, fleet.py), call the planner,
execute its plan, report it (reporting.py).

kopf's watches feed the handlers below; they keep each ChannelModel's latest body
and wake the channel (wakeups.py): its object, its Job, its Pod, a freed training
slot. A few workers plan due channels from one deadline heap (workqueue.py), like
a controller-runtime Reconcile loop, and put each back at the deadline its plan
named. A channel with nothing to do costs no CPU, no API request and no write.
Running Jobs, the queue and channelId claims live in the fleet index (fleet.py),
fed by the same watches. See docs/decisions/0014-event-driven-planning.md.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

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
from channelmodel.fleet import owner_of
from channelmodel.jobs import (
    CHANNEL_MODEL_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    VERSION_LABEL,
    build_job,
)
from channelmodel.kube import LIST_PAGE_SIZE
from channelmodel.metrics import RECONCILES
from channelmodel.observe import SECRET_RECHECK_SECONDS, observe_job, secret_problem
from channelmodel.plan_types import Fleet, Plan, PlanInput, StartJob
from channelmodel.planner import plan
from channelmodel.policy import channel_claim_problem, spec_problem
from channelmodel.reporting import notify, record_telemetry
from channelmodel.runtime import Runtime

STALE_WRITE_TIMEOUT = 15.0
# A stopping operator lets the plans under way finish for this long, then cancels them.
WORKER_STOP_TIMEOUT = 10.0
EVENT_COMPONENT = "channelmodel-operator"


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """Register every handler on `registry` (tests use their own registry)."""

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A private registry has none of kopf's default login handlers.
        return kopf.login_via_client(**kwargs)

    kopf_settings: list[kopf.OperatorSettings] = []  # the one kopf runs with, once started

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # The official client is synchronous: its calls run in these threads.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(rt.settings.api_concurrency, thread_name_prefix="kube-api")
        )
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
        # Watches resume from their last resourceVersion (bookmarks keep it fresh):
        # a reconnect every few minutes re-lists nothing.
        settings.watching.server_timeout = 300
        # The initial list in pages: 10,000 objects at once are ~80 MB of JSON and several
        # times that parsed, a high-water mark the process would keep for good.
        settings.watching.chunk_size = LIST_PAGE_SIZE
        # About two minutes of retries before kopf gives up on a request: an API server
        # restart or a control-plane upgrade must not need an operator restart.
        settings.networking.error_backoffs = [1, 2, 5, 10, 20, 30, 60]
        # Namespaced installs get no cluster-wide rights: no namespace/CRD scanning.
        settings.scanning.disabled = not rt.settings.cluster_wide
        # Before any handler runs: the running Jobs (the cap), the queue and the claims.
        # (Seeded in the listing's thread: no handler runs yet to share the index with.)
        await rt.kube.list_fleet(
            rt.settings.namespaces, f"{MANAGED_BY_LABEL}={MANAGED_BY}", rt.fleet.seed
        )
        kopf_settings.append(settings)

    @kopf.on.cleanup(registry=registry)
    async def stop_workers(**_: Any) -> None:
        await rt.workers.stop(WORKER_STOP_TIMEOUT)

    # The watch handlers are async on purpose: kopf runs sync handlers in threads, and
    # the fleet index and the wake-ups belong to the event loop.
    @kopf.on.event(GROUP, VERSION, PLURAL, id="wake_on_change", registry=registry)
    async def channel_changed(
        type: str | None,
        name: str,
        namespace: str | None,
        annotations: Mapping[str, str],
        body: kopf.Body,
        **_: Any,
    ) -> None:
        key = (namespace or "default", name)
        deleted = type == "DELETED"
        before = rt.fleet.queue.get(key)
        rt.fleet.channel_seen(key, body, deleted=deleted)
        if deleted:
            rt.channels.forget(key)
            rt.telemetry.forget(key)
            rt.pending_writes.pop(key, None)
            # A channelId it claimed may be free for another ChannelModel now.
            claimed_id = str((body.get("spec") or {}).get("channelId"))
            for _created, ns, other in rt.fleet.owners(claimed_id):
                rt.channels.wake((ns, other))
        else:
            rt.telemetry.change_seen(key, annotations.get(INVENTORY_CHANGED_AT))
            rt.channels.seen(key, body)
            if not rt.workers.started:
                # Started here, not at start-up: tasks inherit the context kopf's Event
                # posting needs, which its handlers have and its start-up activities lack.
                settings = kopf_settings[-1]
                rt.workers.start(
                    rt.settings.api_concurrency, lambda key: _plan_channel(rt, key, settings)
                )
        entry = rt.fleet.queue.get(key)
        if before is not None and before.waiting and (entry is None or not entry.waiting):
            # It left the line (started, blocked, gone): the next in line may take its place.
            _release_slots(rt)

    @kopf.on.event(
        "batch", "v1", "jobs", id="wake_on_job", labels={MANAGED_BY_LABEL: MANAGED_BY},
        registry=registry,
    )  # fmt: skip
    async def job_changed(
        type: str | None, name: str, namespace: str | None, body: kopf.Body, **_: Any
    ) -> None:
        key = (namespace or "default", name)
        was_running = key in rt.fleet.running or key in rt.fleet.recent_starts
        rt.fleet.job_seen(key, body, deleted=type == "DELETED")
        owner = owner_of(body)
        if owner:
            rt.channels.wake(owner)
        if was_running and key not in rt.fleet.running:
            _release_slots(rt)  # its slot is free

    @kopf.on.event(
        "", "v1", "pods", id="wake_on_pod", labels={MANAGED_BY_LABEL: MANAGED_BY},
        registry=registry,
    )  # fmt: skip
    async def pod_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        rt.fleet.pod_seen(body, deleted=type == "DELETED")
        owner = owner_of(body)
        if owner:  # the scheduler's word on it shows in the owner's Training condition
            rt.channels.wake(owner)

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="cleanup", backoff=5, registry=registry)
    async def cleanup(
        body: kopf.Body,
        name: str,
        namespace: str | None,
        logger: kopf.Logger,
        **_: Any,
    ) -> None:
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
                for _, ns, other in rt.fleet.owners(spec.channelId)
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


def _release_slots(rt: Runtime) -> None:
    """Wake the oldest ready channels that the free training slots can take."""
    for key in rt.fleet.next_in_line(rt.settings.max_concurrent_trainings, rt.clock()):
        rt.channels.wake(key, first=True)


async def _plan_channel(
    rt: Runtime, key: tuple[str, str], settings: kopf.OperatorSettings
) -> float | None:
    """One plan of channel `key` from its latest body (a job for wakeups.Workers)."""
    raw = rt.channels.body(key)
    if raw is None:
        return None  # gone, or being deleted (the cleanup handler has it)
    body = kopf.Body(cast(kopf.RawBody, raw))
    wake_in = await reconcile_channel(
        rt, key, body, kopf.ObjectLogger(body=body, settings=settings)
    )
    RECONCILES.inc()
    return wake_in


async def reconcile_channel(
    rt: Runtime, key: tuple[str, str], body: kopf.Body, logger: kopf.Logger
) -> float | None:
    """Plan channel `key` once and carry the plan out; seconds until its next deadline."""
    namespace, name = key
    now = rt.clock()
    raw_status = dict(body.get("status") or {})
    meta = body.get("metadata") or {}
    if _is_stale(rt, key, raw_status):
        return STALE_WRITE_TIMEOUT  # the watch event of our write wakes it before
    status = _parse_status(raw_status, logger)
    try:
        spec = ChannelModelSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        changed = _invalid_spec_status(body, raw_status, status, exc, now, meta.get("generation"))
        await _write_status(rt, key, changed)
        return None  # an edit of the spec wakes it

    job_obs = None
    if status.currentJob is not None:
        job_obs = await observe_job(
            rt, namespace, spec.channelId, status.currentJob.name, status.currentJob.version
        )
    claimed = channel_claim_problem(
        spec.channelId, namespace, name, {spec.channelId: rt.fleet.owners(spec.channelId)}
    )
    inp = PlanInput(
        name=name,
        spec=spec,
        status=status,
        annotations=dict(meta.get("annotations") or {}),
        now=now,
        fleet=Fleet(cap=rt.settings.max_concurrent_trainings),  # read under the start lock
        model_base_url=rt.settings.model_base_url,
        generation=meta.get("generation"),
        job=job_obs,
        quality_margin=rt.settings.quality_margin,
        job_lead=rt.settings.job_lead,
        # A spec asking for more than the operator's policy allows is never trained.
        blocked=spec_problem(spec, rt.settings) or claimed,
    )
    # The cap check and the slot it grants are one step with no await in between:
    # atomic on the event loop, so concurrent plans never grant more slots than free.
    inp = replace(
        inp,
        fleet=rt.fleet.fleet_view(
            rt.settings.max_concurrent_trainings, key, status.queuedAt, status.trainAfter, now
        ),
    )
    decision = _plan(inp, claimed)
    facts: dict[str, Any] = {}
    if decision.start_job is None:
        await _side_effects(rt, decision, body, key, spec, logger)
    else:
        slot = (namespace, decision.start_job.name)  # the Job's name holds the slot
        rt.fleet.started(slot)
        try:
            # Facts only a start needs, read only then (one more plan when they matter).
            facts = await _start_facts(rt, namespace, name, spec, status, decision.start_job)
            if facts:
                decision = _plan(replace(inp, **facts), claimed)
            await _side_effects(rt, decision, body, key, spec, logger)
        except BaseException:
            _give_back(rt, slot)  # no Job was created
            raise
        if decision.start_job is None:
            _give_back(rt, slot)  # blocked after all: the next in line may have it
    await _report(rt, decision, body, key, spec, raw_status, logger)
    if "blocked" in facts:
        return SECRET_RECHECK_SECONDS  # Secrets are not watched: look again a little later
    return _seconds_until(rt, decision.wake_at)


def _give_back(rt: Runtime, slot: tuple[str, str]) -> None:
    if rt.fleet.start_failed(slot):
        _release_slots(rt)


async def _start_facts(
    rt: Runtime,
    namespace: str,
    name: str,
    spec: ChannelModelSpec,
    status: ChannelModelStatus,
    start: StartJob,
) -> dict[str, Any]:
    """What a start must know beyond the object: the store's versions, usable Secrets."""
    facts: dict[str, Any] = {}
    # A re-created ChannelModel (Retain, GitOps restore) finds its channel's versions
    # in the store: numbering continues after the newest one.
    stored = await asyncio.to_thread(rt.store.list_versions, spec.channelId)
    listed = {v.version for v in status.versions}
    if any(version not in listed for version in stored):
        facts |= {"store_latest": stored[-1], "store_versions": tuple(stored)}
    problem = await secret_problem(rt, namespace, name, spec, start)
    if problem:
        facts["blocked"] = problem
    return facts


def _seconds_until(rt: Runtime, deadline: datetime | None) -> float | None:
    return None if deadline is None else max(0.0, (deadline - rt.clock()).total_seconds())


def _plan(inp: PlanInput, claimed: str | None) -> Plan:
    decision = plan(inp)
    if claimed:
        # The channel belongs to another ChannelModel: never touch its pointer or versions.
        decision.serve_version = None
        decision.delete_versions = []
    return decision


async def _side_effects(
    rt: Runtime,
    decision: Plan,
    body: kopf.Body,
    key: tuple[str, str],
    spec: ChannelModelSpec,
    logger: kopf.Logger,
) -> None:
    """What the plan changes outside the object: Jobs and the store.

    Order matters for crash safety: side effects first, status last (`_report`), so
    a crash in between re-plans the same decision and the effects are idempotent.
    """
    namespace, name = key
    if decision.cancel_job:
        selector = f"{CHANNEL_MODEL_LABEL}={name},{VERSION_LABEL}={decision.cancel_job.version}"
        deleted = await rt.kube.delete_jobs(namespace, selector)
        why = "spec.suspend" if spec.suspend else "a change during the Job's wait"
        logger.info("%s: deleted training Job(s) %s", why, ", ".join(deleted) or "-")
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
        created = await rt.kube.create_job(namespace, job)  # its slot: granted with the plan
        if not created:
            await _adopt_version(rt, namespace, decision, logger)
        logger.info(
            "%s Job %s for %s",
            "created" if created else "adopted",
            decision.start_job.name,
            decision.start_job.version,
        )


async def _report(
    rt: Runtime,
    decision: Plan,
    body: kopf.Body,
    key: tuple[str, str],
    spec: ChannelModelSpec,
    raw_status: Mapping[str, Any],
    logger: kopf.Logger,
) -> None:
    """Events, status, metrics and webhooks: what the plan says happened."""
    namespace, name = key
    for event in decision.events:  # queued for kopf's poster: posted as status is written
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    await _write_status(rt, key, _changed_status(raw_status, decision.status))
    record_telemetry(rt, key, spec, decision)
    if spec.notify and decision.events:
        await notify(rt, namespace, name, spec, decision, logger)


async def _adopt_version(rt: Runtime, namespace: str, decision: Plan, logger: kopf.Logger) -> None:
    """The Job of this attempt exists already (created before a crash or a takeover,
    its status never written): follow the version it trains, not the one planned now.

    A re-plan can number differently, e.g. when that Job has meanwhile published its
    version to the store; recording the plan's number would wait for a version that
    no Job publishes."""
    assert decision.start_job is not None and decision.status.currentJob is not None
    existing = await rt.kube.get_job(namespace, decision.start_job.name)
    labels = ((existing or {}).get("metadata") or {}).get("labels") or {}
    actual = labels.get(VERSION_LABEL)
    if actual and actual != decision.start_job.version:
        logger.info(
            "Job %s trains %s (planned %s): following the Job",
            decision.start_job.name, actual, decision.start_job.version,
        )  # fmt: skip
        decision.status.currentJob = decision.status.currentJob.model_copy(
            update={"version": actual}
        )


async def _write_status(rt: Runtime, key: tuple[str, str], changed: dict[str, Any]) -> None:
    """Patch the changed status fields (nothing when idle); remember them until seen back."""
    if changed and await rt.kube.patch_channel_status(*key, changed):
        rt.pending_writes[key] = (changed, time.monotonic())


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


def _changed_status(raw: Mapping[str, Any], new: ChannelModelStatus) -> dict[str, Any]:
    """The top-level status fields that changed (None deletes one): nothing when idle."""
    wanted = _status_json(new)
    changed: dict[str, Any] = {key: value for key, value in wanted.items() if raw.get(key) != value}
    changed |= {
        key: None for key in ChannelModelStatus.model_fields if key in raw and key not in wanted
    }
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


def _invalid_spec_status(
    body: kopf.Body,
    raw_status: Mapping[str, Any],
    status: ChannelModelStatus,
    exc: ValidationError,
    now: datetime,
    generation: int | None,
) -> dict[str, Any]:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = f"spec.{where}: {first['msg']}"
    before = cond.get_condition(status.conditions, cond.SPEC_VALID)
    status.conditions = cond.set_condition(
        status.conditions, cond.SPEC_VALID, False, "InvalidSpec", message, now, generation
    )
    status.observedGeneration = generation
    if before is None or before.message != message:
        kopf.event(body, type="Warning", reason="InvalidSpec", message=message)
    return _changed_status(raw_status, status)
