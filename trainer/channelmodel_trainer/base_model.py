"""The frozen, pretrained image base: MobileNetV2 alpha 0.35, 224x224, cut at
`out_relu`, global-average pooled to a 1280-float embedding (Teachable Machine's base).

Two sources give the same architecture (built by `tf_keras.applications`):
- `imagenet`: Keras's own ImageNet weights (downloaded once, or baked into the
  trainer image under ~/.keras/models);
- a Teachable Machine / TF.js layers export (zip, folder or model.json): its
  MobileNetV2 weights are read straight from its shards (tfjs_weights.py) and
  matched by layer and name; exports that cannot be read so (quantised
  weights) go through tensorflowjs's loader and are copied layer by layer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from channelmodel_trainer import tfcompat, tfjs_weights
from channelmodel_trainer.errors import BaseModelError

ALPHA = 0.35
IMAGE_SIZE = 224
EMBEDDING_SIZE = 1280
IMAGENET_WEIGHTS_ENV = "CHANNELMODEL_IMAGENET_WEIGHTS"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModel:
    """`model` maps (n, 224, 224, 3) floats in [-1, 1] to (n, 1280) embeddings."""

    model: Any
    identity: str  # names the weights: part of every embedding cache key
    source: str


def load_base_model(spec: str) -> BaseModel:
    """Load the base named by `spec`: "imagenet" or a path to a TF.js / TM export."""
    if spec != "imagenet" and not Path(spec).exists():
        raise BaseModelError(
            f"base model {spec} does not exist (use 'imagenet' or a path to a TF.js export)"
        )
    keras = tfcompat.tf_keras()
    mobilenet = _mobilenet(keras, weights=imagenet_weights() if spec == "imagenet" else None)
    if spec != "imagenet":
        _copy_weights_from_tfjs(Path(spec), mobilenet)
    mobilenet.trainable = False
    base = keras.Sequential(
        [mobilenet, keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")],
        name="base",
    )
    base.trainable = False
    return BaseModel(model=base, identity=identity_of(mobilenet), source=spec)


def imagenet_weights() -> str:
    """Keras's ImageNet weights: a baked-in file when the image names one.

    With a read-only root filesystem tf_keras looks for its cache under /tmp
    and would try to download; the trainer image points here instead.
    """
    baked = os.environ.get(IMAGENET_WEIGHTS_ENV)
    if baked:
        if not Path(baked).is_file():
            raise BaseModelError(f"{IMAGENET_WEIGHTS_ENV}={baked} does not exist")
        return baked
    return "imagenet"


def _mobilenet(keras: Any, weights: str | None) -> Any:
    try:
        return keras.applications.MobileNetV2(
            input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
            alpha=ALPHA,
            include_top=False,
            weights=weights,
        )
    except Exception as exc:  # Keras raises bare Exception on download failure
        raise BaseModelError(
            f"cannot load ImageNet weights for MobileNetV2 {ALPHA} ({exc.__class__.__name__}); "
            "bake them into the image or pass --base-model PATH to a Teachable Machine export"
        ) from exc


def _copy_weights_from_tfjs(path: Path, target: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="channelmodel-base-") as tmp:
        model_json = _model_json_path(path, Path(tmp))
        try:
            _set_weights_from_shards(model_json, target)
            return
        except (ValueError, KeyError, OSError) as exc:
            # Quantised or otherwise unusual exports: the loader reads what it can.
            log.info("reading %s through tensorflowjs's loader: %s", path, exc)
        tfjs = tfcompat.tensorflowjs()
        try:
            source = tfjs.converters.load_keras_model(str(model_json))
        except Exception as exc:
            raise BaseModelError(f"cannot load TF.js model {path}: {exc}") from exc
    layers = {layer.name: layer for layer in _all_layers(source) if layer.weights}
    missing = [layer.name for layer in target.layers if layer.weights and layer.name not in layers]
    if missing:
        raise BaseModelError(
            f"{path} is not a MobileNetV2 {ALPHA} export: no weights for {len(missing)} layers, e.g. {missing[0]}"
        )
    for layer in target.layers:
        if layer.weights:
            try:
                layer.set_weights(layers[layer.name].get_weights())
            except ValueError as exc:
                raise BaseModelError(
                    f"{path}: layer {layer.name} does not match MobileNetV2 {ALPHA}: {exc}"
                ) from exc


def _set_weights_from_shards(model_json: Path, target: Any) -> None:
    """Set every weight of `target` from the export's shards, matched by layer and name."""

    def read_shard(name: str) -> bytes:
        # Shards sit beside model.json: a path that leaves the folder is refused
        # (an error, not a reason to try the loader, which would follow it).
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise BaseModelError(f"{model_json}: shard path {name!r} is not a plain file name")
        return (model_json.parent / name).read_bytes()

    arrays = tfjs_weights.by_layer_and_weight(
        tfjs_weights.read_weights(json.loads(model_json.read_bytes()), read_shard)
    )
    updates: list[tuple[Any, np.ndarray]] = []
    for layer in target.layers:
        for weight in layer.weights:
            key = f"{layer.name}/{weight.name.split('/')[-1].split(':')[0]}"
            array = arrays[key]
            if tuple(array.shape) != tuple(weight.shape):
                raise ValueError(f"{key} has shape {array.shape}, not {tuple(weight.shape)}")
            updates.append((weight, array))
    for weight, array in updates:  # all found and shaped: only then change the model
        weight.assign(array)


def _model_json_path(path: Path, scratch: Path) -> Path:
    if not path.exists():
        raise BaseModelError(f"base model {path} does not exist")
    if path.is_dir():
        path = path / "model.json"
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in ("model.json", "weights.bin"):
                if name not in archive.namelist():
                    raise BaseModelError(f"{path} has no {name}: not a Teachable Machine export")
            for member in archive.namelist():
                # Only flat names: an archive cannot write outside the scratch folder.
                if "/" not in member and "\\" not in member and member not in ("", ".", ".."):
                    (scratch / member).write_bytes(archive.read(member))
        path = scratch / "model.json"
    if not path.is_file():
        raise BaseModelError(f"{path} not found")
    return path


def _all_layers(model: Any) -> list[Any]:
    """Layers of a model and of every model nested in it (TM nests two levels)."""
    found: list[Any] = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_all_layers(layer))
    return found


def identity_of(mobilenet: Any) -> str:
    """Names the weights (a hash of them): part of every embedding cache key."""
    digest = hashlib.sha256()
    for weight in mobilenet.weights:
        digest.update(weight.numpy().tobytes())
    return f"mobilenetv2-{ALPHA}-{IMAGE_SIZE}-{digest.hexdigest()[:16]}"
