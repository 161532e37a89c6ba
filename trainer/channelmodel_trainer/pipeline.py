"""One training run: manifest, images, embeddings, head, export, publish."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from channelmodel_trainer import augment, export
from channelmodel_trainer.base_model import BaseModel, load_base_model
from channelmodel_trainer.collect import STAGE as EMBEDDING_STAGE
from channelmodel_trainer.collect import Collected, EmbeddingStage
from channelmodel_trainer.download import DownloadPolicy, download_images
from channelmodel_trainer.errors import ManifestError, NotEnoughData
from channelmodel_trainer.manifest import LoadedManifest, load_manifest
from channelmodel_trainer.progress import LogProgress, Progress
from channelmodel_trainer.publish import publish
from channelmodel_trainer.train import HeadRecipe, TrainedHead, train_head

if TYPE_CHECKING:
    from channelmodel.store.base import ArtifactStore

log = logging.getLogger(__name__)

DEFAULT_VIEWS = 10


@dataclass(frozen=True)
class TrainingRequest:
    manifest: str
    channel_id: str
    version: str
    base_model: str = "imagenet"
    recipe: HeadRecipe = field(default_factory=HeadRecipe)
    views: int = DEFAULT_VIEWS  # augmented views per photo (0: photos only)
    token: str | None = None
    download: DownloadPolicy = field(default_factory=DownloadPolicy)
    batch_size: int = 32


@dataclass
class TrainingOutcome:
    channel_id: str
    version: str
    labels: list[str]
    files: dict[str, bytes]
    metrics: dict[str, Any]
    skipped: dict[str, int]
    skip_reasons: dict[str, int]
    products_without_images: list[str]
    embedded: int
    cache_hits: int
    timings: dict[str, float]
    head: TrainedHead
    base: BaseModel


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - started


def run_training(
    request: TrainingRequest,
    store: ArtifactStore | None,
    progress: Progress | None = None,
    *,
    base: BaseModel | None = None,
    publish_files: bool = True,
) -> TrainingOutcome:
    """Train one version; publish it to `store` unless told not to. Raises TrainerError.

    `store` also holds the embedding cache. `base` skips loading the base model
    (callers that train many times in one process).
    """
    progress = progress or LogProgress()
    timer = _Timer()
    started = time.perf_counter()
    with timer.stage("manifest"):
        loaded = load_manifest(request.manifest, token=request.token)
    if loaded.manifest.channel_id != request.channel_id:
        raise ManifestError(
            f"manifest is for channel {loaded.manifest.channel_id!r}, not {request.channel_id!r}"
        )
    with timer.stage("images"):
        collected, base = asyncio.run(_collect(request, loaded, store, progress, timer, base))
    labels, embeddings, targets, empty = _dataset(loaded, collected)
    progress.finish(
        EMBEDDING_STAGE,
        f"{len(embeddings)} images of {len(labels)} products; {collected.embedded} embedded, "
        f"{collected.cache_hits} from cache, {sum(collected.skipped.values())} skipped",
    )
    if empty:
        log.warning(
            "%d products have no usable image and are left out: %s",
            len(empty),
            ", ".join(empty[:10]),
        )
    if len(labels) < 2:
        raise NotEnoughData(
            f"only {len(labels)} product(s) have usable images; a classifier needs 2"
        )

    with timer.stage("train"):
        progress.start("epochs", request.recipe.epochs * (2 if request.recipe.refit_on_all else 1))
        head = train_head(
            embeddings,
            targets,
            len(labels),
            request.recipe,
            on_epoch=lambda *_: progress.advance("epochs"),
        )
    accuracy = None if head.accuracy is None else round(head.accuracy, 4)
    progress.finish("epochs", f"validation accuracy {accuracy} on {head.validation_images} photos")

    metrics: dict[str, Any] = {
        "accuracy": accuracy,
        "classes": len(labels),
        "images": len(embeddings),
        "skippedImages": sum(collected.skipped.values()),
    }
    with timer.stage("export"):
        model = export.build_export_model(base, head.model)
        files = export.export_tfjs(model)
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        files["metadata.json"] = export.metadata_json(
            labels=labels, channel_id=request.channel_id, version=request.version, metrics=metrics
        )
    if store is not None and publish_files:
        with timer.stage("publish"):
            publish(store, request.channel_id, request.version, files)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    timer.timings["total"] = time.perf_counter() - started
    return TrainingOutcome(
        channel_id=request.channel_id,
        version=request.version,
        labels=labels,
        files=files,
        metrics=metrics,
        skipped=dict(collected.skipped),
        skip_reasons=dict(collected.reasons),
        products_without_images=empty,
        embedded=collected.embedded,
        cache_hits=collected.cache_hits,
        timings=timer.timings,
        head=head,
        base=base,
    )


async def _collect(
    request: TrainingRequest,
    loaded: LoadedManifest,
    store: ArtifactStore | None,
    progress: Progress,
    timer: _Timer,
    preloaded: BaseModel | None,
) -> tuple[Collected, BaseModel]:
    refs, rejected = loaded.image_refs()

    async def load_base() -> BaseModel:
        if preloaded is not None:
            return preloaded
        with timer.stage("baseModel"):
            return await asyncio.to_thread(load_base_model, request.base_model)

    # The base loads while the first images download.
    base_task = asyncio.create_task(load_base())
    stage = EmbeddingStage(
        base_task,
        views=request.views,
        cache_id_suffix=f"v{request.views}-{augment.RECIPE}" if request.views else "v0",
        cache_store=store,
        progress=progress,
        batch_size=request.batch_size,
    )
    for product_id, count in rejected.items():
        stage.result.skipped[product_id] += count
        stage.result.reasons["unsupported location"] += count
    progress.start(EMBEDDING_STAGE, len(refs))
    try:
        await download_images(
            refs,
            stage.add,
            policy=request.download,
            token=request.token,
            token_origin=loaded.token_origin,
        )
    finally:
        collected = await stage.finish()
    return collected, await base_task


def _dataset(
    loaded: LoadedManifest, collected: Collected
) -> tuple[list[str], list[np.ndarray], np.ndarray, list[str]]:
    """Labels (sorted product IDs with images), per-photo embeddings, targets, empty products."""
    labels = sorted(p.id for p in loaded.manifest.products if collected.images.get(p.id))
    empty = [p.id for p in loaded.manifest.products if not collected.images.get(p.id)]
    embeddings: list[np.ndarray] = []
    targets: list[int] = []
    for index, product_id in enumerate(labels):
        for sha256 in collected.images[product_id]:
            embeddings.append(collected.embeddings[sha256])
            targets.append(index)
    return labels, embeddings, np.array(targets, dtype=np.int64), empty
