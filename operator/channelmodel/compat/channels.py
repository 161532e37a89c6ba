"""The Kubernetes side of the compatibility API, through the official client:
find (or create) the ChannelModel of a channel, map the webhook, request a retrain.

Calls are synchronous; the handlers run them in a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from channelmodel.api import annotations as ann
from channelmodel.api.annotations import SECRET_OPT_IN_ANNOTATION, TOKEN_ORIGINS_ANNOTATION
from channelmodel.api.models import GROUP, KIND, PLURAL, VERSION
from channelmodel.compat.jobs import JobId, request_time
from channelmodel.rfc3339 import format_time

log = logging.getLogger(__name__)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "channelmodel-compat"
TOKEN_KEY = "token"
_NOT_IN_NAMES = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True)
class TrainCall:
    """The old API's request body, validated."""

    channel_id: str
    manifest_url: str | None
    webhook_url: str | None
    auth_token: str | None  # never logged, never answered


class ChannelNotFound(Exception):
    pass


class NameTaken(Exception):
    """The name a new ChannelModel or Secret needs belongs to something else."""


class WebhookLocked(Exception):
    """The request would move a signed webhook elsewhere: its events (and signatures)
    would go to an address the HMAC key's owner never chose."""


def channel_model_name(channel_id: str) -> str:
    """A DNS-1123 name for a channel; a hash suffix when lowercasing or `_` changed it,
    so `Shop_1` and `shop-1` never share a name."""
    name = _NOT_IN_NAMES.sub("-", channel_id.lower()).strip("-") or "channel"
    if name != channel_id:
        name = f"{name[:50]}-{hashlib.sha256(channel_id.encode()).hexdigest()[:8]}"
    return name


class ChannelModels:
    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace

    # --- lookup -------------------------------------------------------------------
    def find(self, channel_id: str) -> dict[str, Any] | None:
        listing = _as_dict(
            self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        )
        matches = [
            item
            for item in listing.get("items") or []
            if (item.get("spec") or {}).get("channelId") == channel_id
        ]
        # Two objects for one channel is a misconfiguration; the oldest one is used.
        matches.sort(key=lambda item: str(item["metadata"].get("creationTimestamp") or ""))
        return matches[0] if matches else None

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            obj = _as_dict(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    # --- the request ----------------------------------------------------------------
    def request_training(self, call: TrainCall, *, mode: str, create: bool) -> JobId:
        """Patch the retrain request onto the channel's ChannelModel (created if allowed)."""
        now = datetime.now(UTC)
        obj = self.find(call.channel_id)
        if obj is None:
            if not create:
                raise ChannelNotFound(call.channel_id)
            created = self._create(call, mode, now)
            if created is not None:
                return created
            obj = self.find(call.channel_id)  # lost a creation race: use the winner's
            if obj is None:
                raise ChannelNotFound(call.channel_id)
        name = str(obj["metadata"]["name"])
        current = obj["metadata"].get("annotations") or {}
        at = request_time(now, current.get(ann.INVENTORY_CHANGED_AT))
        patch: dict[str, Any] = {"metadata": {"annotations": _request_annotations(mode, at)}}
        notify = (obj.get("spec") or {}).get("notify") or {}
        if call.webhook_url and notify.get("webhookUrl") != call.webhook_url:
            if notify.get("secretRef"):
                raise WebhookLocked(
                    f"ChannelModel {self.namespace}/{name} has a signed webhook; "
                    "its URL is changed on the ChannelModel, not through this API"
                )
            patch["spec"] = {"notify": {"webhookUrl": call.webhook_url}}
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch
        )
        if call.auth_token and create:
            # Only an API that may create Secrets has ones of its own to rotate.
            self._rotate_own_token(obj, call.auth_token)
        log.info(
            "retrain requested (%s) for channel %s: %s/%s",
            mode,
            call.channel_id,
            self.namespace,
            name,
        )
        return JobId(self.namespace, name, at)

    def _create(self, call: TrainCall, mode: str, now: datetime) -> JobId | None:
        """Create the ChannelModel, then its manifest-token Secret, owned by it.

        In this order the API never has to delete a Secret (its Role has no
        `delete`): a refused ChannelModel leaves nothing behind, and a Secret
        owned by the ChannelModel goes when the ChannelModel goes.
        """
        if not call.manifest_url:
            raise ValueError("manifestUrl is required to create a ChannelModel")
        name = channel_model_name(call.channel_id)
        at = request_time(now, None)
        spec: dict[str, Any] = {
            "channelId": call.channel_id,
            "manifest": {"url": call.manifest_url},
        }
        secret_name = f"{name}-manifest-token"
        if call.auth_token:
            self._check_secret_name(secret_name)  # before anything is created
            spec["manifest"]["authSecretRef"] = {"name": secret_name, "key": TOKEN_KEY}
        if call.webhook_url:
            spec["notify"] = {"webhookUrl": call.webhook_url}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                # Set at creation, so the first training already covers this request.
                "annotations": _request_annotations(mode, at),
            },
            "spec": spec,
        }
        try:
            created = _as_dict(
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, body
                )
            )
        except ApiException as exc:
            existing = self.get(name) if exc.status == 409 else None
            if existing is not None and existing["spec"].get("channelId") == call.channel_id:
                return None  # a concurrent call created it: its Secret is this one
            if existing is not None:
                raise NameTaken(
                    f"ChannelModel {self.namespace}/{name} exists for another channel"
                ) from None
            raise
        if call.auth_token:
            self._put_token_secret(secret_name, call.auth_token, created)
        log.info("created ChannelModel %s/%s for channel %s", self.namespace, name, call.channel_id)
        return JobId(self.namespace, name, at)

    # --- the manifest token -----------------------------------------------------------
    def _check_secret_name(self, name: str) -> None:
        """NameTaken when a Secret of that name exists and is not managed by this API."""
        try:
            existing = self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        labels = (existing.metadata.labels if existing.metadata else None) or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
            raise NameTaken(
                f"Secret {self.namespace}/{name} exists and is not managed by this API"
            ) from None

    def _put_token_secret(self, name: str, token: str, owner: dict[str, Any]) -> None:
        """Create or update our own Secret for the ChannelModel `owner`; refuse anyone else's.

        It is opted in for exactly that ChannelModel (channelmodel/policy.py) and
        owned by it, so deleting the ChannelModel deletes the token.
        """
        meta = owner.get("metadata") or {}
        data = {TOKEN_KEY: _b64(token)}
        annotations = {SECRET_OPT_IN_ANNOTATION: str(meta.get("name"))}
        manifest_url = ((owner.get("spec") or {}).get("manifest") or {}).get("url")
        if isinstance(manifest_url, str):
            # The token goes to the backend it came with, even if the spec is edited later.
            parts = urlsplit(manifest_url)
            annotations[TOKEN_ORIGINS_ANNOTATION] = (
                f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
            )
        owners = []
        if meta.get("uid"):
            owners.append(
                client.V1OwnerReference(
                    api_version=f"{GROUP}/{VERSION}", kind=KIND, name=meta["name"], uid=meta["uid"]
                )
            )
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={MANAGED_BY_LABEL: MANAGED_BY},
                annotations=annotations,
                owner_references=owners or None,
            ),
            type="Opaque",
            data=data,
        )
        try:
            self.core.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self._check_secret_name(name)
            self.core.patch_namespaced_secret(
                name, self.namespace, {"metadata": {"annotations": annotations}, "data": data}
            )

    def _rotate_own_token(self, obj: dict[str, Any], token: str) -> None:
        """A token sent with a request replaces the one in a Secret this API created;
        Secrets someone else manages are left alone."""
        ref = ((obj.get("spec") or {}).get("manifest") or {}).get("authSecretRef") or {}
        if not ref.get("name"):
            return
        try:
            secret = self.core.read_namespaced_secret(ref["name"], self.namespace)
        except ApiException as exc:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if exc.status == 404 and labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
                # Ours, but its Secret was never written (a failure after the create).
                self._put_token_secret(ref["name"], token, obj)
                return
            if exc.status in (403, 404):  # not ours to read, or gone
                return
            raise
        labels = (secret.metadata.labels if secret.metadata else None) or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
            return
        patch: dict[str, Any] = {}
        if (secret.data or {}).get(ref.get("key", TOKEN_KEY)) != _b64(token):
            patch["data"] = {ref.get("key", TOKEN_KEY): _b64(token)}
        name = str((obj.get("metadata") or {}).get("name"))
        annotations = (secret.metadata.annotations if secret.metadata else None) or {}
        if annotations.get(SECRET_OPT_IN_ANNOTATION) != name:
            # Secrets written before the opt-in existed: opt them in for their ChannelModel.
            patch["metadata"] = {"annotations": {SECRET_OPT_IN_ANNOTATION: name}}
        if patch:
            self.core.patch_namespaced_secret(ref["name"], self.namespace, patch)


def _request_annotations(mode: str, at: datetime) -> dict[str, str]:
    stamp = format_time(at)
    if mode == "manual":
        # The change time too: the run records it, which is how GET /v1/jobs follows it.
        return {ann.RETRAIN_REQUESTED_AT: stamp, ann.INVENTORY_CHANGED_AT: stamp}
    return {
        ann.INVENTORY_CHANGED_AT: stamp,
        ann.INVENTORY_CHANGE: ann.ChangeKind.PRODUCT_ADDED.value,
    }


def _as_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"Kubernetes API returned {type(value).__name__}, not an object")
    return value


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
