"""Helpers of the trainer tests and benchmarks: image factories, a local image
catalog HTTP server, grocery dataset selection. Fixtures are in conftest.py."""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_EXPORT = "reference/teachable-machine-image-export.zip"
GROCERY = "datasets/grocery-store/dataset"

# Five grocery products that a shop would sell side by side, each with photos
# in the dataset's validation split: Banana, Watermelon, Oatly Oat Milk,
# Carrots, Red Bell Pepper.
GROCERY_CLASSES = [6, 14, 45, 63, 72]
GROCERY_PHOTOS_PER_PRODUCT = 10


def shared_dir() -> Path:
    """`../shared` beside the repository, or $CHANNELMODEL_SHARED."""
    configured = os.environ.get("CHANNELMODEL_SHARED")
    return Path(configured) if configured else (REPO_ROOT / ".." / "shared").resolve()


def grocery_images(
    dataset: Path, split: str, class_ids: list[int], per_class: int | None
) -> dict[int, list[Path]]:
    """First `per_class` photos of each class in a split's list (file order: deterministic)."""
    chosen: dict[int, list[Path]] = {class_id: [] for class_id in class_ids}
    for line in (dataset / f"{split}.txt").read_text().splitlines():
        path, fine, _coarse = (part.strip() for part in line.split(","))
        class_id = int(fine)
        if class_id in chosen and (per_class is None or len(chosen[class_id]) < per_class):
            chosen[class_id].append(dataset / path)
    return chosen


def jpeg_bytes(
    color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (64, 48), **save: Any
) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=90, **save)
    return buffer.getvalue()


def patterned_jpeg(seed: int, size: int = 96) -> bytes:
    """A distinct, textured photo-like image per seed (flat colours embed too alike)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Route:
    status: int = 200
    content_type: str = "image/jpeg"
    body: bytes = b""
    # Statuses to answer before `status`, one per request (e.g. [503, 503] then 200).
    fail_first: list[int] = field(default_factory=list)


@dataclass
class CatalogServer:
    """A threaded HTTP server on 127.0.0.1 serving fixed routes, recording requests."""

    routes: dict[str, Route] = field(default_factory=dict)
    latency_seconds: float = 0.0
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    request_times: list[tuple[str, float]] = field(default_factory=list)  # (path, time.time())
    max_in_flight: int = 0
    base_url: str = ""
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def add(
        self, path: str, body: bytes, content_type: str = "image/jpeg", status: int = 200
    ) -> str:
        self.routes["/" + path.lstrip("/")] = Route(status, content_type, body)
        return self.url(path)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        with self._lock:
            self.requests.append((path, handler.headers.get("Authorization")))
            self.request_times.append((path, time.time()))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency_seconds:
                time.sleep(self.latency_seconds)
            route = self.routes.get(path)
            if route is None:
                status, content_type, body = 404, "text/plain", b"not found"
            elif route.fail_first:
                with self._lock:
                    status = route.fail_first.pop(0)
                content_type, body = "text/plain", b"busy"
            else:
                status, content_type, body = route.status, route.content_type, route.body
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        finally:
            with self._lock:
                self._in_flight -= 1


def serve(catalog: CatalogServer) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else delayed ACKs add 40 ms per keep-alive request

        def do_GET(self) -> None:
            catalog.handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client hanging up mid-body (size limit) is expected here

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    catalog.base_url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
