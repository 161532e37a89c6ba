"""The artifact store contract, run against the file and the S3 backend alike."""

from __future__ import annotations

import pytest
from store_helpers import model_files

from channelmodel.store import MODEL_FILES, ArtifactStore, NotFound, VersionExists
from channelmodel.store.base import InvalidName, etag_of


def read_all(store: ArtifactStore, channel: str, version: str) -> dict[str, bytes]:
    return {name: store.read_file(channel, version, name) for name in MODEL_FILES}


def test_published_files_read_back_with_size_and_etag(store: ArtifactStore) -> None:
    files = model_files(seed=1)
    store.publish_version("shop-1", "1.0.0", files)

    assert read_all(store, "shop-1", "1.0.0") == files
    for name, data in files.items():
        info = store.stat_file("shop-1", "1.0.0", name)
        assert info.size == len(data)
        assert info.etag == etag_of(data)
        assert info.etag.startswith('"')
        assert info.etag.endswith('"')


def test_same_bytes_give_the_same_etag_different_bytes_another(store: ArtifactStore) -> None:
    first, second = model_files(seed=1), model_files(seed=2)
    second["metadata.json"] = first["metadata.json"]
    store.publish_version("shop-1", "1.0.0", first)
    store.publish_version("shop-1", "1.0.1", second)

    def etag(version: str, name: str) -> str:
        return store.stat_file("shop-1", version, name).etag

    assert etag("1.0.0", "metadata.json") == etag("1.0.1", "metadata.json")
    assert etag("1.0.0", "weights.bin") != etag("1.0.1", "weights.bin")


def test_versions_are_listed_in_semver_order(store: ArtifactStore) -> None:
    for version in ["1.0.10", "1.0.9", "2.0.0", "1.10.0", "1.0.2", "1.2.0"]:
        store.publish_version("shop-1", version, model_files())

    assert store.list_versions("shop-1") == ["1.0.2", "1.0.9", "1.0.10", "1.2.0", "1.10.0", "2.0.0"]
    assert store.latest_version("shop-1") == "2.0.0"
    assert store.list_versions("other") == []
    assert store.latest_version("other") is None


def test_a_version_is_never_overwritten(store: ArtifactStore) -> None:
    original = model_files(seed=1)
    store.publish_version("shop-1", "1.0.0", original)

    with pytest.raises(VersionExists):
        store.publish_version("shop-1", "1.0.0", model_files(seed=2))
    assert read_all(store, "shop-1", "1.0.0") == original
    assert store.list_versions("shop-1") == ["1.0.0"]


@pytest.mark.parametrize(
    "files",
    [
        {"model.json": b"{}", "weights.bin": b""},
        {"model.json": b"{}", "weights.bin": b"", "metadata.json": b"{}", "extra.txt": b"x"},
        {"model.json": b"{}", "weights.bin": b"", "../metadata.json": b"{}"},
    ],
    ids=["missing-file", "extra-file", "traversal-name"],
)
def test_publish_takes_exactly_the_three_model_files(
    store: ArtifactStore, files: dict[str, bytes]
) -> None:
    with pytest.raises(InvalidName):
        store.publish_version("shop-1", "1.0.0", files)
    assert store.list_versions("shop-1") == []


BAD_CHANNELS = [
    "",
    "..",
    "../x",
    "a/b",
    "a\\b",
    ".hidden",
    "_cache",
    "-x",
    "a\x00b",
    "é",
    "x" * 64,
    "a b",
    "shop\n",
]
BAD_VERSIONS = [
    "",
    "1.0",
    "v1.0.0",
    "01.0.0",
    "1.0.0-rc.1",
    "1.0.0/..",
    "..",
    "1.0.0\n",
    "1.0.0\x00",
]


@pytest.mark.parametrize("channel", BAD_CHANNELS)
def test_invalid_channel_ids_are_refused_before_storage(store: ArtifactStore, channel: str) -> None:
    with pytest.raises(InvalidName):
        store.publish_version(channel, "1.0.0", model_files())
    with pytest.raises(InvalidName):
        store.list_versions(channel)
    with pytest.raises(InvalidName):
        store.stat_file(channel, "1.0.0", "model.json")
    with pytest.raises(InvalidName):
        store.get_pointer(channel)
    with pytest.raises(InvalidName):
        store.delete_channel(channel)


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_invalid_versions_are_refused_before_storage(store: ArtifactStore, version: str) -> None:
    with pytest.raises(InvalidName):
        store.publish_version("shop-1", version, model_files())
    with pytest.raises(InvalidName):
        store.iter_file("shop-1", version, "model.json")
    with pytest.raises(InvalidName):
        store.delete_version("shop-1", version)
    with pytest.raises(InvalidName):
        store.set_pointer("shop-1", {"version": version})


def test_reading_what_is_not_there_is_not_found(store: ArtifactStore) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())

    with pytest.raises(NotFound):
        store.stat_file("shop-1", "1.0.1", "model.json")
    with pytest.raises(NotFound):
        store.stat_file("shop-2", "1.0.0", "model.json")
    with pytest.raises(InvalidName):
        store.stat_file("shop-1", "1.0.0", ".committed")
    # The error comes when the file is opened, before any iteration: the server relies on it.
    with pytest.raises(NotFound):
        store.iter_file("shop-1", "1.0.1", "weights.bin")


def test_files_stream_in_chunks(store: ArtifactStore) -> None:
    files = model_files(weights_size=10_000)
    store.publish_version("shop-1", "1.0.0", files)

    chunks = list(store.iter_file("shop-1", "1.0.0", "weights.bin", chunk_size=4096))
    assert [len(chunk) for chunk in chunks] == [4096, 4096, 1808]
    assert b"".join(chunks) == files["weights.bin"]


def test_retention_deletes_old_versions_and_keeps_the_rest_intact(store: ArtifactStore) -> None:
    published = {f"1.0.{patch}": model_files(seed=patch) for patch in range(7)}
    for version, files in published.items():
        store.publish_version("shop-1", version, files)

    # What the operator does with retainVersions=3 plus a pinned 1.0.1.
    keep = set(store.list_versions("shop-1")[-3:]) | {"1.0.1"}
    for version in store.list_versions("shop-1"):
        if version not in keep:
            store.delete_version("shop-1", version)

    assert store.list_versions("shop-1") == ["1.0.1", "1.0.4", "1.0.5", "1.0.6"]
    for version in keep:
        assert read_all(store, "shop-1", version) == published[version]
    with pytest.raises(NotFound):
        store.stat_file("shop-1", "1.0.0", "weights.bin")
    # Deleting again, or something that never existed, is fine.
    store.delete_version("shop-1", "1.0.0")
    store.delete_version("shop-9", "9.9.9")


def test_a_deleted_version_can_be_published_again(store: ArtifactStore) -> None:
    store.publish_version("shop-1", "1.0.0", model_files(seed=1))
    store.delete_version("shop-1", "1.0.0")
    again = model_files(seed=2)
    store.publish_version("shop-1", "1.0.0", again)
    assert read_all(store, "shop-1", "1.0.0") == again


def test_delete_channel_removes_versions_and_pointer_only_of_that_channel(
    store: ArtifactStore,
) -> None:
    for channel in ("shop-1", "shop-2"):
        store.publish_version(channel, "1.0.0", model_files())
        store.publish_version(channel, "1.0.1", model_files())
        store.set_pointer(channel, {"version": "1.0.0", "pinned": True})
    store.put_blob("embeddings/abc", b"cached")

    store.delete_channel("shop-1")

    assert store.list_versions("shop-1") == []
    assert store.get_pointer("shop-1") is None
    assert store.list_channels() == ["shop-2"]
    assert store.list_versions("shop-2") == ["1.0.0", "1.0.1"]
    assert store.get_pointer("shop-2") == {"version": "1.0.0", "pinned": True}
    assert store.get_blob("embeddings/abc") == b"cached"
    store.delete_channel("never-existed")


def test_serving_pointer_round_trip_and_replace(store: ArtifactStore) -> None:
    assert store.get_pointer("shop-1") is None
    store.set_pointer("shop-1", {"version": "1.0.3", "pinned": False})
    assert store.get_pointer("shop-1") == {"version": "1.0.3", "pinned": False}
    store.set_pointer("shop-1", {"version": "1.0.1", "pinned": True, "reason": "rollback"})
    assert store.get_pointer("shop-1") == {"version": "1.0.1", "pinned": True, "reason": "rollback"}


@pytest.mark.parametrize("pointer", [{}, {"version": 3}, {"version": "latest"}, {"pinned": True}])
def test_invalid_pointers_are_refused_and_the_old_one_stays(
    store: ArtifactStore, pointer: dict[str, object]
) -> None:
    store.set_pointer("shop-1", {"version": "1.0.0"})
    with pytest.raises(InvalidName):
        store.set_pointer("shop-1", pointer)
    assert store.get_pointer("shop-1") == {"version": "1.0.0"}


def test_cache_blobs(store: ArtifactStore) -> None:
    assert store.get_blob("embeddings/mobilenet/ab12.npy") is None
    store.put_blob("embeddings/mobilenet/ab12.npy", b"first")
    store.put_blob("embeddings/mobilenet/ab12.npy", b"second")
    assert store.get_blob("embeddings/mobilenet/ab12.npy") == b"second"
    # Cache blobs are not channels.
    assert store.list_channels() == []


@pytest.mark.parametrize(
    "key", ["", "../x", "a/../../x", "/abs", "a//b", "a\\b", ".hidden", "a\x00"]
)
def test_invalid_cache_keys_are_refused(store: ArtifactStore, key: str) -> None:
    with pytest.raises(InvalidName):
        store.put_blob(key, b"x")
    with pytest.raises(InvalidName):
        store.get_blob(key)


def test_list_channels_shows_channels_with_versions_or_pointer(store: ArtifactStore) -> None:
    store.publish_version("b-shop", "1.0.0", model_files())
    store.set_pointer("a-shop", {"version": "1.0.0"})
    store.publish_version("c-shop", "1.0.0", model_files())
    store.delete_version("c-shop", "1.0.0")
    assert store.list_channels() == ["a-shop", "b-shop"]


def test_reachable_store_pings(store: ArtifactStore) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())
    store.ping()
