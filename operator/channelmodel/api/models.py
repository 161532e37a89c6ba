"""Spec and status of the ChannelModel custom resource.

These models are the single source of truth: `channelmodel crd` renders
`deploy/crds/` from them, and the operator parses every object through them.
Field names are the CRD's (camelCase) so that no alias layer hides the contract.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from channelmodel.api.annotations import TriggerKind
from channelmodel.versions import SEMVER_PATTERN

GROUP = "ml.dukarun.io"
VERSION = "v1alpha1"
KIND = "ChannelModel"
PLURAL = "channelmodels"
SINGULAR = "channelmodel"
SHORT_NAMES = ["chm"]

CHANNEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
HTTP_URL_PATTERN = r"^https?://[^\s/$.?#][^\s]*$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"

# Kubernetes-native sub-objects are validated by Kubernetes itself at Job creation.
PRESERVE_UNKNOWN: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, populate_by_name=True)


class SecretKeyRef(_Model):
    """A key in a Secret in the ChannelModel's namespace."""

    name: Annotated[str, Field(description="Secret name.", pattern=K8S_NAME_PATTERN)]
    key: Annotated[str, Field(description="Key inside the Secret.", min_length=1, max_length=253)]


class ManifestSource(_Model):
    """Where the backend serves the channel's product manifest."""

    url: Annotated[
        str,
        Field(
            description="http(s) URL of the manifest: {channelId, products: [{id, images: [url]}]}.",
            pattern=HTTP_URL_PATTERN,
            max_length=2048,
        ),
    ]
    authSecretRef: SecretKeyRef | None = Field(
        default=None,
        description="Bearer token for the manifest and for image URLs on the manifest's host.",
    )


class Schedule(_Model):
    """The fallback run: trains only if the inventory changed since the served model."""

    cron: str = Field(
        default="0 2 * * *",
        description="Five-field cron expression.",
        pattern=r"^\S+\s+\S+\s+\S+\s+\S+\s+\S+$",
    )
    timeZone: str = Field(
        default="UTC", description="IANA time zone the cron expression is read in.", min_length=1
    )


class TrainingMode(StrEnum):
    """Which training path a run takes (docs/trainer.md, "Two paths")."""

    AUTO = "Auto"  # the quality path for the first, scheduled and manual runs; else fast
    FAST = "Fast"  # head only, on cached embeddings of the channel's last fine-tuned base
    FINE_TUNE = "FineTune"  # always the quality path: the whole base is fine-tuned


class Training(_Model):
    """How the training Job runs."""

    epochs: int = Field(default=20, ge=1, le=1000, description="Epochs of head training.")
    mode: TrainingMode = Field(
        default=TrainingMode.AUTO,
        description="Auto: the quality path (the base network fine-tuned on the channel's "
        "photos) for the first, scheduled and manual runs, the fast path (head only, on "
        "the channel's last fine-tuned base, seconds) for event retrains; Fast: always "
        "the fast path; FineTune: always the quality path.",
    )
    gpus: int | None = Field(
        default=None,
        ge=0,
        le=16,
        description="nvidia.com/gpu to request; 0 trains on CPU. Unset: the installation's "
        "default (the chart's trainer.gpus: 1 with GPUs, 0 without).",
    )
    image: str | None = Field(
        default=None, description="Trainer image; the operator's default when unset.", min_length=1
    )
    resources: dict[str, Any] | None = Field(
        default=None,
        description="Container resources (requests/limits) of the trainer.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    nodeSelector: dict[str, str] | None = Field(
        default=None, description="Node selector of the trainer Pod."
    )
    tolerations: list[dict[str, Any]] | None = Field(
        default=None,
        description="Tolerations of the trainer Pod (e.g. for GPU node taints).",
        json_schema_extra={"items": {"type": "object", **PRESERVE_UNKNOWN}},
    )
    activeDeadlineSeconds: int = Field(
        default=3600, ge=30, description="The Job is failed when it runs longer than this."
    )
    backoffLimit: int = Field(
        default=1, ge=0, le=10, description="Pod retries before the Job fails."
    )
    queueName: str | None = Field(
        default=None,
        description="Kueue LocalQueue: sets kueue.x-k8s.io/queue-name on the Job.",
        pattern=K8S_NAME_PATTERN,
    )


class Notify(_Model):
    """Where transition events are POSTed, signed by the Standard Webhooks scheme."""

    webhookUrl: str = Field(description="URL that receives event POSTs.", pattern=HTTP_URL_PATTERN)
    secretRef: SecretKeyRef | None = Field(
        default=None,
        description="Signing keys: whitespace-separated whsec_<base64> keys (all sign, for "
        "rotation) or one raw key; events are unsigned without it.",
    )


class ImportSource(_Model):
    """An existing Teachable Machine export to serve as a version (migration)."""

    url: str = Field(
        description="http(s) URL of the export's model.json (metadata.json and weights.bin beside it).",
        pattern=HTTP_URL_PATTERN,
        max_length=2048,
    )
    authSecretRef: SecretKeyRef | None = Field(
        default=None, description="Bearer token for the URL."
    )


class DeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


def _default_triggers() -> list[TriggerKind]:
    return list(TriggerKind)


class ChannelModelSpec(_Model):
    """Desired state: one model for one shop channel."""

    channelId: str = Field(
        description="Shop channel ID; the artifact path prefix. Immutable.",
        pattern=CHANNEL_ID_PATTERN,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "channelId is immutable"}
            ]
        },
    )
    manifest: ManifestSource = Field(description="The backend's product manifest.")
    autoRetrain: bool = Field(
        default=True,
        description="Event and schedule triggers; the manual trigger works regardless.",
    )
    retrainTriggers: list[TriggerKind] = Field(
        default_factory=_default_triggers,
        description="Which change kinds (and the schedule) may start a retrain.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "default": [t.value for t in TriggerKind],
        },
    )
    debounceSeconds: int = Field(
        default=60, ge=0, le=86400, description="Quiet time after the last change before training."
    )
    cooldownSeconds: int = Field(
        default=3600,
        ge=0,
        le=604800,
        description="Minimum time between two trainings' ends and starts.",
    )
    # `default: {}` makes Kubernetes apply the nested defaults when the block is absent.
    schedule: Schedule = Field(
        default_factory=Schedule,
        description="Daily fallback run.",
        json_schema_extra={"default": {}},
    )
    training: Training = Field(
        default_factory=Training,
        description="Training Job settings.",
        json_schema_extra={"default": {}},
    )
    retainVersions: int = Field(
        default=5, ge=1, le=1000, description="Newest versions kept in the store."
    )
    minAccuracy: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Quality gate: validation accuracy a new model needs to be served.",
    )
    pinnedVersion: str | None = Field(
        default=None,
        description="Serve this version instead of the newest (rollback).",
        pattern=SEMVER_PATTERN,
    )
    suspend: bool = Field(
        default=False,
        description="Stop all training, manual included: a running Job is deleted and its "
        "result never served; the run is queued again when suspend is lifted.",
    )
    deletionPolicy: DeletionPolicy = Field(
        default=DeletionPolicy.RETAIN,
        description="What happens to the stored artifacts when the ChannelModel is deleted.",
    )
    notify: Notify | None = Field(default=None, description="Webhook for transition events.")
    importFrom: ImportSource | None = Field(
        default=None, description="Import this Teachable Machine export once, as a served version."
    )


class TrainingStatus(StrEnum):
    IDLE = "Idle"
    QUEUED = "Queued"
    TRAINING = "Training"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_Model):
    """A condition in Kubernetes API convention."""

    type: str = Field(description="Condition type, e.g. Ready, Training, SpecValid.")
    status: ConditionStatus
    reason: str = Field(
        description="CamelCase reason.", pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    message: str = Field(default="", max_length=32768)
    lastTransitionTime: datetime
    observedGeneration: int | None = Field(default=None, ge=0)


class RunMetrics(_Model):
    """What the trainer reported for one run."""

    accuracy: float | None = Field(
        default=None,
        description="Top-1 on the run's held-out photos (whole groups or capture days where "
        "the manifest names them).",
    )
    servedAccuracy: float | None = Field(
        default=None,
        description="Top-1 of the then served version on the same held-out photos: what the "
        "quality gate compares accuracy with.",
    )
    servedVersion: str | None = Field(
        default=None, description="The version servedAccuracy was measured for."
    )
    path: str | None = Field(
        default=None, description="Training path taken: fast (head only) or fineTune."
    )
    validationImages: int | None = Field(
        default=None, description="Held-out photos accuracy and servedAccuracy were scored on."
    )
    heldOutGroups: bool | None = Field(
        default=None,
        description="True when whole groups (manifest group or capture day) were held out.",
    )
    epochs: int | None = Field(default=None, description="Fine-tuning epochs run (quality path).")
    imagesPerSecond: float | None = Field(
        default=None, description="Fine-tuning throughput, training images/s (quality path)."
    )
    classes: int | None = None
    images: int | None = Field(default=None, description="Images used for training.")
    skippedImages: int | None = Field(
        default=None, description="Images skipped as broken or missing."
    )
    seconds: float | None = Field(default=None, description="Wall time of the training run.")


class JobRef(_Model):
    """The training Job in flight."""

    name: str
    version: str = Field(description="Version this Job publishes.")
    trigger: str = Field(description="What started it: initial, event, schedule, manual, spec.")
    startedAt: datetime
    changeAt: datetime | None = Field(
        default=None, description="The inventory change this run covers."
    )
    notBefore: datetime | None = Field(
        default=None,
        description="The end of the debounce or cooldown the Job was started ahead of: "
        "its trainer reads the manifest from then on.",
    )


class VersionState(StrEnum):
    SERVED = "Served"
    RETAINED = "Retained"
    REJECTED = "Rejected"
    # Found in the store, not published by this ChannelModel (it was re-created):
    # listed, never served unless pinned, never deleted by retention.
    STORED = "Stored"


class VersionRecord(_Model):
    version: str
    createdAt: datetime
    accuracy: float | None = None
    servedAccuracy: float | None = Field(
        default=None,
        description="The version served when this one was trained, on this one's held-out photos.",
    )
    state: VersionState = VersionState.RETAINED
    origin: str = Field(
        default="trained",
        description="trained, imported:<source>, or store (found in the store when re-created).",
    )
    labelsLookLikeProductIds: bool | None = Field(
        default=None, description="False flags an imported model whose labels look like names."
    )
    reason: str | None = Field(default=None, description="Why it was rejected.")


class ChannelModelStatus(_Model):
    """Observed state, mirroring the shop's channel custom fields."""

    model_config = ConfigDict(extra="ignore")  # kopf keeps its own keys here

    modelBaseUrl: str | None = Field(
        default=None, description="URL prefix of the served version's files."
    )
    modelVersion: str | None = Field(default=None, description="Served version (semver).")
    latestVersion: str | None = Field(default=None, description="Newest version ever published.")
    lastTrained: datetime | None = Field(
        default=None, description="End of the last successful training."
    )
    trainingStatus: TrainingStatus = Field(default=TrainingStatus.IDLE)
    queuedAt: datetime | None = Field(
        default=None, description="When the pending retrain was queued."
    )
    trainAfter: datetime | None = Field(
        default=None, description="Earliest start of the pending retrain."
    )
    queuedTrigger: str | None = Field(default=None, description="What queued the pending retrain.")
    coveredChangeAt: datetime | None = Field(
        default=None, description="The inventory change the served model covers."
    )
    attemptedChangeAt: datetime | None = Field(
        default=None, description="The inventory change the last run (even a failed one) covered."
    )
    handledRetrainRequestAt: datetime | None = Field(
        default=None, description="The manual retrain request last acted upon."
    )
    lastScheduleAt: datetime | None = Field(
        default=None, description="The last cron time evaluated."
    )
    attempts: int = Field(
        default=0, ge=0, description="Training Jobs started so far; names the next Job."
    )
    importedFrom: str | None = Field(
        default=None, description="The spec.importFrom URL already imported."
    )
    adoptedImport: str | None = Field(
        default=None, description="The imported-version annotation adopted last."
    )
    attemptedSpecHash: str | None = Field(
        default=None, description="Hash of the spec fields that shape a model, as of the last run."
    )
    attemptedRunHash: str | None = Field(
        default=None,
        description="Hash of the spec fields that shape a run (placement, resources, Secrets), "
        "as of the last run; a change retries a failed run.",
    )
    currentJob: JobRef | None = None
    lastRun: RunMetrics | None = None
    lastError: str | None = Field(default=None, description="Reason of the last failed run.")
    versions: list[VersionRecord] = Field(
        default_factory=list, description="Retained versions, newest first."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observedGeneration: int | None = None
