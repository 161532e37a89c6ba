"""The quality path as a run: photos, fine-tuning, the served model's score,
the channel's base in the store, and the embedding cache warmed for the fast path.

1. download every photo; keep its centre square (finetune.SOURCE_SIDE) in
   memory and its bytes in a scratch folder;
2. split (whole groups held out where the manifest names them), fine-tune;
3. score the served model on the same held-out photos;
4. store the fine-tuned base (`_cache/bases/<channel>/<identity>.npz`) and
   embed every photo (and its augmented views) with it into the embedding
   cache, so the next fast-path retrain embeds only new photos.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from channelmodel_trainer import augment
from channelmodel_trainer.base_model import BaseModel, load_base_model
from channelmodel_trainer.collect import EmbeddingStage
from channelmodel_trainer.decode import DecodeError
from channelmodel_trainer.download import Downloaded, download_images
from channelmodel_trainer.finetune import (
    base_weights_blob,
    fine_tune,
    plain_inputs,
    planned_epochs,
    prepare_photo,
)
from channelmodel_trainer.manifest import ImageRef, LoadedManifest
from channelmodel_trainer.progress import Progress
from channelmodel_trainer.served import ServedModel, accuracy_on_pixels, base_blob_key
from channelmodel_trainer.train import split_per_class

if TYPE_CHECKING:
    from channelmodel.store.base import ArtifactStore
    from channelmodel_trainer.pipeline import TrainingOutcome, TrainingRequest, _Timer

log = logging.getLogger(__name__)
STAGE = "photos"


@dataclass
class _Photos:
    images: dict[str, list[str]] = field(default_factory=dict)  # product -> hashes
    pixels: dict[str, np.ndarray] = field(default_factory=dict)  # hash -> centre square
    groups: dict[str, str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


class _PhotoSink:
    def __init__(self, scratch: Path, progress: Progress) -> None:
        self.result = _Photos()
        self._scratch = scratch
        self._progress = progress
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="decode")
        self._seen: set[str] = set()

    async def add(self, item: Downloaded) -> None:
        product = item.image.product_id
        if item.data is None:
            self._skip(product, item.reason or "unavailable")
            return
        sha256 = hashlib.sha256(item.data).hexdigest()
        if item.image.group is not None:
            self.result.groups.setdefault(sha256, item.image.group)
        if sha256 in self._seen:
            self.result.images.setdefault(product, []).append(sha256)
            self._progress.advance(STAGE)
            return
        self._seen.add(sha256)
        loop = asyncio.get_running_loop()
        try:
            pixels = await loop.run_in_executor(self._pool, prepare_photo, item.data)
        except DecodeError as error:
            self._seen.discard(sha256)
            self._skip(product, str(error))
            return
        except Exception as exc:
            self._seen.discard(sha256)
            self._skip(product, f"decode failed: {exc.__class__.__name__}")
            return
        (self._scratch / sha256).write_bytes(item.data)
        self.result.pixels[sha256] = pixels
        self.result.images.setdefault(product, []).append(sha256)
        self._progress.advance(STAGE)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _skip(self, product: str, reason: str) -> None:
        log.info("skipped an image of %s: %s", product, reason)
        self.result.skipped[product] += 1
        self.result.reasons[reason] += 1
        self._progress.advance(STAGE)


def run_quality_path(
    request: TrainingRequest,
    loaded: LoadedManifest,
    store: ArtifactStore | None,
    progress: Progress,
    timer: _Timer,
    started: float,
    served: ServedModel | None,
    preloaded: BaseModel | None,
) -> TrainingOutcome:
    from channelmodel_trainer.pipeline import (
        FINE_TUNE,
        TrainingOutcome,
        check_products,
        finish_outcome,
    )

    with tempfile.TemporaryDirectory(prefix="channelmodel-photos-") as tmp:
        scratch = Path(tmp)
        with timer.stage("images"):
            photos, base = asyncio.run(
                _collect_photos(request, loaded, scratch, progress, timer, preloaded)
            )
        labels = sorted(p.id for p in loaded.manifest.products if photos.images.get(p.id))
        empty = [p.id for p in loaded.manifest.products if not photos.images.get(p.id)]
        progress.finish(STAGE, f"{sum(map(len, photos.images.values()))} photos")
        check_products(labels, empty)
        order = [(index, sha) for index, label in enumerate(labels) for sha in photos.images[label]]
        targets = np.array([index for index, _ in order], dtype=np.int64)
        pixels = np.stack([photos.pixels[sha] for _, sha in order])
        groups = [photos.groups.get(sha) for _, sha in order] if photos.groups else None
        seed = request.recipe.seed
        train_idx, val_idx = split_per_class(
            targets, request.recipe.validation_fraction, seed, groups, [sha for _, sha in order]
        )
        recipe = replace(request.fine_tune, seed=seed)
        with timer.stage("train"):
            progress.start("epochs", planned_epochs(recipe, len(train_idx)))
            tuned = fine_tune(
                base, pixels, targets, len(labels), train_idx, val_idx, recipe,
                on_epoch=lambda *_: progress.advance("epochs"),
            )  # fmt: skip
        accuracy = None if tuned.accuracy is None else round(tuned.accuracy, 4)
        progress.finish(
            "epochs",
            f"validation accuracy {accuracy} on {len(val_idx)} photos "
            f"(best epoch {tuned.best_epoch} of {tuned.epochs_run})",
        )
        metrics: dict[str, Any] = {
            "accuracy": accuracy,
            "classes": len(labels),
            "images": len(order),
            "skippedImages": sum(photos.skipped.values()),
            "validationImages": len(val_idx),
            "heldOutGroups": bool(groups),
            "epochs": tuned.epochs_run,
            "imagesPerSecond": round(tuned.images_per_second, 1),
        }
        if served is not None:
            metrics["servedVersion"] = served.version
            metrics["servedAccuracy"] = None
            if len(val_idx):
                with timer.stage("servedScore"):
                    try:
                        score = accuracy_on_pixels(
                            served,
                            plain_inputs(pixels[val_idx]),
                            [labels[targets[i]] for i in val_idx],
                        )
                        metrics["servedAccuracy"] = None if score is None else round(score, 4)
                    except Exception as exc:
                        log.warning("cannot score the served model %s: %s", served.version, exc)
        embedded = 0
        if store is not None:
            with timer.stage("baseStore"):
                try:
                    key = base_blob_key(request.channel_id, tuned.base.identity)
                    store.put_blob(key, base_weights_blob(tuned.base))
                except Exception as exc:
                    log.warning("cannot store the fine-tuned base: %s", exc)
            with timer.stage("cacheWarm"):
                embedded = asyncio.run(_warm_cache(request, tuned.base, store, photos, scratch))
    outcome = TrainingOutcome(
        channel_id=request.channel_id,
        version=request.version,
        labels=labels,
        files={},
        metrics=metrics,
        skipped=dict(photos.skipped),
        skip_reasons=dict(photos.reasons),
        products_without_images=empty,
        embedded=embedded,
        cache_hits=0,
        timings=timer.timings,
        head=None,
        base=tuned.base,
        mode=FINE_TUNE,
        fine_tuned=tuned,
    )
    return finish_outcome(outcome, request, store, timer, started, tuned.head)


async def _collect_photos(
    request: TrainingRequest,
    loaded: LoadedManifest,
    scratch: Path,
    progress: Progress,
    timer: _Timer,
    preloaded: BaseModel | None,
) -> tuple[_Photos, BaseModel]:
    refs, rejected = loaded.image_refs()

    async def load_base() -> BaseModel:
        if preloaded is not None:
            return preloaded
        with timer.stage("baseModel"):
            # The quality path starts from the configured base every time: no drift.
            return await asyncio.to_thread(load_base_model, request.base_model)

    base_task = asyncio.create_task(load_base())
    sink = _PhotoSink(scratch, progress)
    for product_id, count in rejected.items():
        sink.result.skipped[product_id] += count
        sink.result.reasons["unsupported location"] += count
    progress.start(STAGE, len(refs))
    try:
        await download_images(
            refs,
            sink.add,
            policy=request.download,
            token=request.token,
            token_origin=loaded.token_origin,
        )
    finally:
        sink.close()
    return sink.result, await base_task


async def _warm_cache(
    request: TrainingRequest,
    base: BaseModel,
    store: ArtifactStore,
    photos: _Photos,
    scratch: Path,
) -> int:
    """Embed every photo with the new base into the cache the fast path reads."""
    started = time.perf_counter()

    async def ready() -> BaseModel:
        return base

    from channelmodel_trainer.progress import LogProgress

    stage = EmbeddingStage(
        ready(),
        views=request.views,
        cache_id_suffix=f"v{request.views}-{augment.RECIPE}" if request.views else "v0",
        cache_store=store,
        progress=LogProgress(),
        batch_size=request.batch_size,
    )
    try:
        for product, hashes in photos.images.items():
            for sha256 in dict.fromkeys(hashes):
                data = (scratch / sha256).read_bytes()
                await stage.add(Downloaded(ImageRef(product, sha256, is_url=False), data))
        collected = await stage.finish()
    except Exception as exc:  # the next fast run embeds what is missing
        log.warning("warming the embedding cache failed: %s", exc)
        return 0
    log.info(
        "embedding cache warmed for base %s: %d photos in %.1f s",
        base.identity,
        collected.embedded,
        time.perf_counter() - started,
    )
    return collected.embedded
