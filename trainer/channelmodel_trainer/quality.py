"""The quality path as a run: photos, fine-tuning, the served model's score,
the channel's base in the store, and the embedding cache warmed for the fast path.

1. download every photo; keep its centre square (finetune.SOURCE_SIDE) in
   memory and its bytes in a scratch folder;
2. split (whole groups held out where the manifest names them), fine-tune;
3. score the served model on the same held-out photos;
4. store the fine-tuned base (`_cache/bases/<channel>/<identity>.npz`) and
   embed every photo (and its augmented views) with it into the embedding
   cache, so the next fast-path retrain embeds only new photos;
5. train the fine-tuned head again on those embeddings (the fast path's head,
   started from the fine-tuned one): that head is exported.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from channelmodel_trainer import augment
from channelmodel_trainer.base_model import BaseModel, load_base_model
from channelmodel_trainer.collect import Collected, EmbeddingStage
from channelmodel_trainer.download import Downloaded
from channelmodel_trainer.finetune import (
    FineTuned,
    base_weights_blob,
    fine_tune,
    plain_inputs,
    planned_epochs,
    prepare_photo,
)
from channelmodel_trainer.manifest import ImageRef, LoadedManifest
from channelmodel_trainer.progress import Progress
from channelmodel_trainer.served import ServedModel, accuracy_on_pixels, base_blob_key
from channelmodel_trainer.sink import DownloadSink, PhotoTally
from channelmodel_trainer.train import TrainedHead, WarmStart, split_per_class, train_head

if TYPE_CHECKING:
    from channelmodel.store.base import ArtifactStore
    from channelmodel_trainer.pipeline import TrainingOutcome, TrainingRequest, _Timer

log = logging.getLogger(__name__)
STAGE = "photos"


@dataclass(repr=False)
class _Photos(PhotoTally):
    pixels: dict[str, np.ndarray] = field(default_factory=dict)  # hash -> centre square


UNDECODABLE_REPEAT = "the same bytes as an image that did not decode"


class _PhotoSink(DownloadSink[_Photos]):
    """The quality path's sink: each new photo's centre square, its bytes to `scratch`."""

    def __init__(self, scratch: Path, progress: Progress) -> None:
        super().__init__(_Photos(), stage=STAGE, progress=progress)
        self._scratch = scratch
        self._seen: set[str] = set()

    def _has(self, sha256: str) -> bool:
        return sha256 in self._seen

    async def _add_new(self, product: str, sha256: str, data: bytes) -> None:
        self._seen.add(sha256)
        pixels = await self._decode_off_loop(product, partial(prepare_photo, data))
        if pixels is None:
            self._seen.discard(sha256)
            # Repeats of these bytes that arrived while they decoded share their fate.
            for other, hashes in self.result.images.items():
                repeats = hashes.count(sha256)
                if repeats:
                    hashes[:] = [h for h in hashes if h != sha256]
                    self.result.skipped[other] += repeats
                    self.result.reasons[UNDECODABLE_REPEAT] += repeats
            return
        (self._scratch / sha256).write_bytes(data)
        self.result.pixels[sha256] = pixels
        self.result.images.setdefault(product, []).append(sha256)
        self._progress.advance(STAGE)

    async def finish(self) -> _Photos:
        self._pool.shutdown(wait=True)
        return self.result


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
        if store is not None:
            with timer.stage("baseStore"):
                try:
                    key = base_blob_key(request.channel_id, tuned.base.identity)
                    store.put_blob(key, base_weights_blob(tuned.base))
                except Exception as exc:
                    log.warning("cannot store the fine-tuned base: %s", exc)
        with timer.stage("embedViews"):
            collected = asyncio.run(_embed_all(request, tuned.base, store, photos, scratch))
        retrained = None
        if collected is not None and all(sha in collected.embeddings for _, sha in order):
            with timer.stage("headOnViews"):
                retrained = _head_on_views(
                    request, tuned, collected, order, targets, len(labels), groups
                )
            accuracy = None if retrained.accuracy is None else round(retrained.accuracy, 4)
            metrics["accuracy"] = accuracy
            log.info("head trained again on the new base's views: held-out accuracy %s", accuracy)
    outcome = TrainingOutcome(
        channel_id=request.channel_id,
        version=request.version,
        labels=labels,
        files={},
        metrics=metrics,
        skipped=dict(photos.skipped),
        skip_reasons=dict(photos.reasons),
        products_without_images=empty,
        embedded=0 if collected is None else collected.embedded,
        cache_hits=0,
        timings=timer.timings,
        head=retrained,
        base=tuned.base,
        mode=FINE_TUNE,
        fine_tuned=tuned,
    )
    head = tuned.head if retrained is None else retrained.model
    return finish_outcome(outcome, request, store, timer, started, head)


# The exported head's schedule from the fine-tuned head: it only adapts, half the
# fast path's epochs at a third of its rate (the quality figures were measured
# so; 20 epochs at 1e-3 scored within noise, 59.8 against 59.2 at 5 photos).
HEAD_EPOCHS_AFTER_FINE_TUNING = 10
HEAD_RATE_AFTER_FINE_TUNING = 3e-4


def _head_on_views(
    request: TrainingRequest,
    tuned: FineTuned,
    collected: Collected,
    order: list[tuple[int, str]],
    targets: np.ndarray,
    classes: int,
    groups: list[str | None] | None,
) -> TrainedHead:
    """The exported head: the fine-tuned head trained on, from where it is, the new
    base's embeddings of each photo and its views (HEAD_*_AFTER_FINE_TUNING).
    Fine-tuning's crops of 35-100 % of a photo teach the base; the views are nearer
    what the till's camera sees: 59.2 against 55.5 top-1 at 5 photos, 3 seeds
    (docs/benchmarks/trainer.md)."""
    return train_head(
        [collected.embeddings[sha] for _, sha in order],
        targets,
        classes,
        replace(
            request.recipe,
            warm_epochs=HEAD_EPOCHS_AFTER_FINE_TUNING,
            warm_learning_rate=HEAD_RATE_AFTER_FINE_TUNING,
        ),
        groups=groups,
        keys=[sha for _, sha in order],
        warm_start=WarmStart.from_model(tuned.head),
    )


async def _collect_photos(
    request: TrainingRequest,
    loaded: LoadedManifest,
    scratch: Path,
    progress: Progress,
    timer: _Timer,
    preloaded: BaseModel | None,
) -> tuple[_Photos, BaseModel]:
    async def load_base() -> BaseModel:
        if preloaded is not None:
            return preloaded
        with timer.stage("baseModel"):
            # The quality path starts from the configured base every time: no drift.
            return await asyncio.to_thread(load_base_model, request.base_model)

    base_task = asyncio.create_task(load_base())
    sink = _PhotoSink(scratch, progress)
    photos = await sink.download(loaded, policy=request.download, token=request.token)
    return photos, await base_task


async def _embed_all(
    request: TrainingRequest,
    base: BaseModel,
    store: ArtifactStore | None,
    photos: _Photos,
    scratch: Path,
) -> Collected | None:
    """Embed every photo and its views with the new base, into the cache the fast path
    reads when there is a store; None when that fails (the fine-tuned head is kept)."""
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
        log.warning("embedding the photos with the new base failed: %s", exc)
        return None
    log.info(
        "embedded %d photos with base %s in %.1f s%s",
        collected.embedded,
        base.identity,
        time.perf_counter() - started,
        " (embedding cache warmed)" if store is not None else "",
    )
    return collected
