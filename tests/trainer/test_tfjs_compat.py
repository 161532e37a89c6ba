"""The export runs in real TF.js, as the shop's frontend runs it, and predicts
what Keras predicts: @teachablemachine/image 0.8.5 with its pinned
@tensorflow/tfjs 1.3.1, and plain @tensorflow/tfjs 4.22."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channelmodel_trainer.decode import decode_image
from channelmodel_trainer.embed import preprocess
from channelmodel_trainer.export import build_export_model
from tests.trainer.trainer_testlib import GROCERY_CLASSES, REPO_ROOT, grocery_images

pytestmark = pytest.mark.slow

JS_DIR = REPO_ROOT / "tests" / "js"
TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=["fast", "fineTune"])
def trained(
    request: pytest.FixtureRequest,
    grocery_run: Any,
    base_model: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """The fast path's run, and a (short) quality-path run on the same photos."""
    if request.param == "fast":
        return grocery_run
    from dataclasses import replace

    from channelmodel_trainer.finetune import FineTuneRecipe
    from channelmodel_trainer.pipeline import FINE_TUNE, TrainingRequest, run_training

    manifest = Path(grocery_run.manifest_path)
    run_request = TrainingRequest(
        manifest=str(manifest), channel_id="grocery", version="1.0.0", mode=FINE_TUNE,
        fine_tune=replace(FineTuneRecipe(), epochs=2, probe_epochs=5),
    )  # fmt: skip
    return run_training(run_request, None, base=base_model)


def head_of(run: Any) -> Any:
    return run.head.model if run.head is not None else run.fine_tuned.head


@pytest.fixture(scope="module")
def served_export(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("export")
    for name, data in trained.files.items():
        (folder / name).write_bytes(data)
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def inputs(grocery_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """Real held-out photos, preprocessed as TM does, as raw float32 for node."""
    photos = grocery_images(grocery_dir, "val", GROCERY_CLASSES, 2)
    pixels = np.stack(
        [decode_image(path.read_bytes()) for paths in photos.values() for path in paths]
    )
    batch = preprocess(pixels)
    path = tmp_path_factory.mktemp("inputs") / "inputs.f32"
    batch.astype("<f4").tofile(path)
    return batch, path


def run_node(script: Path, base_url: str, inputs_path: Path, count: int) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/setup.sh installs it)")
    modules = script.parent / "node_modules" / "@tensorflow" / "tfjs"
    if not modules.is_dir():
        pytest.skip(f"{modules} missing: run npm ci in {script.parent} (scripts/setup.sh does)")
    completed = subprocess.run(
        [node, str(script), base_url, str(inputs_path), str(count)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    # TF.js prints a banner about tfjs-node on stdout: the result is the JSON line.
    line = next(line for line in reversed(completed.stdout.splitlines()) if line.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    return result


@pytest.mark.parametrize(
    ("script", "tfjs_version"),
    [(JS_DIR / "tm" / "predict_tm.js", "1.3.1"), (JS_DIR / "predict_tfjs4.js", "4.22.0")],
    ids=["teachablemachine-tfjs-1.3.1", "tfjs-4.22"],
)
def test_tfjs_predicts_what_keras_predicts(
    trained: Any,
    served_export: str,
    inputs: tuple[np.ndarray, Path],
    script: Path,
    tfjs_version: str,
) -> None:
    batch, inputs_path = inputs
    keras_model = build_export_model(trained.base, head_of(trained))
    expected = keras_model.predict(batch, verbose=0)

    result = run_node(script, served_export, inputs_path, len(batch))

    assert result["tfjsVersion"] == tfjs_version
    actual = np.array(result["probabilities"])
    assert actual.shape == expected.shape == (len(batch), len(GROCERY_CLASSES))
    np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=0)
    if "labels" in result:  # the Teachable Machine library reads metadata.json
        assert result["labels"] == trained.labels
        assert result["totalClasses"] == len(trained.labels)


def test_export_is_one_shard_of_teachable_machine_size(trained: Any) -> None:
    grocery_run = trained
    model_json = json.loads(grocery_run.files["model.json"])
    (group,) = model_json["weightsManifest"]
    assert group["paths"] == ["weights.bin"]
    declared = sum(4 * int(np.prod(spec["shape"])) for spec in group["weights"])
    assert declared == len(grocery_run.files["weights.bin"])
    # TM's own export of this architecture with 2 classes is 2,154,032 bytes.
    assert 2_100_000 < len(grocery_run.files["weights.bin"]) < 2_300_000
    topology = json.dumps(model_json["modelTopology"])
    for unknown_to_tfjs_1 in ('"Functional"', '"module"', '"registered_name"', '"build_config"'):
        assert unknown_to_tfjs_1 not in topology
    metadata = json.loads(grocery_run.files["metadata.json"])
    assert metadata["imageSize"] == 224
    assert metadata["packageName"] == "@teachablemachine/image"
    assert metadata["labels"] == grocery_run.labels
    assert metadata["userMetadata"]["version"] == "1.0.0"
    assert metadata["userMetadata"]["channelId"] == "grocery"
    assert metadata["userMetadata"]["metrics"]["classes"] == len(GROCERY_CLASSES)
