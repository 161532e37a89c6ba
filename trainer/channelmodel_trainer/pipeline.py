"""One training run: manifest, images, embeddings, head, export, publish."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from channelmodel_trainer import augment, export
from channelmodel_trainer.base_model import BaseModel, load_base_model
from channelmodel_trainer.collect import STAGE as EMBEDDING_STAGE
from channelmodel_trainer.collect import Collected, EmbeddingStage
from channelmodel_trainer.download import DownloadPolicy
from channelmodel_trainer.errors import ManifestError, NotEnoughData
from channelmodel_trainer.finetune import FineTuned, FineTuneRecipe
from channelmodel_trainer.manifest import LoadedManifest, load_manifest
from channelmodel_trainer.progress import LogProgress, Progress
from channelmodel_trainer.publish import publish
from channelmodel_trainer.served import ServedModel, find_served, warm_start
from channelmodel_trainer.train import HeadRecipe, TrainedHead, train_head

if TYPE_CHECKING:
    from channelmodel.store.base import ArtifactStore

log = logging.getLogger(__name__)

DEFAULT_VIEWS = 10
FAST = "fast"
FINE_TUNE = "fineTune"
# Auto takes the quality path for the first training, the nightly run and a manual one.
QUALITY_TRIGGERS = frozenset({"initial", "schedule", "manual"})


def resolve_mode(mode: str, trigger: str | None) -> str:
    """The spec's training.mode (Auto, Fast, FineTune) and the Job's trigger to a path."""
    if mode.lower() == "fast":
        return FAST
    if mode.lower() == "finetune":
        return FINE_TUNE
    return FINE_TUNE if trigger in QUALITY_TRIGGERS else FAST


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
    mode: str = FAST  # FAST or FINE_TUNE (resolve_mode turns the spec's Auto into one)
    fine_tune: FineTuneRecipe = field(default_factory=FineTuneRecipe)
    # The Job started ahead of its debounce's end: the manifest is read from then on.
    not_before: datetime | None = None


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
    # The exported head: the fast path's, or the quality path's trained again on the
    # views (None when that step failed and the fine-tuned head was exported).
    head: TrainedHead | None
    base: BaseModel
    mode: str = FAST
    fine_tuned: FineTuned | None = None  # the quality path's


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
    with timer.stage("served"):
        served = find_served(store, request.channel_id)
    base_or_loading: BaseModel | Future[BaseModel] | None = base
    if request.mode == FAST and base is None:
        # The base (TensorFlow's import, the Keras build) loads meanwhile: during the
        # wait below, the manifest's request and the first downloads.
        base_or_loading = _in_background(
            "load-base", lambda: _timed_base_load(request, store, served, timer)
        )
    if request.not_before is not None:
        with timer.stage("wait"):
            wait_until(request.not_before)
        started = time.perf_counter()  # the run's seconds count from the manifest's read
    with timer.stage("manifest"):
        loaded = load_manifest(request.manifest, token=request.token)
    if loaded.manifest.channel_id != request.channel_id:
        raise ManifestError(
            f"manifest is for channel {loaded.manifest.channel_id!r}, not {request.channel_id!r}"
        )
    if request.mode == FINE_TUNE:
        from channelmodel_trainer.quality import run_quality_path

        return run_quality_path(request, loaded, store, progress, timer, started, served, base)
    assert base_or_loading is not None  # the fast path always has one of the two
    with timer.stage("images"):
        collected, base = asyncio.run(
            _collect(request, loaded, store, progress, timer, base_or_loading, served)
        )
    labels, embeddings, targets, empty = _dataset(loaded, collected)
    progress.finish(
        EMBEDDING_STAGE,
        f"{len(embeddings)} images of {len(labels)} products; {collected.embedded} embedded, "
        f"{collected.cache_hits} from cache, {sum(collected.skipped.values())} skipped",
    )
    check_products(labels, empty)

    warm = warm_start(served, base.identity, labels)
    with timer.stage("train"):
        epochs = request.recipe.starting(warm=warm is not None).epochs
        progress.start("epochs", epochs * (2 if request.recipe.refit_on_all else 1))
        head = train_head(
            embeddings,
            targets,
            len(labels),
            request.recipe,
            on_epoch=lambda *_: progress.advance("epochs"),
            groups=_groups(loaded, collected, labels),
            keys=[sha for label in labels for sha in collected.images[label]],
            warm_start=warm,
        )
    accuracy = None if head.accuracy is None else round(head.accuracy, 4)
    progress.finish("epochs", f"validation accuracy {accuracy} on {head.validation_images} photos")

    metrics: dict[str, Any] = {
        "accuracy": accuracy,
        "classes": len(labels),
        "images": len(embeddings),
        "skippedImages": sum(collected.skipped.values()),
        "validationImages": head.validation_images,
        "heldOutGroups": bool(collected.groups),
    }
    with timer.stage("servedScore"):
        metrics.update(_served_on_embeddings(served, base, labels, embeddings, targets, head))
    outcome = TrainingOutcome(
        channel_id=request.channel_id,
        version=request.version,
        labels=labels,
        files={},
        metrics=metrics,
        skipped=dict(collected.skipped),
        skip_reasons=dict(collected.reasons),
        products_without_images=empty,
        embedded=collected.embedded,
        cache_hits=collected.cache_hits,
        timings=timer.timings,
        head=head,
        base=base,
        mode=FAST,
    )
    return finish_outcome(outcome, request, store, timer, started, head.model, publish_files)


def wait_until(
    not_before: datetime,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Sleep until `not_before` by this machine's clock; the seconds waited."""
    left = (not_before - now()).total_seconds()
    if left <= 0:
        return 0.0
    log.info("reading the manifest in %.1f s, when the debounce ends", left)
    waited = 0.0
    while left > 0:  # in steps, so that a clock set forward meanwhile ends it
        step = min(left, 1.0)
        sleep(step)
        waited += step
        left = (not_before - now()).total_seconds()
    return waited


def _in_background(name: str, work: Callable[[], BaseModel]) -> Future[BaseModel]:
    """`work` in a daemon thread: a run that fails meanwhile exits without waiting for it."""
    future: Future[BaseModel] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(work())
        except BaseException as exc:  # handed to whoever awaits the base
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _timed_base_load(
    request: TrainingRequest, store: ArtifactStore | None, served: ServedModel | None, timer: _Timer
) -> BaseModel:
    with timer.stage("baseModel"):
        return load_channel_base(request.base_model, store, request.channel_id, served)


def check_products(labels: list[str], empty: list[str]) -> None:
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


def finish_outcome(
    outcome: TrainingOutcome,
    request: TrainingRequest,
    store: ArtifactStore | None,
    timer: _Timer,
    started: float,
    head_model: Any,
    publish_files: bool = True,
) -> TrainingOutcome:
    """Export the base and head, publish, and fill in the times."""
    metrics = outcome.metrics
    metrics["path"] = outcome.mode
    with timer.stage("export"):
        model = export.build_export_model(outcome.base, head_model)
        files = export.export_tfjs(model)
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        files["metadata.json"] = export.metadata_json(
            labels=outcome.labels,
            channel_id=request.channel_id,
            version=request.version,
            metrics=metrics,
            base_identity=outcome.base.identity,
        )
    if store is not None and publish_files:
        with timer.stage("publish"):
            publish(store, request.channel_id, request.version, files)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    timer.timings["total"] = time.perf_counter() - started
    outcome.files = files
    outcome.timings = timer.timings
    return outcome


def _served_on_embeddings(
    served: ServedModel | None,
    base: BaseModel,
    labels: list[str],
    embeddings: list[np.ndarray],
    targets: np.ndarray,
    head: TrainedHead,
) -> dict[str, Any]:
    """The served model's top-1 on the candidate's held-out photos, when it shares the base."""
    if served is None:
        return {}
    figures: dict[str, Any] = {"servedVersion": served.version, "servedAccuracy": None}
    held = head.validation_indices
    if held is None or not len(held) or served.base_identity != base.identity:
        return figures
    from channelmodel_trainer.served import accuracy_on_embeddings

    try:
        score = accuracy_on_embeddings(
            served,
            np.stack([embeddings[i][0] for i in held]),
            [labels[targets[i]] for i in held],
        )
    except Exception as exc:  # a bonus figure: never fail the run over it
        log.warning("cannot score the served model %s: %s", served.version, exc)
        return figures
    figures["servedAccuracy"] = None if score is None else round(score, 4)
    return figures


async def _collect(
    request: TrainingRequest,
    loaded: LoadedManifest,
    store: ArtifactStore | None,
    progress: Progress,
    timer: _Timer,
    base_or_loading: BaseModel | Future[BaseModel],
    served: ServedModel | None = None,
    use_hint: bool = True,
) -> tuple[Collected, BaseModel]:
    """The photos' embeddings; `base_or_loading` is the base or its load under way."""
    preloaded = None if isinstance(base_or_loading, Future) else base_or_loading

    async def load_base() -> BaseModel:
        if isinstance(base_or_loading, Future):
            return await asyncio.wrap_future(base_or_loading)
        return base_or_loading

    # The base loads while the first images download; with its identity known
    # beforehand, cached photos are looked up meanwhile too.
    base_task = asyncio.create_task(load_base())
    hint = None
    if use_hint and store is not None:
        if preloaded is not None:
            hint = preloaded.identity
        elif served is not None and served.base_identity:
            hint = served.base_identity
        else:
            hint = await asyncio.to_thread(recorded_identity, store, request.base_model)
    stage = EmbeddingStage(
        base_task,
        views=request.views,
        cache_id_suffix=f"v{request.views}-{augment.RECIPE}" if request.views else "v0",
        cache_store=store,
        progress=progress,
        batch_size=request.batch_size,
        identity_hint=hint,
    )
    collected = await stage.download(loaded, policy=request.download, token=request.token)
    base = await base_task
    if stage.hint_mismatch:
        log.warning("the base is not the one its identity was recorded for; collecting again")
        return await _collect(request, loaded, store, progress, timer, base, served, False)
    if store is not None and hint is None and preloaded is None:
        await asyncio.to_thread(record_identity, store, request.base_model, base)
    return collected, base


def _spec_digest(spec: str) -> str | None:
    """A hash of the configured base's files (a TF.js export), or None ("imagenet")."""
    import hashlib
    from pathlib import Path

    path = Path(spec)
    files = [path / "model.json", path / "weights.bin"] if path.is_dir() else [path]
    if spec == "imagenet" or not all(f.is_file() for f in files):
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:32]


def recorded_identity(store: ArtifactStore, spec: str) -> str | None:
    """The identity an earlier run recorded for these base files, without loading them."""
    digest = _spec_digest(spec)
    if digest is None:
        return None
    try:
        blob = store.get_blob(f"bases/by-file/{digest}")
    except Exception:
        return None
    return blob.decode() if blob else None


def record_identity(store: ArtifactStore, spec: str, base: BaseModel) -> None:
    digest = _spec_digest(spec)
    if digest is None or base.source != spec:
        return
    try:
        store.put_blob(f"bases/by-file/{digest}", base.identity.encode())
    except Exception as exc:
        log.warning("cannot record the base's identity: %s", exc)


def load_channel_base(
    spec: str,
    store: ArtifactStore | None,
    channel_id: str,
    served: ServedModel | None,
) -> BaseModel:
    """The served model's fine-tuned base when the store has it, else the configured base."""
    from channelmodel_trainer.finetune import base_from_blob
    from channelmodel_trainer.served import base_blob_key

    if store is not None and served is not None and served.base_identity:
        try:
            blob = store.get_blob(base_blob_key(channel_id, served.base_identity))
        except Exception as exc:
            log.warning("cannot read the channel's base: %s", exc)
            blob = None
        if blob is not None:
            channel_base = base_from_blob(blob)
            if channel_base.identity == served.base_identity:
                log.info("fast path on the channel's fine-tuned base %s", channel_base.identity)
                return channel_base
            log.warning("the stored base of %s does not match its name; ignored", channel_id)
    return load_base_model(spec)


def _groups(
    loaded: LoadedManifest, collected: Collected, labels: list[str]
) -> list[str | None] | None:
    """Per photo (in _dataset's order) its hold-out group, or None when the manifest has none."""
    if not collected.groups:
        return None
    return [collected.groups.get(sha) for label in labels for sha in collected.images[label]]


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
