"""`s3://bucket/prefix` store: AWS S3 or any S3-compatible service (MinIO, Ceph RGW).

S3 has no rename, so a version becomes visible through its commit record
`<channelId>/v<version>/.committed`, written after every file of the version
with a conditional put (`If-None-Match: *`) so that two publishers cannot both
commit. Each publish attempt writes its files under keys of its own,
`<channelId>/v<version>/.attempt-<random>/<file>`, and the record names them:
a publisher that loses the commit never overwrites what the winner committed
(it deletes its own objects instead). Readers and listings see only versions
with a record; reads fetch each file with `If-Match` on the ETag the record
holds, so a file replaced after the commit is refused rather than served.
Deleting removes the record first. Records written before attempt keys name
no key: their files are read at `<channelId>/v<version>/<file>`.

Configuration comes from the environment, as boto3 reads it (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
AWS_PROFILE...), plus CHANNELMODEL_S3_ENDPOINT_URL and
CHANNELMODEL_S3_ADDRESSING_STYLE (`path` for most MinIO setups, `virtual`, `auto`).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from channelmodel.store.base import (
    CACHE_PREFIX,
    COMMIT_MARKER,
    MODEL_FILES,
    POINTER_NAME,
    ArtifactStore,
    FileInfo,
    NotFound,
    StoreError,
    VersionExists,
    check_blob_key,
    check_channel_id,
    check_file_name,
    check_model_files,
    check_pointer,
    check_version,
    commit_record,
    file_info_from_record,
    is_channel_id,
    is_version,
    parse_commit_record,
    parse_pointer,
    sort_versions,
)

log = logging.getLogger(__name__)

ENDPOINT_ENV = "CHANNELMODEL_S3_ENDPOINT_URL"
ADDRESSING_ENV = "CHANNELMODEL_S3_ADDRESSING_STYLE"
_CONTENT_TYPES = {"model.json": "application/json", "metadata.json": "application/json"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_DELETE_BATCH = 1000  # DeleteObjects' limit
ATTEMPT_PREFIX = ".attempt-"
_ATTEMPT_KEY = re.compile(r"\.attempt-[0-9a-f]{32}/(model\.json|weights\.bin|metadata\.json)")


class _ConditionalWriteUnsupported(StoreError):
    """The service answered 501 to If-None-Match on PutObject."""


def _object_name(entry: Mapping[str, object], name: str) -> str:
    """Where a committed file lives, relative to its version: the attempt key the
    record names, or the file name itself (records from before attempt keys)."""
    key = entry.get("key")
    if key is None:
        return name
    if not isinstance(key, str) or not _ATTEMPT_KEY.fullmatch(key) or not key.endswith("/" + name):
        raise StoreError(f"corrupt commit record entry for {name}")
    return key


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def s3_client_from_env(max_connections: int = 32) -> Any:
    """A thread-safe boto3 S3 client configured from the environment."""
    style = os.environ.get(ADDRESSING_ENV, "auto").strip() or "auto"
    if style not in ("path", "virtual", "auto"):
        raise StoreError(f"{ADDRESSING_ENV} must be path, virtual or auto, not {style!r}")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    config = Config(
        s3={"addressing_style": style},
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max_connections,
    )
    # A session per store: boto3's default session is not thread-safe to create clients from.
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=os.environ.get(ENDPOINT_ENV) or None, region_name=region, config=config
    )


class S3Store(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if not bucket:
            raise StoreError("S3 store needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = client if client is not None else s3_client_from_env()

    @classmethod
    def from_uri(cls, uri: str) -> S3Store:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise StoreError(f"invalid S3 store URI {uri!r}: use s3://bucket/prefix")
        return cls(parts.netloc, parts.path)

    # --- keys and low-level calls -------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts) if self.prefix else parts)

    def _version_prefix(self, channel_id: str, version: str) -> str:
        return self._key(channel_id, f"v{version}") + "/"

    def _get(self, key: str, **kwargs: Any) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **kwargs)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _NOT_FOUND_CODES:
                raise NotFound(key) from exc
            if code in _CONFLICT_CODES:
                raise StoreError(f"{key} changed after its version was committed") from exc
            raise StoreError(f"S3 GetObject {key} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"S3 GetObject {key} failed: {exc}") from exc

    def _get_bytes(self, key: str) -> bytes:
        body = self._get(key)["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def _put(self, key: str, data: bytes, **kwargs: Any) -> str:
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **kwargs)
        except ClientError as exc:
            if _error_code(exc) in _CONFLICT_CODES:
                raise VersionExists(key) from exc
            if _error_code(exc) == "NotImplemented" and "IfNoneMatch" in kwargs:
                raise _ConditionalWriteUnsupported(key) from exc
            raise StoreError(f"S3 PutObject {key} failed: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"S3 PutObject {key} failed: {exc}") from exc
        return str(response["ETag"])

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return False
            raise StoreError(f"S3 HeadObject {key} failed: {_error_code(exc)}") from exc
        return True

    def _list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield str(item["Key"])
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"S3 ListObjectsV2 {prefix} failed: {exc}") from exc

    def _delete_keys(self, keys: Iterable[str]) -> None:
        batch = [{"Key": key} for key in keys]
        for start in range(0, len(batch), _DELETE_BATCH):
            chunk = batch[start : start + _DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"S3 DeleteObjects failed: {exc}") from exc
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StoreError(
                    f"S3 DeleteObjects failed for {first.get('Key')}: {first.get('Code')}"
                )

    def _commit_record(self, channel_id: str, version: str) -> dict[str, dict[str, object]]:
        check_channel_id(channel_id)
        check_version(version)
        return parse_commit_record(
            self._get_bytes(self._version_prefix(channel_id, version) + COMMIT_MARKER)
        )

    # --- reading -----------------------------------------------------------

    def list_versions(self, channel_id: str) -> list[str]:
        check_channel_id(channel_id)
        channel_prefix = self._key(channel_id) + "/"
        versions = []
        for key in self._list_keys(channel_prefix + "v"):
            parts = key[len(channel_prefix) :].split("/")
            if len(parts) == 2 and parts[1] == COMMIT_MARKER and is_version(parts[0][1:]):
                versions.append(parts[0][1:])
        return sort_versions(versions)

    def list_channels(self) -> list[str]:
        root = self._key() + "/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        names: list[str] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root, Delimiter="/"):
                names.extend(
                    p["Prefix"][len(root) :].rstrip("/") for p in page.get("CommonPrefixes", [])
                )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"S3 ListObjectsV2 {root} failed: {exc}") from exc
        return sorted(
            name
            for name in names
            if is_channel_id(name)
            and (self.list_versions(name) or self._exists(self._key(name, POINTER_NAME)))
        )

    def stat_file(self, channel_id: str, version: str, name: str) -> FileInfo:
        check_file_name(name)
        return file_info_from_record(self._commit_record(channel_id, version), name)

    def iter_file(
        self, channel_id: str, version: str, name: str, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        check_file_name(name)
        entry = self._commit_record(channel_id, version)[name]
        s3_etag = entry.get("s3ETag")
        extra = {"IfMatch": s3_etag} if isinstance(s3_etag, str) else {}
        key = self._version_prefix(channel_id, version) + _object_name(entry, name)
        body = self._get(key, **extra)["Body"]
        return self._chunks(body, chunk_size)

    @staticmethod
    def _chunks(body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        except BotoCoreError as exc:
            raise StoreError(f"S3 read failed: {exc}") from exc
        finally:
            body.close()

    # --- writing -----------------------------------------------------------

    def publish_version(self, channel_id: str, version: str, files: Mapping[str, bytes]) -> None:
        check_channel_id(channel_id)
        check_version(version)
        check_model_files(files)
        prefix = self._version_prefix(channel_id, version)
        marker_key = prefix + COMMIT_MARKER
        if self._exists(marker_key):
            raise VersionExists(f"{channel_id} v{version} already exists")
        # Keys no other publisher uses: losing the commit race cannot touch the winner's files.
        attempt = f"{ATTEMPT_PREFIX}{uuid.uuid4().hex}/"
        written: list[str] = []
        entries: dict[str, Mapping[str, object]] = {}
        try:
            for name in MODEL_FILES:
                content_type = _CONTENT_TYPES.get(name, "application/octet-stream")
                written.append(prefix + attempt + name)
                s3_etag = self._put(prefix + attempt + name, files[name], ContentType=content_type)
                entries[name] = {"s3ETag": s3_etag, "key": attempt + name}
        except BaseException:
            self._discard(written)  # nothing refers to them: no commit was tried
            raise
        # The commit: last, and only if nobody committed this version meanwhile.
        try:
            self._commit(channel_id, version, marker_key, commit_record(files, entries))
        except VersionExists:
            self._discard(written)  # lost the race: the committed record names other keys
            raise
        # Any other failure may have committed after all (a lost response): the
        # objects stay, and go with the version (delete_version removes its prefix).

    def _discard(self, keys: list[str]) -> None:
        """Best effort: a losing or failed attempt removes its own objects."""
        try:
            self._delete_keys(keys)
        except StoreError as exc:
            log.warning("could not remove %d objects of a failed publish: %s", len(keys), exc)

    def _commit(self, channel_id: str, version: str, marker_key: str, record: bytes) -> None:
        try:
            self._put(marker_key, record, ContentType="application/json", IfNoneMatch="*")
        except VersionExists:
            raise VersionExists(f"{channel_id} v{version} already exists") from None
        except _ConditionalWriteUnsupported:
            # Older S3-compatible stores: one trainer per version (deterministic Job
            # names) keeps this safe. Should two race anyway, the later record replaces
            # the earlier one, and it names a complete attempt of its own: readers
            # still see one whole version.
            log.warning(
                "%s does not support conditional writes; committing unconditionally", self.uri
            )
            if self._exists(marker_key):
                raise VersionExists(f"{channel_id} v{version} already exists") from None
            self._put(marker_key, record, ContentType="application/json")

    def delete_version(self, channel_id: str, version: str) -> None:
        check_channel_id(channel_id)
        check_version(version)
        prefix = self._version_prefix(channel_id, version)
        self._delete_keys([prefix + COMMIT_MARKER])  # uncommit first
        self._delete_keys(list(self._list_keys(prefix)))

    def delete_channel(self, channel_id: str) -> None:
        check_channel_id(channel_id)
        keys = list(self._list_keys(self._key(channel_id) + "/"))
        markers = {key for key in keys if key.endswith("/" + COMMIT_MARKER)}
        self._delete_keys(sorted(markers))  # uncommit every version first
        self._delete_keys([key for key in keys if key not in markers])

    def get_pointer(self, channel_id: str) -> dict[str, object] | None:
        check_channel_id(channel_id)
        try:
            return parse_pointer(self._get_bytes(self._key(channel_id, POINTER_NAME)))
        except NotFound:
            return None

    def set_pointer(self, channel_id: str, pointer: Mapping[str, object]) -> None:
        check_channel_id(channel_id)
        # A single PutObject replaces the object atomically: readers see old or new.
        self._put(
            self._key(channel_id, POINTER_NAME),
            check_pointer(pointer),
            ContentType="application/json",
        )

    def get_blob(self, key: str) -> bytes | None:
        check_blob_key(key)
        try:
            return self._get_bytes(self._key(CACHE_PREFIX, key))
        except NotFound:
            return None

    def put_blob(self, key: str, data: bytes) -> None:
        check_blob_key(key)
        self._put(self._key(CACHE_PREFIX, key), data)

    def ping(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"S3 bucket {self.bucket} is not reachable: {exc}") from exc
