"""A real browser loads a model from the model server across origins and predicts.

Headless Chromium (Debian's `chromium`) opens a shop page served on 127.0.0.1
port A. The page loads TF.js 4.x (tests/js/node_modules), asks the model
server on port B for latest.json, loads the layers model it names with
`tf.loadLayersModel`, reads metadata.json, predicts, and POSTs the result back
to the page's server, where the test compares it with the same computation in
numpy. The model is a hand-written TF.js layers model (one Dense layer with
softmax), so the test needs neither TensorFlow nor the trainer.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from channelmodel.server import create_app
from channelmodel.store import ArtifactStore

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
TFJS = (
    Path(__file__).resolve().parents[1]
    / "js"
    / "node_modules"
    / "@tensorflow"
    / "tfjs"
    / "dist"
    / "tf.min.js"
)
LABELS = ["prod-apple", "prod-banana"]
INPUT = [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]
RESULT_TIMEOUT_SECONDS = 90


Matrix = list[list[float]]


def float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def tiny_layers_model(seed: int) -> tuple[dict[str, bytes], Matrix, list[float]]:
    """A TF.js layers model: Dense(2, softmax) on 3 inputs. Returns files, kernel, bias."""
    rng = random.Random(seed)
    kernel = [[float32(rng.gauss(0, 1)) for _ in range(2)] for _ in range(3)]
    bias = [float32(rng.gauss(0, 1)) for _ in range(2)]
    topology = {
        "class_name": "Sequential",
        "config": {
            "name": "tiny",
            "layers": [
                {
                    "class_name": "Dense",
                    "config": {
                        "name": "dense",
                        "units": 2,
                        "activation": "softmax",
                        "use_bias": True,
                        "batch_input_shape": [None, 3],
                        "dtype": "float32",
                        "trainable": True,
                    },
                }
            ],
        },
        "keras_version": "tfjs-layers 4.22.0",
        "backend": "tensor_flow.js",
    }
    manifest = [
        {
            "paths": ["weights.bin"],
            "weights": [
                {"name": "dense/kernel", "shape": [3, 2], "dtype": "float32"},
                {"name": "dense/bias", "shape": [2], "dtype": "float32"},
            ],
        }
    ]
    model_json = {
        "format": "layers-model",
        "generatedBy": "channelmodel tests",
        "modelTopology": topology,
        "weightsManifest": manifest,
    }
    # Row-major float32, in manifest order: kernel then bias.
    weights = struct.pack("<6f", *(w for row in kernel for w in row)) + struct.pack("<2f", *bias)
    metadata = {
        "labels": LABELS,
        "imageSize": 224,
        "packageName": "@teachablemachine/image",
        "modelName": "tiny",
    }
    files = {
        "model.json": json.dumps(model_json).encode(),
        "weights.bin": weights,
        "metadata.json": json.dumps(metadata).encode(),
    }
    return files, kernel, bias


def softmax_prediction(kernel: Matrix, bias: list[float]) -> Matrix:
    """What Dense(2, softmax) computes, in plain Python."""
    result = []
    for row in INPUT:
        logits = [sum(x * kernel[i][j] for i, x in enumerate(row)) + bias[j] for j in range(2)]
        exps = [math.exp(logit - max(logits)) for logit in logits]
        result.append([e / sum(exps) for e in exps])
    return result


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title><script src="/tf.min.js"></script></head>
<body><pre id="result">pending</pre>
<script>
const MODEL_SERVER = %(model_server)s;
(async () => {
  let result;
  try {
    const latest = await (await fetch(MODEL_SERVER + "/assets/ml-models/shop-1/latest.json")).json();
    const model = await tf.loadLayersModel(latest.modelUrl);
    const metadata = await (await fetch(latest.metadataUrl)).json();
    const output = model.predict(tf.tensor2d(%(input)s));
    result = {ok: true, version: latest.version, labels: metadata.labels,
              prediction: await output.array(), tfjs: tf.version.tfjs};
  } catch (error) {
    result = {ok: false, error: String(error)};
  }
  document.getElementById("result").textContent = JSON.stringify(result);
  await fetch("/result", {method: "POST", body: JSON.stringify(result)});
})();
</script></body></html>
"""


async def shop_page(model_server: str) -> tuple[web.Application, asyncio.Future[dict[str, Any]]]:
    """The page's own origin: the page, tf.min.js, and a place to POST the result."""
    result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    html = PAGE % {"model_server": json.dumps(model_server), "input": json.dumps(INPUT)}

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def tfjs(request: web.Request) -> web.FileResponse:
        return web.FileResponse(TFJS)

    async def receive(request: web.Request) -> web.Response:
        if not result.done():
            result.set_result(json.loads(await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/tf.min.js", tfjs)
    app.router.add_post("/result", receive)
    return app, result


async def run_chromium(url: str, result: asyncio.Future[dict[str, Any]]) -> dict[str, Any]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            return await asyncio.wait_for(result, RESULT_TIMEOUT_SECONDS)
        except TimeoutError:
            pytest.fail(f"the page reported nothing within {RESULT_TIMEOUT_SECONDS}s")
        finally:
            browser.terminate()
            await browser.wait()


@pytest.fixture
def browser_ready() -> None:
    if CHROMIUM is None:
        pytest.skip(
            "chromium is not installed: apt-get install chromium (Debian) to run the browser test"
        )
    if not TFJS.is_file():
        pytest.skip(f"TF.js is not installed at {TFJS}: run `cd tests/js && npm install`")


@pytest.fixture
async def model_server(
    store: ArtifactStore, request: pytest.FixtureRequest
) -> AsyncIterator[TestServer]:
    # The public base URL must name the server's own port, known only once it listens.
    server = TestServer(web.Application(), host="127.0.0.1")
    await server.start_server()
    port = server.port
    await server.close()
    origins = getattr(request, "param", ["*"])
    app = create_app(store, cors_origins=origins, public_base_url=f"http://127.0.0.1:{port}")
    async with TestServer(app, host="127.0.0.1", port=port) as real:
        yield real


@pytest.mark.usefixtures("browser_ready")
async def test_browser_loads_model_cross_origin_and_predicts(
    store: ArtifactStore, model_server: TestServer
) -> None:
    files, kernel, bias = tiny_layers_model(seed=3)
    store.publish_version("shop-1", "1.0.0", tiny_layers_model(seed=1)[0])
    store.publish_version("shop-1", "1.0.1", files)
    store.set_pointer("shop-1", {"version": "1.0.1", "pinned": False})

    app, result = await shop_page(f"http://127.0.0.1:{model_server.port}")
    async with TestServer(app, host="127.0.0.1") as page:
        assert page.port != model_server.port  # two origins
        outcome = await run_chromium(f"http://127.0.0.1:{page.port}/", result)

    assert outcome["ok"], outcome
    assert outcome["version"] == "1.0.1"
    assert outcome["labels"] == LABELS
    assert outcome["tfjs"].startswith("4.")
    expected = softmax_prediction(kernel, bias)
    for got_row, want_row in zip(outcome["prediction"], expected, strict=True):
        assert got_row == pytest.approx(want_row, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("store", ["file"], indirect=True)
@pytest.mark.parametrize("model_server", [["https://pos.other-shop.example"]], indirect=True)
@pytest.mark.usefixtures("browser_ready")
async def test_browser_is_refused_from_an_origin_not_allowed(
    store: ArtifactStore, model_server: TestServer
) -> None:
    store.publish_version("shop-1", "1.0.0", tiny_layers_model(seed=1)[0])
    app, result = await shop_page(f"http://127.0.0.1:{model_server.port}")
    async with TestServer(app, host="127.0.0.1") as page:
        outcome = await run_chromium(f"http://127.0.0.1:{page.port}/", result)

    # The same page and model as above: only the CORS policy differs, and the browser enforces it.
    assert not outcome["ok"]
    assert "fetch" in outcome["error"].lower()
