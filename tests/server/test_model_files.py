"""Versioned model files: headers, 304 revalidation, HEAD, streaming, 404/405, store errors."""

from __future__ import annotations

import hashlib
import json

import pytest
from aiohttp.test_utils import TestClient
from server_helpers import PREFIX, model_files

from channelmodel.store import ArtifactStore
from channelmodel.store.filesystem import FileStore
from channelmodel.store.s3 import S3Store

CONTENT_TYPES = {
    "model.json": "application/json",
    "metadata.json": "application/json",
    "weights.bin": "application/octet-stream",
}


def url(name: str, version: str = "1.0.0", channel: str = "shop-1") -> str:
    return f"{PREFIX}/{channel}/v{version}/{name}"


@pytest.mark.parametrize("name", ["model.json", "weights.bin", "metadata.json"])
async def test_file_is_served_with_immutable_caching_headers(
    client: TestClient, store: ArtifactStore, name: str
) -> None:
    files = model_files()
    store.publish_version("shop-1", "1.0.0", files)

    response = await client.get(url(name))
    body = await response.read()

    assert response.status == 200
    assert body == files[name]
    assert response.headers["ETag"] == store.stat_file("shop-1", "1.0.0", name).etag
    assert response.headers["ETag"] == f'"{hashlib.sha256(files[name]).hexdigest()}"'
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Type"] == CONTENT_TYPES[name]
    assert int(response.headers["Content-Length"]) == len(files[name])
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_revalidation_with_if_none_match_answers_304_without_body(
    client: TestClient, store: ArtifactStore
) -> None:
    files = model_files()
    store.publish_version("shop-1", "1.0.0", files)
    first = await client.get(url("weights.bin"))
    etag = first.headers["ETag"]
    assert await first.read() == files["weights.bin"]

    for condition in (etag, f"W/{etag}", f'"something-else", {etag}', "*"):
        again = await client.get(url("weights.bin"), headers={"If-None-Match": condition})
        assert again.status == 304, condition
        assert await again.read() == b""
        assert again.headers["ETag"] == etag
        assert again.headers["Cache-Control"] == "public, max-age=31536000, immutable"

    stale = await client.get(url("weights.bin"), headers={"If-None-Match": '"an-old-version"'})
    assert stale.status == 200
    assert await stale.read() == files["weights.bin"]


async def test_etags_differ_between_versions(client: TestClient, store: ArtifactStore) -> None:
    store.publish_version("shop-1", "1.0.0", model_files(seed=1))
    store.publish_version("shop-1", "1.0.1", model_files(seed=2))
    old = await client.get(url("weights.bin", "1.0.0"))
    new = await client.get(
        url("weights.bin", "1.0.1"), headers={"If-None-Match": old.headers["ETag"]}
    )
    assert new.status == 200
    assert new.headers["ETag"] != old.headers["ETag"]


async def test_head_gives_the_headers_of_get_without_body(
    client: TestClient, store: ArtifactStore
) -> None:
    files = model_files(weights_size=100_000)
    store.publish_version("shop-1", "1.0.0", files)

    head = await client.head(url("weights.bin"))
    get = await client.get(url("weights.bin"))

    assert head.status == 200
    assert await head.read() == b""
    assert head.headers["Content-Length"] == "100000"
    for header in (
        "ETag",
        "Cache-Control",
        "Content-Type",
        "Content-Length",
        "Access-Control-Allow-Origin",
    ):
        assert head.headers[header] == get.headers[header]
    conditional = await client.head(
        url("weights.bin"), headers={"If-None-Match": head.headers["ETag"]}
    )
    assert conditional.status == 304


async def test_five_megabyte_file_streams_whole_without_ranges(
    client: TestClient, store: ArtifactStore
) -> None:
    files = model_files(weights_size=5 * 1024 * 1024)
    store.publish_version("shop-1", "1.0.0", files)

    # A Range header is ignored: the whole file, as one 200 response with a known length.
    response = await client.get(url("weights.bin"), headers={"Range": "bytes=0-99"})
    received = bytearray()
    chunks = 0
    async for chunk in response.content.iter_chunked(256 * 1024):
        received += chunk
        chunks += 1

    assert response.status == 200
    assert "Content-Range" not in response.headers
    assert response.headers["Content-Length"] == str(5 * 1024 * 1024)
    assert "Transfer-Encoding" not in response.headers
    assert chunks > 1
    assert hashlib.sha256(received).digest() == hashlib.sha256(files["weights.bin"]).digest()


@pytest.mark.parametrize(
    "path",
    [
        url("model.json", version="1.0.1"),  # no such version
        url("model.json", channel="shop-2"),  # no such channel
        url(".committed"),  # the commit record is not a model file
        url("served.json"),
        url("model.bin"),
        f"{PREFIX}/shop-1/1.0.0/model.json",  # version without its v
        f"{PREFIX}/shop-1/v1.0/model.json",
        f"{PREFIX}/shop-1/v1.0.0/",  # no listings, anywhere
        f"{PREFIX}/shop-1/v1.0.0",
        f"{PREFIX}/shop-1/",
        f"{PREFIX}/shop-1",
        f"{PREFIX}/",
        "/assets/",
        "/",
        "/shop-1/v1.0.0/model.json",  # the store layout itself is not exposed
        f"{PREFIX}/_cache/v1.0.0/model.json",
        f"{PREFIX}/shop-2/latest.json",  # no versions, no latest
    ],
)
async def test_not_found(client: TestClient, store: ArtifactStore, path: str) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())
    store.put_blob("v1.0.0/model.json", b"cache blob, not a model")
    response = await client.get(path)
    assert response.status == 404
    # Errors carry CORS headers too: the browser can then see the status.
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_uncommitted_version_is_not_served(client: TestClient, store: ArtifactStore) -> None:
    files = model_files()
    if isinstance(store, S3Store):
        for name, data in files.items():
            store.client.put_object(
                Bucket=store.bucket, Key=f"{store.prefix}/shop-1/v1.0.0/{name}", Body=data
            )
    else:
        root = store.root  # type: ignore[attr-defined]
        (root / "shop-1" / "v1.0.0").mkdir(parents=True)
        for name, data in files.items():
            (root / "shop-1" / "v1.0.0" / name).write_bytes(data)
    assert (await client.get(url("model.json"))).status == 404
    assert (await client.get(f"{PREFIX}/shop-1/latest.json")).status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_only_get_and_head(client: TestClient, store: ArtifactStore, method: str) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())
    for path in (url("model.json"), f"{PREFIX}/shop-1/latest.json", "/healthz", "/metrics"):
        response = await client.request(method, path, data=b"x")
        assert response.status == 405, path
        assert set(response.headers["Allow"].replace(" ", "").split(",")) <= {
            "GET",
            "HEAD",
            "OPTIONS",
        }
    assert store.list_versions("shop-1") == ["1.0.0"]


def _replace_committed(store: ArtifactStore, name: str, data: bytes) -> None:
    """Change a committed file behind the store's back (an operator with shell access, a bug)."""
    if isinstance(store, FileStore):
        path = store.root / "shop-1" / "v1.0.0" / name
        path.chmod(0o644)
        path.write_bytes(data)
        return
    assert isinstance(store, S3Store)
    key = f"{store.prefix}/shop-1/v1.0.0/.committed"
    record = json.loads(store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    committed = f"{store.prefix}/shop-1/v1.0.0/{record['files'][name]['key']}"
    store.client.put_object(Bucket=store.bucket, Key=committed, Body=data)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("weights.bin", "truncated"),
        ("weights.bin", "tampered"),  # S3: If-Match; file: size
        ("model.json", "same-size"),  # file: digest of the small JSON files
        ("metadata.json", "same-size"),
    ],
)
async def test_file_changed_behind_the_store_is_refused_with_503(
    client: TestClient, store: ArtifactStore, name: str, change: str
) -> None:
    files = model_files()
    store.publish_version("shop-1", "1.0.0", files)
    original = files[name]
    changed = {
        "truncated": original[: len(original) // 2],
        "tampered": b"tampered",
        "same-size": bytes(reversed(original)),
    }[change]
    assert changed != original
    _replace_committed(store, name, changed)

    response = await client.get(url(name))
    assert response.status == 503
    assert changed not in await response.read()
    if change != "same-size" and isinstance(store, FileStore):
        # HEAD must not promise what GET cannot serve (the file store checks the size)
        assert (await client.head(url(name))).status == 503
