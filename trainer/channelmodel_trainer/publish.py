"""Publish a version's three files to the artifact store, all or nothing."""

from __future__ import annotations

from collections.abc import Mapping

from channelmodel.store import StoreError, VersionExists, open_store
from channelmodel.store.base import ArtifactStore
from channelmodel_trainer.errors import PublishError


def open_artifact_store(uri: str) -> ArtifactStore:
    try:
        return open_store(uri)
    except StoreError as exc:
        raise PublishError(str(exc)) from exc


def publish(
    store: ArtifactStore, channel_id: str, version: str, files: Mapping[str, bytes]
) -> None:
    """The store writes atomically: a reader sees the whole version or none of it."""
    try:
        store.publish_version(channel_id, version, files)
    except VersionExists as exc:
        raise PublishError(
            f"version {version} of channel {channel_id} already exists in {store.uri}"
        ) from exc
    except StoreError as exc:
        raise PublishError(f"cannot publish {channel_id} v{version}: {exc}") from exc
