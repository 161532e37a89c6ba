"""Train the classification head on base embeddings.

Head: Dense(100, relu) + Dense(N, softmax, no bias), Teachable Machine's. The
split, the balancing and the use of augmented views are the recipe's; the
quality benchmark (bench/trainer_quality.py) measures each choice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from channelmodel_trainer import tfcompat
from channelmodel_trainer.base_model import EMBEDDING_SIZE

HIDDEN_UNITS = 100
STEPS_PER_EXECUTION = 32


@dataclass(frozen=True)
class HeadRecipe:
    epochs: int = 20
    batch_size: int = 16
    batch_per_photo: bool = True  # with views, a step holds batch_size photos' worth of rows
    learning_rate: float = 0.001
    validation_fraction: float = 0.15  # per class, as Teachable Machine holds out
    balance_classes: bool = True  # weight classes by inverse frequency
    use_views: bool = True  # train on the augmented views as well as the photo
    # Retrain the exported head on every photo after measuring: measured no
    # better within noise and twice the time, and `accuracy` then describes
    # another model than the one served. Off.
    refit_on_all: bool = False
    # From the served head (WarmStart), the full schedule: after a nightly, 0.7 points
    # from a full quality run at 10 photos against 1.5 with half the epochs at a third
    # of the rate and 4.1 from scratch (bench/trainer_quality.py --fast-after, 3 seeds).
    warm_epochs: int = 20
    warm_learning_rate: float = 1e-3
    seed: int = 0

    def starting(self, warm: bool) -> HeadRecipe:
        """The schedule of a head from random weights, or (`warm`) from the served one."""
        if not warm:
            return self
        return replace(self, epochs=self.warm_epochs, learning_rate=self.warm_learning_rate)


# Teachable Machine's own recipe (teachable-mobilenet.ts): 50 epochs, batch 16,
# Adam 0.001, 15% held out, no balancing, photos only.
TM_RECIPE = HeadRecipe(epochs=50, balance_classes=False, use_views=False, batch_per_photo=False)


@dataclass(frozen=True)
class WarmStart:
    """A head to start from instead of random weights: the served head when the run
    trains on the base it was trained on (the fast path after a nightly). Its hidden
    layer, and its output column for each product it knew, by the new product index;
    new products' columns start random."""

    hidden_kernel: np.ndarray  # (1280, 100)
    hidden_bias: np.ndarray  # (100,)
    columns: dict[int, np.ndarray]  # new class index -> (100,) output column

    @classmethod
    def from_head(
        cls, weights: Sequence[np.ndarray], old_labels: Sequence[str], new_labels: Sequence[str]
    ) -> WarmStart:
        """From [W1, b1, W2] of a head over `old_labels`, for a head over `new_labels`."""
        kernel, bias, output = weights
        old = {label: index for index, label in enumerate(old_labels)}
        return cls(
            hidden_kernel=np.asarray(kernel, dtype=np.float32),
            hidden_bias=np.asarray(bias, dtype=np.float32),
            columns={
                new: np.asarray(output[:, old[label]], dtype=np.float32)
                for new, label in enumerate(new_labels)
                if label in old
            },
        )

    @classmethod
    def from_model(cls, head: Any) -> WarmStart:
        """From a tf_keras head over the same products in the same order."""
        weights = head.get_weights()
        same = [str(index) for index in range(weights[2].shape[1])]
        return cls.from_head(weights, same, same)

    def apply(self, head: Any) -> None:
        hidden, output = head.layers
        hidden.set_weights([self.hidden_kernel, self.hidden_bias])
        (kernel,) = output.get_weights()
        for index, column in self.columns.items():
            kernel[:, index] = column
        output.set_weights([kernel])


@dataclass(frozen=True)
class TrainedHead:
    model: Any  # tf_keras Sequential: (n, 1280) embeddings to (n, classes) probabilities
    accuracy: float | None  # top-1 on held-out photos; None when no class had enough photos
    train_images: int
    validation_images: int
    validation_indices: np.ndarray | None = None  # which photos were held out


def split_per_class(
    labels: np.ndarray,
    fraction: float,
    seed: int,
    groups: Sequence[str | None] | None = None,
    keys: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation photos: each class keeps ceil((1 - f) n) for training.

    With `keys` (per photo: its content hash) the order within a class is a
    hash of the seed and the key, so a photo stays on its side when other
    products or photos come and go: the served model never trained on the
    photos the next run holds out, and the gate compares like with like.
    Without keys the order is a seeded permutation.

    With `groups` (per photo: the manifest's group or capture day, or None), a
    class whose photos fall in two or more groups holds out whole groups
    instead, in a seeded order, until at least its share is held out and at
    least one group is left for training: the held-out photos were then taken
    apart from the training ones, like the till's camera sees them.
    """
    rng = np.random.default_rng(seed)

    def ordered(items: list[Any], names: list[str]) -> list[Any]:
        if keys is None:
            return [items[i] for i in rng.permutation(len(items))]
        rank = [hashlib.sha256(f"{seed}:{name}".encode()).hexdigest() for name in names]
        return [item for _, item in sorted(zip(rank, items, strict=True))]

    train: list[int] = []
    validation: list[int] = []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label).tolist()
        members = ordered(indices, [keys[i] for i in indices] if keys is not None else [])
        by_group: dict[str, list[int]] = {}
        if groups is not None:
            for index in members:
                by_group.setdefault(groups[index] or f"photo:{index}", []).append(index)
        named = [key for key in by_group if not key.startswith("photo:")]
        if groups is not None and len(named) >= 2:
            names = sorted(by_group)
            order = ordered(names, names)
            target = len(members) * fraction
            held: list[int] = []
            for position, key in enumerate(order):
                if len(held) >= target or position == len(order) - 1:
                    train.extend(index for rest in order[position:] for index in by_group[rest])
                    break
                held.extend(by_group[key])
            validation.extend(held)
            continue
        keep = math.ceil(len(members) * (1 - fraction))
        train.extend(members[:keep])
        validation.extend(members[keep:])
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(validation), dtype=np.int64)


def build_head(num_classes: int, seed: int) -> Any:
    keras = tfcompat.tf_keras()
    # TM's initialiser: VarianceScaling(scale 1, fan_in, normal).
    init = keras.initializers.VarianceScaling(
        scale=1.0, mode="fan_in", distribution="normal", seed=seed
    )
    return keras.Sequential(
        [
            keras.Input((EMBEDDING_SIZE,)),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=init),
            keras.layers.Dense(
                num_classes, activation="softmax", use_bias=False, kernel_initializer=init
            ),
        ],
        name="head",
    )


def train_head(
    embeddings: Sequence[np.ndarray],
    labels: np.ndarray,
    num_classes: int,
    recipe: HeadRecipe,
    on_epoch: Any = None,
    groups: Sequence[str | None] | None = None,
    keys: Sequence[str] | None = None,
    warm_start: WarmStart | None = None,
) -> TrainedHead:
    """`embeddings[i]` is photo i's (1 + views, 1280) array, plain view first; `keys[i]`
    its content hash (a stable split, see split_per_class)."""
    train_idx, val_idx = split_per_class(
        labels, recipe.validation_fraction, recipe.seed, groups, keys
    )
    head = _fit(embeddings, labels, train_idx, num_classes, recipe, on_epoch, warm_start)
    accuracy: float | None = None
    if len(val_idx):
        plain = np.stack([embeddings[i][0] for i in val_idx])
        predicted = top_classes(head.get_weights(), plain)
        accuracy = float(np.mean(predicted == labels[val_idx]))
    if recipe.refit_on_all and len(val_idx):
        head = _fit(
            embeddings, labels, np.arange(len(labels)), num_classes, recipe, on_epoch, warm_start
        )
    return TrainedHead(head, accuracy, len(train_idx), len(val_idx), val_idx)


def top_classes(weights: Sequence[np.ndarray], embeddings: np.ndarray) -> np.ndarray:
    """The head's top class per (n, 1280) embedding, from [W1, b1, W2], in NumPy: a
    Keras predict() traces a function first, longer than this takes."""
    kernel, bias, output = weights
    hidden = np.maximum(embeddings.astype(np.float32, copy=False) @ kernel + bias, 0.0)
    result: np.ndarray = (hidden @ output).argmax(axis=1)  # softmax keeps the order
    return result


def _fit(
    embeddings: Sequence[np.ndarray],
    labels: np.ndarray,
    indices: np.ndarray,
    num_classes: int,
    recipe: HeadRecipe,
    on_epoch: Any,
    warm_start: WarmStart | None = None,
) -> Any:
    keras = tfcompat.tf_keras()
    keras.utils.set_random_seed(recipe.seed)
    features, targets = _training_rows(embeddings, labels, indices, recipe.use_views)
    head = build_head(num_classes, recipe.seed)
    recipe = recipe.starting(warm=warm_start is not None)
    if warm_start is not None:
        warm_start.apply(head)
    rows_per_photo = len(features) // max(len(indices), 1)
    head.compile(
        optimizer=keras.optimizers.Adam(recipe.learning_rate),
        loss="sparse_categorical_crossentropy",
        # Many tiny steps per call: Keras's per-step overhead dominates this small model.
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    # Slots made now, not in the first step: else fit() traces its step function twice.
    head.optimizer.build(head.trainable_variables)
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=on_epoch)] if on_epoch else []
    head.fit(
        features,
        targets,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size * (rows_per_photo if recipe.batch_per_photo else 1),
        shuffle=True,
        class_weight=_class_weights(targets, num_classes) if recipe.balance_classes else None,
        verbose=0,
        callbacks=callbacks,
    )
    return head


def _training_rows(
    embeddings: Sequence[np.ndarray], labels: np.ndarray, indices: np.ndarray, use_views: bool
) -> tuple[np.ndarray, np.ndarray]:
    rows = [embeddings[i] if use_views else embeddings[i][:1] for i in indices]
    features = np.concatenate(rows).astype(np.float32, copy=False)
    targets = np.concatenate(
        [np.full(len(row), labels[i]) for row, i in zip(rows, indices, strict=True)]
    )
    return features, targets.astype(np.int64)


def _class_weights(targets: np.ndarray, num_classes: int) -> dict[int, float]:
    counts = np.bincount(targets, minlength=num_classes)
    total = counts.sum()
    return {
        label: float(total / (num_classes * count)) for label, count in enumerate(counts) if count
    }
