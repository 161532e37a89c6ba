"""Downloaded bytes to cached-or-computed embeddings, overlapped.

Download workers hash each image, look it up in the embedding cache and, on a
miss, decode it (and draw its augmented views) in a thread pool; one consumer
batches decoded images through the base model in another thread while the
workers go on. The bounded queue between them keeps memory flat.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from channelmodel_trainer.augment import SOURCE_MIN_SIDE, augmented_views
from channelmodel_trainer.base_model import BaseModel
from channelmodel_trainer.cache import EmbeddingCache
from channelmodel_trainer.decode import centre_square, decode_image, open_upright
from channelmodel_trainer.embed import Embedder
from channelmodel_trainer.progress import Progress
from channelmodel_trainer.sink import DownloadSink, PhotoTally

if TYPE_CHECKING:
    from channelmodel.store.base import ArtifactStore
    from channelmodel_trainer.manifest import ImageRef

STAGE = "embedding"

log = logging.getLogger(__name__)


@dataclass(repr=False)
class Collected(PhotoTally):
    """Per product, the content hashes of its usable images; per hash, its embeddings."""

    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    embedded: int = 0  # images run through the base model
    cache_hits: int = 0


def photo_and_views(data: bytes, views: int, sha256: str | None = None) -> np.ndarray:
    """(1 + views, 224, 224, 3) uint8: the model's input for the photo, then its views."""
    if not views:
        return decode_image(data)[np.newaxis]
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    photo = open_upright(data, min_side=SOURCE_MIN_SIDE)
    extra = augmented_views(photo, views, seed=int(sha256[:8], 16))
    return np.concatenate([centre_square(photo)[np.newaxis], extra])


@dataclass
class _Decoded:
    sha256: str
    pixels: np.ndarray  # (1 + views, 224, 224, 3) uint8


class EmbeddingStage(DownloadSink[Collected]):
    """The fast path's sink: each new photo's embeddings, from the cache or the base."""

    def __init__(
        self,
        base: Awaitable[BaseModel],
        *,
        views: int,
        cache_id_suffix: str,
        cache_store: ArtifactStore | None,
        progress: Progress,
        batch_size: int = 32,
        decode_threads: int = 2,
        identity_hint: str | None = None,
    ) -> None:
        super().__init__(Collected(), stage=STAGE, progress=progress, decode_threads=decode_threads)
        self._base_awaitable = base
        self._base: BaseModel | None = None
        self._embedder: Embedder | None = None
        self._cache: EmbeddingCache | None = None
        self._cache_store = cache_store
        self._cache_suffix = cache_id_suffix
        self._views = views
        self._batch_size = batch_size
        self._queue: asyncio.Queue[_Decoded | None] = asyncio.Queue(
            maxsize=max(4, 2 * batch_size // (1 + views))
        )
        self._in_flight: set[str] = set()
        self._consumer: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        self._writes: set[asyncio.Task[None]] = set()
        # The base's identity known before the base is loaded (the served model's
        # metadata, or a record of the configured base): cache look-ups need not
        # wait for TensorFlow and the base. `hint_mismatch` says it proved wrong.
        self._identity_hint = identity_hint
        self.hint_mismatch = False

    def _lookup_cache(self) -> EmbeddingCache | None:
        """The cache to look up in before the base is loaded, if the hint allows."""
        if self._cache is None and self._identity_hint and self._cache_store is not None:
            base_id = f"{self._identity_hint}-{self._cache_suffix}"
            self._cache = EmbeddingCache(self._cache_store, base_id)
        return self._cache

    async def _ready(self) -> tuple[EmbeddingCache, Embedder]:
        if self._base is None:
            self._base = await self._base_awaitable
        if self._cache is None or self._embedder is None:
            base_id = f"{self._base.identity}-{self._cache_suffix}"
            if self._cache is not None and self._cache.base_id != base_id:
                self.hint_mismatch = True  # look-ups so far read another base's vectors
            self._cache = EmbeddingCache(self._cache_store, base_id)
            self._embedder = Embedder(self._base, self._batch_size)
            self._consumer = asyncio.create_task(self._consume())
        return self._cache, self._embedder

    async def _take_known(self, refs: list[ImageRef]) -> list[ImageRef]:
        """Photos the manifest names by hash and the cache holds are taken without a
        download (one look-up pass in a thread); the rest are downloaded."""
        cache = self._lookup_cache()
        stated = {ref.sha256 for ref in refs if ref.sha256}
        if cache is None or not stated:
            return refs
        rows = 1 + self._views
        found = await asyncio.to_thread(
            lambda: {sha: v for sha in stated if (v := cache.get(sha, rows)) is not None}
        )
        rest: list[ImageRef] = []
        for ref in refs:
            vectors = found.get(ref.sha256) if ref.sha256 else None
            if ref.sha256 is None or vectors is None:
                rest.append(ref)
                continue
            if ref.group is not None:
                self.result.groups.setdefault(ref.sha256, ref.group)
            if ref.sha256 not in self.result.embeddings:
                self.result.embeddings[ref.sha256] = vectors
                self.result.cache_hits += 1
            self.result.images.setdefault(ref.product_id, []).append(ref.sha256)
            self._progress.advance(STAGE)
        log.info(
            "%d of %d photos taken from the embedding cache by the sha256 the manifest "
            "states, without a download",
            len(refs) - len(rest),
            len(refs),
        )
        return rest

    def _has(self, sha256: str) -> bool:
        return sha256 in self.result.embeddings or sha256 in self._in_flight

    async def _add_new(self, product: str, sha256: str, data: bytes) -> None:
        """Embed a new photo unless the cache has it."""
        early = self._lookup_cache() if self._embedder is None else None
        cache = early if early is not None else (await self._ready())[0]
        cached = None
        if self._cache_store is not None:
            cached = await asyncio.to_thread(cache.get, sha256, 1 + self._views)
        if cached is not None:
            self.result.embeddings[sha256] = cached
            self.result.images.setdefault(product, []).append(sha256)
            self.result.cache_hits += 1
            self._progress.advance(STAGE)
            return
        await self._ready()  # a miss is embedded: the base is needed now
        pixels = await self._decode_off_loop(
            product, partial(photo_and_views, data, self._views, sha256)
        )
        if pixels is None:
            return
        self._in_flight.add(sha256)
        self.result.images.setdefault(product, []).append(sha256)
        await self._queue.put(_Decoded(sha256, pixels))

    async def finish(self) -> Collected:
        """Embed what is still queued; then every recorded hash has embeddings."""
        if self._identity_hint is not None and self._embedder is None and self._cache is not None:
            await self._ready()  # every photo was a hit: check the hint against the base
        if self._consumer is not None:
            await self._queue.put(None)
            await self._consumer
        if self._writes:
            await asyncio.gather(*self._writes)
        self._pool.shutdown(wait=True)
        if self._failure is not None:
            raise self._failure
        return self.result

    @staticmethod
    def _store_all(cache: EmbeddingCache, computed: list[tuple[str, np.ndarray]]) -> None:
        for sha256, rows in computed:
            cache.put(sha256, rows)

    async def _consume(self) -> None:
        try:
            await self._consume_batches()
        except Exception as exc:
            self._failure = exc
            # Keep draining so download workers blocked on put() can finish.
            while await self._queue.get() is not None:
                pass

    async def _consume_batches(self) -> None:
        pending: list[_Decoded] = []
        rows = 0
        while True:
            item = await self._queue.get()
            if item is not None:
                pending.append(item)
                rows += len(item.pixels)
            if pending and (item is None or rows >= self._batch_size):
                await self._embed(pending)
                pending, rows = [], 0
            if item is None:
                return

    async def _embed(self, batch: list[_Decoded]) -> None:
        assert self._embedder is not None
        assert self._cache is not None
        pixels = np.concatenate([item.pixels for item in batch])
        vectors = await asyncio.to_thread(self._embedder.embed, pixels)
        start = 0
        computed: list[tuple[str, np.ndarray]] = []
        for item in batch:
            rows = vectors[start : start + len(item.pixels)]
            start += len(item.pixels)
            self.result.embeddings[item.sha256] = rows
            self._in_flight.discard(item.sha256)
            computed.append((item.sha256, rows))
        if self._cache_store is not None:
            # Written in the background: the next batch need not wait for the store.
            writes = asyncio.create_task(asyncio.to_thread(self._store_all, self._cache, computed))
            self._writes.add(writes)
            writes.add_done_callback(self._writes.discard)
        self.result.embedded += len(batch)
        self._progress.advance(STAGE, len(batch))
