"""Fixtures running the store suite against both backends.

The S3 backend talks HTTP to moto's threaded S3 server on 127.0.0.1 (a real S3
API, not mocked boto calls), configured through the same environment variables
a deployment sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channelmodel.store import ArtifactStore, open_store
from channelmodel.store.testing import S3_TEST_ENV, create_bucket, moto_s3_server

BACKENDS = ["file", "s3"]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(params=BACKENDS)
def store_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "file":
        return (tmp_path / "models").as_uri()
    endpoint = request.getfixturevalue("s3_endpoint")
    for key, value in S3_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHANNELMODEL_S3_ENDPOINT_URL", endpoint)
    return f"s3://{create_bucket(endpoint)}/models"


@pytest.fixture
def store(store_uri: str) -> ArtifactStore:
    return open_store(store_uri)
