"""The quality path: fine-tune the base network on the channel's own photos.

The fast path (train.py) trains the head on embeddings of a frozen base. Here
every weight of MobileNetV2 learns too:

1. linear probe: the head is first trained on the frozen base's embeddings of
   the plain photos (seconds), so fine-tuning starts from a sensible head and
   the base is not wrecked by the gradients of a random one;
2. fine-tuning: a custom loop, augmentation drawn afresh every epoch (random
   resized crops of the photo, mirror, colour jitter; optional mixup), label
   smoothing, class-balanced loss, two Adam optimisers (the base at 3e-4, the
   head at 1e-3), one epoch of linear warm-up, cosine decay, at most
   `max_images` training images in all (bounds CPU time on large catalogs);
3. BatchNorm stays in inference mode (moving statistics frozen, scale and
   offset still learn): with batches of a few dozen photos of few products,
   batch statistics are noise and would change what the exported model computes;
4. early stopping on the held-out photos (the best epoch of the second half of
   the schedule kept, patience; the first half dips below the probe before it
   climbs) when there are any, else the recipe's epochs.

The result is a new base (same architecture, new weights, new identity, so
the embedding cache never mixes bases) plus a head: the export is unchanged,
Teachable Machine's Sequential[Sequential[MobileNetV2, pooling], head].
Runs on the GPU when TensorFlow sees one, else on the CPU.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from channelmodel_trainer import tfcompat
from channelmodel_trainer.base_model import IMAGE_SIZE, BaseModel, identity_of
from channelmodel_trainer.decode import open_upright
from channelmodel_trainer.train import build_head

log = logging.getLogger(__name__)

# Photos are kept as centre squares of this side: crops of 35% of the area
# still cover 224 pixels without upscaling much, and 2,600 photos take 650 MB.
SOURCE_SIDE = 288


@dataclass(frozen=True)
class FineTuneRecipe:
    epochs: int = 30
    # At most this many training images (forward and backward) in all: bounds the
    # CPU time of large catalogs (all 2,640 grocery photos: about 10 epochs).
    max_images: int = 24_000
    batch_size: int = 32
    head_learning_rate: float = 1e-3
    base_learning_rate: float = 3e-4
    probe_epochs: int = 30  # linear probe on frozen embeddings before fine-tuning
    warmup_epochs: float = 1.0  # learning rates rise linearly over these epochs
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.0  # 0: off; else lambda ~ Beta(a, a) per batch
    # 0: off; else the exported (and scored) weights are an exponential moving
    # average of the fine-tuned ones with this decay (tf.train.ExponentialMovingAverage).
    ema_decay: float = 0.0
    min_area: float = 0.35  # random resized crop: fraction of the photo's area
    jitter: float = 0.2  # brightness, contrast, saturation factors in [1 - j, 1 + j]
    patience: int = 4  # epochs without a better held-out accuracy before stopping
    first_trainable: str | None = None  # None: all of the base; else from this layer on
    balance_classes: bool = True
    seed: int = 0


@dataclass(frozen=True)
class FineTuned:
    base: BaseModel  # the fine-tuned base, frozen again
    head: Any  # tf_keras Sequential head
    accuracy: float | None  # top-1 on the held-out photos (best epoch), None without any
    epochs_run: int
    best_epoch: int
    images_per_second: float  # training images (forward + backward) per second


def prepare_photo(data: bytes, side: int = SOURCE_SIDE) -> np.ndarray:
    """(side, side, 3) uint8: the upright photo's centre square, kept for augmentation."""
    from channelmodel_trainer.decode import centre_square

    return centre_square(open_upright(data, min_side=side), side)


def fine_tune(
    base: BaseModel,
    photos: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    recipe: FineTuneRecipe = FineTuneRecipe(),
    *,
    on_epoch: Callable[[int, float | None], None] | None = None,
) -> FineTuned:
    """Fine-tune a copy of `base` and a new head on `photos[train_idx]`.

    `photos`: (n, side, side, 3) uint8 centre squares (prepare_photo); the
    held-out `photos[val_idx]` are scored on their plain 224 view each epoch.
    """
    import time

    tf = tfcompat.tensorflow()
    keras = tfcompat.tf_keras()
    keras.utils.set_random_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    gpus = tf.config.list_physical_devices("GPU")
    log.info(
        "fine-tuning on %s: %d photos, %d held out",
        f"{len(gpus)} GPU(s)" if gpus else "the CPU",
        len(train_idx),
        len(val_idx),
    )

    source = base.model.layers[0]
    mobilenet = keras.models.clone_model(source)
    mobilenet.set_weights(source.get_weights())
    mobilenet.trainable = True
    if recipe.first_trainable:
        trainable = False
        for layer in mobilenet.layers:
            trainable = trainable or layer.name.startswith(recipe.first_trainable)
            layer.trainable = trainable
    pool = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")
    head = build_head(num_classes, recipe.seed)

    plain = _plain_views(tf, photos)  # the model's input: the whole square at 224

    def embed(indices: np.ndarray) -> np.ndarray:
        out = [
            pool(mobilenet(_scale(tf, plain(indices[s : s + 64])), training=False)).numpy()
            for s in range(0, len(indices), 64)
        ]
        return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)

    weights = _class_weights(labels[train_idx], num_classes, recipe.balance_classes)

    # 1. Linear probe on the frozen base.
    if recipe.probe_epochs:
        features = embed(train_idx)
        head.compile(optimizer=keras.optimizers.Adam(recipe.head_learning_rate),
                     loss="sparse_categorical_crossentropy", steps_per_execution=32)  # fmt: skip
        head.fit(features, labels[train_idx], epochs=recipe.probe_epochs, batch_size=16,
                 class_weight={i: float(w) for i, w in enumerate(weights)},
                 shuffle=True, verbose=0)  # fmt: skip

    # 2. Fine-tune.
    steps_per_epoch = max(1, math.ceil(len(train_idx) / recipe.batch_size))
    epochs = planned_epochs(recipe, len(train_idx))
    total = steps_per_epoch * epochs
    base_vars = mobilenet.trainable_variables
    head_vars = head.trainable_variables
    warmup = min(total // 2, round(recipe.warmup_epochs * steps_per_epoch))

    def schedule(peak: float) -> Any:
        # Linear warm-up, then cosine decay: Adam's first steps move every weight
        # by about the learning rate, which knocked the probe's accuracy down.
        return keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else peak, max(1, total - warmup),
            warmup_target=peak if warmup else None, warmup_steps=warmup,
        )  # fmt: skip

    base_opt = keras.optimizers.Adam(schedule(recipe.base_learning_rate))
    head_opt = keras.optimizers.Adam(schedule(recipe.head_learning_rate))
    class_weight = tf.constant(weights, tf.float32)
    smoothing = recipe.label_smoothing

    trained_vars = base_vars + head_vars
    ema = None
    if recipe.ema_decay:
        ema = tf.train.ExponentialMovingAverage(recipe.ema_decay, num_updates=base_opt.iterations)
        ema.apply(trained_vars)  # the averages start at the probe's weights

    # No Python control flow on tensors inside: autograph has nothing to convert.
    @tf.function(reduce_retracing=True, autograph=False)  # type: ignore[untyped-decorator]
    def step(images: Any, boxes: Any, colour: Any, targets: Any, mix: Any, perm: Any) -> Any:
        x = _augment(tf, images, boxes, colour)
        y = tf.one_hot(targets, num_classes)
        y = y * (1.0 - smoothing) + smoothing / num_classes
        w = tf.gather(class_weight, targets)
        x = mix * x + (1.0 - mix) * tf.gather(x, perm)
        y = mix * y + (1.0 - mix) * tf.gather(y, perm)
        w = mix * w + (1.0 - mix) * tf.gather(w, perm)
        with tf.GradientTape() as tape:
            # training=False: BatchNorm uses (and keeps) its moving statistics.
            features = pool(mobilenet(x, training=False))
            probs = head(features, training=True)
            ce = -tf.reduce_sum(y * tf.math.log(tf.clip_by_value(probs, 1e-7, 1.0)), axis=1)
            loss = tf.reduce_sum(ce * w) / tf.reduce_sum(w)
        grads = tape.gradient(loss, base_vars + head_vars)
        base_opt.apply_gradients(zip(grads[: len(base_vars)], base_vars, strict=True))
        head_opt.apply_gradients(zip(grads[len(base_vars) :], head_vars, strict=True))
        if ema is not None:
            ema.apply(trained_vars)
        return loss

    def averaged() -> list[np.ndarray] | None:
        """Put the moving averages in the model; the raw weights, to put back."""
        if ema is None:
            return None
        raw = [variable.numpy() for variable in trained_vars]
        for variable in trained_vars:
            variable.assign(ema.average(variable))
        return raw

    def put_back(raw: list[np.ndarray] | None) -> None:
        for variable, value in zip(trained_vars, raw or [], strict=False):
            variable.assign(value)

    def score() -> float | None:
        if not len(val_idx):
            return None
        predicted = head.predict(embed(val_idx), verbose=0, batch_size=256).argmax(axis=1)
        return float(np.mean(predicted == labels[val_idx]))

    # Candidates for the kept model: the epochs of the second half of the schedule
    # only. Fine-tuning first dips below the linear probe (the base moves while the
    # rates are high) and climbs as they decay; a small held-out set of photos from
    # the training session favours the probe (10 photos per product: 0.88 for the
    # probe, never beaten, while fine-tuning wins on another day's photos).
    first_candidate = max(1, epochs // 2 + 1)
    best: float | None = None
    best_weights: tuple[Any, Any] | None = None
    best_epoch, since_best, epochs_run = 0, 0, 0
    trained_images, train_seconds = 0, 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(train_idx)
        started = time.perf_counter()
        for start in range(0, len(order), recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            n = len(batch)
            boxes = _boxes(rng, n, recipe.min_area)
            colour = rng.uniform(1 - recipe.jitter, 1 + recipe.jitter, (n, 3)).astype(np.float32)
            mix = np.float32(1.0)
            if recipe.mixup_alpha > 0:
                lam = rng.beta(recipe.mixup_alpha, recipe.mixup_alpha)
                mix = np.float32(max(lam, 1 - lam))
            step(
                tf.constant(photos[batch]),
                tf.constant(boxes),
                tf.constant(colour),
                tf.constant(labels[batch].astype(np.int32)),
                tf.constant(mix),
                tf.constant(rng.permutation(n).astype(np.int32)),
            )
            trained_images += n
        train_seconds += time.perf_counter() - started
        epochs_run = epoch
        raw = averaged()
        accuracy = score() if epoch >= first_candidate or on_epoch is not None else None
        if on_epoch is not None:
            on_epoch(epoch, accuracy)
        if epoch < first_candidate:
            pass
        elif accuracy is None:
            best_epoch = epoch  # nothing held out: the last epoch is kept
        elif best is None or accuracy > best:
            best, best_epoch, since_best = accuracy, epoch, 0
            best_weights = (mobilenet.get_weights(), head.get_weights())
        else:
            since_best += 1
        if epoch < epochs and since_best < recipe.patience:
            put_back(raw)  # training goes on from the raw weights
        else:
            break
    if best_weights is not None:
        mobilenet.set_weights(best_weights[0])
        head.set_weights(best_weights[1])
    return FineTuned(
        base=freeze(keras, mobilenet, source=f"fine-tuned from {base.identity}"),
        head=head,
        accuracy=best,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        images_per_second=trained_images / train_seconds if train_seconds else 0.0,
    )


def planned_epochs(recipe: FineTuneRecipe, train_images: int) -> int:
    """The recipe's epochs, fewer where they would pass max_images training images."""
    return max(1, min(recipe.epochs, math.ceil(recipe.max_images / max(train_images, 1))))


def freeze(keras: Any, mobilenet: Any, source: str) -> BaseModel:
    """A frozen BaseModel around `mobilenet` (the shape load_base_model builds)."""
    mobilenet.trainable = False
    model = keras.Sequential(
        [mobilenet, keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")],
        name="base",
    )
    model.trainable = False
    return BaseModel(model=model, identity=identity_of(mobilenet), source=source)


def base_weights_blob(base: BaseModel) -> bytes:
    """The base's MobileNetV2 weights as one .npz (about 1.7 MB), for the store."""
    buffer = io.BytesIO()
    arrays = base.model.layers[0].get_weights()
    np.savez(buffer, *arrays)
    return buffer.getvalue()


def base_from_blob(blob: bytes) -> BaseModel:
    """The MobileNetV2 0.35 base with the weights of `blob` (base_weights_blob)."""
    from channelmodel_trainer.base_model import _mobilenet

    keras = tfcompat.tf_keras()
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
    mobilenet = _mobilenet(keras, weights=None)
    mobilenet.set_weights(arrays)
    return freeze(keras, mobilenet, source="channel base")


def plain_inputs(photos: np.ndarray) -> Any:
    """The model's input for centre squares (prepare_photo): resized to 224, in [-1, 1]."""
    tf = tfcompat.tensorflow()
    return _scale(tf, _plain_views(tf, photos)(np.arange(len(photos)))).numpy()


def _scale(tf: Any, pixels: Any) -> Any:
    return tf.cast(pixels, tf.float32) / 127.0 - 1.0


def _plain_views(tf: Any, photos: np.ndarray) -> Callable[[np.ndarray], Any]:
    def plain(indices: np.ndarray) -> Any:
        batch = tf.constant(photos[indices])
        if batch.shape[1] == IMAGE_SIZE:
            return batch
        return tf.image.resize(tf.cast(batch, tf.float32), (IMAGE_SIZE, IMAGE_SIZE), antialias=True)

    return plain


def _boxes(rng: np.random.Generator, n: int, min_area: float) -> np.ndarray:
    """(n, 4) normalised crop boxes [y1, x1, y2, x2]; x swapped (a mirror) for half."""
    area = rng.uniform(min_area, 1.0, n)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3), n))
    w = np.minimum(1.0, np.sqrt(area * aspect))
    h = np.minimum(1.0, np.sqrt(area / aspect))
    x1 = rng.uniform(0, 1 - w)
    y1 = rng.uniform(0, 1 - h)
    boxes = np.stack([y1, x1, y1 + h, x1 + w], axis=1)
    flip = rng.random(n) < 0.5
    boxes[flip] = boxes[flip][:, [0, 3, 2, 1]]
    return boxes.astype(np.float32)


def _augment(tf: Any, images: Any, boxes: Any, colour: Any) -> Any:
    """uint8 squares to augmented model inputs in [-1, 1]."""
    n = tf.shape(images)[0]
    x = tf.image.crop_and_resize(
        tf.cast(images, tf.float32), boxes, tf.range(n), (IMAGE_SIZE, IMAGE_SIZE)
    )
    brightness = colour[:, 0][:, None, None, None]
    contrast = colour[:, 1][:, None, None, None]
    saturation = colour[:, 2][:, None, None, None]
    x = x * brightness
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * contrast + mean
    grey = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - grey) * saturation + grey
    return tf.clip_by_value(x, 0.0, 255.0) / 127.0 - 1.0


def _class_weights(targets: np.ndarray, num_classes: int, balance: bool) -> np.ndarray:
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    if not balance:
        return np.ones(num_classes, np.float32)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([label in row for label, row in zip(labels, top, strict=True)]))


__all__: Sequence[str] = (
    "FineTuneRecipe",
    "FineTuned",
    "base_from_blob",
    "base_weights_blob",
    "fine_tune",
    "freeze",
    "prepare_photo",
    "top_k_accuracy",
)
