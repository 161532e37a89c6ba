"""Artifact stores: `file://` (shared volume) and `s3://` (S3-compatible)."""

from channelmodel.store.base import (
    MODEL_FILES,
    ArtifactStore,
    FileInfo,
    InvalidName,
    NotFound,
    StoreError,
    VersionExists,
)


def open_store(uri: str) -> ArtifactStore:
    """Open the store named by a `file:///path` or `s3://bucket/prefix` URI."""
    if uri.startswith("file://"):
        from channelmodel.store.filesystem import FileStore

        return FileStore.from_uri(uri)
    if uri.startswith("s3://"):
        from channelmodel.store.s3 import S3Store

        return S3Store.from_uri(uri)
    raise StoreError(f"unsupported store URI {uri!r}: use file:///path or s3://bucket/prefix")


__all__ = [
    "MODEL_FILES",
    "ArtifactStore",
    "FileInfo",
    "InvalidName",
    "NotFound",
    "StoreError",
    "VersionExists",
    "open_store",
]
