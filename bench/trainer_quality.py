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

    .venv/bin/python bench/trainer_quality.py --quality-path [--seeds 3] [--shots 5]
        [--recipe epochs=15 base_learning_rate=0.0003] [--curve] [--fast-after] [--first-seed 3]

--quality-path: the quality path (finetune.py, fine-tuning the base) against
TM's recipe on the same draws, with top-5, seconds and training images/s;
--curve scores the validation split after every epoch (for tuning only: the
best epoch is then chosen on it); --fast-after also fine-tunes without the
last product and adds it on the fast path (the nightly base, then a product).
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
from channelmodel_trainer.train import TM_RECIPE, HeadRecipe, WarmStart, train_head
from trainer_common import grocery_split, load_base, machine

RECIPES: dict[str, HeadRecipe] = {
    "tm": TM_RECIPE,
    "tm+views": replace(TM_RECIPE, use_views=True, batch_per_photo=True),
    "ours": HeadRecipe(),
    "ours+refit": replace(HeadRecipe(), refit_on_all=True),
}


def after_fine_tuning(seed: int) -> HeadRecipe:
    """The quality path's exported head, from the fine-tuned one (quality.py)."""
    from channelmodel_trainer import quality

    return HeadRecipe(
        warm_epochs=quality.HEAD_EPOCHS_AFTER_FINE_TUNING,
        warm_learning_rate=quality.HEAD_RATE_AFTER_FINE_TUNING,
        seed=seed,
    )


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


def quality_path(args: argparse.Namespace) -> None:
    """The quality path (fine-tuning, finetune.py) vs TM's recipe on the same draws."""
    from channelmodel_trainer.decode import decode_image
    from channelmodel_trainer.finetune import (
        FineTuneRecipe,
        fine_tune,
        prepare_photo,
        top_k_accuracy,
    )
    from channelmodel_trainer.train import split_per_class

    train_rows, val_rows = grocery_split("train"), grocery_split("val")
    train_labels = np.array([label for _, label in train_rows])
    val_labels = np.array([label for _, label in val_rows])
    classes = len(np.unique(train_labels))
    base = load_base()
    embedder = Embedder(base, batch_size=64)
    started = time.perf_counter()
    val_pixels = np.stack([decode_image(path.read_bytes()) for path, _ in val_rows])
    val_plain = embedder.embed(val_pixels)
    overrides = dict(kv.split("=") for kv in args.recipe)
    recipe = FineTuneRecipe()
    recipe = replace(
        recipe,
        **{
            k: type(getattr(recipe, k))(v) if getattr(recipe, k) is not None else v
            for k, v in overrides.items()
        },
    )
    print(f"{machine()}; {classes} products; validation {len(val_rows)} photos; {recipe}")
    photos_cache: dict[object, np.ndarray] = {}
    plain_cache: dict[int, np.ndarray] = {}
    for shots in args.shots:
        tm_scores, ft_scores, ft_top5, ft_seconds, ft_rates = [], [], [], [], []
        tuned_scores: list[float] = []  # the fine-tuned head itself, before the views
        fast_scores: dict[str, list[float]] = {}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            chosen = sample(train_labels, shots, seed)
            for i in chosen:
                if i not in photos_cache:
                    data = train_rows[i][0].read_bytes()
                    photos_cache[i] = prepare_photo(data)
                    plain_cache[i] = decode_image(data)
            plain = embedder.embed(np.stack([plain_cache[i] for i in chosen]))
            tm = train_head([row[None] for row in plain], train_labels[chosen], classes,
                            replace(TM_RECIPE, seed=seed))  # fmt: skip
            tm_scores.append(float(np.mean(
                tm.model.predict(val_plain, verbose=0).argmax(axis=1) == val_labels)))  # fmt: skip
            photos = np.stack([photos_cache[i] for i in chosen])
            labels = train_labels[chosen]
            train_idx, val_idx = split_per_class(labels, 0.15, seed)
            on_epoch = None
            if args.curve:  # score the validation split after every epoch (tuning only)
                if "val" not in photos_cache:
                    photos_cache["val"] = np.stack(
                        [prepare_photo(path.read_bytes()) for path, _ in val_rows])  # fmt: skip
                train_idx = np.arange(len(photos))
                val_idx = np.arange(len(photos), len(photos) + len(val_rows))
                photos = np.concatenate([photos, photos_cache["val"]])
                labels = np.concatenate([labels, val_labels])
                recipe = replace(recipe, patience=1000)

                def on_epoch(epoch: int, acc: float | None) -> None:
                    print(f"    epoch {epoch}: val {acc}", flush=True)

            t0 = time.perf_counter()
            tuned = fine_tune(base, photos, labels, classes, train_idx, val_idx,
                              replace(recipe, seed=seed), on_epoch=on_epoch)  # fmt: skip
            # Then what quality.py exports: the head trained again on the new base's
            # embeddings of the photos and their views, from the fine-tuned head.
            tuned_embedder = Embedder(tuned.base, 64)
            embeddings = embed_split([train_rows[i] for i in chosen], tuned_embedder, DEFAULT_VIEWS)
            head = train_head(list(embeddings), labels, classes, after_fine_tuning(seed),
                              warm_start=WarmStart.from_model(tuned.head))  # fmt: skip
            ft_seconds.append(time.perf_counter() - t0)
            ft_rates.append(tuned.images_per_second)
            val_embeddings = tuned_embedder.embed(val_pixels)
            tuned_scores.append(float(np.mean(
                tuned.head.predict(val_embeddings, verbose=0).argmax(axis=1) == val_labels)))  # fmt: skip
            probs = head.model.predict(val_embeddings, verbose=0)
            ft_scores.append(float(np.mean(probs.argmax(axis=1) == val_labels)))
            if args.fast_after:
                print(
                    f"  full quality run: {split_score(probs.argmax(axis=1), val_labels, classes)}"
                )
            ft_top5.append(top_k_accuracy(probs, val_labels, 5))
            if args.fast_after:  # quality run without the last product, then +1 on the fast path
                fast = fast_after_one_product(
                    base, photos, labels, classes, chosen, train_rows, recipe, seed,
                    val_pixels, val_labels,
                )  # fmt: skip
                for variant, score in fast.items():
                    fast_scores.setdefault(variant, []).append(score)
                    print(f"  fast path +1 product on a fine-tuned base, {variant}: "
                          f"{100 * score:.1f}", flush=True)  # fmt: skip
            print(
                f"  shots {shots or 'all'} seed {seed}: tm {100 * tm_scores[-1]:.1f} "
                f"quality {100 * ft_scores[-1]:.1f} (fine-tuned head {100 * tuned_scores[-1]:.1f}; "
                f"top-5 {100 * ft_top5[-1]:.1f}; "
                f"{ft_seconds[-1]:.0f} s, {tuned.images_per_second:.1f} images/s, "
                f"epochs {tuned.epochs_run}, best {tuned.best_epoch}, held-out {tuned.accuracy})",
                flush=True,
            )
        gains = 100 * (np.array(ft_scores) - np.array(tm_scores))
        print(
            f"{shots or 'all':>4} photos: tm {100 * np.mean(tm_scores):.1f}±{100 * np.std(tm_scores):.1f} "
            f"quality {100 * np.mean(ft_scores):.1f}±{100 * np.std(ft_scores):.1f} "
            f"(fine-tuned head {100 * np.mean(tuned_scores):.1f}±{100 * np.std(tuned_scores):.1f}; "
            f"gain {np.mean(gains):+.1f}±{np.std(gains):.1f}; top-5 {100 * np.mean(ft_top5):.1f}; "
            f"{np.mean(ft_seconds):.0f} s, {np.mean(ft_rates):.1f} images/s)",
            flush=True,
        )
        for variant, scores in fast_scores.items():
            diffs = 100 * (np.array(scores) - np.array(ft_scores))
            print(
                f"      fast path +1 product, {variant}: {100 * np.mean(scores):.1f}±"
                f"{100 * np.std(scores):.1f} (vs the full quality run "
                f"{np.mean(diffs):+.1f}±{np.std(diffs):.1f})",
                flush=True,
            )
    print(f"total {time.perf_counter() - started:.0f} s")


# The fast path's head after a nightly: from random weights (as before the warm
# start), or from the nightly's head (what the trainer does when the served model
# shares the base), with the fast recipe or gentler.
FAST_AFTER_VARIANTS: dict[str, tuple[bool, HeadRecipe]] = {
    "cold": (False, HeadRecipe()),
    "warm, 20 epochs at 1e-3 (the trainer's)": (True, HeadRecipe()),
    "warm, 10 epochs at 3e-4": (True, HeadRecipe(warm_epochs=10, warm_learning_rate=3e-4)),
}


def fast_after_one_product(
    base: object,
    photos: np.ndarray,
    labels: np.ndarray,
    classes: int,
    chosen: np.ndarray,
    train_rows: list[tuple[Path, int]],
    recipe: object,
    seed: int,
    val_pixels: np.ndarray,
    val_labels: np.ndarray,
) -> dict[str, float]:
    """Top-1 of the fast path (views, head only) on the base of a quality run that
    had not seen the last product, after that product is added: the nightly base
    plus one product during the day. One figure per FAST_AFTER_VARIANTS entry."""
    from channelmodel_trainer.finetune import fine_tune
    from channelmodel_trainer.train import split_per_class

    newest = classes - 1
    old = np.flatnonzero(labels != newest)
    train_idx, val_idx = split_per_class(labels[old], 0.15, seed)
    # As the Job runs it: the nightly's manifest has 80 products, so its heads have
    # 80 outputs (until 2026-12-03 they had 81, one that no photo trained).
    nightly = fine_tune(base, photos[old], labels[old], newest, train_idx, val_idx,
                        replace(recipe, seed=seed))  # type: ignore[type-var]  # fmt: skip
    embedder = Embedder(nightly.base, batch_size=64)
    embeddings = embed_split([train_rows[i] for i in chosen], embedder, DEFAULT_VIEWS)
    val_embeddings = embedder.embed(val_pixels)
    # The nightly's exported head, as quality.py makes it: trained again on the views.
    served_head = train_head([embeddings[i] for i in old], labels[old], newest,
                             after_fine_tuning(seed), warm_start=WarmStart.from_model(nightly.head))  # fmt: skip
    names = [str(label) for label in range(classes)]
    warm = WarmStart.from_head(served_head.model.get_weights(), names[:newest], names)
    scores = {}
    nightly_alone = served_head.model.predict(val_embeddings, verbose=0).argmax(axis=1)
    print(f"  the nightly alone (never saw the new product): "
          f"{split_score(nightly_alone, val_labels, classes)}")  # fmt: skip
    for variant, (warm_started, head_recipe) in FAST_AFTER_VARIANTS.items():
        head = train_head(list(embeddings), labels, classes, replace(head_recipe, seed=seed),
                          warm_start=warm if warm_started else None)  # fmt: skip
        predicted = head.model.predict(val_embeddings, verbose=0).argmax(axis=1)
        scores[variant] = float(np.mean(predicted == val_labels))
        print(f"  {variant}: {split_score(predicted, val_labels, classes)}")
    return scores


def split_score(predicted: np.ndarray, truth: np.ndarray, classes: int) -> str:
    """Top-1 on the products the nightly knew and on the one added after it."""
    new = truth == classes - 1
    return (
        f"old products {100 * np.mean(predicted[~new] == truth[~new]):.1f}% "
        f"({int(np.sum(~new))} photos), new product {int(np.sum(predicted[new] == truth[new]))}"
        f"/{int(np.sum(new))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quality-path", action="store_true", help="fine-tuning (quality path) vs the TM recipe"
    )
    parser.add_argument("--curve", action="store_true", help="print val top-1 per epoch")
    parser.add_argument(
        "--fast-after",
        action="store_true",
        help="also: quality run without the last product, then the fast path with it",
    )
    parser.add_argument(
        "--recipe", nargs="*", default=[], help="FineTuneRecipe overrides, e.g. epochs=8"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10, 0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument(
        "--embeddings", type=Path, help="keep the embeddings in this .npz between runs"
    )
    args = parser.parse_args()
    if args.quality_path:
        quality_path(args)
        return

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
