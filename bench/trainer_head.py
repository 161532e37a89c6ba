"""Head training on cached embeddings vs `model.fit` of the full frozen model.

    .venv/bin/python bench/trainer_head.py [--products 10] [--photos 10] [--epochs 20]

Same photos (grocery, N products x M photos), same head, same epochs, batch 16,
photos only (no augmented views, no refit), one run each:
- full: the TM-shaped model (frozen MobileNetV2 + head) fit on 224x224 inputs;
- ours: the head fit on embeddings computed once (also reported with the
  one-off embedding time included, i.e. a cold cache).
Keras's one-off set-up of training (first fit in a process) is warmed up
before either is timed. Ratio full/ours, target >= 10x.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from channelmodel_trainer import tfcompat
from channelmodel_trainer.decode import decode_image
from channelmodel_trainer.embed import Embedder, preprocess
from channelmodel_trainer.export import build_export_model
from channelmodel_trainer.train import TM_RECIPE, build_head, train_head
from trainer_common import grocery_split, load_base, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    keras = tfcompat.tf_keras()

    chosen: dict[int, list[bytes]] = {}
    for path, label in grocery_split("train"):
        if label < args.products and len(chosen.setdefault(label, [])) < args.photos:
            chosen[label].append(path.read_bytes())
    labels = np.array([label for label, photos in chosen.items() for _ in photos])
    pixels = np.stack([decode_image(data) for photos in chosen.values() for data in photos])
    base = load_base()
    recipe = replace(TM_RECIPE, epochs=args.epochs, validation_fraction=0.0)

    # Keras's one-off set-up of its training machinery (paid once per process,
    # by either method) is kept out of both timings.
    warm = np.zeros((4, 1, 1280), dtype=np.float32)
    train_head(list(warm), np.array([0, 0, 1, 1]), 2, replace(recipe, epochs=1))

    started = time.perf_counter()
    embeddings = Embedder(base).embed(pixels)
    embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    train_head([row[np.newaxis] for row in embeddings], labels, args.products, recipe)
    head_seconds = time.perf_counter() - started

    full = build_export_model(base, build_head(args.products, seed=0))
    full.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    inputs = preprocess(pixels)
    started = time.perf_counter()
    full.fit(
        inputs, labels, epochs=args.epochs, batch_size=recipe.batch_size, shuffle=True, verbose=0
    )
    full_seconds = time.perf_counter() - started

    print(
        f"{machine()}; {len(labels)} photos ({args.products} products), {args.epochs} epochs, batch 16"
    )
    print(f"full frozen model.fit:            {full_seconds:7.2f} s")
    print(
        f"head on cached embeddings:        {head_seconds:7.2f} s   ratio {full_seconds / head_seconds:5.1f}x (target >= 10x)"
    )
    print(
        f"head + embedding once (no cache): {head_seconds + embed_seconds:7.2f} s   "
        f"ratio {full_seconds / (head_seconds + embed_seconds):5.1f}x"
    )


if __name__ == "__main__":
    main()
