"""Operator settings: one validated object, read from `CHANNELMODEL_*` environment variables.

The Helm chart renders exactly these variables (tests/deploy checks that the
rendered Deployment's env parses here), so chart and code cannot drift apart.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from kubernetes.utils import parse_quantity
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from channelmodel import model_urls
from channelmodel.egress import parse_networks

TRAINER_UID = 10001  # the trainer image's user (Dockerfile.trainer)


class OperatorSettings(BaseSettings):
    """Everything the operator process needs to know about its installation."""

    model_config = SettingsConfigDict(
        env_prefix="CHANNELMODEL_", extra="ignore", frozen=True, populate_by_name=True
    )

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to watch, comma-separated; empty means cluster-wide.",
    )
    public_base_url: str = Field(
        default="http://localhost:8080",
        description="Public URL of the model server; modelBaseUrl is built from it.",
        pattern=r"^https?://",
    )
    trainer_image: str = Field(
        default="channelmodel-trainer:latest",
        description="Default image of training Jobs.",
        min_length=1,
    )
    trainer_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    trainer_service_account: str = Field(
        default="channelmodel-trainer",
        description="ServiceAccount of trainer Pods (no API rights).",
    )
    # The chart's securityContext values; the defaults are the trainer image's user.
    trainer_run_as_user: int = Field(
        default=TRAINER_UID, ge=1, description="runAsUser of trainer Pods (non-root)."
    )
    trainer_run_as_group: int = Field(
        default=TRAINER_UID, ge=1, description="runAsGroup of trainer Pods."
    )
    trainer_fs_group: int = Field(
        default=TRAINER_UID, ge=1, description="fsGroup of trainer Pods (owns the store volume)."
    )
    default_gpus: int = Field(
        default=1, ge=0, le=16, description="GPUs of a ChannelModel without spec.training.gpus."
    )
    trainer_runtime_class_name: str | None = Field(
        default=None, description="runtimeClassName of trainer Pods (e.g. nvidia)."
    )
    trainer_priority_class_name: str | None = Field(
        default=None, description="priorityClassName of trainer Pods."
    )
    trainer_affinity: dict[str, Any] | None = Field(
        default=None, description="Affinity of trainer Pods (JSON in the environment)."
    )
    store_uri: str = Field(
        default="file:///var/lib/channelmodel/models",
        description="Artifact store: file:///path (shared volume) or s3://bucket/prefix.",
        pattern=r"^(file|s3)://",
    )
    store_volume_claim: str | None = Field(
        default=None, description="PVC mounted into trainer Pods at the file:// store path."
    )
    s3_credentials_secret: str | None = Field(
        default=None,
        description="Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY passed to trainer Pods.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint for MinIO, Ceph and friends."
    )
    s3_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CHANNELMODEL_S3_REGION", "AWS_REGION"),
        description="S3 region passed to trainer Pods.",
    )
    s3_addressing_style: Literal["path", "virtual", "auto"] | None = Field(
        default=None, description="S3 addressing style passed to trainer Pods (path for MinIO)."
    )
    base_model: str = Field(
        default="imagenet",
        description="Trainer --base-model: imagenet or a path inside the trainer image.",
    )
    max_concurrent_trainings: int = Field(
        default=2, ge=1, description="Training Jobs across all channels."
    )
    job_ttl_seconds: int = Field(
        default=86400, ge=0, description="ttlSecondsAfterFinished of training Jobs."
    )
    job_lead_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="A retrain waiting for its debounce or cooldown starts its Job this long "
        "before the wait ends; the trainer starts up and loads its base meanwhile and reads "
        "the manifest only when the wait is over. A change before then restarts the wait. "
        "0: the Job starts when the wait ends (docs/decisions/0020-job-lead.md).",
    )
    api_concurrency: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Kubernetes API requests the handlers make at once (worker threads and "
        "pooled connections), and channels planned at once: the morning rush of a large "
        "fleet, not an idle one, needs them.",
    )
    quality_margin: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="A new model may lose at most this accuracy against the served one, both "
        "scored on the new model's held-out photos (and never less than one of those photos).",
    )
    # --- policy: what a ChannelModel's author may choose (docs/operations.md, trust model) ---
    allowed_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Secrets any ChannelModel may reference without the opt-in annotation: "
        "`namespace/name` or `name` (any namespace), comma-separated.",
    )
    allowed_trainer_images: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Images spec.training.image may name besides the default, comma-separated; "
        "an entry ending in `*` allows every image starting with the rest.",
    )
    allowed_node_selectors: dict[str, list[str]] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": ["true"]},
        description="JSON: node label key -> values spec.training.nodeSelector may use "
        '("*" for any value); other keys are refused.',
    )
    allowed_toleration_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["nvidia.com/gpu"],
        description="Taint keys spec.training.tolerations may tolerate, comma-separated; "
        "`*` also allows a toleration without a key (tolerates every taint).",
    )
    trainer_node_selector: dict[str, str] = Field(
        default_factory=dict, description="JSON: node selector every training Pod gets."
    )
    trainer_tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="JSON: tolerations every training Pod gets."
    )
    max_gpus: int = Field(default=1, ge=0, le=16, description="Ceiling of spec.training.gpus.")
    max_cpu: str = Field(default="8", description="Ceiling of the trainer's CPU request/limit.")
    max_memory: str = Field(
        default="32Gi", description="Ceiling of the trainer's memory request/limit."
    )
    max_ephemeral_storage: str = Field(
        default="20Gi", description="Ceiling of the trainer's ephemeral-storage request/limit."
    )
    default_memory_limit: str = Field(
        default="6Gi",
        description="Memory limit of training Jobs whose spec sets none (measured: docs/trainer.md).",
    )
    max_active_deadline_seconds: int = Field(
        default=86400, ge=30, description="Ceiling of spec.training.activeDeadlineSeconds."
    )
    egress_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs outbound requests (manifest, images, webhooks) may reach although "
        "private, loopback or link-local, comma-separated; passed on to training Jobs.",
    )
    # --- high availability: one active replica, the others stand by (docs/operations.md) ---
    leader_election: bool = Field(
        default=False,
        description="Act only while holding a coordination.k8s.io Lease, so that several "
        "replicas can run and exactly one of them acts (the chart turns it on with replicas > 1).",
    )
    leader_election_lease_name: str = Field(
        default="channelmodel-operator",
        description="Name of the Lease the replicas compete for.",
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
    )
    leader_election_namespace: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CHANNELMODEL_LEADER_ELECTION_NAMESPACE", "POD_NAMESPACE"),
        description="Namespace of the Lease; default: the Pod's (POD_NAMESPACE), else the "
        "first watched namespace, else `default`.",
    )
    leader_election_identity: str | None = Field(
        default=None,
        description="holderIdentity of this replica; default: the Pod's name (POD_NAME, else "
        "the host name) and a random suffix, unique per process.",
    )
    # Defaults: a takeover within ~10 s of the leader's death (docs/operations.md, timings).
    leader_election_lease_duration_seconds: int = Field(
        default=8, ge=1, description="A standby takes over this long after the last renewal it saw."
    )
    leader_election_renew_deadline_seconds: int = Field(
        default=6,
        ge=1,
        description="The leader stops (and exits) when it has not renewed for this long.",
    )
    leader_election_retry_period_seconds: int = Field(
        default=2, ge=1, description="Period of renewals and of a standby's attempts."
    )
    log_format: Literal["text", "json"] = "text"
    metrics_port: int = Field(
        default=9090, ge=0, le=65535, description="Prometheus /metrics port; 0 disables."
    )

    @field_validator(
        "namespaces",
        "allowed_secrets",
        "allowed_trainer_images",
        "allowed_toleration_keys",
        "egress_allow_networks",
        mode="before",
    )
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("egress_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # a typo must stop the operator, not every training
        return value

    @field_validator("max_cpu", "max_memory", "max_ephemeral_storage", "default_memory_limit")
    @classmethod
    def _quantity(cls, value: str) -> str:
        try:
            parse_quantity(value)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a Kubernetes quantity") from exc
        return value

    @model_validator(mode="after")
    def _lease_timings(self) -> OperatorSettings:
        # kubernetes.leaderelection's own checks (it calls sys.exit on them): the leader
        # must give up before a standby may take over, and retry more than once.
        lease = self.leader_election_lease_duration_seconds
        renew = self.leader_election_renew_deadline_seconds
        retry = self.leader_election_retry_period_seconds
        if not lease > renew > 1.2 * retry:
            raise ValueError(
                "leader election needs lease duration > renew deadline > 1.2 x retry period, "
                f"got {lease} s, {renew} s and {retry} s"
            )
        return self

    @property
    def job_lead(self) -> timedelta:
        return timedelta(seconds=self.job_lead_seconds)

    @property
    def lease_namespace(self) -> str:
        """Where the leader-election Lease lives."""
        if self.leader_election_namespace:
            return self.leader_election_namespace
        return self.namespaces[0] if self.namespaces else "default"

    @property
    def cluster_wide(self) -> bool:
        return not self.namespaces

    def model_base_url(self, channel_id: str, version: str) -> str:
        return model_urls.model_base_url(self.public_base_url, channel_id, version)
