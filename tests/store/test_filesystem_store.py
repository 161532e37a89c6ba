"""What only the file backend can get wrong: symlinks, staging debris, URIs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from store_helpers import model_files

from channelmodel.store import NotFound, StoreError, open_store
from channelmodel.store.filesystem import FileStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def store(root: Path) -> FileStore:
    return FileStore(root)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A directory outside the store that looks like a committed version."""
    outside = tmp_path / "outside" / "v1.0.0"
    outside.mkdir(parents=True)
    donor = FileStore(tmp_path / "donor")
    donor.publish_version("shop-1", "1.0.0", model_files())
    for entry in (tmp_path / "donor" / "shop-1" / "v1.0.0").iterdir():
        (outside / entry.name).write_bytes(entry.read_bytes())
    (outside / "weights.bin").write_bytes(b"SECRET")
    return outside


def test_from_uri() -> None:
    assert FileStore.from_uri("file:///var/lib/models").root == Path("/var/lib/models")
    assert FileStore.from_uri("file:///var/lib/my%20models").root == Path("/var/lib/my models")
    assert open_store("file:///srv/x").uri == "file:///srv/x"
    for bad in ("file://otherhost/x", "file://", "http://x/y"):
        with pytest.raises(StoreError):
            FileStore.from_uri(bad)
    with pytest.raises(StoreError):
        open_store("ftp://x/y")


def test_symlinked_channel_directory_is_not_followed(
    store: FileStore, root: Path, secret: Path
) -> None:
    root.mkdir()
    (root / "shop-1").symlink_to(secret.parent, target_is_directory=True)
    assert store.list_versions("shop-1") == []
    with pytest.raises(NotFound):
        store.stat_file("shop-1", "1.0.0", "weights.bin")
    with pytest.raises(NotFound):
        store.iter_file("shop-1", "1.0.0", "weights.bin")


def test_symlinked_version_directory_is_not_followed(
    store: FileStore, root: Path, secret: Path
) -> None:
    (root / "shop-1").mkdir(parents=True)
    (root / "shop-1" / "v1.0.0").symlink_to(secret, target_is_directory=True)
    assert store.list_versions("shop-1") == []
    with pytest.raises(NotFound):
        store.read_file("shop-1", "1.0.0", "weights.bin")


def test_symlinked_file_inside_a_version_is_not_followed(
    store: FileStore, root: Path, secret: Path
) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())
    weights = root / "shop-1" / "v1.0.0" / "weights.bin"
    weights.unlink()
    weights.symlink_to(secret / "weights.bin")
    with pytest.raises(NotFound):
        store.iter_file("shop-1", "1.0.0", "weights.bin")
    with pytest.raises(NotFound):
        store.open_local_file("shop-1", "1.0.0", "weights.bin")


def test_a_fifo_in_place_of_a_file_is_not_opened(store: FileStore, root: Path) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())
    weights = root / "shop-1" / "v1.0.0" / "weights.bin"
    weights.unlink()
    os.mkfifo(weights)  # opening it for reading would block forever without O_NONBLOCK
    with pytest.raises(NotFound):
        store.iter_file("shop-1", "1.0.0", "weights.bin")


def test_version_directory_without_commit_record_is_invisible(store: FileStore, root: Path) -> None:
    half = root / "shop-1" / "v1.0.0"
    half.mkdir(parents=True)
    for name, data in model_files().items():
        (half / name).write_bytes(data)
    assert store.list_versions("shop-1") == []
    with pytest.raises(NotFound):
        store.stat_file("shop-1", "1.0.0", "model.json")


def test_staging_and_trash_debris_is_ignored(store: FileStore, root: Path) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())
    for debris in (".staging-v1.0.1-dead", ".trash-v0.9.0-dead"):
        (root / "shop-1" / debris).mkdir()
        (root / "shop-1" / debris / ".committed").write_text("{}")
    assert store.list_versions("shop-1") == ["1.0.0"]


def test_debris_of_killed_publishes_is_swept_and_fresh_staging_is_not(
    store: FileStore, root: Path
) -> None:
    # Issue 12: `.staging-*` of killed publishes were never removed.
    store.publish_version("shop-1", "1.0.0", model_files())
    channel = root / "shop-1"
    two_hours_ago = int(time.time()) - 2 * 3600
    hexid = "0" * 32
    for debris in (
        f".staging-v1.0.1-{two_hours_ago}-{hexid}",
        f".trash-v0.9.0-{two_hours_ago}-{hexid}",
    ):
        (channel / debris).mkdir()
        (channel / debris / "weights.bin").write_bytes(b"\0" * 1024)
    (channel / f".staging-served.json-{two_hours_ago}-{hexid}").write_text("{}")
    legacy = channel / ".staging-v0.1.0-dead"  # a name from before times were in names
    legacy.mkdir()
    os.utime(legacy, (two_hours_ago, two_hours_ago))
    in_flight = f".staging-v1.0.2-{int(time.time())}-{hexid}"  # a publish happening now
    (channel / in_flight).mkdir()

    store.publish_version("shop-1", "1.0.1", model_files())

    assert sorted(os.listdir(channel)) == [in_flight, "v1.0.0", "v1.0.1"]
    assert store.list_versions("shop-1") == ["1.0.0", "1.0.1"]


def test_publish_leaves_only_the_version_directory(store: FileStore, root: Path) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())
    store.set_pointer("shop-1", {"version": "1.0.0"})
    store.set_pointer("shop-1", {"version": "1.0.0", "pinned": True})
    assert sorted(os.listdir(root / "shop-1")) == ["served.json", "v1.0.0"]
    assert sorted(os.listdir(root / "shop-1" / "v1.0.0")) == [
        ".committed",
        "metadata.json",
        "model.json",
        "weights.bin",
    ]


def test_open_local_file_gives_the_committed_bytes(store: FileStore) -> None:
    files = model_files()
    store.publish_version("shop-1", "1.0.0", files)
    handle = store.open_local_file("shop-1", "1.0.0", "weights.bin")
    with handle:
        assert handle.read() == files["weights.bin"]


def test_ping_fails_without_root(store: FileStore, root: Path) -> None:
    with pytest.raises(StoreError):
        store.ping()
    root.mkdir()
    store.ping()


def test_a_fresh_trash_of_an_old_version_is_not_swept(store: FileStore, root: Path) -> None:
    # delete_version renames the version into the trash: the directory keeps its
    # old mtime, yet a delete is in progress on it.
    store.publish_version("shop-1", "1.0.0", model_files())
    old = time.time() - 2 * 3600
    os.utime(root / "shop-1" / "v1.0.0", (old, old))
    trash = store._move_to_trash(root / "shop-1" / "v1.0.0")  # as delete_version does
    assert trash is not None
    assert store.sweep_debris("shop-1") == []
    assert trash.exists()
