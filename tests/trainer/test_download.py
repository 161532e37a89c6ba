"""Concurrent image download: skip-and-say-why, retries, limits, token scope."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from channelmodel_trainer.download import Downloaded, DownloadPolicy, _retry_after, download_images
from channelmodel_trainer.manifest import ImageRef, origin
from tests.trainer.trainer_testlib import CatalogServer, Route, jpeg_bytes

FAST = DownloadPolicy(
    concurrency=4, timeout_seconds=5, attempts=3, backoff_seconds=0.01, max_bytes=50_000
)


async def fetch_all(refs: list[ImageRef], **kwargs: object) -> dict[str, Downloaded]:
    results: dict[str, Downloaded] = {}

    async def sink(item: Downloaded) -> None:
        results[item.image.location] = item

    await download_images(refs, sink, **{"policy": FAST, **kwargs})  # type: ignore[arg-type]
    return results


def url_ref(url: str, product: str = "p") -> ImageRef:
    return ImageRef(product, url, is_url=True)


async def test_each_bad_entry_is_skipped_with_its_reason(catalog_server: CatalogServer) -> None:
    photo = jpeg_bytes()
    good = catalog_server.add("good.jpg", photo)
    html = catalog_server.add("page.jpg", b"<html></html>", content_type="text/html; charset=utf-8")
    large = catalog_server.add("large.jpg", b"\xff" * 60_000)
    generic = catalog_server.add("s3.jpg", photo, content_type="application/octet-stream")
    missing = catalog_server.url("missing.jpg")

    results = await fetch_all([url_ref(u) for u in (good, html, large, generic, missing)])

    assert results[good].data == photo
    assert results[generic].data == photo
    assert (results[html].data, results[html].reason) == (None, "content-type text/html")
    assert (results[large].data, results[large].reason) == (None, "larger than 50000 bytes")
    assert (results[missing].data, results[missing].reason) == (None, "HTTP 404")
    # A 404 is final: asked once.
    assert [path for path, _ in catalog_server.requests].count("/missing.jpg") == 1


async def test_5xx_and_429_are_retried_with_backoff(catalog_server: CatalogServer) -> None:
    photo = jpeg_bytes()
    catalog_server.routes["/flaky.jpg"] = Route(body=photo, fail_first=[503, 429])
    catalog_server.routes["/down.jpg"] = Route(body=photo, fail_first=[500, 502, 503, 504])

    results = await fetch_all(
        [url_ref(catalog_server.url("flaky.jpg")), url_ref(catalog_server.url("down.jpg"))]
    )

    assert results[catalog_server.url("flaky.jpg")].data == photo
    down = results[catalog_server.url("down.jpg")]
    assert (down.data, down.reason) == (None, "HTTP 503 after 3 attempts")
    paths = [path for path, _ in catalog_server.requests]
    assert paths.count("/flaky.jpg") == 3
    assert paths.count("/down.jpg") == 3


async def test_unreachable_host_is_skipped_not_fatal() -> None:
    # Port 9 on localhost: connection refused, quickly.
    results = await fetch_all([url_ref("http://127.0.0.1:9/x.jpg")])
    assert results["http://127.0.0.1:9/x.jpg"].reason == "ConnectError after 3 attempts"


async def test_token_goes_only_to_the_manifest_origin(
    catalog_server: CatalogServer, make_catalog_server: Callable[[], CatalogServer]
) -> None:
    other = make_catalog_server()
    own = catalog_server.add("a.jpg", jpeg_bytes())
    foreign = other.add("b.jpg", jpeg_bytes())

    await fetch_all(
        [url_ref(own), url_ref(foreign)],
        token="s3cret",
        token_origin=origin(catalog_server.base_url),
    )

    assert catalog_server.requests == [("/a.jpg", "Bearer s3cret")]
    assert other.requests == [("/b.jpg", None)]


async def test_concurrency_is_bounded(catalog_server: CatalogServer) -> None:
    catalog_server.latency_seconds = 0.05
    refs = [url_ref(catalog_server.add(f"{i}.jpg", jpeg_bytes())) for i in range(20)]

    results = await fetch_all(refs)

    assert all(item.data for item in results.values())
    assert 1 < catalog_server.max_in_flight <= FAST.concurrency


async def test_local_files_are_read_with_the_same_limits(tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "big.jpg").write_bytes(b"\0" * 60_000)
    refs = [
        ImageRef("p", str(tmp_path / name), is_url=False)
        for name in ("ok.jpg", "big.jpg", "none.jpg")
    ]

    results = await fetch_all(refs)

    assert results[str(tmp_path / "ok.jpg")].data == jpeg_bytes()
    assert results[str(tmp_path / "big.jpg")].reason == "larger than 50000 bytes"
    assert results[str(tmp_path / "none.jpg")].reason == "file not found"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), ("0", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_header_is_understood(header: str | None, seconds: float | None) -> None:
    assert _retry_after(header) == seconds
