"""The artifact store interface shared by trainer (publish, embedding cache),
operator (list, verify, retain, delete) and model server (read).

Layout: `<root>/<channelId>/v<version>/{model.json, weights.bin, metadata.json}`
plus `<root>/<channelId>/v<version>/.committed`, the commit record written last
(see docs/decisions/0003-store-commit-marker.md). A version without its commit
record does not exist for any reader. Cache blobs live under `<root>/_cache/...`:
`_` cannot start a channel ID, so they never collide with a channel.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from channelmodel import versions
from channelmodel.api.models import CHANNEL_ID_PATTERN
from channelmodel.versions import is_version as is_version  # part of the store's name grammar

MODEL_FILES = ("model.json", "weights.bin", "metadata.json")
CACHE_PREFIX = "_cache"
COMMIT_MARKER = ".committed"
POINTER_NAME = "served.json"

_CHANNEL_ID = re.compile(CHANNEL_ID_PATTERN)
# Cache keys are relative paths of simple segments: nothing that can climb out.
_BLOB_KEY = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}){0,7}"
)


class StoreError(Exception):
    """Base of store errors."""


class VersionExists(StoreError):
    """A version is written once and never changed."""


class NotFound(StoreError):
    """No committed version, file or blob under that name."""


class InvalidName(StoreError, ValueError):
    """A channel ID, version, file name or blob key outside the allowed grammar."""


@dataclass(frozen=True)
class FileInfo:
    size: int
    etag: str  # strong validator, quoted as HTTP wants it


def is_channel_id(value: str) -> bool:
    return _CHANNEL_ID.fullmatch(value) is not None


def check_channel_id(channel_id: str) -> str:
    if not is_channel_id(channel_id):
        raise InvalidName(f"invalid channel ID {channel_id!r}: must match {CHANNEL_ID_PATTERN}")
    return channel_id


def check_version(version: str) -> str:
    if not is_version(version):
        raise InvalidName(f"invalid version {version!r}: must be semver X.Y.Z")
    return version


def check_file_name(name: str) -> str:
    if name not in MODEL_FILES:
        raise InvalidName(f"invalid model file {name!r}: must be one of {', '.join(MODEL_FILES)}")
    return name


def check_blob_key(key: str) -> str:
    if _BLOB_KEY.fullmatch(key) is None or ".." in key:
        raise InvalidName(f"invalid cache key {key!r}: relative path of [A-Za-z0-9_.-] segments")
    return key


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key of a semver `X.Y.Z` (numeric, so 1.0.10 sorts after 1.0.9)."""
    return versions.parse(check_version(version))


def sort_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=version_key)


def etag_of(data: bytes) -> str:
    """Strong ETag of a file's content: the same bytes give the same tag on every backend."""
    return f'"{hashlib.sha256(data).hexdigest()}"'


def commit_record(
    files: Mapping[str, bytes], extra: Mapping[str, Mapping[str, object]] | None = None
) -> bytes:
    """The `.committed` record: every file's size and ETag, written after the files."""
    entries: dict[str, dict[str, object]] = {}
    for name, data in files.items():
        entries[name] = {"size": len(data), "etag": etag_of(data), **(extra or {}).get(name, {})}
    record = {"files": entries, "committedAt": datetime.now(UTC).isoformat(timespec="seconds")}
    return json.dumps(record, indent=2, sort_keys=True).encode()


def parse_commit_record(raw: bytes) -> dict[str, dict[str, object]]:
    try:
        files = json.loads(raw)["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"corrupt commit record: {exc}") from exc
    if not isinstance(files, dict) or set(files) != set(MODEL_FILES):
        raise StoreError("corrupt commit record: wrong file list")
    return files


def file_info_from_record(record: Mapping[str, Mapping[str, object]], name: str) -> FileInfo:
    entry = record[name]
    size, etag = entry.get("size"), entry.get("etag")
    if not isinstance(size, int) or not isinstance(etag, str):
        raise StoreError(f"corrupt commit record entry for {name}")
    return FileInfo(size=size, etag=etag)


def check_model_files(files: Mapping[str, bytes]) -> None:
    if set(files) != set(MODEL_FILES):
        raise InvalidName(
            f"a version has exactly the files {', '.join(MODEL_FILES)}; got {sorted(files)}"
        )


def check_pointer(pointer: Mapping[str, object]) -> bytes:
    """A pointer names the served version, or `"version": null`: nothing is served yet
    (a first model is training or was rejected; readers must not fall back)."""
    version = pointer.get("version", "")
    if version is not None:
        if not isinstance(version, str):
            raise InvalidName("serving pointer needs a 'version' string or null")
        check_version(version)
    return json.dumps(dict(pointer), sort_keys=True).encode()


def parse_pointer(raw: bytes) -> dict[str, object]:
    try:
        pointer = json.loads(raw)
    except ValueError as exc:
        raise StoreError(f"corrupt serving pointer: {exc}") from exc
    if not isinstance(pointer, dict) or "version" not in pointer:
        raise StoreError("corrupt serving pointer: no version")
    if pointer["version"] is not None:
        if not isinstance(pointer["version"], str):
            raise StoreError("corrupt serving pointer: version is not a string")
        check_version(pointer["version"])
    return pointer


class ArtifactStore(ABC):
    """Versioned, write-once model storage. Implementations must be thread-safe.

    Every method validates its names (channel ID per the CRD pattern, semver
    version, one of MODEL_FILES, simple cache keys) before touching storage and
    raises InvalidName otherwise, so no caller can address anything outside the root.
    """

    uri: str

    @abstractmethod
    def publish_version(self, channel_id: str, version: str, files: Mapping[str, bytes]) -> None:
        """Write all files of a version atomically: readers see all of them or none.

        `files` holds exactly MODEL_FILES. Raises VersionExists when the version
        is already committed.
        """

    @abstractmethod
    def list_versions(self, channel_id: str) -> list[str]:
        """Committed versions of a channel, oldest first (semver order)."""

    @abstractmethod
    def list_channels(self) -> list[str]:
        """Channels with at least one committed version or a serving pointer, sorted."""

    def has_version(self, channel_id: str, version: str) -> bool:
        try:
            self.stat_file(channel_id, version, MODEL_FILES[0])
        except NotFound:
            return False
        return True

    def latest_version(self, channel_id: str) -> str | None:
        versions = self.list_versions(channel_id)
        return versions[-1] if versions else None

    @abstractmethod
    def stat_file(self, channel_id: str, version: str, name: str) -> FileInfo:
        """Size and ETag of a committed version's file; NotFound otherwise."""

    @abstractmethod
    def iter_file(
        self, channel_id: str, version: str, name: str, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        """Stream a committed version's file.

        The file is opened when this is called, so NotFound is raised here and
        not at the first `next()`; close the iterator to release it early.
        """

    def open_local_file(self, channel_id: str, version: str, name: str) -> IO[bytes] | None:
        """The committed file as a real open file when the backend has one, else None.

        Lets the server hand the file to sendfile(2) instead of copying chunks.
        """
        return None

    def read_file(self, channel_id: str, version: str, name: str) -> bytes:
        return b"".join(self.iter_file(channel_id, version, name))

    @abstractmethod
    def delete_version(self, channel_id: str, version: str) -> None:
        """Remove a version (uncommit first, so readers never see it half-deleted).

        Deleting a version that does not exist is not an error.
        """

    @abstractmethod
    def delete_channel(self, channel_id: str) -> None:
        """Remove every version of a channel and its serving pointer."""

    @abstractmethod
    def get_pointer(self, channel_id: str) -> dict[str, object] | None:
        """The channel's mutable serving pointer (`<channelId>/served.json`), or None.

        Written by the operator ({"version": "1.0.3", "pinned": false, ...}) so the
        model server can answer latest.json without access to the Kubernetes API.
        """

    @abstractmethod
    def set_pointer(self, channel_id: str, pointer: Mapping[str, object]) -> None:
        """Replace the serving pointer atomically."""

    @abstractmethod
    def get_blob(self, key: str) -> bytes | None:
        """A cache blob under `_cache/<key>`, or None."""

    @abstractmethod
    def put_blob(self, key: str, data: bytes) -> None:
        """Write a cache blob (last writer wins; blobs are content-addressed)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreError unless the store is reachable (the server's /readyz)."""
