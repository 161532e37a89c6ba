"""Augmented views of a product photo, computed once at embedding time.

A shop owner takes a few photos per product; the till's camera sees the product
at other scales, positions and light. Extra views (random resized crop, mirror,
light jitter) make the head see more of that variety at no cost per epoch. The
views of an image depend only on its content hash, so cached embeddings stay valid.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance

RECIPE = "rrc60-flip-jit20-v1"  # bump when the views change: part of the cache key


def augmented_views(image: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` views of a (size, size, 3) uint8 image, deterministic for `seed`."""
    size = image.shape[0]
    rng = np.random.default_rng(seed)
    source = Image.fromarray(image)
    views = np.empty((count, size, size, 3), dtype=np.uint8)
    for index in range(count):
        area = rng.uniform(0.6, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        width = min(size, round(size * np.sqrt(area * aspect)))
        height = min(size, round(size * np.sqrt(area / aspect)))
        left = int(rng.integers(0, size - width + 1))
        top = int(rng.integers(0, size - height + 1))
        view = source.resize(
            (size, size), Image.Resampling.BILINEAR, box=(left, top, left + width, top + height)
        )
        if rng.random() < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.8, 1.2))
        view = ImageEnhance.Contrast(view).enhance(rng.uniform(0.8, 1.2))
        view = ImageEnhance.Color(view).enhance(rng.uniform(0.8, 1.2))
        views[index] = np.asarray(view, dtype=np.uint8)
    return views
