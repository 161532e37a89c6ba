"""A sample shop catalog for the sandbox: product photos drawn by the project
(deterministic, so nothing binary is committed) and a tiny backend serving the
manifest the trainer reads.

The manifest is built from the folder on every request: adding a product is
copying a folder of photos into the catalog directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

IMAGE_SIZE = 224


@dataclass(frozen=True)
class SampleProduct:
    id: str
    shape: str  # circle | ellipse | box | can | star
    color: tuple[int, int, int]
    accent: tuple[int, int, int]


SAMPLE_PRODUCTS = [
    SampleProduct("prod-apple", "circle", (200, 30, 40), (60, 120, 30)),
    SampleProduct("prod-banana", "ellipse", (235, 205, 40), (120, 90, 20)),
    SampleProduct("prod-milk", "box", (240, 240, 245), (40, 90, 200)),
    SampleProduct("prod-soda", "can", (30, 150, 60), (230, 230, 230)),
]
# Held back: the product a newcomer adds to see version 1.0.1 appear.
EXTRA_PRODUCT = SampleProduct("prod-lemon", "star", (245, 230, 60), (40, 160, 40))


def draw_photo(product: SampleProduct, rng: random.Random) -> bytes:
    """One 'photo': the product at a random place, size and angle on a random background."""
    from io import BytesIO

    from PIL import Image, ImageDraw, ImageFilter

    background = tuple(rng.randint(60, 200) for _ in range(3))
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    draw = ImageDraw.Draw(image)
    for _ in range(6):  # clutter
        x, y = rng.randint(0, IMAGE_SIZE), rng.randint(0, IMAGE_SIZE)
        shade = tuple(min(255, c + rng.randint(-40, 40)) for c in background)
        draw.rectangle((x, y, x + rng.randint(10, 50), y + rng.randint(10, 50)), fill=shade)
    size = rng.randint(70, 130)
    cx, cy = (
        rng.randint(size // 2 + 5, IMAGE_SIZE - size // 2 - 5),
        rng.randint(size // 2 + 5, IMAGE_SIZE - size // 2 - 5),
    )
    layer = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    box = (size // 2, size // 2, size * 3 // 2, size * 3 // 2)
    if product.shape == "circle":
        d.ellipse(box, fill=product.color)
        d.rectangle((size - 4, size // 2 - 18, size + 4, size // 2 + 4), fill=product.accent)
    elif product.shape == "ellipse":
        d.ellipse((size // 4, size * 3 // 4, size * 7 // 4, size * 5 // 4), fill=product.color)
        d.ellipse((size // 4, size * 3 // 4, size // 2, size), fill=product.accent)
    elif product.shape == "box":
        d.rectangle((size * 2 // 3, size // 3, size * 4 // 3, size * 5 // 3), fill=product.color)
        d.rectangle((size * 2 // 3, size, size * 4 // 3, size * 5 // 4), fill=product.accent)
    elif product.shape == "can":
        d.rounded_rectangle(
            (size * 3 // 4, size // 3, size * 5 // 4, size * 5 // 3), radius=12, fill=product.color
        )
        d.rectangle(
            (size * 3 // 4, size * 5 // 6, size * 5 // 4, size * 7 // 6), fill=product.accent
        )
    else:
        points = [
            (
                size + (size * 0.6 if i % 2 == 0 else size * 0.25) * _cos(i),
                size + (size * 0.6 if i % 2 == 0 else size * 0.25) * _sin(i),
            )
            for i in range(10)
        ]
        d.polygon(points, fill=product.color, outline=product.accent)
    layer = layer.rotate(rng.uniform(-40, 40), resample=Image.Resampling.BICUBIC)
    image.paste(layer, (cx - size, cy - size), layer)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.2)))
    out = BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _cos(i: int) -> float:
    import math

    return math.cos(math.pi * i / 5 - math.pi / 2)


def _sin(i: int) -> float:
    import math

    return math.sin(math.pi * i / 5 - math.pi / 2)


def write_product(root: Path, product: SampleProduct, photos: int, seed: int) -> None:
    folder = root / product.id
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}-{product.id}")
    for index in range(photos):
        (folder / f"{index:02d}.jpg").write_bytes(draw_photo(product, rng))


def ensure_sample_catalog(catalog: Path, extra: Path, photos: int = 12, seed: int = 7) -> None:
    """Draw the sample catalog (and the held-back product) unless already there."""
    for product in SAMPLE_PRODUCTS:
        if not (catalog / product.id).is_dir():
            write_product(catalog, product, photos, seed)
    if not (extra / EXTRA_PRODUCT.id).is_dir():
        write_product(extra, EXTRA_PRODUCT, photos, seed)


@functools.lru_cache(maxsize=100_000)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """A photo's content hash; size and mtime in the key: a replaced file is hashed again."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_manifest(catalog: Path, channel_id: str, base_url: str) -> dict[str, object]:
    """Every photo with its SHA-256, as a backend that knows its assets' hashes lists
    them: the trainer then downloads only photos it has no embeddings for."""
    products = []
    for folder in sorted(p for p in catalog.iterdir() if p.is_dir()):
        images = sorted(
            f for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
        entries = []
        for image in images:
            stat = image.stat()
            entries.append(
                {
                    "url": f"{base_url}/images/{folder.name}/{image.name}",
                    "sha256": _sha256(image, stat.st_size, stat.st_mtime_ns),
                }
            )
        products.append({"id": folder.name, "images": entries})
    return {"channelId": channel_id, "products": products}


def create_catalog_app(catalog: Path, channel_id: str) -> web.Application:
    """The backend's part: GET /manifest.json and the photos it lists."""

    async def manifest(request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return web.json_response(build_manifest(catalog, channel_id, base), dumps=json.dumps)

    app = web.Application()
    app.router.add_get("/manifest.json", manifest)
    app.router.add_static("/images", catalog, show_index=False, follow_symlinks=False)
    return app
