"""The point-of-sale model-sync library (integrations/model-sync) in real headless Chromium
(Debian's, driven by playwright-core) against the real model server (`channelmodel serve`),
with models trained by the real trainer on grocery photos (a held-back photo must be recognised).

The browser steps are integrations/model-sync/test/browser.test.ts; this test trains the models,
starts the server and passes CHANNELMODEL_SYNC_E2E_CONFIG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from channelmodel.store import open_store
from tests.integrations.conftest import REPO_ROOT, package_dir, run_npm, tap_counts
from tests.integrations.publish_version import publish
from tests.support.processes import free_port
from tests.trainer.trainer_testlib import REFERENCE_EXPORT, grocery_images, shared_dir

pytestmark = pytest.mark.slow

CHANNEL = "pos-1"
# Banana, Watermelon, Oatly Oat Milk; the second model adds Carrots.
PRODUCTS = {6: "prod-banana", 14: "prod-watermelon", 45: "prod-oatly", 63: "prod-carrots"}
FIRST = [6, 14, 45]
SECOND = [6, 14, 45, 63]
PHOTOS_PER_PRODUCT = 10
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _train(tmp: Path, store_uri: str, version: str, classes: list[int], dataset: Path) -> None:
    train = grocery_images(dataset, "train", classes, PHOTOS_PER_PRODUCT)
    manifest = {
        "channelId": CHANNEL,
        "products": [{"id": PRODUCTS[c], "images": [str(p) for p in train[c]]} for c in classes],
    }
    path = tmp / f"manifest-{version}.json"
    path.write_text(json.dumps(manifest))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "operator"), str(REPO_ROOT / "trainer")])}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "channelmodel", "train", "--manifest", str(path), "--channel", CHANNEL,
         "--version", version, "--store", store_uri, "--epochs", "20",
         "--base-model", str(shared_dir() / REFERENCE_EXPORT)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"training {version} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with two real models of CHANNEL: 1.0.0 (three products), 2.0.0 (four)."""
    pytest.importorskip("tensorflow")
    dataset = shared_dir() / "datasets/grocery-store/dataset"
    if not (shared_dir() / REFERENCE_EXPORT).is_file() or not (dataset / "val.txt").is_file():
        pytest.skip("the reference export and the grocery dataset are needed (CHANNELMODEL_SHARED)")
    tmp = tmp_path_factory.mktemp("trained")
    store_uri = (tmp / "store").as_uri()
    _train(tmp, store_uri, "1.0.0", FIRST, dataset)
    _train(tmp, store_uri, "2.0.0", SECOND, dataset)
    return store_uri


def _serve(store_uri: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELMODEL_")}
    env.update(CHANNELMODEL_STORE_URI=store_uri, CHANNELMODEL_SERVER_HOST="127.0.0.1",
               CHANNELMODEL_SERVER_PORT=str(port),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "operator"), env.get("PYTHONPATH", "")]))  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "channelmodel", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"model server did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)


def test_unit_tests_pass() -> None:
    """Verification and ranking in node; the browser test skips itself without its config."""
    output = run_npm(package_dir("model-sync"), "test", env={"CHANNELMODEL_SYNC_E2E_CONFIG": ""})
    counts = tap_counts(output)
    assert counts.get("fail") == 0 and counts.get("pass", 0) >= 5, output[-3000:]


def test_model_sync_in_chromium(trained: str, tmp_path: Path) -> None:
    package = package_dir("model-sync")
    if not Path(CHROMIUM).is_file():
        pytest.skip("chromium is not installed: apt-get install chromium")
    dataset = shared_dir() / "datasets/grocery-store/dataset"
    held_back = grocery_images(dataset, "val", SECOND, 2)
    store_uri = (tmp_path / "served").as_uri()
    publish(trained, "1.0.0", store_uri, CHANNEL, "1.0.0")
    port = free_port()
    server = _serve(store_uri, port, tmp_path / "server.log")
    try:
        config: dict[str, Any] = {
            "modelServer": f"http://127.0.0.1:{port}",
            "channelId": CHANNEL,
            "chromium": CHROMIUM,
            "publish": [
                sys.executable,
                str(Path(__file__).with_name("publish_version.py")),
                trained,
            ],
            "storeUri": store_uri,
            "photos": [
                {"productId": PRODUCTS[c], "path": str(p)}
                for c, paths in held_back.items()
                for p in paths
            ],
            "resultsPath": str(tmp_path / "figures.json"),
        }
        config_path = tmp_path / "sync-e2e.json"
        config_path.write_text(json.dumps(config))
        env = {"CHANNELMODEL_SYNC_E2E_CONFIG": str(config_path),
               "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "operator"), str(REPO_ROOT)])}  # fmt: skip
        output = run_npm(package, "test", env=env)
        counts = tap_counts(output)
        assert counts.get("fail") == 0 and counts.get("skipped") == 0, output[-3000:]
        assert counts.get("pass", 0) >= 2, output[-3000:]
        figures = json.loads((tmp_path / "figures.json").read_text())
        assert figures["unchangedSyncModelBytes"] == 0
        sys.stdout.write(f"model-sync figures: {json.dumps(figures)}\n")
    finally:
        server.terminate()
        server.wait(10)
    assert open_store(store_uri).list_versions(CHANNEL)
