"""Without the right bearer token nothing happens: 401, and the cluster is untouched."""

from __future__ import annotations

import hmac
from typing import Any

import pytest

from channelmodel.compat.app import create_compat_app, mount
from channelmodel.compat.settings import CompatSettings, CompatTokenMissing
from tests.compat.conftest import AUTH, SPEC, TOKEN, CompatClient, train_body
from tests.support.k8s import Cluster

BAD_HEADERS = {
    "missing": {},
    "wrong-token": {"Authorization": "Bearer not-the-token"},
    "token-prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "empty-bearer": {"Authorization": "Bearer "},
    "basic-scheme": {"Authorization": f"Basic {TOKEN}"},
    "token-without-scheme": {"Authorization": TOKEN},
}


@pytest.mark.both_backends  # request counts: the emulator's log, the API server's audit log
@pytest.mark.parametrize("case", list(BAD_HEADERS), ids=list(BAD_HEADERS))
async def test_bad_or_missing_token_gets_401_and_changes_nothing(
    case: str, k8s: Cluster, compat_client: CompatClient
) -> None:
    k8s.create_channelmodel("shop-1", SPEC)
    before = k8s.get_channelmodel("shop-1")
    mark = k8s.request_mark()

    headers = BAD_HEADERS[case]
    async with compat_client(create=True) as client:
        responses = [
            await client.post("/v1/train", json=train_body(), headers=headers),
            await client.post("/v1/train", json=train_body("shop-new"), headers=headers),
            await client.get(
                f"/v1/jobs/{k8s.namespace}/shop-1/2026-11-22T00:00:00.000Z", headers=headers
            ),
        ]
        for response in responses:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert TOKEN not in await response.text()
    assert k8s.count_requests(since=mark) == 0  # not even a read
    assert k8s.get_channelmodel("shop-1") == before


async def test_token_is_compared_in_constant_time(
    k8s: Cluster, compat_client: CompatClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    k8s.create_channelmodel("shop-1", SPEC)
    async with compat_client() as client:
        good = await client.post("/v1/train", json=train_body(), headers=AUTH)
        bad = await client.post(
            "/v1/train", json=train_body(), headers={"Authorization": "Bearer x"}
        )

    assert (good.status, bad.status) == (202, 401)
    assert calls == [(TOKEN.encode(), TOKEN.encode()), (b"x", TOKEN.encode())]


async def test_token_file_is_read_on_each_request(k8s: Cluster, tmp_path: Any) -> None:
    """A rotated Secret mount takes effect without a restart."""
    from aiohttp.test_utils import TestClient, TestServer

    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    settings = CompatSettings(token_file=token_file, namespace=k8s.namespace)
    k8s.create_channelmodel("shop-1", SPEC)
    app = create_compat_app(settings, api_client=k8s.api_client)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        first = await client.post(
            "/v1/train", json=train_body(), headers={"Authorization": "Bearer first-token"}
        )
        token_file.write_text("second-token\n")
        old = await client.post(
            "/v1/train", json=train_body(), headers={"Authorization": "Bearer first-token"}
        )
        new = await client.post(
            "/v1/train", json=train_body(), headers={"Authorization": "Bearer second-token"}
        )

    assert (first.status, old.status, new.status) == (202, 401, 202)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("CHANNELMODEL_COMPAT_ENABLED", "true")
    monkeypatch.setenv("CHANNELMODEL_COMPAT_TOKEN", "from-env")
    monkeypatch.setenv("CHANNELMODEL_COMPAT_NAMESPACE", "shops")
    monkeypatch.setenv("CHANNELMODEL_COMPAT_CREATE", "true")
    monkeypatch.setenv("CHANNELMODEL_COMPAT_MODE", "manual")

    settings = CompatSettings()

    assert settings.enabled and settings.create
    assert (settings.namespace, settings.mode, settings.bearer_token()) == (
        "shops",
        "manual",
        "from-env",
    )
    assert "from-env" not in repr(settings)


def test_off_by_default_and_refuses_to_mount_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiohttp import web

    for name in ("ENABLED", "TOKEN", "TOKEN_FILE"):
        monkeypatch.delenv(f"CHANNELMODEL_COMPAT_{name}", raising=False)
    settings = CompatSettings()
    assert settings.enabled is False
    with pytest.raises(CompatTokenMissing, match="CHANNELMODEL_COMPAT_TOKEN"):
        mount(web.Application(), settings)
