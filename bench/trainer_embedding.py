"""Embedding throughput: the trainer's collect stage vs the bare model, same run.

    .venv/bin/python bench/trainer_embedding.py [--images 512] [--repeats 3]

Baseline: the base model's batched forward (batch 32, one traced function) on
tensors decoded beforehand, i.e. the model alone with nothing else to do.
Pipeline: the trainer's EmbeddingStage fed the same photos as JPEG bytes in
memory: hashing, decoding, centre cropping in a thread pool overlapped with
the batched forward. Ratio pipeline/baseline, target >= 0.8. Best of N runs.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np

from channelmodel_trainer import tfcompat
from channelmodel_trainer.base_model import BaseModel
from channelmodel_trainer.collect import Collected, EmbeddingStage
from channelmodel_trainer.decode import decode_image
from channelmodel_trainer.download import Downloaded
from channelmodel_trainer.embed import preprocess
from channelmodel_trainer.manifest import ImageRef
from channelmodel_trainer.progress import LogProgress
from trainer_common import best_of, grocery_split, load_base, machine


def bare_forward(base: BaseModel, pixels: np.ndarray, batch: int) -> np.ndarray:
    tf = tfcompat.tensorflow()
    forward = tf.function(lambda x: base.model(x, training=False))
    inputs = preprocess(pixels)
    forward(inputs[:batch])  # trace outside the timing
    return np.concatenate(
        [forward(inputs[i : i + batch]).numpy() for i in range(0, len(inputs), batch)]
    )


def pipeline(base: BaseModel, photos: list[bytes], batch: int) -> Collected:
    async def run() -> Collected:
        ready = asyncio.get_running_loop().create_future()
        ready.set_result(base)
        stage = EmbeddingStage(
            ready,
            views=0,
            cache_id_suffix="bench",
            cache_store=None,
            progress=LogProgress(),
            batch_size=batch,
        )
        for index, data in enumerate(photos):
            # Unique bytes per entry so nothing is deduplicated.
            await stage.add(
                Downloaded(ImageRef("p", str(index), False), data + index.to_bytes(4, "big"))
            )
        return await stage.finish()

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    rows = grocery_split("train")[: args.images]
    photos = [path.read_bytes() for path, _ in rows]
    pixels = np.stack([decode_image(data) for data in photos])
    base = load_base()
    pipeline(base, photos[:64], args.batch)  # warm up: trace, thread pools

    bare_seconds, bare = best_of(args.repeats, lambda: bare_forward(base, pixels, args.batch))
    pipe_seconds, collected = best_of(args.repeats, lambda: pipeline(base, photos, args.batch))
    assert collected.embedded == len(photos)
    # Same photos, same embeddings (up to float noise): the pipeline does the same work.
    first = next(iter(collected.images.values()))[0]
    assert np.allclose(collected.embeddings[first][0], bare[0], atol=1e-4)

    print(
        f"{machine()}; {len(photos)} grocery photos (JPEG, 348x348), batch {args.batch}, best of {args.repeats}"
    )
    print(
        f"bare model forward on decoded tensors: {bare_seconds:6.2f} s  {len(photos) / bare_seconds:6.1f} images/s"
    )
    print(
        f"pipeline from JPEG bytes:              {pipe_seconds:6.2f} s  {len(photos) / pipe_seconds:6.1f} images/s"
    )
    print(f"ratio pipeline/bare: {bare_seconds / pipe_seconds:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
