"""The weights manifest of a TF.js layers model: expected byte sizes, one shard out.

TF.js reads each manifest group's shards as one buffer holding the group's
weights in order, so a group's shards must add up exactly to the sum of
prod(shape) * bytes(dtype) over its weights (the quantized dtype when the
weights are quantized). Joining every group's shards in order and listing all
weights in one group gives the same bytes to the same weights: `weights.bin`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from channelmodel.migrate.errors import ImportRefused

WEIGHTS_FILE = "weights.bin"
DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "complex64": 8}
QUANTIZED_DTYPE_BYTES = {"uint8": 1, "uint16": 2, "float16": 2}


def spec_bytes(spec: Mapping[str, Any]) -> int:
    """Bytes one weight entry takes in its shard."""
    name = spec.get("name", "?")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ImportRefused(f"model.json: weight {name!r} has no valid shape")
    quantization = spec.get("quantization")
    if isinstance(quantization, Mapping):
        dtype = quantization.get("dtype")
        size = QUANTIZED_DTYPE_BYTES.get(str(dtype))
    else:
        dtype = spec.get("dtype", "float32")
        size = DTYPE_BYTES.get(str(dtype))
    if size is None:
        raise ImportRefused(f"model.json: weight {name!r} has unsupported dtype {dtype!r}")
    return math.prod(shape) * size


def groups(model: Mapping[str, Any]) -> list[tuple[list[str], list[dict[str, Any]]]]:
    """(paths, weights) of every manifest group, checked for shape."""
    result = []
    for index, group in enumerate(model["weightsManifest"]):
        paths = group.get("paths") if isinstance(group, Mapping) else None
        specs = group.get("weights") if isinstance(group, Mapping) else None
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise ImportRefused(f"model.json: weightsManifest group {index} has no paths")
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise ImportRefused(f"model.json: weightsManifest group {index} has no weights list")
        result.append((paths, specs))
    names = [spec.get("name") for _, specs in result for spec in specs]
    duplicates = sorted({str(n) for n in names if names.count(n) > 1})
    if duplicates:
        raise ImportRefused(f"model.json: weights listed twice: {', '.join(duplicates[:5])}")
    return result


def single_weights_file(
    model: Mapping[str, Any], read: Callable[[str], bytes]
) -> tuple[bytes, list[dict[str, Any]]]:
    """All shards joined in manifest order, and the weight list of the one group."""
    chunks: list[bytes] = []
    all_specs: list[dict[str, Any]] = []
    for paths, specs in groups(model):
        data = b"".join(read(path) for path in paths)
        expected = sum(spec_bytes(spec) for spec in specs)
        if len(data) != expected:
            raise ImportRefused(
                f"{_shown(paths)} {'is' if len(paths) == 1 else 'are'} {len(data)} bytes, "
                f"but model.json's weightsManifest needs {expected}"
            )
        chunks.append(data)
        all_specs.extend(specs)
    return b"".join(chunks), all_specs


def is_single_weights_bin(model: Mapping[str, Any]) -> bool:
    manifest = model["weightsManifest"]
    return len(manifest) == 1 and manifest[0].get("paths") == [WEIGHTS_FILE]


def _shown(paths: Sequence[str]) -> str:
    return paths[0] if len(paths) == 1 else f"{' + '.join(paths)} together"
