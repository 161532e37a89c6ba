"""`spec.importFrom` end to end: the operator process on the test API starts an
import Job, the local job runner runs the real `channelmodel import` in it, and
the imported version is served like a trained one."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from channelmodel.store import open_store
from tests.migrate.httpserve import serve_folder
from tests.support.k8s import Cluster, wait_for

pytestmark = pytest.mark.e2e


def test_import_from_url_with_token_is_served_as_first_version(
    k8s: Cluster,
    reference_dir: Path,
    start_job_runner: Any,
    operator_process: Any,
    tmp_path: Path,
) -> None:
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {
            "metadata": {
                "name": "tm-host",
                "annotations": {"ml.dukarun.io/channel-models": "shop-1"},
            },
            "data": {"token": base64.b64encode(b"tm-token").decode()},
        },
    )
    with serve_folder(reference_dir, token="tm-token") as (base, seen):
        start_job_runner()  # runs the Job's own command: python -m channelmodel import ...
        operator_process()
        k8s.create_channelmodel(
            "shop-1",
            {
                "channelId": "shop-1",
                "manifest": {"url": "http://backend.test/manifest"},
                "training": {"gpus": 0},
                "importFrom": {
                    "url": base + "model.json",
                    "authSecretRef": {"name": "tm-host", "key": "token"},
                },
            },
        )
        status = wait_for(
            lambda: (
                (s := k8s.get_channelmodel("shop-1").get("status") or {}).get("modelVersion")
                == "1.0.0"
                and not s.get("currentJob")
                and s
            ),
            timeout=90,
            message="the imported 1.0.0 served",
        )

    assert seen and all(header == "Bearer tm-token" for header in seen)
    assert status["trainingStatus"] == "Succeeded"
    assert status["modelBaseUrl"] == "http://models.test/assets/ml-models/shop-1/v1.0.0/"
    (record,) = status["versions"]
    assert record["origin"] == f"imported:{base}model.json"
    assert record["labelsLookLikeProductIds"] is False
    assert status["lastRun"]["classes"] == 2
    jobs = k8s.jobs()
    assert len(jobs) == 1  # the import stands for the first training
    assert jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "import"
    store = open_store(f"file://{tmp_path / 'store'}")
    assert (
        store.read_file("shop-1", "1.0.0", "weights.bin")
        == (reference_dir / "weights.bin").read_bytes()
    )
