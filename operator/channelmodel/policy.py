"""What a ChannelModel's author may choose: the operator-side policy.

Anyone who may `patch` a ChannelModel writes its spec, and the operator turns
the spec into a Pod that runs with the store's credentials. So the platform
engineer's settings (chart values, OperatorSettings), not the spec, decide
which Secrets a ChannelModel may use, which images it may run, where it may
run and how much it may take; the spec only chooses within that. A spec
outside the policy is not trained: SpecValid says why (the planner's
`blocked`). See docs/operations.md ("Trust model") and
docs/decisions/0009-trust-model-and-policy.md.

Pure functions over the spec, the settings and (for Secrets) the Secret's
metadata; the handlers fetch what they need.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from kubernetes.utils import parse_quantity

from channelmodel.api.annotations import SECRET_OPT_IN_ANNOTATION, TOKEN_ORIGINS_ANNOTATION
from channelmodel.api.models import ChannelModelSpec, SecretKeyRef
from channelmodel.plan_types import StartJob, Trigger
from channelmodel.settings import OperatorSettings

OPT_IN_ANY = "*"
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
GPU_RESOURCE = "nvidia.com/gpu"


def _quantity(value: object) -> Decimal | None:
    try:
        return Decimal(parse_quantity(value))  # type: ignore[no-untyped-call]
    except (ValueError, InvalidOperation, TypeError):
        return None


def _ceilings(settings: OperatorSettings) -> dict[str, tuple[str, Decimal | None]]:
    return {
        "cpu": (settings.max_cpu, _quantity(settings.max_cpu)),
        "memory": (settings.max_memory, _quantity(settings.max_memory)),
        "ephemeral-storage": (
            settings.max_ephemeral_storage,
            _quantity(settings.max_ephemeral_storage),
        ),
    }


def image_allowed(image: str, settings: OperatorSettings) -> bool:
    if image == settings.trainer_image:
        return True
    for allowed in settings.allowed_trainer_images:
        if allowed.endswith("*") and image.startswith(allowed[:-1]):
            return True
        if image == allowed:
            return True
    return False


def _resources_problem(resources: Mapping[str, Any], settings: OperatorSettings) -> str | None:
    ceilings = _ceilings(settings)
    for section, values in resources.items():
        if section not in ("requests", "limits"):
            return f"spec.training.resources.{section} is not allowed (requests and limits only)"
        if not isinstance(values, Mapping):
            return f"spec.training.resources.{section} must be a map"
        for name, value in values.items():
            if name == GPU_RESOURCE:
                return "GPUs are requested with spec.training.gpus, not resources"
            if name not in ceilings:
                return (
                    f"spec.training.resources.{section}.{name} is not allowed "
                    f"(only {', '.join(RESOURCE_NAMES)})"
                )
            amount = _quantity(value)
            if amount is None:
                return f"spec.training.resources.{section}.{name}: {value!r} is not a quantity"
            shown, ceiling = ceilings[name]
            if ceiling is not None and amount > ceiling:
                return (
                    f"spec.training.resources.{section}.{name} {value} is over the "
                    f"operator's ceiling of {shown}"
                )
    return None


def _placement_problem(spec: ChannelModelSpec, settings: OperatorSettings) -> str | None:
    training = spec.training
    for key, value in (training.nodeSelector or {}).items():
        allowed = settings.allowed_node_selectors.get(key)
        if allowed is None:
            return f"spec.training.nodeSelector key {key!r} is not allowed by the operator"
        if OPT_IN_ANY not in allowed and value not in allowed:
            return f"spec.training.nodeSelector {key}={value!r} is not allowed by the operator"
    keys = settings.allowed_toleration_keys
    for toleration in training.tolerations or []:
        key = str(toleration.get("key") or "")
        if not key:
            if OPT_IN_ANY not in keys:
                return "spec.training.tolerations: a toleration without a key tolerates every taint"
        elif OPT_IN_ANY not in keys and key not in keys:
            return f"spec.training.tolerations key {key!r} is not allowed by the operator"
    return None


def spec_problem(spec: ChannelModelSpec, settings: OperatorSettings) -> str | None:
    """Why this spec asks for more than the operator allows, or None."""
    training = spec.training
    if training.image is not None and not image_allowed(training.image, settings):
        return f"spec.training.image {training.image!r} is not allowed by the operator"
    if training.gpus is not None and training.gpus > settings.max_gpus:
        return (
            f"spec.training.gpus {training.gpus} is over the operator's ceiling of "
            f"{settings.max_gpus}"
        )
    if training.activeDeadlineSeconds > settings.max_active_deadline_seconds:
        return (
            f"spec.training.activeDeadlineSeconds {training.activeDeadlineSeconds} is over the "
            f"operator's ceiling of {settings.max_active_deadline_seconds}"
        )
    problem = _resources_problem(training.resources or {}, settings)
    return problem or _placement_problem(spec, settings)


def job_secret_refs(
    spec: ChannelModelSpec, start: StartJob | None
) -> list[tuple[SecretKeyRef, str | None]]:
    """The Secrets a training Job started now would read (the operator checks each),
    with the URL a bearer token among them is sent to (None for an HMAC key)."""
    refs: list[tuple[SecretKeyRef, str | None]] = []
    if start is not None and start.trigger == Trigger.IMPORT and spec.importFrom:
        token, url = spec.importFrom.authSecretRef, spec.importFrom.url
    else:
        token, url = spec.manifest.authSecretRef, spec.manifest.url
    if token is not None:
        refs.append((token, url))
    if spec.notify and spec.notify.secretRef and (start is None or start.trigger != Trigger.IMPORT):
        refs.append((spec.notify.secretRef, None))
    return refs


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}:{port}"


def token_origin_problem(
    secret_metadata: Mapping[str, Any], *, namespace: str, secret: str, url: str
) -> str | None:
    """Why a bearer token may not be sent to `url`: the Secret pins its origins.

    With `ml.dukarun.io/token-origins: https://backend.example[,...]` on the
    Secret, a spec edit that points the manifest (or import) URL elsewhere
    cannot carry the token there.
    """
    annotations = secret_metadata.get("annotations") or {}
    pinned = annotations.get(TOKEN_ORIGINS_ANNOTATION)
    if pinned is None:
        return None
    allowed = {_origin(part) for part in str(pinned).split(",") if part.strip()}
    target = _origin(url)
    if target is not None and target in allowed:
        return None
    return (
        f"Secret {namespace}/{secret} may only be sent to {pinned.strip()} "
        f"({TOKEN_ORIGINS_ANNOTATION}), not to {target or 'this URL'}"
    )


def secret_opt_in_problem(
    secret_metadata: Mapping[str, Any],
    *,
    namespace: str,
    secret: str,
    channel_model: str,
    settings: OperatorSettings,
) -> str | None:
    """Why ChannelModel `channel_model` may not use this Secret, or None.

    A Secret is usable when it names the ChannelModel in its
    `ml.dukarun.io/channel-models` annotation (or `*`: any ChannelModel in its
    namespace), or when the chart's allowlist names it. The store's own
    credentials are never usable, whatever the Secret says.
    """
    if settings.s3_credentials_secret and secret == settings.s3_credentials_secret:
        return f"Secret {namespace}/{secret} holds the store credentials and cannot be referenced"
    if secret in settings.allowed_secrets or f"{namespace}/{secret}" in settings.allowed_secrets:
        return None
    annotations = secret_metadata.get("annotations") or {}
    named = {part.strip() for part in str(annotations.get(SECRET_OPT_IN_ANNOTATION, "")).split(",")}
    if channel_model in named or OPT_IN_ANY in named:
        return None
    return (
        f"Secret {namespace}/{secret} is not opted in for ChannelModel {channel_model}: "
        f"annotate it {SECRET_OPT_IN_ANNOTATION}={channel_model}"
    )


def default_memory_limit(
    resources: Mapping[str, Any], settings: OperatorSettings
) -> dict[str, Any]:
    """`resources` with the operator's default memory limit when it sets none."""
    result = {key: dict(value) for key, value in resources.items() if isinstance(value, Mapping)}
    limits = result.setdefault("limits", {})
    if "memory" not in limits:
        request = result.get("requests", {}).get("memory")
        default = _quantity(settings.default_memory_limit)
        wanted = _quantity(request) if request is not None else None
        # A request above the default would make an invalid Pod (limit < request).
        limits["memory"] = (
            request
            if wanted is not None and default is not None and wanted > default
            else settings.default_memory_limit
        )
    return result


def channel_claim_problem(
    channel_id: str,
    namespace: str,
    name: str,
    owners: Mapping[str, Any],
) -> str | None:
    """Why this ChannelModel may not train its channel: an older one claims the channelId.

    The store is shared: a second ChannelModel with the same channelId (in any
    namespace) would publish into the first one's channel and move its serving
    pointer. The oldest claim wins (creation time, then namespace/name).
    `owners` maps channelId to (creationTimestamp, namespace, name) entries.
    """
    claims = sorted(owners.get(channel_id, []))
    if not claims:
        return None
    _, first_namespace, first_name = claims[0]
    if (first_namespace, first_name) == (namespace, name):
        return None
    if not any((ns, other) == (namespace, name) for _, ns, other in claims):
        return None  # not indexed yet: nothing to compare with
    return (
        f"channelId {channel_id} belongs to ChannelModel {first_namespace}/{first_name}; "
        "one channel, one ChannelModel"
    )
