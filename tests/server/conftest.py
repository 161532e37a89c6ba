"""Fixtures: the model server (in-process aiohttp test server) on either backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from channelmodel.server import create_app
from channelmodel.store import ArtifactStore, open_store
from channelmodel.store.testing import S3_TEST_ENV, create_bucket, moto_s3_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["file", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ArtifactStore:
    if request.param == "file":
        return open_store((tmp_path / "models").as_uri())
    endpoint = request.getfixturevalue("s3_endpoint")
    for key, value in S3_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHANNELMODEL_S3_ENDPOINT_URL", endpoint)
    return open_store(f"s3://{create_bucket(endpoint)}/models")


@pytest.fixture
async def client(store: ArtifactStore) -> AsyncIterator[TestClient[object, object]]:
    async with TestClient(TestServer(create_app(store), host="127.0.0.1")) as test_client:
        yield test_client
