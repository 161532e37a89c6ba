"""The trained model recognises real product photos it never saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channelmodel_trainer.decode import decode_image
from channelmodel_trainer.embed import preprocess
from channelmodel_trainer.export import build_export_model
from tests.trainer.trainer_testlib import GROCERY_CLASSES, grocery_images

pytestmark = pytest.mark.slow

# 5 products: chance is 20%. The pretrained MobileNetV2 separates these
# visually different products almost perfectly (26/26 held-out photos with 10
# training photos each, seeds 0 and 1, with and without augmented views). A
# broken base (zeroed or random weights, wrong x/127-1 scaling, mixed-up
# labels) lands near chance. 0.8 = 4x chance: 5 wrong of 26 would still pass,
# a broken pipeline cannot.
MIN_ACCURACY = 0.8


def held_out_photos(grocery_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    photos = grocery_images(grocery_dir, "val", GROCERY_CLASSES, None)
    pixels = [decode_image(path.read_bytes()) for paths in photos.values() for path in paths]
    labels = [f"class-{c}" for c, paths in photos.items() for _ in paths]
    return np.stack(pixels), np.array(labels)


def test_validation_accuracy_is_far_above_chance(grocery_run: Any, grocery_dir: Path) -> None:
    pixels, truth = held_out_photos(grocery_dir)
    model = build_export_model(grocery_run.base, grocery_run.head.model)

    predicted = np.array(grocery_run.labels)[
        model.predict(preprocess(pixels), verbose=0).argmax(axis=1)
    ]
    accuracy = float(np.mean(predicted == truth))

    chance = 1 / len(GROCERY_CLASSES)
    assert len(truth) >= 20
    assert accuracy >= MIN_ACCURACY, f"held-out accuracy {accuracy:.2f} (chance {chance:.2f})"
    # The trainer's own validation split tells the same story.
    assert grocery_run.metrics["accuracy"] >= MIN_ACCURACY
