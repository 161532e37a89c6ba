"""The weights of a TF.js layers export, read straight from its shards.

In the format, `model.json`'s `weightsManifest` is a list of groups; a group's
`paths` are shards that, concatenated, hold its `weights` (name, shape, dtype)
back to back in little-endian order. Reading them with numpy skips
tensorflowjs's loader, which builds a whole second Keras model only for its
weights to be copied (1.6 s for MobileNetV2 on one core, on the fast path's
critical path). Quantised and non-float32 weights are refused with ValueError:
callers that must accept them fall back to the loader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def read_weights(
    model_json: Mapping[str, Any], read_shard: Callable[[str], bytes]
) -> dict[str, np.ndarray]:
    """Every weight of the export by its manifest name. `read_shard(path)` gives a shard's bytes."""
    arrays: dict[str, np.ndarray] = {}
    for group in model_json.get("weightsManifest") or []:
        buffer = b"".join(read_shard(str(path)) for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec.get("dtype", "float32") != "float32" or "quantization" in spec:
                raise ValueError(f"unsupported weight encoding for {spec['name']}")
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            if offset + 4 * count > len(buffer):
                raise ValueError(f"the shards end before weight {spec['name']}")
            arrays[spec["name"]] = np.frombuffer(
                buffer, dtype="<f4", count=count, offset=offset
            ).reshape(spec["shape"])
            offset += 4 * count
    return arrays


def by_layer_and_weight(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same weights keyed by their last two name parts, "layer/weight".

    Exports name weights with or without their models' scopes
    ("Conv1/kernel", "mobilenetv2_0.35_224/Conv1/kernel"); a key two weights
    share is ambiguous and left out, so a look-up of it fails.
    """
    keyed: dict[str, np.ndarray] = {}
    shared: set[str] = set()
    for name, array in arrays.items():
        key = "/".join(name.split(":")[0].split("/")[-2:])
        if key in keyed:
            shared.add(key)
        keyed[key] = array
    return {key: array for key, array in keyed.items() if key not in shared}
