"""`file://` store: a directory on a (shared) volume.

Publishing writes every file and the commit record into a staging directory
beside the version, fsyncs them, then renames the directory into place: a
rename is atomic, so a version directory either exists complete or not at all.
Reads open each path component relative to the root with O_NOFOLLOW, so a
symlink planted in the volume can never lead a reader outside the root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

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
    etag_of,
    file_info_from_record,
    is_channel_id,
    is_version,
    parse_commit_record,
    parse_pointer,
    sort_versions,
)

# Staging and trash directories start with "." so they never look like a version or channel.
_STAGING_PREFIX = ".staging-"
_TRASH_PREFIX = ".trash-"
# Staging and trash older than this are debris of a killed process. Their names
# carry their creation time: a version renamed into the trash keeps its old mtime.
DEBRIS_AGE_SECONDS = 3600.0
_DEBRIS_TIME = re.compile(r"-(\d{10})-[0-9a-f]{32}$")


def _debris_suffix() -> str:
    return f"{int(time.time())}-{uuid.uuid4().hex}"


def _debris_time(entry: os.DirEntry[str]) -> float:
    """When a staging or trash entry was made: from its name, else (older names) its mtime."""
    match = _DEBRIS_TIME.search(entry.name)
    if match:
        return float(match.group(1))
    return entry.stat(follow_symlinks=False).st_mtime


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# Files small enough to hash on every read (weights.bin is checked by size only).
_DIGEST_CHECKED = frozenset({"model.json", "metadata.json"})


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _replace_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{_STAGING_PREFIX}{path.name}-{_debris_suffix()}")
    try:
        _write_durably(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class FileStore(ArtifactStore):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.uri = self.root.as_uri()

    @classmethod
    def from_uri(cls, uri: str) -> FileStore:
        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
            raise StoreError(f"invalid file store URI {uri!r}: use file:///absolute/path")
        return cls(unquote(parts.path))

    # --- reading -----------------------------------------------------------

    def _open_under_root(self, *parts: str, directory: bool = False) -> int:
        """Open `root/parts...` without following any symlink below the root."""
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError as exc:
            raise NotFound("/".join(parts)) from exc  # nothing published yet
        except OSError as exc:
            raise StoreError(f"store root {self.root} is not readable: {exc.strerror}") from exc
        try:
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                flags = _FILE_FLAGS if last and not directory else _DIR_FLAGS
                next_fd = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            # O_NONBLOCK keeps a planted FIFO from hanging the open; only regular files count.
            if not directory and not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileNotFoundError(errno.ENOENT, "not a regular file")
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise NotFound("/".join(parts)) from exc
            raise StoreError(f"cannot open {'/'.join(parts)}: {exc.strerror}") from exc
        return fd

    def _read_small(self, *parts: str) -> bytes:
        with os.fdopen(self._open_under_root(*parts), "rb") as handle:
            return handle.read()

    def _commit_record(self, channel_id: str, version: str) -> dict[str, dict[str, object]]:
        check_channel_id(channel_id)
        check_version(version)
        return parse_commit_record(self._read_small(channel_id, f"v{version}", COMMIT_MARKER))

    def list_versions(self, channel_id: str) -> list[str]:
        check_channel_id(channel_id)
        try:
            fd = self._open_under_root(channel_id, directory=True)
        except NotFound:
            return []
        try:
            versions = []
            for entry in os.scandir(fd):
                version = entry.name[1:]
                if (
                    entry.name.startswith("v")
                    and is_version(version)
                    and entry.is_dir(follow_symlinks=False)
                ):
                    try:
                        marker = os.stat(
                            f"{entry.name}/{COMMIT_MARKER}", dir_fd=fd, follow_symlinks=False
                        )
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(marker.st_mode):
                        versions.append(version)
        finally:
            os.close(fd)
        return sort_versions(versions)

    def list_channels(self) -> list[str]:
        try:
            names = [e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        return sorted(
            name
            for name in names
            if is_channel_id(name)
            and (self.list_versions(name) or (self.root / name / POINTER_NAME).is_file())
        )

    def stat_file(self, channel_id: str, version: str, name: str) -> FileInfo:
        check_file_name(name)
        fd, info = self._open_checked(channel_id, version, name)
        os.close(fd)
        return info

    def _open_checked(self, channel_id: str, version: str, name: str) -> tuple[int, FileInfo]:
        """The committed file, opened, after checking its size against the commit record.

        A file truncated or grown behind the store's back is refused (StoreError,
        a 503), never announced with a Content-Length it cannot fill.
        """
        # The commit record makes the version visible, not the directory alone.
        info = file_info_from_record(self._commit_record(channel_id, version), name)
        fd = self._open_under_root(channel_id, f"v{version}", name)
        size = os.fstat(fd).st_size
        if size != info.size:
            os.close(fd)
            raise StoreError(
                f"{channel_id}/v{version}/{name} changed after its version was committed "
                f"({size} bytes, committed {info.size})"
            )
        return fd, info

    def iter_file(
        self, channel_id: str, version: str, name: str, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        check_channel_id(channel_id)
        check_version(version)
        check_file_name(name)
        return self._chunks(self.open_local_file(channel_id, version, name), chunk_size)

    @staticmethod
    def _chunks(handle: IO[bytes], chunk_size: int) -> Iterator[bytes]:
        try:
            while chunk := handle.read(chunk_size):
                yield chunk
        finally:
            handle.close()

    def open_local_file(self, channel_id: str, version: str, name: str) -> IO[bytes]:
        """The committed file itself, opened safely: lets the server use sendfile(2).

        Its size is checked against the commit record; the small JSON files are
        also checked against their digest (cheap), so a same-size replacement of
        model.json or metadata.json is refused rather than served under the old ETag.
        """
        check_file_name(name)
        fd, info = self._open_checked(channel_id, version, name)
        handle = os.fdopen(fd, "rb")
        if name in _DIGEST_CHECKED:
            try:
                data = handle.read()
                handle.seek(0)
            except BaseException:
                handle.close()
                raise
            if etag_of(data) != info.etag:
                handle.close()
                raise StoreError(
                    f"{channel_id}/v{version}/{name} changed after its version was committed"
                )
        return handle

    # --- writing -----------------------------------------------------------

    def publish_version(self, channel_id: str, version: str, files: Mapping[str, bytes]) -> None:
        check_channel_id(channel_id)
        check_version(version)
        check_model_files(files)
        channel_dir = self.root / channel_id
        target = channel_dir / f"v{version}"
        if target.exists():
            raise VersionExists(f"{channel_id} v{version} already exists")
        channel_dir.mkdir(parents=True, exist_ok=True)
        self.sweep_debris(channel_id)
        staging = channel_dir / f"{_STAGING_PREFIX}v{version}-{_debris_suffix()}"
        staging.mkdir()
        try:
            for name in MODEL_FILES:
                _write_durably(staging / name, files[name])
            _write_durably(staging / COMMIT_MARKER, commit_record(files))
            _fsync_dir(staging)
            try:
                # rename(2) refuses to replace a non-empty directory: never overwrite.
                os.rename(staging, target)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise VersionExists(f"{channel_id} v{version} already exists") from exc
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(channel_dir)

    def sweep_debris(self, channel_id: str, older_than: float = DEBRIS_AGE_SECONDS) -> list[str]:
        """Remove staging and trash left by killed publishes and deletes (best effort).

        Only entries untouched for `older_than` seconds: a publish in flight writes
        its staging directory within seconds, so it is never swept from under it.
        """
        check_channel_id(channel_id)
        removed: list[str] = []
        horizon = time.time() - older_than
        try:
            entries = list(os.scandir(self.root / channel_id))
        except FileNotFoundError:
            return removed
        for entry in entries:
            if not entry.name.startswith((_STAGING_PREFIX, _TRASH_PREFIX)):
                continue
            try:
                if _debris_time(entry) > horizon:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue  # someone else removed it, or it is not ours to remove
            removed.append(entry.name)
        return removed

    def _move_to_trash(self, path: Path) -> Path | None:
        trash = path.with_name(f"{_TRASH_PREFIX}{path.name}-{_debris_suffix()}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return None
        return trash

    def delete_version(self, channel_id: str, version: str) -> None:
        check_channel_id(channel_id)
        check_version(version)
        # One rename uncommits the whole version; the slow removal happens out of sight.
        trash = self._move_to_trash(self.root / channel_id / f"v{version}")
        if trash is not None:
            _fsync_dir(trash.parent)
            shutil.rmtree(trash)

    def delete_channel(self, channel_id: str) -> None:
        check_channel_id(channel_id)
        trash = self._move_to_trash(self.root / channel_id)
        if trash is not None:
            shutil.rmtree(trash)

    def get_pointer(self, channel_id: str) -> dict[str, object] | None:
        check_channel_id(channel_id)
        try:
            return parse_pointer(self._read_small(channel_id, POINTER_NAME))
        except NotFound:
            return None

    def set_pointer(self, channel_id: str, pointer: Mapping[str, object]) -> None:
        check_channel_id(channel_id)
        data = check_pointer(pointer)
        (self.root / channel_id).mkdir(parents=True, exist_ok=True)
        _replace_atomically(self.root / channel_id / POINTER_NAME, data)

    def get_blob(self, key: str) -> bytes | None:
        check_blob_key(key)
        with contextlib.suppress(NotFound):
            return self._read_small(CACHE_PREFIX, *key.split("/"))
        return None

    def put_blob(self, key: str, data: bytes) -> None:
        check_blob_key(key)
        path = self.root / CACHE_PREFIX / key
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace_atomically(path, data)

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"store root {self.root} is not a directory")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreError(f"store root {self.root} is not readable")
