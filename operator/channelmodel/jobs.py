"""Training Jobs: the manifest the operator creates, and what it reads back.

Pure functions over dicts: the handlers do the API calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from channelmodel.api.job_result import JobResult
from channelmodel.api.models import GROUP, KIND, VERSION, ChannelModelSpec
from channelmodel.egress import ALLOW_ENV as EGRESS_ALLOW_ENV
from channelmodel.plan_types import JobObservation, JobPhase, StartJob, Trigger
from channelmodel.policy import default_memory_limit
from channelmodel.rfc3339 import format_time
from channelmodel.settings import OperatorSettings

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "channelmodel"
CHANNEL_MODEL_LABEL = f"{GROUP}/channel-model"
VERSION_LABEL = f"{GROUP}/version"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
TOKEN_ENV = "CHANNELMODEL_MANIFEST_TOKEN"
GPU_RESOURCE = "nvidia.com/gpu"


def build_job(
    *,
    name: str,
    namespace: str,
    uid: str,
    spec: ChannelModelSpec,
    start: StartJob,
    settings: OperatorSettings,
) -> dict[str, Any]:
    training = spec.training
    labels = _labels(name, spec, start)
    gpus = settings.default_gpus if training.gpus is None else training.gpus
    job_spec: dict[str, Any] = {
        "backoffLimit": training.backoffLimit,
        "activeDeadlineSeconds": training.activeDeadlineSeconds,
        "ttlSecondsAfterFinished": settings.job_ttl_seconds,
        "template": {
            "metadata": {"labels": labels},
            "spec": _pod_spec(spec, start, settings, gpus),
        },
    }
    if training.queueName:
        job_spec["suspend"] = True  # Kueue admits (unsuspends) it when quota allows

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": start.name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {f"{GROUP}/trigger": start.trigger.value},
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def _labels(name: str, spec: ChannelModelSpec, start: StartJob) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "channelmodel-trainer",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "trainer",
        MANAGED_BY_LABEL: MANAGED_BY,
        CHANNEL_MODEL_LABEL: name,
        VERSION_LABEL: start.version,
    }
    if spec.training.queueName:
        labels[KUEUE_QUEUE_LABEL] = spec.training.queueName
    return labels


def _pod_spec(
    spec: ChannelModelSpec, start: StartJob, settings: OperatorSettings, gpus: int
) -> dict[str, Any]:
    volumes, mounts = _volumes(settings)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.trainer_service_account,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "fsGroup": settings.trainer_fs_group},
        "containers": [_container(spec, start, settings, gpus, mounts)],
        "volumes": volumes,
    }
    pod_spec.update(_placement(spec, settings, gpus))
    return pod_spec


def _container(
    spec: ChannelModelSpec,
    start: StartJob,
    settings: OperatorSettings,
    gpus: int,
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    training = spec.training
    resources = default_memory_limit(json.loads(json.dumps(training.resources or {})), settings)
    if gpus > 0:
        resources.setdefault("limits", {})[GPU_RESOURCE] = str(gpus)  # a Quantity
    env, env_from = _env(spec, start, settings)
    container: dict[str, Any] = {
        "name": "trainer",
        "image": training.image or settings.trainer_image,
        "imagePullPolicy": settings.trainer_image_pull_policy,
        "command": ["channelmodel"],
        "args": _args(spec, start, settings),
        "env": env,
        "resources": resources,
        "volumeMounts": mounts,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _container_security(settings),
    }
    if env_from:
        container["envFrom"] = env_from
    return container


def _args(spec: ChannelModelSpec, start: StartJob, settings: OperatorSettings) -> list[str]:
    if start.trigger == Trigger.IMPORT and spec.importFrom:
        # A migration: the same image imports an existing Teachable Machine export.
        return [
            "import",
            "--channel", spec.channelId,
            "--version", start.version,
            "--store", settings.store_uri,
            spec.importFrom.url,
        ]  # fmt: skip
    return [
        "train",
        "--manifest", spec.manifest.url,
        "--channel", spec.channelId,
        "--version", start.version,
        "--store", settings.store_uri,
        "--epochs", str(spec.training.epochs),
        "--base-model", settings.base_model,
        # The trainer resolves Auto (the quality path or the fast one) by the trigger.
        "--mode", spec.training.mode.value,
        "--trigger", start.trigger.value,
        # Started ahead of the debounce's end: the manifest is read from then on.
        *(["--not-before", format_time(start.not_before, "microseconds")]
          if start.not_before else []),
    ]  # fmt: skip


def _env(
    spec: ChannelModelSpec, start: StartJob, settings: OperatorSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The container's env and envFrom: log format, egress, Secrets, webhook, S3."""
    token_ref = spec.manifest.authSecretRef
    if start.trigger == Trigger.IMPORT and spec.importFrom:
        token_ref = spec.importFrom.authSecretRef  # an import reads the export's token
    env: list[dict[str, Any]] = [{"name": "CHANNELMODEL_LOG_FORMAT", "value": settings.log_format}]
    if settings.log_format == "json":  # the trainer logs like the operator
        env.append({"name": "CHANNELMODEL_LOG_FORMAT", "value": "json"})
    if settings.egress_allow_networks:  # what the trainer may reach besides public addresses
        env.append({"name": EGRESS_ALLOW_ENV, "value": ",".join(settings.egress_allow_networks)})
    if token_ref:
        ref = token_ref
        env.append(
            {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
        )
    if spec.notify and start.trigger != Trigger.IMPORT:
        # The trainer posts training.progress events to the same webhook.
        env.append({"name": "CHANNELMODEL_NOTIFY_URL", "value": spec.notify.webhookUrl})
        if spec.notify.secretRef:
            secret = spec.notify.secretRef
            env.append({"name": "CHANNELMODEL_NOTIFY_SIGNED", "value": "true"})
            env.append({
                "name": "CHANNELMODEL_NOTIFY_SECRET",
                # optional: a missing webhook key must not keep the training from starting
                "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key, "optional": True}},
            })  # fmt: skip
    env_from: list[dict[str, Any]] = []
    if settings.store_uri.startswith("s3://"):
        if settings.s3_endpoint_url:
            env.append({"name": "CHANNELMODEL_S3_ENDPOINT_URL", "value": settings.s3_endpoint_url})
        if settings.s3_region:
            env.append({"name": "AWS_REGION", "value": settings.s3_region})
        if settings.s3_addressing_style:
            env.append(
                {"name": "CHANNELMODEL_S3_ADDRESSING_STYLE", "value": settings.s3_addressing_style}
            )
        if settings.s3_credentials_secret:
            env_from.append({"secretRef": {"name": settings.s3_credentials_secret}})
    return env, env_from


def _volumes(settings: OperatorSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A writable /tmp (the root filesystem is read-only) and a file:// store's claim."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if settings.store_uri.startswith("file://") and settings.store_volume_claim:
        volumes.append(
            {"name": "store", "persistentVolumeClaim": {"claimName": settings.store_volume_claim}}
        )
        mounts.append({"name": "store", "mountPath": urlparse(settings.store_uri).path})
    return volumes, mounts


def _container_security(settings: OperatorSettings) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.trainer_run_as_user,
        "runAsGroup": settings.trainer_run_as_group,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _placement(spec: ChannelModelSpec, settings: OperatorSettings, gpus: int) -> dict[str, Any]:
    """runtimeClassName, priorityClassName, affinity, nodeSelector and tolerations."""
    training = spec.training
    placement: dict[str, Any] = {}
    for key, value in (
        ("runtimeClassName", settings.trainer_runtime_class_name),
        ("priorityClassName", settings.trainer_priority_class_name),
        ("affinity", settings.trainer_affinity),
    ):
        if value:
            placement[key] = value  # installation-wide (the chart's trainer.* values)
    # The operator's placement first; the spec adds only what the policy allowed.
    node_selector = {**(training.nodeSelector or {}), **settings.trainer_node_selector}
    if node_selector:
        placement["nodeSelector"] = node_selector
    tolerations = [*settings.trainer_tolerations, *(training.tolerations or [])]
    if gpus > 0 and not any(t.get("key") == GPU_RESOURCE for t in tolerations):
        # GPU nodes are commonly tainted nvidia.com/gpu (GKE, the NVIDIA GPU operator);
        # a Pod asking for a GPU tolerates it, as the ExtendedResourceToleration
        # admission plugin would add where it is enabled.
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        placement["tolerations"] = tolerations
    return placement


def job_phase(job: Mapping[str, Any]) -> tuple[JobPhase, str]:
    """Phase and failure reason from a Job's status conditions."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobPhase.SUCCEEDED, ""
        if condition.get("type") == "Failed":
            reason = condition.get("reason") or "Failed"
            message = condition.get("message") or ""
            return JobPhase.FAILED, f"{reason}: {message}" if message else reason
    return JobPhase.RUNNING, ""


def unschedulable_reason(pod_status: Mapping[str, Any]) -> str:
    """The scheduler's message when it cannot place a Pod (PodScheduled False), else ''."""
    for condition in pod_status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return str(condition.get("message") or "Unschedulable")
    return ""


def termination_result(pods: Sequence[Mapping[str, Any]]) -> JobResult | None:
    """The trainer's result from the newest terminated trainer container.

    A message that is not a result (a crashed trainer's log tail, malformed JSON)
    reads as a failed run that says why.
    """
    finished: list[tuple[str, str]] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated")
            if cs.get("name") == "trainer" and terminated and terminated.get("message"):
                finished.append((terminated.get("finishedAt") or "", terminated["message"]))
    if not finished:
        return None
    return JobResult.from_message(max(finished)[1])


def observe(
    job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]], published: bool
) -> JobObservation:
    if job is None:
        return JobObservation(phase=JobPhase.MISSING)
    phase, reason = job_phase(job)
    if phase == JobPhase.RUNNING:
        return JobObservation(phase=phase)
    return JobObservation(
        phase=phase, result=termination_result(pods), reason=reason, published=published
    )
