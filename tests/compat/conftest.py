"""Fixtures: the compatibility API in an aiohttp test server, against the test Kubernetes API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from channelmodel.compat.app import create_compat_app
from channelmodel.compat.settings import CompatSettings
from tests.support.k8s import Cluster

TOKEN = "compat-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC: dict[str, Any] = {
    "channelId": "shop-1",
    "manifest": {"url": "https://shop.test/channels/shop-1/manifest.json"},
}

CompatClient = Callable[..., Any]


@pytest.fixture
def compat_client(k8s: Cluster) -> Callable[..., Any]:
    """`async with compat_client(mode=..., create=...) as client:` against `k8s`."""

    @asynccontextmanager
    async def open_client(**overrides: Any) -> AsyncIterator[TestClient[Any, Any]]:
        settings = CompatSettings(
            token=TOKEN, enabled=True, **{"namespace": k8s.namespace, **overrides}
        )
        app = create_compat_app(settings, api_client=k8s.api_client)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield client

    return open_client


def train_body(channel_id: str = "shop-1", **extra: Any) -> dict[str, Any]:
    return {
        "channelId": channel_id,
        "manifestUrl": f"https://shop.test/channels/{channel_id}/manifest.json",
        "webhookUrl": "https://backend.test/hooks/training",
        **extra,
    }
