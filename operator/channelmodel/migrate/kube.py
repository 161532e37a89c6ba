"""The ChannelModel an import is for (`--name`): checked before publishing,
annotated after, so the operator adopts the version (status, URL, retention)."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from channelmodel.api.annotations import IMPORTED_ORIGIN, IMPORTED_VERSION
from channelmodel.api.models import GROUP, PLURAL, VERSION
from channelmodel.kube import load_client_config
from channelmodel.migrate.errors import ImportRefused
from channelmodel.versions import is_version


@dataclass(frozen=True)
class ChannelModelRef:
    name: str
    namespace: str
    kubeconfig: str | None = None

    def __str__(self) -> str:
        return f"ChannelModel {self.namespace}/{self.name}"


def _custom_api(ref: ChannelModelRef) -> client.CustomObjectsApi:
    if ref.kubeconfig:
        api_client = config.new_client_from_config(config_file=ref.kubeconfig)  # type: ignore[no-untyped-call]
        return client.CustomObjectsApi(api_client)
    load_client_config()
    return client.CustomObjectsApi()


def check_target(ref: ChannelModelRef, channel_id: str) -> list[str]:
    """Refuse unless the ChannelModel exists for this channel; the versions it knows."""
    try:
        obj = dict(
            _custom_api(ref).get_namespaced_custom_object(  # type: ignore[call-overload]
                GROUP, VERSION, ref.namespace, PLURAL, ref.name
            )
        )
    except ApiException as exc:
        reason = "not found" if exc.status == 404 else f"{exc.status} {exc.reason}"
        raise ImportRefused(f"{ref}: {reason}") from None
    spec_channel = (obj.get("spec") or {}).get("channelId")
    if spec_channel != channel_id:
        raise ImportRefused(f"{ref} is for channel {spec_channel!r}, not {channel_id!r}")
    status = obj.get("status") or {}
    known = [status.get("latestVersion"), (status.get("currentJob") or {}).get("version")]
    known += [record.get("version") for record in status.get("versions") or []]
    return [v for v in known if isinstance(v, str) and is_version(v)]


def annotate_imported(ref: ChannelModelRef, version: str, origin: str) -> None:
    patch = {"metadata": {"annotations": {IMPORTED_VERSION: version, IMPORTED_ORIGIN: origin}}}
    try:
        _custom_api(ref).patch_namespaced_custom_object(
            GROUP, VERSION, ref.namespace, PLURAL, ref.name, patch
        )
    except ApiException as exc:
        raise ImportRefused(
            f"published {version} but could not annotate {ref} ({exc.status} {exc.reason}); "
            f"run: kubectl annotate -n {ref.namespace} chm {ref.name} "
            f"{IMPORTED_VERSION}={version} {IMPORTED_ORIGIN}={origin}"
        ) from None
