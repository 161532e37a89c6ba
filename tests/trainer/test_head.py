"""The head's training and scoring on embeddings, without images."""

from __future__ import annotations

import numpy as np

from channelmodel_trainer.collect import Collected
from channelmodel_trainer.train import HeadRecipe, WarmStart, top_classes, train_head


def _clusters(classes: int, per_class: int, views: int, seed: int = 0) -> list[np.ndarray]:
    """Per photo (1 + views, 1280) rows near its class's centre: separable, not trivially."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 1280)).astype(np.float32)
    return [
        (centres[c] + rng.normal(scale=1.5, size=(1 + views, 1280))).astype(np.float32)
        for c in range(classes)
        for _ in range(per_class)
    ]


def test_the_reported_accuracy_is_the_keras_heads_own_on_the_held_out_photos() -> None:
    classes, per_class = 6, 8
    embeddings = _clusters(classes, per_class, views=2)
    labels = np.repeat(np.arange(classes), per_class)
    trained = train_head(embeddings, labels, classes, HeadRecipe(epochs=3, seed=1))
    assert trained.validation_indices is not None and len(trained.validation_indices)

    plain = np.stack([embeddings[i][0] for i in trained.validation_indices])
    keras_top = trained.model.predict(plain, verbose=0).argmax(axis=1)
    assert np.array_equal(top_classes(trained.model.get_weights(), plain), keras_top)
    expected = float(np.mean(keras_top == labels[trained.validation_indices]))
    assert trained.accuracy == expected
    assert trained.accuracy > 1 / classes  # it learned something: the test can tell


def test_a_warm_started_head_starts_from_the_weights_it_was_given() -> None:
    classes, per_class = 4, 6
    embeddings = _clusters(classes, per_class, views=1, seed=2)
    labels = np.repeat(np.arange(classes), per_class)
    first = train_head(embeddings, labels, classes, HeadRecipe(epochs=5, seed=0))
    warm = WarmStart.from_model(first.model)
    # A rate of zero: the head is exactly the warm start (the optimizer's slots,
    # made before fit, change nothing by themselves).
    recipe = HeadRecipe(epochs=5, warm_epochs=1, warm_learning_rate=0.0, seed=0)
    again = train_head(embeddings, labels, classes, recipe, warm_start=warm)
    for before, after in zip(first.model.get_weights(), again.model.get_weights(), strict=True):
        assert np.array_equal(before, after)
    assert again.accuracy == first.accuracy


def test_a_tally_of_a_thousand_photos_has_a_short_repr() -> None:
    collected = Collected()
    for index in range(1000):
        sha = f"{index:064x}"
        collected.images.setdefault(f"p{index % 100}", []).append(sha)
        collected.embeddings[sha] = np.ones((11, 1280), dtype=np.float32)
    collected.skipped["p1"] = 2
    # asyncio.run formats its task's result when it returns: this must stay cheap.
    assert repr(collected) == "Collected(100 products, 1000 photos, 2 skipped)"
