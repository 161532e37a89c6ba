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
import shutil
import stat
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
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


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
    tmp = path.with_name(f"{_STAGING_PREFIX}{path.name}-{uuid.uuid4().hex}")
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
        return file_info_from_record(self._commit_record(channel_id, version), name)

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
        """The committed file itself, opened safely: lets the server use sendfile(2)."""
        check_file_name(name)
        # The commit record makes the version visible, not the directory alone.
        self._commit_record(channel_id, version)
        return os.fdopen(self._open_under_root(channel_id, f"v{version}", name), "rb")

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
        staging = channel_dir / f"{_STAGING_PREFIX}v{version}-{uuid.uuid4().hex}"
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

    def _move_to_trash(self, path: Path) -> Path | None:
        trash = path.with_name(f"{_TRASH_PREFIX}{path.name}-{uuid.uuid4().hex}")
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
