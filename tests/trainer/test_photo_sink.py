"""The quality path's download sink on its own: repeats and broken photos."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from PIL import Image

from channelmodel_trainer.download import Downloaded
from channelmodel_trainer.manifest import ImageRef
from channelmodel_trainer.progress import LogProgress
from channelmodel_trainer.quality import UNDECODABLE_REPEAT, _PhotoSink


def _item(product: str, data: bytes) -> Downloaded:
    return Downloaded(ImageRef(product, f"https://shop.test/{product}.jpg", True), data)


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


async def test_repeats_of_a_broken_photo_arriving_while_it_decodes_are_skipped_too(
    tmp_path: Path,
) -> None:
    sink = _PhotoSink(tmp_path, LogProgress())
    broken, good = b"\xff\xd8 not really a JPEG", _jpeg()
    # The same broken bytes for two products at once (a catalog reusing an upload).
    await asyncio.gather(
        sink.add(_item("p1", broken)),
        sink.add(_item("p2", broken)),
        sink.add(_item("p2", good)),
        sink.add(_item("p3", good)),
    )
    photos = await sink.finish()
    # Every photo a product keeps has pixels: nothing left for a KeyError later.
    kept = [sha for hashes in photos.images.values() for sha in hashes]
    assert kept and all(sha in photos.pixels for sha in kept)
    assert photos.skipped["p1"] == 1 and photos.skipped["p2"] == 1
    assert photos.reasons[UNDECODABLE_REPEAT] == 1
    assert photos.images["p2"] == photos.images["p3"]  # the good photo, counted for both
