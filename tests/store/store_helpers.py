"""Content for store tests."""

from __future__ import annotations

import os


def model_files(seed: int = 0, weights_size: int = 4096) -> dict[str, bytes]:
    """Distinct, recognisable content per seed."""
    return {
        "model.json": f'{{"format": "layers-model", "seed": {seed}}}'.encode(),
        "weights.bin": os.urandom(weights_size),
        "metadata.json": f'{{"labels": ["p-{seed}"]}}'.encode(),
    }
