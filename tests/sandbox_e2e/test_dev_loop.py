"""The whole loop as a newcomer runs it: `channelmodel dev` from the command
line, the real trainer in Jobs, the model server, TF.js in node as the point of
sale, a catalog change, signed webhooks and the metrics that describe it all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from tests.support.processes import DevProcess, free_port, pids_mentioning
from tests.support.webhook import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CHANNELMODEL_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference" / "teachable-machine-image-export.zip"
NODE_PREDICT = ROOT / "tests" / "js" / "predict_tfjs4.js"
SECRET = b"sandbox-webhook-key"


def _predict_in_node(base_url: str, image: Path, tmp_path: Path) -> list[float]:
    from channelmodel_trainer.decode import decode_image
    from channelmodel_trainer.embed import preprocess

    tensor = preprocess(decode_image(image.read_bytes())[None])
    inputs = tmp_path / "input.f32"
    inputs.write_bytes(np.ascontiguousarray(tensor, dtype=np.float32).tobytes())
    out = subprocess.run(
        ["node", str(NODE_PREDICT), base_url, str(inputs), "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return list(json.loads(out.stdout)["probabilities"][0])


def _pids_using(work: Path) -> list[int]:
    return pids_mentioning(str(work))


def test_dev_sandbox_trains_serves_retrains_and_reports(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    if not REFERENCE.exists():
        pytest.skip(
            f"the pretrained base {REFERENCE} is missing (../shared not beside the checkout)"
        )
    if (
        shutil.which("node") is None
        or not (ROOT / "tests/js/node_modules/@tensorflow/tfjs").is_dir()
    ):
        pytest.skip("node or @tensorflow/tfjs missing: run scripts/setup.sh")
    webhook = webhook_receiver
    ports = {name: free_port() for name in ("catalog", "server", "metrics")}
    example = yaml.safe_load((ROOT / "examples" / "channelmodel.yaml").read_text())
    example["spec"]["debounceSeconds"] = 3
    example["spec"]["cooldownSeconds"] = 0
    example["spec"]["notify"] = {
        "webhookUrl": webhook.url,
        "secretRef": {"name": "webhook", "key": "hmac"},
    }
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "webhook", "namespace": "default",
              "annotations": {"ml.dukarun.io/channel-models": example["metadata"]["name"]}},
              "data": {"hmac": __import__("base64").b64encode(SECRET).decode()}}  # fmt: skip
    manifest_file = tmp_path / "channelmodel.yaml"
    manifest_file.write_text(yaml.safe_dump_all([secret, example]))
    work = tmp_path / "sandbox"
    dev = DevProcess(
        [sys.executable, "-m", "channelmodel", "dev", "--work-dir", str(work), "-f", str(manifest_file),
         "--catalog-port", str(ports["catalog"]), "--server-port", str(ports["server"]),
         "--metrics-port", str(ports["metrics"]), "--base-model", str(REFERENCE)],
        cwd=tmp_path,
    )  # fmt: skip
    try:
        dev.wait_for("Kubernetes API emulator at", timeout=60)
        served = dev.wait_for("served: ", timeout=300)
        base_url = served.split("served: ", 1)[1].removesuffix("model.json")
        assert base_url == f"http://127.0.0.1:{ports['server']}/assets/ml-models/demo/v1.0.0/"

        metadata = httpx.get(base_url + "metadata.json").json()
        labels = metadata["labels"]
        assert sorted(labels) == ["prod-apple", "prod-banana", "prod-milk", "prod-soda"]
        photo = work / "catalog" / "prod-milk" / "03.jpg"
        probabilities = _predict_in_node(base_url, photo, tmp_path)
        assert labels[int(np.argmax(probabilities))] == "prod-milk"

        # a product is added: copy its photos and tell the operator, as a newcomer would
        shutil.copytree(work / "catalog-extra" / "prod-lemon", work / "catalog" / "prod-lemon")
        subprocess.run(
            [sys.executable, "-m", "channelmodel", "notify-change", "demo", "--kubeconfig", str(work / "kubeconfig")],
            check=True, capture_output=True,
        )  # fmt: skip
        served = dev.wait_for("/v1.0.1/model.json", timeout=300)
        new_base = served.split("served: ", 1)[1].removesuffix("model.json")
        assert "prod-lemon" in httpx.get(new_base + "metadata.json").json()["labels"]
        # The sandbox's manifest states each photo's sha256: the retrain downloaded
        # only the new product's photos, the others' embeddings came from the cache.
        (retrain_log,) = (work / "jobs").glob("*demo-train-2-*/output.log")
        assert "48 of 60 photos taken from the embedding cache by the sha256" in (
            retrain_log.read_text()
        )

        def transitions() -> list[str]:
            return [e["type"] for e in webhook.events(exclude="training.progress")]

        wait_until = time.monotonic() + 20
        while len(transitions()) < 8 and time.monotonic() < wait_until:
            time.sleep(0.2)
        kinds = transitions()
        progress = [e for e in webhook.events() if e["type"] == "training.progress"]
        assert {(p["stage"], p["state"]) for p in progress} >= {
            ("epochs", "started"),
            ("epochs", "finished"),
        }
        assert kinds == [
            "training.queued", "training.started", "training.succeeded", "version.served",
            "training.queued", "training.started", "training.succeeded", "version.served",
        ]  # fmt: skip
        assert webhook.all_signed_with(SECRET)

        scrape = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics").text
        assert (
            'channelmodel_trainings_total{name="demo",namespace="default",result="succeeded"} 2.0'
            in scrape
        )
        assert "channelmodel_training_duration_seconds_count 2.0" in scrape
        assert "channelmodel_changes_per_training_count 1.0" in scrape
        assert 'version="1.0.1"' in scrape
    finally:
        dev.stop(timeout=30)
    assert dev.process.returncode == 130  # 128 + SIGINT, as shells report Ctrl-C
    assert any("stopped" in line for line in dev.lines)
    leftovers = _pids_using(work)
    assert leftovers == [], f"processes left behind: {leftovers}"
