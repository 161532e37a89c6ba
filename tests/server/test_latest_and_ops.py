"""latest.json (serving pointer or newest version), /healthz, /readyz, /metrics, CLI settings."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from server_helpers import PREFIX, metric_samples, model_files

from channelmodel.server import ServerSettings, create_app
from channelmodel.server.cli import add_arguments, settings_from
from channelmodel.store import ArtifactStore, FileInfo
from channelmodel.store.filesystem import FileStore
from channelmodel.store.s3 import S3Store

LATEST = f"{PREFIX}/shop-1/latest.json"


def publish(store: ArtifactStore, *versions: str) -> None:
    for version in versions:
        store.publish_version("shop-1", version, model_files())


async def latest(client: TestClient) -> dict[str, object]:
    response = await client.get(LATEST)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "public, max-age=30"
    return json.loads(await response.read())  # type: ignore[no-any-return]


async def test_latest_without_pointer_is_the_newest_committed_version(
    client: TestClient, store: ArtifactStore
) -> None:
    publish(store, "1.0.9", "1.0.10", "1.0.2")
    body = await latest(client)
    base = f"{PREFIX}/shop-1/v1.0.10/"
    assert body == {
        "channelId": "shop-1",
        "version": "1.0.10",
        "pinned": False,
        "modelBaseUrl": base,
        "modelUrl": base + "model.json",
        "weightsUrl": base + "weights.bin",
        "metadataUrl": base + "metadata.json",
    }
    for key in ("modelUrl", "weightsUrl", "metadataUrl"):
        assert (await client.get(str(body[key]))).status == 200


async def test_latest_follows_the_serving_pointer(client: TestClient, store: ArtifactStore) -> None:
    publish(store, "1.0.0", "1.0.1", "1.0.2")
    # The quality gate rejected 1.0.2: the operator keeps serving 1.0.1.
    store.set_pointer("shop-1", {"version": "1.0.1", "pinned": False})
    assert (await latest(client))["version"] == "1.0.1"

    store.set_pointer("shop-1", {"version": "1.0.0", "pinned": True})
    body = await latest(client)
    assert (body["version"], body["pinned"]) == ("1.0.0", True)
    assert body["modelUrl"] == f"{PREFIX}/shop-1/v1.0.0/model.json"


async def test_a_broken_pointer_is_503_not_a_guess(
    client: TestClient, store: ArtifactStore, tmp_path: Path
) -> None:
    # Issue 12: falling back to the newest committed version could serve a rejected one.
    publish(store, "1.0.0", "1.0.1")  # 1.0.1 was rejected by the quality gate
    store.set_pointer("shop-1", {"version": "1.0.7", "pinned": True})  # names a deleted version
    response = await client.get(LATEST)
    assert response.status == 503
    assert response.headers["Retry-After"] == "30"
    assert response.headers["Cache-Control"] == "no-store"

    torn = b'{"version": "1.0.0"'  # a corrupt pointer
    if isinstance(store, FileStore):
        (store.root / "shop-1" / "served.json").write_bytes(torn)
    else:
        assert isinstance(store, S3Store)
        store.client.put_object(
            Bucket=store.bucket, Key=f"{store.prefix}/shop-1/served.json", Body=torn
        )
    assert (await client.get(LATEST)).status == 503

    store.set_pointer("shop-1", {"version": "1.0.0", "pinned": False})  # repaired
    assert (await latest(client))["version"] == "1.0.0"


async def test_pointer_without_any_version_is_not_found(
    client: TestClient, store: ArtifactStore
) -> None:
    store.set_pointer("shop-1", {"version": "1.0.0"})
    assert (await client.get(LATEST)).status == 404


async def test_null_pointer_means_nothing_served_even_with_committed_versions(
    client: TestClient, store: ArtifactStore
) -> None:
    publish(store, "1.0.0")  # committed by the trainer, not (yet) accepted by the operator
    store.set_pointer("shop-1", {"version": None})
    assert (await client.get(LATEST)).status == 404
    store.set_pointer("shop-1", {"version": "1.0.0", "pinned": False})
    assert (await client.get(LATEST)).status == 200


async def test_latest_revalidates_and_changes_with_the_version(
    client: TestClient, store: ArtifactStore
) -> None:
    publish(store, "1.0.0")
    first = await client.get(LATEST)
    same = await client.get(LATEST, headers={"If-None-Match": first.headers["ETag"]})
    assert same.status == 304
    assert await same.read() == b""
    publish(store, "1.0.1")
    changed = await client.get(LATEST, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status == 200
    assert json.loads(await changed.read())["version"] == "1.0.1"


async def test_latest_with_public_base_url_gives_absolute_urls(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    publish(store, "1.0.0")
    app = create_app(store, public_base_url="https://models.shop.example/")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        body = await latest(client)
    assert (
        body["modelUrl"] == "https://models.shop.example/assets/ml-models/shop-1/v1.0.0/model.json"
    )


async def test_health_and_readiness(client: TestClient, store: ArtifactStore) -> None:
    publish(store, "1.0.0")
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_not_ready_when_the_store_is_unreachable(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANNELMODEL_S3_ENDPOINT_URL", s3_endpoint)
    for store in (FileStore(tmp_path / "missing"), S3Store("no-such-bucket", "models")):
        async with TestClient(TestServer(create_app(store), host="127.0.0.1")) as client:
            assert (await client.get("/healthz")).status == 200
            not_ready = await client.get("/readyz")
            assert not_ready.status == 503
            assert "bucket" not in await not_ready.text()  # no storage details to the outside


async def test_metrics_count_requests_bytes_and_latency(
    client: TestClient, store: ArtifactStore
) -> None:
    files = model_files(weights_size=123_456)
    store.publish_version("shop-1", "1.0.0", files)
    weights = f"{PREFIX}/shop-1/v1.0.0/weights.bin"
    etag = (await client.get(weights)).headers["ETag"]
    await client.get(weights)
    await client.get(weights, headers={"If-None-Match": etag})
    await client.head(weights)
    await client.get(f"{PREFIX}/shop-1/v1.0.1/weights.bin")
    await client.get(f"{PREFIX}/../../etc/passwd")

    samples = metric_samples(await (await client.get("/metrics")).text())

    def requests(method: str, route: str, status: str) -> float:
        key = (("method", method), ("route", route), ("status", status))
        return samples.get(("channelmodel_server_requests_total", key), 0.0)

    assert requests("GET", "model_file", "200") == 2
    assert requests("GET", "model_file", "304") == 1
    assert requests("HEAD", "model_file", "200") == 1
    assert requests("GET", "model_file", "404") == 1
    assert requests("GET", "unmatched", "404") == 1
    assert (
        samples[("channelmodel_server_response_body_bytes_total", (("route", "model_file"),))]
        == 2 * 123_456
    )
    assert (
        samples[("channelmodel_server_request_duration_seconds_count", (("route", "model_file"),))]
        == 5
    )
    # Labels never carry channel IDs or paths.
    assert all("shop-1" not in str(labels) for _, labels in samples)


def test_settings_from_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNELMODEL_STORE_URI", "s3://models/prod")
    monkeypatch.setenv("CHANNELMODEL_SERVER_PORT", "9000")
    monkeypatch.setenv("CHANNELMODEL_CORS_ORIGINS", "https://a.example, https://b.example/")
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    from_env = settings_from(parser.parse_args([]))
    assert (from_env.store_uri, from_env.server_host, from_env.server_port) == (
        "s3://models/prod",
        "0.0.0.0",
        9000,
    )
    assert from_env.cors_origins == ["https://a.example", "https://b.example"]

    flags = settings_from(
        parser.parse_args(["--store", "file:///srv", "--port", "8081", "--cors-origins", "*"])
    )
    assert (flags.store_uri, flags.server_port, flags.cors_origins) == ("file:///srv", 8081, ["*"])


def test_defaults_and_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CHANNELMODEL_STORE_URI",
        "CHANNELMODEL_SERVER_HOST",
        "CHANNELMODEL_SERVER_PORT",
        "CHANNELMODEL_CORS_ORIGINS",
    ):
        monkeypatch.delenv(name, raising=False)
    defaults = ServerSettings()
    assert (defaults.server_host, defaults.server_port, defaults.cors_origins) == (
        "0.0.0.0",
        8080,
        ["*"],
    )
    for bad in (
        {"cors_origins": "shop.example"},
        {"store_uri": "/srv/models"},
        {"server_port": 70000},
    ):
        with pytest.raises(ValueError):
            ServerSettings(**bad)  # type: ignore[arg-type]


def test_serve_subcommand_runs_and_refuses_bad_settings(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    publish(store, "1.0.0")
    bad = subprocess.run(
        [sys.executable, "-m", "channelmodel", "serve", "--store", "ftp://x", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "store_uri" in bad.stderr or "ftp" in bad.stderr

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "channelmodel",
            "serve",
            "--store",
            store.uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}{LATEST}", timeout=2
                ) as response:
                    assert json.load(response)["version"] == "1.0.0"
                    break
            except OSError:
                assert proc.poll() is None, "server exited"
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


async def test_head_of_latest_has_headers_and_no_body(
    client: TestClient, store: ArtifactStore
) -> None:
    publish(store, "1.0.0")
    get = await client.get(LATEST)
    head = await client.head(LATEST)
    assert head.status == 200
    assert await head.read() == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Length"] == get.headers["Content-Length"]


class BlockingStore(FileStore):
    """stat_file waits until the test lets it go."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.entered = threading.Event()
        self.release = threading.Event()

    def stat_file(self, channel_id: str, version: str, name: str) -> FileInfo:
        self.entered.set()
        self.release.wait(timeout=30)
        return super().stat_file(channel_id, version, name)


async def test_a_blocked_store_call_does_not_block_other_requests(tmp_path: Path) -> None:
    store = BlockingStore(tmp_path)
    publish(store, "1.0.0")
    async with TestClient(TestServer(create_app(store), host="127.0.0.1")) as client:
        slow = asyncio.create_task(client.get(f"{PREFIX}/shop-1/v1.0.0/model.json"))
        await asyncio.get_running_loop().run_in_executor(None, store.entered.wait, 10)
        # Were the store call on the event loop, nothing else could be answered now.
        health = await asyncio.wait_for(client.get("/healthz"), timeout=10)
        assert health.status == 200
        assert not slow.done()
        store.release.set()
        assert (await slow).status == 200
