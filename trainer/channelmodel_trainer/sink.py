"""What every download sink of the trainer shares: it drives the manifest's
downloads into itself, accounts for unusable and repeated photos by content
hash, and decodes off the event loop.

collect.EmbeddingStage (the fast path) and quality._PhotoSink (the quality
path) differ only in what they do with each new photo.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from channelmodel_trainer.decode import DecodeError
from channelmodel_trainer.download import Downloaded, DownloadPolicy, download_images
from channelmodel_trainer.progress import Progress

if TYPE_CHECKING:
    from channelmodel_trainer.manifest import ImageRef, LoadedManifest

log = logging.getLogger(__name__)

UNSUPPORTED = "unsupported location"  # the reason for an entry no image can come from

DecodedT = TypeVar("DecodedT")


@dataclass(repr=False)  # subclasses too: see __repr__
class PhotoTally:
    """Per product, the content hashes of its usable photos, and what was skipped."""

    images: dict[str, list[str]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)  # per product
    reasons: Counter[str] = field(default_factory=Counter)  # per reason
    groups: dict[str, str] = field(default_factory=dict)  # per hash: hold-out group, if any

    def __repr__(self) -> str:
        # Counts, never the arrays a subclass holds: asyncio.run formats its main
        # task's repr, result included, when it restores the SIGINT handler
        # (signal.getsignal's enum lookup builds its error message eagerly); the
        # dataclass repr of 1,000 photos' embeddings cost 0.27 s per training.
        photos = sum(len(hashes) for hashes in self.images.values())
        return (
            f"{type(self).__name__}({len(self.images)} products, {photos} photos, "
            f"{sum(self.skipped.values())} skipped)"
        )


TallyT = TypeVar("TallyT", bound=PhotoTally)


class DownloadSink(ABC, Generic[TallyT]):
    """Takes every downloaded image; a subclass says what becomes of a new photo."""

    def __init__(
        self, result: TallyT, *, stage: str, progress: Progress, decode_threads: int = 2
    ) -> None:
        self.result = result
        self._stage = stage
        self._progress = progress
        self._pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="decode")
        self._wrong_hashes = 0  # downloads whose hash is not the one the manifest states

    async def download(
        self, loaded: LoadedManifest, *, policy: DownloadPolicy | None, token: str | None
    ) -> TallyT:
        """Every image of the manifest into this sink; then `finish()` (also on failure)."""
        refs, rejected = loaded.image_refs()
        for product_id, count in rejected.items():
            self.result.skipped[product_id] += count
            self.result.reasons[UNSUPPORTED] += count
        self._progress.start(self._stage, len(refs))
        try:
            refs = await self._take_known(refs)
            await download_images(
                refs, self.add, policy=policy, token=token, token_origin=loaded.token_origin
            )
        finally:
            result = await self.finish()
        if self._wrong_hashes:
            log.warning(
                "%d photos did not match the sha256 the manifest states: their own hashes "
                "were used (the backend's hashes are stale or wrong)",
                self._wrong_hashes,
            )
        return result

    async def _take_known(self, refs: list[ImageRef]) -> list[ImageRef]:
        """Take what needs no download (photos the manifest names by hash); the rest."""
        return refs

    async def add(self, item: Downloaded) -> None:
        """Download sink: account for one image; a new photo goes to `_add_new`."""
        product = item.image.product_id
        if item.data is None:
            self._skip(product, item.reason or "unavailable")
            return
        sha256 = hashlib.sha256(item.data).hexdigest()
        if item.image.sha256 is not None and item.image.sha256 != sha256:
            self._wrong_hashes += 1
        if item.image.group is not None:
            self.result.groups.setdefault(sha256, item.image.group)
        if self._has(sha256):
            self.result.images.setdefault(product, []).append(sha256)  # same photo twice
            self._progress.advance(self._stage)
            return
        await self._add_new(product, sha256, item.data)

    @abstractmethod
    def _has(self, sha256: str) -> bool:
        """Whether this photo is taken already (or being taken): a repeat only counts."""

    @abstractmethod
    async def _add_new(self, product: str, sha256: str, data: bytes) -> None:
        """Take a photo not seen before."""

    @abstractmethod
    async def finish(self) -> TallyT:
        """Complete what is still pending, release the decode threads; the result."""

    async def _decode_off_loop(
        self, product: str, decode: Callable[[], DecodedT]
    ) -> DecodedT | None:
        """`decode()` in a decode thread; None (the image skipped) if it fails."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, decode)
        except DecodeError as error:
            self._skip(product, str(error))
        except Exception as exc:  # whatever a decoder raises ends this image, not the run
            log.warning("decoding an image of %s failed unexpectedly", product, exc_info=True)
            self._skip(product, f"decode failed: {exc.__class__.__name__}")
        return None

    def _skip(self, product: str, reason: str) -> None:
        log.info("skipped an image of %s: %s", product, reason)
        self.result.skipped[product] += 1
        self.result.reasons[reason] += 1
        self._progress.advance(self._stage)
