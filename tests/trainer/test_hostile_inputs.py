"""Inputs an attacker or a broken backend can send the trainer (issue 12,
findings 5, 6, 7, 11, 12): each one ends as a skipped image or a clear
ManifestError, never as an internal error or a result Kubernetes mangles."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from channelmodel_trainer.decode import DecodeError, decode_image
from channelmodel_trainer.download import Downloaded, DownloadPolicy, download_images
from channelmodel_trainer.errors import ManifestError
from channelmodel_trainer.manifest import ImageRef, load_manifest
from channelmodel_trainer.result import MAX_BYTES, failure_result, success_result, write_result

MALFORMED = [
    "http://[::1",  # unclosed IPv6 literal
    "http://shop.test:99999/a.jpg",  # port out of range
    "http://shop.test/a\x00.jpg",  # NUL
    "http://shop\t.test/a.jpg",  # tab
    "http://shop.test/a b.jpg",
    "http:///no-host.jpg",
    "https://exa mple.com/x.jpg",
]


@pytest.mark.parametrize("url", MALFORMED)
async def test_a_malformed_image_url_is_skipped_not_fatal(url: str) -> None:
    results: list[Downloaded] = []

    async def sink(item: Downloaded) -> None:
        results.append(item)

    await download_images(
        [ImageRef("p", url, is_url=True)],
        sink,
        policy=DownloadPolicy(attempts=1),
        token="t0k",
        token_origin="http://shop.test:80",
    )
    assert len(results) == 1
    assert results[0].data is None
    assert results[0].reason


def test_malformed_urls_in_a_manifest_are_counted_per_product(tmp_path: Path) -> None:
    # A remote manifest: relative entries resolve against it, the rest must be http(s).
    manifest = {
        "channelId": "shop-1",
        "products": [
            {"id": "a", "images": [*MALFORMED, "https://cdn.test/ok.jpg"]},
            {"id": "b", "images": ["https://cdn.test/b.jpg", "//[bad"]},
        ],
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    loaded = load_manifest(str(path))
    remote = type(loaded)(loaded.manifest, "https://shop.test/m.json", None, None)
    refs, rejected = remote.image_refs()
    assert [ref.location for ref in refs] == ["https://cdn.test/ok.jpg", "https://cdn.test/b.jpg"]
    assert rejected == {"a": len(MALFORMED), "b": 1}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"channelId": ' + "7" * 5000 + ', "products": []}', "is not JSON"),
    ],
    ids=["deep", "huge-integer"],
)
def test_parser_limits_give_manifest_errors(tmp_path: Path, raw: str, reason: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(raw)
    with pytest.raises(ManifestError, match=reason):
        load_manifest(str(path))


def test_a_failure_result_fits_the_termination_message_as_json(tmp_path: Path) -> None:
    # Many unicode duplicate IDs: each character encodes to 6 bytes (\\uXXXX).
    reason = "duplicate product IDs: " + ", ".join("商品" * 90 + str(i) for i in range(40))
    result = failure_result(reason)
    target = write_result(result, str(tmp_path / "termination-log"))
    assert target is not None
    data = target.read_bytes()
    assert len(data) <= MAX_BYTES
    parsed = json.loads(data)
    assert parsed["ok"] is False
    assert parsed["error"].startswith("duplicate product IDs: 商品")
    assert parsed["error"].endswith("…")


def test_an_oversized_success_result_stays_valid_json(tmp_path: Path) -> None:
    result = success_result(
        channel_id="shop-1",
        version="1.0.0",
        metrics={"accuracy": 0.9},
        skipped={},
        timings={},
        skip_reasons={"é" * 300 + str(i): i for i in range(20)},
    )
    data = write_result(result, str(tmp_path / "log"))
    assert data is not None
    parsed = json.loads(data.read_bytes())
    assert len(data.read_bytes()) <= MAX_BYTES
    assert parsed["ok"] is True
    assert parsed["version"] == "1.0.0"
    assert parsed["metrics"] == {"accuracy": 0.9}


class _Dripping:
    """An HTTP server that sends its headers, then one byte every `interval` seconds."""

    def __init__(self, interval: float, content_type: str) -> None:
        self.interval = interval
        self.content_type = content_type
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\nContent-Length: 100000\r\n\r\n"
            try:
                conn.sendall(head.encode())
                while not self.stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(self.interval)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def dripping() -> Iterator[_Dripping]:
    server = _Dripping(0.1, "image/jpeg")
    yield server
    server.close()


async def test_an_image_download_has_a_total_deadline(dripping: _Dripping) -> None:
    results: list[Downloaded] = []

    async def sink(item: Downloaded) -> None:
        results.append(item)

    started = time.monotonic()
    await download_images(
        [ImageRef("p", dripping.url, is_url=True)],
        sink,
        # each read is well within the timeout: only a total deadline ends this
        policy=DownloadPolicy(
            timeout_seconds=0.6, deadline_seconds=1.5, attempts=5, backoff_seconds=0.01
        ),
    )
    elapsed = time.monotonic() - started
    assert results[0].data is None
    assert results[0].reason in ("over the 1.5 s deadline", "timeout after 5 attempts")
    assert elapsed < 3


def test_a_manifest_download_has_a_total_deadline(dripping: _Dripping) -> None:
    started = time.monotonic()
    with pytest.raises(ManifestError, match="took longer than 1 s"):
        load_manifest(dripping.url, timeout_seconds=0.5, deadline_seconds=1)
    assert time.monotonic() - started < 3


def _encoded(size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, fmt)
    return buffer.getvalue()


def test_formats_decoded_at_full_size_have_a_lower_pixel_budget() -> None:
    # 5000x5000 = 25 MP: under the 64 MP limit, but a PNG is decoded at full size first.
    png = _encoded((5000, 5000), "PNG")
    assert len(png) < 200_000
    with pytest.raises(DecodeError, match="5000x5000 pixels is over the 16000000 limit"):
        decode_image(png)
    # A JPEG of the same size decodes scaled down (draft mode): allowed.
    assert decode_image(_encoded((5000, 5000), "JPEG")).shape == (224, 224, 3)
