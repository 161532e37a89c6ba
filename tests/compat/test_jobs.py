"""GET /v1/jobs/<jobId>: the state of a train call, read from the ChannelModel's
status as the operator writes it (the run that covers the request's change)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from tests.compat.conftest import AUTH, SPEC, CompatClient, train_body
from tests.support.k8s import Cluster

BASE_URL = "http://models.test/assets/ml-models/shop-1/v1.0.4/"


def later(stamp: str, seconds: float) -> str:
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return at.isoformat().replace("+00:00", "Z")


def set_status(k8s: Cluster, status: dict[str, Any]) -> None:
    k8s.custom.patch_namespaced_custom_object_status(
        "ml.dukarun.io", "v1alpha1", k8s.namespace, "channelmodels", "shop-one", {"status": status}
    )


def job(version: str, change_at: str) -> dict[str, Any]:
    return {
        "name": f"shop-one-train-{version[-1]}",
        "version": version,
        "trigger": "event",
        "startedAt": later(change_at, 60),
        "changeAt": change_at,
    }


def covered_by(at: str) -> dict[str, dict[str, Any]]:
    """Status snapshots along the life of the request made at `at`."""
    return {
        "queued": {"trainingStatus": "Queued", "trainAfter": later(at, 60)},
        "queued-behind-an-older-run": {
            "trainingStatus": "Training",
            "currentJob": job("1.0.3", later(at, -5)),
        },
        "training": {"trainingStatus": "Training", "currentJob": job("1.0.4", at)},
        "training-a-later-change": {
            "trainingStatus": "Training",
            "currentJob": job("1.0.4", later(at, 2)),
        },
        "succeeded": {
            "trainingStatus": "Succeeded",
            "coveredChangeAt": at,
            "attemptedChangeAt": at,
            "modelVersion": "1.0.4",
            "modelBaseUrl": BASE_URL,
        },
        "failed": {
            "trainingStatus": "Failed",
            "attemptedChangeAt": at,
            "coveredChangeAt": later(at, -3600),
            "lastError": "manifest answered 401",
        },
    }


EXPECTED: dict[str, dict[str, Any]] = {
    "queued": {"state": "queued"},
    "queued-behind-an-older-run": {"state": "queued"},
    "training": {"state": "training", "version": "1.0.4"},
    "training-a-later-change": {"state": "training", "version": "1.0.4"},
    "succeeded": {"state": "succeeded", "version": "1.0.4", "modelBaseUrl": BASE_URL},
    "failed": {"state": "failed", "error": "manifest answered 401"},
}


@pytest.mark.parametrize("case", list(EXPECTED), ids=list(EXPECTED))
async def test_job_state_follows_the_run_covering_the_request(
    case: str, k8s: Cluster, compat_client: CompatClient
) -> None:
    k8s.create_channelmodel("shop-one", SPEC)
    async with compat_client() as client:
        accepted = await (await client.post("/v1/train", json=train_body(), headers=AUTH)).json()
        job_id = accepted["jobId"]
        set_status(k8s, covered_by(job_id.split("/")[2])[case])
        response = await client.get(f"/v1/jobs/{job_id}", headers=AUTH)
        body = await response.json()

    assert response.status == 200
    assert body["jobId"] == job_id
    assert body["channelId"] == "shop-1"
    got = {key: body[key] for key in ("state", "version", "modelBaseUrl", "error") if key in body}
    assert got == EXPECTED[case]


async def test_url_encoded_job_id_works(k8s: Cluster, compat_client: CompatClient) -> None:
    k8s.create_channelmodel("shop-one", SPEC)
    async with compat_client() as client:
        accepted = await (await client.post("/v1/train", json=train_body(), headers=AUTH)).json()
        response = await client.get(f"/v1/jobs/{quote(accepted['jobId'], safe='')}", headers=AUTH)
        assert response.status == 200
        assert (await response.json())["state"] == "queued"


@pytest.mark.parametrize(
    "job_id",
    [
        "{namespace}/gone/2026-11-22T00:00:00.000Z",
        "other-namespace/shop-one/2026-11-22T00:00:00.000Z",
        "default/shop-one/not-a-time",
        "default/shop-one",
    ],
)
async def test_unknown_jobs_are_404(job_id: str, k8s: Cluster, compat_client: CompatClient) -> None:
    k8s.create_channelmodel("shop-one", SPEC)
    async with compat_client() as client:
        job_id = job_id.format(namespace=k8s.namespace)
        response = await client.get(f"/v1/jobs/{job_id}", headers=AUTH)
        assert response.status == 404
        assert (await response.json())["error"].startswith("unknown job")
