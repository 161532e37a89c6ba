"""Export the trained model as Teachable Machine does: `model.json`, one
`weights.bin` shard and `metadata.json`, loadable by TF.js 1.3.1 (pinned by
`@teachablemachine/image` 0.8.5) and TF.js 4.x.

The model keeps TM's shape, Sequential[Sequential[MobileNetV2, pooling],
Sequential[Dense(100, relu), Dense(N, softmax, no bias)]], so the shop's
frontend runs it unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from channelmodel_trainer import tfcompat
from channelmodel_trainer.base_model import IMAGE_SIZE, BaseModel

WEIGHTS_FILE = "weights.bin"
# What `@teachablemachine/image` 0.8.5 writes; the library reads labels and imageSize.
TM_VERSION = "2.4.10"
TM_PACKAGE = "@teachablemachine/image"
TM_PACKAGE_VERSION = "0.8.5"
TFJS_VERSION = "1.3.1"
# TF.js 1.3.1 knows the functional model as "Model" and rejects keys it never saw.
_TOPOLOGY_KEYS_UNKNOWN_TO_TFJS_1 = ("module", "registered_name", "build_config")


def build_export_model(base: BaseModel, head: Any) -> Any:
    """The full classifier: image in [-1, 1] to class probabilities."""
    keras = tfcompat.tf_keras()
    return keras.Sequential([base.model, head], name="sequential")


def export_tfjs(model: Any) -> dict[str, bytes]:
    """`model.json` and `weights.bin` bytes of a tf_keras model."""
    tfjs = tfcompat.tensorflowjs()
    with tempfile.TemporaryDirectory(prefix="channelmodel-export-") as tmp, _quiet_keras_save():
        # One shard: TM writes a single weights.bin and frontends fetch exactly that.
        tfjs.converters.save_keras_model(model, tmp, weight_shard_size_bytes=1 << 40)
        model_json = json.loads((Path(tmp) / "model.json").read_text())
        weights = b"".join(
            (Path(tmp) / path).read_bytes()
            for group in model_json["weightsManifest"]
            for path in group["paths"]
        )
    model_json["modelTopology"] = make_tfjs1_compatible(model_json["modelTopology"])
    model_json["weightsManifest"] = [
        {
            "paths": [WEIGHTS_FILE],
            "weights": [
                spec for group in model_json["weightsManifest"] for spec in group["weights"]
            ],
        }
    ]
    return {
        "model.json": json.dumps(model_json, separators=(",", ":")).encode(),
        WEIGHTS_FILE: weights,
    }


@contextlib.contextmanager
def _quiet_keras_save() -> Iterator[None]:
    # tensorflowjs saves through HDF5 and reloads it: Keras warns about both, uselessly here.
    tf = tfcompat.tensorflow()
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def make_tfjs1_compatible(node: Any) -> Any:
    """Rewrite a tf_keras topology so TF.js 1.3.1 deserialises it (4.x accepts both)."""
    if isinstance(node, list):
        return [make_tfjs1_compatible(item) for item in node]
    if isinstance(node, dict):
        fixed = {
            key: make_tfjs1_compatible(value)
            for key, value in node.items()
            if key not in _TOPOLOGY_KEYS_UNKNOWN_TO_TFJS_1
        }
        if fixed.get("class_name") == "Functional":
            fixed["class_name"] = "Model"
        return fixed
    return node


def metadata_json(
    *,
    labels: Sequence[str],
    channel_id: str,
    version: str,
    metrics: Mapping[str, object],
    now: dt.datetime | None = None,
    base_identity: str | None = None,
) -> bytes:
    """Teachable Machine's metadata fields, with ours under `userMetadata`."""
    stamp = (
        (now or dt.datetime.now(dt.UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    metadata = {
        "tfjsVersion": TFJS_VERSION,
        "tmVersion": TM_VERSION,
        "packageVersion": TM_PACKAGE_VERSION,
        "packageName": TM_PACKAGE,
        "timeStamp": stamp,
        "userMetadata": {
            "version": version,
            "channelId": channel_id,
            "metrics": dict(metrics),
            # names the base's weights: the fast path trains on the served model's base
            **({"baseIdentity": base_identity} if base_identity else {}),
        },
        "modelName": f"channel-{channel_id}-v{version}",
        "labels": list(labels),
        "imageSize": IMAGE_SIZE,
    }
    return json.dumps(metadata, indent=2).encode()
