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

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from channelmodel.api import annotations as ann
from channelmodel.api.annotations import SECRET_OPT_IN_ANNOTATION
from channelmodel.api.models import GROUP, KIND, PLURAL, VERSION
from channelmodel.compat.jobs import JobId, format_time, request_time

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
        if not call.manifest_url:
            raise ValueError("manifestUrl is required to create a ChannelModel")
        name = channel_model_name(call.channel_id)
        at = request_time(now, None)
        spec: dict[str, Any] = {
            "channelId": call.channel_id,
            "manifest": {"url": call.manifest_url},
        }
        secret_name = f"{name}-manifest-token"
        secret_created = False
        if call.auth_token:
            secret_created = self._put_token_secret(secret_name, call.auth_token, name)
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
            if secret_created:
                self.core.delete_namespaced_secret(secret_name, self.namespace)
            if existing is not None:
                raise NameTaken(
                    f"ChannelModel {self.namespace}/{name} exists for another channel"
                ) from None
            raise
        if call.auth_token:
            self._own_secret(secret_name, created)
        log.info("created ChannelModel %s/%s for channel %s", self.namespace, name, call.channel_id)
        return JobId(self.namespace, name, at)

    # --- the manifest token -----------------------------------------------------------
    def _put_token_secret(self, name: str, token: str, channel_model: str) -> bool:
        """Create (True) or update our own Secret; refuse to touch anyone else's.

        It is opted in for exactly the ChannelModel it is created for.
        """
        data = {TOKEN_KEY: _b64(token)}
        annotations = {SECRET_OPT_IN_ANNOTATION: channel_model}
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name, labels={MANAGED_BY_LABEL: MANAGED_BY}, annotations=annotations
            ),
            type="Opaque",
            data=data,
        )
        try:
            self.core.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            existing = self.core.read_namespaced_secret(name, self.namespace)
            labels = (existing.metadata.labels if existing.metadata else None) or {}
            if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
                raise NameTaken(
                    f"Secret {self.namespace}/{name} exists and is not managed by this API"
                ) from None
            self.core.patch_namespaced_secret(
                name, self.namespace, {"metadata": {"annotations": annotations}, "data": data}
            )
            return False
        return True

    def _own_secret(self, name: str, owner: dict[str, Any]) -> None:
        """Deleting the ChannelModel then deletes its token (best effort)."""
        meta = owner.get("metadata") or {}
        ref = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        }
        if not ref["uid"]:
            return
        try:
            self.core.patch_namespaced_secret(
                name, self.namespace, {"metadata": {"ownerReferences": [ref]}}
            )
        except ApiException as exc:
            log.warning("could not set the owner of Secret %s: %s", name, exc.status)

    def _rotate_own_token(self, obj: dict[str, Any], token: str) -> None:
        """A token sent with a request replaces the one in a Secret this API created;
        Secrets someone else manages are left alone."""
        ref = ((obj.get("spec") or {}).get("manifest") or {}).get("authSecretRef") or {}
        if not ref.get("name"):
            return
        try:
            secret = self.core.read_namespaced_secret(ref["name"], self.namespace)
        except ApiException as exc:
            if exc.status in (403, 404):  # not ours to read, or gone
                return
            raise
        labels = (secret.metadata.labels if secret.metadata else None) or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
            return
        if (secret.data or {}).get(ref.get("key", TOKEN_KEY)) != _b64(token):
            self.core.patch_namespaced_secret(
                ref["name"], self.namespace, {"data": {ref.get("key", TOKEN_KEY): _b64(token)}}
            )


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
