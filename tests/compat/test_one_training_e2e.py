"""POST /v1/train twice inside the debounce (event mode): the operator process
starts exactly one training, and GET /v1/jobs follows both calls to that run's version.

The "trainer" is a stand-in that publishes the real Teachable Machine export
with `channelmodel import` under the version the Job asks for."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from channelmodel.compat.app import create_compat_app
from channelmodel.compat.settings import CompatSettings
from channelmodel_sandbox.containers import StandInCommand
from tests.compat.conftest import AUTH, TOKEN, train_body
from tests.migrate.httpserve import serve_app
from tests.support.k8s import Cluster, wait_for

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CHANNELMODEL_SHARED") or REPO_ROOT / ".." / "shared")
REFERENCE_ZIP = SHARED / "reference" / "teachable-machine-image-export.zip"


def publish_reference_export(pod: dict[str, Any]) -> StandInCommand:
    args = pod["spec"]["containers"][0]["args"]
    option = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    return StandInCommand(
        [
            sys.executable, "-m", "channelmodel", "import", str(REFERENCE_ZIP),
            "--channel", option["--channel"],
            "--version", option["--version"],
            "--store", option["--store"],
        ]
    )  # fmt: skip


def served(k8s: Cluster, version: str) -> dict[str, Any] | None:
    status = k8s.get_channelmodel("shop-one").get("status") or {}
    ok = status.get("modelVersion") == version and not status.get("currentJob")
    return status if ok else None


def test_two_calls_in_a_row_give_one_training(
    k8s: Cluster, start_job_runner: Any, operator_process: Any
) -> None:
    if not REFERENCE_ZIP.is_file():
        pytest.skip(f"{REFERENCE_ZIP} missing (set CHANNELMODEL_SHARED)")
    start_job_runner(stand_in=publish_reference_export)
    operator_process()
    spec = {
        "channelId": "shop-1",
        "manifest": {"url": "http://backend.test/manifest"},
        "debounceSeconds": 2,
        "cooldownSeconds": 0,
        "training": {"gpus": 0},
    }
    k8s.create_channelmodel("shop-one", spec)
    wait_for(lambda: served(k8s, "1.0.0"), timeout=60, message="the first training")

    settings = CompatSettings(enabled=True, token=TOKEN, mode="event", namespace=k8s.namespace)
    app = create_compat_app(settings, api_client=k8s.api_client)
    with serve_app(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=10) as client:
        first = client.post("/v1/train", json=train_body()).json()["jobId"]
        second = client.post("/v1/train", json=train_body()).json()["jobId"]
        status = wait_for(lambda: served(k8s, "1.0.1"), timeout=60, message="the retrain")
        views = [client.get(f"/v1/jobs/{job_id}").json() for job_id in (first, second)]
        time.sleep(1)  # a few operator ticks: nothing more may start

    assert len(k8s.jobs()) == 2  # the first training and exactly one retrain
    assert [view["state"] for view in views] == ["succeeded", "succeeded"]
    assert {view["version"] for view in views} == {"1.0.1"}
    assert views[0]["modelBaseUrl"] == status["modelBaseUrl"]
    assert (served(k8s, "1.0.1") or {}).get("trainingStatus") == "Succeeded"
