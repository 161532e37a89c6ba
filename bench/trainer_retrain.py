"""Incremental retrain vs cold training, with the trainer's default recipe.

    .venv/bin/python bench/trainer_retrain.py [--products 100] [--photos 10]

A catalog of 100 products x 10 grocery photos (local manifest, file:// store)
is trained once to fill the embedding cache. Then one product with 10 photos
is added and the 101-product catalog is trained twice: with that cache
(incremental: only the new product's photos are embedded) and into an empty
store (cold). Both runs use the base model already in memory; loading it
(the same few seconds in both Jobs) is reported apart. Target: incremental
<= 15% of cold.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from channelmodel.store import open_store
from channelmodel_trainer.pipeline import TrainingOutcome, TrainingRequest, run_training
from trainer_common import grocery_split, load_base, machine


def write_manifest(folder: Path, photos: list[Path], products: int, per_product: int) -> Path:
    manifest = {
        "channelId": "bench",
        "products": [
            {
                "id": f"product-{i:03d}",
                "images": [str(p) for p in photos[i * per_product : (i + 1) * per_product]],
            }
            for i in range(products)
        ],
    }
    path = folder / f"manifest-{products}.json"
    path.write_text(json.dumps(manifest))
    return path


def train(
    manifest: Path, store_dir: Path, version: str, base: object
) -> tuple[float, TrainingOutcome]:
    request = TrainingRequest(manifest=str(manifest), channel_id="bench", version=version)
    started = time.perf_counter()
    outcome = run_training(request, open_store(store_dir.as_uri()), base=base)  # type: ignore[arg-type]
    return time.perf_counter() - started, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--photos", type=int, default=10)
    args = parser.parse_args()

    photos = [path for path, _ in grocery_split("train")]
    needed = (args.products + 1) * args.photos
    assert len(photos) >= needed, f"need {needed} photos, have {len(photos)}"
    started = time.perf_counter()
    base = load_base()
    base_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        before = write_manifest(folder, photos, args.products, args.photos)
        after = write_manifest(folder, photos, args.products + 1, args.photos)
        warm_store, cold_store = folder / "warm", folder / "cold"
        first_seconds, first = train(before, warm_store, "1.0.0", base)
        incremental_seconds, incremental = train(after, warm_store, "1.0.1", base)
        cold_seconds, cold = train(after, cold_store, "1.0.0", base)

    assert incremental.embedded == args.photos, incremental.embedded
    assert cold.embedded == needed
    print(f"{machine()}; {args.products} products x {args.photos} photos, then +1 product")
    print(
        f"first training ({args.products} products): {first_seconds:6.1f} s ({first.embedded} photos embedded)"
    )
    for name, seconds, outcome in (
        ("incremental", incremental_seconds, incremental),
        ("cold", cold_seconds, cold),
    ):
        stages = ", ".join(
            f"{stage} {value:.1f}" for stage, value in outcome.timings.items() if stage != "total"
        )
        print(
            f"{name:>11}: {seconds:6.1f} s  embedded {outcome.embedded:4d}, cache hits {outcome.cache_hits:4d}  [{stages}]"
        )
    print(
        f"ratio incremental/cold: {100 * incremental_seconds / cold_seconds:.1f}% (target <= 15%)"
    )
    print(
        f"as whole Jobs (+{base_seconds:.1f} s base model load each): "
        f"{100 * (incremental_seconds + base_seconds) / (cold_seconds + base_seconds):.1f}%"
    )


if __name__ == "__main__":
    main()
