"""Reading a TF.js layers model.json: is it one, and how many classes does it output.

Teachable Machine nests models (Sequential[Sequential[MobileNet, pooling],
Sequential[Dense, Dense]]), and older exporters write a Sequential's config as
a bare list of layers, newer ones as {name, layers}. The output size is the
`units` of the Dense layer the output comes from, looking through nested
models and through layers that keep the shape (an Activation after the Dense).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from channelmodel.migrate.errors import ImportRefused

LAYERS_MODEL_FORMAT = "layers-model"
_SHAPE_KEEPING = frozenset(
    {
        "Activation",
        "Softmax",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "PReLU",
        "ThresholdedReLU",
        "Dropout",
        "AlphaDropout",
        "GaussianDropout",
        "GaussianNoise",
        "BatchNormalization",
        "LayerNormalization",
        "ActivityRegularization",
    }
)


def parse_model_json(raw: bytes) -> dict[str, Any]:
    """model.json as a dict, refused unless it is a TF.js layers model."""
    try:
        model = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ImportRefused("model.json is not a TF.js model: it is not JSON") from None
    if not isinstance(model, dict):
        raise ImportRefused("model.json is not a TF.js model: not a JSON object")
    fmt = model.get("format")
    if fmt is not None and fmt != LAYERS_MODEL_FORMAT:
        raise ImportRefused(
            f"model.json is a TF.js {fmt!r}, not a layers model as Teachable Machine exports"
        )
    topology = model.get("modelTopology")
    if not isinstance(topology, dict):
        raise ImportRefused("model.json is not a TF.js layers model: no modelTopology")
    if "node" in topology:
        raise ImportRefused("model.json is a TF.js graph model, not a layers model")
    manifest = model.get("weightsManifest")
    if not isinstance(manifest, list) or not manifest:
        raise ImportRefused("model.json is not a TF.js layers model: no weightsManifest")
    return model


def root_layer(topology: Mapping[str, Any]) -> Mapping[str, Any]:
    """The model itself: Keras' saved form wraps it in `model_config`."""
    root = topology.get("model_config", topology)
    if not isinstance(root, Mapping) or "class_name" not in root:
        raise ImportRefused("model.json: modelTopology has no model class_name")
    return root


def output_units(topology: Mapping[str, Any]) -> int:
    """Number of outputs of the model (the classes of an image classifier)."""
    units = _units(root_layer(topology))
    if units is None:
        raise ImportRefused(
            "model.json: cannot tell the output size (the output does not come from a Dense layer)"
        )
    return units


def _units(layer: Mapping[str, Any]) -> int | None:
    class_name = layer.get("class_name")
    config = layer.get("config")
    if class_name == "Dense" and isinstance(config, Mapping):
        units = config.get("units")
        return units if isinstance(units, int) and units > 0 else None
    if class_name == "Sequential":
        return _last_units(_sequential_layers(config))
    if class_name in ("Model", "Functional") and isinstance(config, Mapping):
        return _functional_units(config)
    return None


def _sequential_layers(config: Any) -> Sequence[Mapping[str, Any]]:
    layers = config if isinstance(config, list) else (config or {}).get("layers")
    if not isinstance(layers, list):
        raise ImportRefused("model.json: a Sequential model without layers")
    return [layer for layer in layers if isinstance(layer, Mapping)]


def _last_units(chain: Sequence[Mapping[str, Any]]) -> int | None:
    for layer in reversed(chain):
        units = _units(layer)
        if units is not None:
            return units
        if layer.get("class_name") not in _SHAPE_KEEPING:
            return None
    return None


def _functional_units(config: Mapping[str, Any]) -> int | None:
    outputs = config.get("output_layers")
    layers = {
        layer.get("config", {}).get("name") or layer.get("name"): layer
        for layer in config.get("layers") or []
        if isinstance(layer, Mapping)
    }
    if not isinstance(outputs, list) or len(outputs) != 1:
        raise ImportRefused("model.json: only single-output models can be imported")
    name = outputs[0][0] if isinstance(outputs[0], list) else None
    chain: list[Mapping[str, Any]] = []
    # Walk back from the output through shape-keeping layers to the layer that sets the size.
    while isinstance(name, str) and name in layers and len(chain) <= len(layers):
        layer = layers[name]
        chain.insert(0, layer)
        if layer.get("class_name") not in _SHAPE_KEEPING:
            break
        name = _first_inbound(layer)
    return _last_units(chain)


def _first_inbound(layer: Mapping[str, Any]) -> str | None:
    try:
        inbound = layer["inbound_nodes"][0][0]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(inbound, list) and inbound and isinstance(inbound[0], str):
        return inbound[0]
    return None
