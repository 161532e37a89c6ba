"""Augmented views of a product photo, computed once at embedding time.

A shop owner takes a few photos per product; the till's camera sees the
product at other distances, positions and light. Extra views (random resized
crops of the full-resolution photo, mirror, light jitter) let the head see
more of that variety at no cost per epoch. Crops come from the decoded photo,
not from the 224-pixel input, so they stay sharp: upscaled crops looked
blurry to the base and did not help (docs/benchmarks/trainer.md). The views
of an image depend only on its content hash, so cached embeddings stay valid.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance

from channelmodel_trainer.base_model import IMAGE_SIZE

MIN_AREA = 0.35  # of the photo's centre square, before the aspect change
JITTER = 0.2
# Decode photos at least this large so that the smallest crop still covers 224 pixels.
SOURCE_MIN_SIDE = round(IMAGE_SIZE / MIN_AREA**0.5)
RECIPE = (
    "rrc35-flip-jit20-full-v2"  # part of the embedding cache key: change it when the views change
)


def augmented_views(
    image: Image.Image, count: int, seed: int, size: int = IMAGE_SIZE
) -> np.ndarray:
    """`count` (size, size, 3) uint8 views of an upright RGB photo, deterministic for `seed`."""
    rng = np.random.default_rng(seed)
    width, height = image.size
    side = min(width, height)
    views = np.empty((count, size, size, 3), dtype=np.uint8)
    for index in range(count):
        area = rng.uniform(MIN_AREA, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        crop_w = min(width, round(side * np.sqrt(area * aspect)))
        crop_h = min(height, round(side * np.sqrt(area / aspect)))
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        view = image.resize(
            (size, size), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h)
        )
        if rng.random() < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            view = enhancer(view).enhance(rng.uniform(1 - JITTER, 1 + JITTER))
        views[index] = np.asarray(view, dtype=np.uint8)
    return views
