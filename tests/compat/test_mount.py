"""The compatibility routes mounted into the model server beside its own routes."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from channelmodel.api import annotations as ann
from channelmodel.compat.app import mount
from channelmodel.compat.settings import CompatSettings
from channelmodel.server import create_app
from channelmodel.store import open_store
from tests.compat.conftest import AUTH, SPEC, TOKEN, train_body
from tests.support.k8s import Cluster


async def test_model_server_with_compat_routes(k8s: Cluster, tmp_path: Path) -> None:
    k8s.create_channelmodel("shop-one", SPEC)
    app = create_app(open_store((tmp_path / "store").as_uri()))
    mount(
        app,
        CompatSettings(enabled=True, token=TOKEN, namespace=k8s.namespace),
        api_client=k8s.api_client,
    )

    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        health = await client.get("/healthz")
        train = await client.post("/v1/train", json=train_body(), headers=AUTH)
        job_id = (await train.json())["jobId"]
        job = await client.get(f"/v1/jobs/{job_id}", headers=AUTH)
        unauthorized = await client.post("/v1/train", json=train_body())
        missing_model = await client.get("/assets/ml-models/shop-1/v1.0.0/model.json")
        metrics = await (await client.get("/metrics")).text()

        assert (health.status, train.status, job.status) == (200, 202, 200)
        assert (await job.json())["state"] == "queued"
        assert unauthorized.status == 401
        assert missing_model.status == 404
        # Operators watch the old API's traffic die out before switching it off.
        assert 'route="compat_train",status="202"' in metrics
        assert 'route="compat_train",status="401"' in metrics
    annotations = k8s.get_channelmodel("shop-one")["metadata"]["annotations"]
    assert annotations[ann.INVENTORY_CHANGED_AT] == job_id.split("/")[2]
