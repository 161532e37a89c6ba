"""Model quality: Teachable Machine's recipe vs ours, on real product photos.

    .venv/bin/python bench/trainer_quality.py [--seeds 3] [--shots 5 10 0] [--embeddings /tmp/grocery.npz]

Grocery-store dataset (81 products): each recipe trains on N photos per
product drawn from the train split (N = 5, 10, or all: 0), 3 seeds, and is
scored top-1 on the held-out validation split (296 photos). Embeddings (the
photo plus its augmented views) are computed once with the trainer's own
decode, augmentation and embedder, and optionally kept in a file for reruns.

Recipes (train.HeadRecipe):
- tm: Teachable Machine's: 50 epochs, batch 16, Adam 1e-3, 15% held out, photos only.
- tm+views: the same on each photo and its augmented views (a step holds 16
  photos' worth of rows, so steps per epoch stay TM's).
- ours: the trainer's default: views, class balancing, 20 epochs.
- ours+refit: the same, then the head trained again on every photo (held-out ones too).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from channelmodel_trainer.collect import photo_and_views
from channelmodel_trainer.embed import Embedder
from channelmodel_trainer.pipeline import DEFAULT_VIEWS
from channelmodel_trainer.train import TM_RECIPE, HeadRecipe, train_head
from trainer_common import grocery_split, load_base, machine

RECIPES: dict[str, HeadRecipe] = {
    "tm": TM_RECIPE,
    "tm+views": replace(TM_RECIPE, use_views=True, batch_per_photo=True),
    "ours": HeadRecipe(),
    "ours+refit": replace(HeadRecipe(), refit_on_all=True),
}


def embed_split(rows: list[tuple[Path, int]], embedder: Embedder, views: int) -> np.ndarray:
    """(photos, 1 + views, 1280) embeddings, plain view first."""

    def prepare(path: Path) -> np.ndarray:
        return photo_and_views(path.read_bytes(), views)

    out = []
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(rows), 64):
            chunk = [path for path, _ in rows[start : start + 64]]
            pixels = np.stack(list(pool.map(prepare, chunk)))
            flat = embedder.embed(pixels.reshape(-1, *pixels.shape[2:]))
            out.append(flat.reshape(len(chunk), 1 + views, -1))
    return np.concatenate(out)


def load_embeddings(
    cache: Path | None, views: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if cache and cache.is_file():
        data = np.load(cache)
        if data["train"].shape[1] == 1 + views:
            return data["train"], data["train_labels"], data["val"], data["val_labels"]
    train_rows, val_rows = grocery_split("train"), grocery_split("val")
    embedder = Embedder(load_base(), batch_size=64)
    started = time.perf_counter()
    train = embed_split(train_rows, embedder, views)
    val = embed_split(val_rows, embedder, 0)[:, 0]
    print(
        f"embedded {len(train)}x{1 + views} + {len(val)} photos in {time.perf_counter() - started:.0f} s"
    )
    train_labels = np.array([label for _, label in train_rows])
    val_labels = np.array([label for _, label in val_rows])
    if cache:
        np.savez(cache, train=train, train_labels=train_labels, val=val, val_labels=val_labels)
    return train, train_labels, val, val_labels


def sample(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """`shots` photo indices per class (all when 0 or fewer exist)."""
    rng = np.random.default_rng(1000 + seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.extend(rng.permutation(members)[: shots or len(members)].tolist())
    return np.array(sorted(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10, 0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument(
        "--embeddings", type=Path, help="keep the embeddings in this .npz between runs"
    )
    args = parser.parse_args()

    train, train_labels, val, val_labels = load_embeddings(args.embeddings, DEFAULT_VIEWS)
    classes = len(np.unique(train_labels))
    print(
        f"{machine()}; {classes} products; validation {len(val)} photos; {DEFAULT_VIEWS} views per photo"
    )
    print(f"{'photos/product':>14} " + " ".join(f"{name:>16}" for name in args.recipes))
    for shots in args.shots:
        scores: dict[str, list[float]] = {name: [] for name in args.recipes}
        seconds: dict[str, list[float]] = {name: [] for name in args.recipes}
        for seed in range(args.seeds):
            chosen = sample(train_labels, shots, seed)
            embeddings = list(train[chosen])
            for name in args.recipes:
                started = time.perf_counter()
                head = train_head(
                    embeddings, train_labels[chosen], classes, replace(RECIPES[name], seed=seed)
                )
                seconds[name].append(time.perf_counter() - started)
                predicted = head.model.predict(val, verbose=0, batch_size=512).argmax(axis=1)
                scores[name].append(float(np.mean(predicted == val_labels)))
        cells = [
            f"{100 * np.mean(scores[n]):5.1f}±{100 * np.std(scores[n]):3.1f} ({np.mean(seconds[n]):4.1f}s)"
            for n in args.recipes
        ]
        paired = ""
        if "tm" in scores and "ours" in scores:
            gains = 100 * (np.array(scores["ours"]) - np.array(scores["tm"]))
            paired = f"   ours-tm per seed: {' '.join(f'{gain:+.1f}' for gain in gains)}"
        print(
            f"{shots or 'all':>14} " + " ".join(f"{cell:>16}" for cell in cells) + paired,
            flush=True,
        )
    if "tm" in args.recipes and "ours" in args.recipes:
        print(
            "top-1 in %, mean ± std over seeds (head training seconds); target: ours >= tm + 5 at 5 and 10"
        )


if __name__ == "__main__":
    main()
