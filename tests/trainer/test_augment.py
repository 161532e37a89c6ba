"""Augmented views: deterministic per photo (so cached embeddings stay valid), varied."""

from __future__ import annotations

import numpy as np
from PIL import Image

from channelmodel_trainer.augment import augmented_views
from channelmodel_trainer.collect import photo_and_views
from channelmodel_trainer.decode import decode_image
from tests.trainer.trainer_testlib import patterned_jpeg


def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))


def test_views_are_deterministic_per_seed_and_differ_between_views() -> None:
    first = augmented_views(photo(), 4, seed=7)
    again = augmented_views(photo(), 4, seed=7)
    other = augmented_views(photo(), 4, seed=8)

    assert first.shape == (4, 224, 224, 3)
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert len({view.tobytes() for view in first}) == 4


def test_first_row_is_the_model_input_then_the_views() -> None:
    data = patterned_jpeg(3, size=500)

    rows = photo_and_views(data, 2)

    assert rows.shape == (3, 224, 224, 3)
    # The plain view is TM's centre crop (decoded at another JPEG scale: nearly equal).
    assert np.abs(rows[0].astype(int) - decode_image(data).astype(int)).mean() < 3
    np.testing.assert_array_equal(photo_and_views(data, 2), rows)
    np.testing.assert_array_equal(photo_and_views(data, 0), decode_image(data)[np.newaxis])
