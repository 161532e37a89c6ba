"""CORS: preflight and actual requests, wildcard and an explicit origin list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from server_helpers import PREFIX, model_files

from channelmodel.server import create_app
from channelmodel.store.filesystem import FileStore

SHOP = "https://pos.shop.example"
MODEL = f"{PREFIX}/shop-1/v1.0.0/model.json"
LATEST = f"{PREFIX}/shop-1/latest.json"


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    store = FileStore(tmp_path / "models")
    store.publish_version("shop-1", "1.0.0", model_files())
    return store


@pytest.fixture
async def listed(file_store: FileStore) -> AsyncIterator[TestClient]:
    app = create_app(file_store, cors_origins=[SHOP, "http://localhost:5173"])
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def wildcard(file_store: FileStore) -> AsyncIterator[TestClient]:
    async with TestClient(
        TestServer(create_app(file_store, cors_origins=["*"]), host="127.0.0.1")
    ) as client:
        yield client


def preflight_headers(
    origin: str, method: str = "GET", headers: str | None = None
) -> dict[str, str]:
    result = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        result["Access-Control-Request-Headers"] = headers
    return result


@pytest.mark.parametrize("path", [MODEL, LATEST])
async def test_preflight_from_a_listed_origin(listed: TestClient, path: str) -> None:
    response = await listed.options(path, headers=preflight_headers(SHOP, headers="if-none-match"))
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert set(response.headers["Access-Control-Allow-Methods"].replace(" ", "").split(",")) == {
        "GET",
        "HEAD",
    }
    assert response.headers["Access-Control-Allow-Headers"] == "if-none-match"
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_preflight_from_another_origin_is_refused(listed: TestClient) -> None:
    response = await listed.options(MODEL, headers=preflight_headers("https://evil.example"))
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
async def test_preflight_for_a_writing_method_is_refused(wildcard: TestClient, method: str) -> None:
    response = await wildcard.options(MODEL, headers=preflight_headers(SHOP, method))
    assert response.status == 403
    assert "Access-Control-Allow-Methods" not in response.headers


async def test_options_that_is_not_a_preflight_is_not_allowed(wildcard: TestClient) -> None:
    response = await wildcard.options(MODEL)
    assert response.status == 405


async def test_actual_request_from_listed_and_other_origins(listed: TestClient) -> None:
    allowed = await listed.get(MODEL, headers={"Origin": SHOP})
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert "ETag" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Origin" in allowed.headers["Vary"]

    other = await listed.get(MODEL, headers={"Origin": "https://evil.example"})
    assert other.status == 200  # a plain fetch is not refused: the browser withholds the body
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]


async def test_wildcard_answers_every_origin_with_star(wildcard: TestClient) -> None:
    for headers in ({"Origin": SHOP}, {"Origin": "http://127.0.0.1:3000"}, {}):
        response = await wildcard.get(MODEL, headers=headers)
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    preflight = await wildcard.options(MODEL, headers=preflight_headers("http://anything.example"))
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"


async def test_not_modified_and_errors_carry_cors_headers(listed: TestClient) -> None:
    first = await listed.get(MODEL, headers={"Origin": SHOP})
    revalidated = await listed.get(
        MODEL, headers={"Origin": SHOP, "If-None-Match": first.headers["ETag"]}
    )
    missing = await listed.get(f"{PREFIX}/shop-1/v9.9.9/model.json", headers={"Origin": SHOP})
    assert revalidated.status == 304
    assert revalidated.headers["Access-Control-Allow-Origin"] == SHOP
    assert missing.status == 404
    assert missing.headers["Access-Control-Allow-Origin"] == SHOP
