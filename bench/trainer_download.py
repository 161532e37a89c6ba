"""Image download: concurrent vs sequential, and memory as the catalog grows.

    .venv/bin/python bench/trainer_download.py [--images 500] [--latency-ms 20]

A local aiohttp server (127.0.0.1, its own process) serves real grocery photos with an added latency per request, like a shop's
image host farther away.
1. The trainer's downloader fetches the same N images with its default
   concurrency and with concurrency 1 (sequential): ratio, target >= 10x.
2. The whole collect stage (download, hash, decode, embed; no cache) runs in a
   fresh process for 500 and for 2000 images: peak RSS of each, which should
   stay flat because downloads, decodes and embeddings are bounded queues.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from channelmodel_trainer.download import Downloaded, DownloadPolicy, download_images
from channelmodel_trainer.manifest import ImageRef
from trainer_common import REPO_ROOT, grocery_split, machine

# The bench's catalog server listens on loopback, which the egress policy refuses
# by default: allowed here explicitly (the collect child inherits it).
os.environ.setdefault("CHANNELMODEL_EGRESS_ALLOW_NETWORKS", "127.0.0.0/8,::1/128")


def serve(latency: float) -> None:
    """The image host: aiohttp in its own process (not competing for the client's GIL)."""
    from aiohttp import web

    photos = [path.read_bytes() for path, _ in grocery_split("train")]

    async def photo(request: web.Request) -> web.Response:
        await asyncio.sleep(latency)
        index = int(request.match_info["index"]) % len(photos)
        return web.Response(body=photos[index], content_type="image/jpeg")

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/{index:\\d+}.jpg", photo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"http://127.0.0.1:{port}/", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


def start_server_process(latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency-ms", str(latency * 1000)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def download_seconds(base_url: str, count: int, concurrency: int) -> tuple[float, int]:
    refs = [ImageRef(f"p{i // 10}", f"{base_url}{i}.jpg", is_url=True) for i in range(count)]
    received = 0

    async def sink(item: Downloaded) -> None:
        nonlocal received
        received += item.data is not None

    policy = DownloadPolicy(concurrency=concurrency)
    started = time.perf_counter()
    asyncio.run(download_images(refs, sink, policy=policy))
    return time.perf_counter() - started, received


def collect_in_child(base_url: str, count: int) -> dict[str, float]:
    """Run the collect stage in a fresh process; it prints its peak RSS."""
    code = f"""
import asyncio, json, sys, time
sys.path[:0] = [{str(REPO_ROOT / "bench")!r}]
import trainer_common
from channelmodel_trainer.collect import EmbeddingStage
from channelmodel_trainer.download import download_images
from channelmodel_trainer.manifest import ImageRef
from channelmodel_trainer.progress import LogProgress
base = trainer_common.load_base()
before = trainer_common.peak_rss_mib()
async def main():
    ready = asyncio.get_running_loop().create_future(); ready.set_result(base)
    stage = EmbeddingStage(ready, views=0, cache_id_suffix="bench", cache_store=None, progress=LogProgress())
    refs = [ImageRef(f"p{{i // 10}}", f"{base_url}{{i}}.jpg", is_url=True) for i in range({count})]
    await download_images(refs, stage.add)
    return await stage.finish()
started = time.perf_counter()
collected = asyncio.run(main())
print(json.dumps({{"seconds": time.perf_counter() - started, "embedded": collected.embedded,
                  "rss_before": before, "rss_peak": trainer_common.peak_rss_mib()}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.latency_ms / 1000)
        return

    photos = [path.read_bytes() for path, _ in grocery_split("train")]
    server, base_url = start_server_process(args.latency_ms / 1000)
    print(
        f"{machine()}; {args.images} photos (mean {sum(map(len, photos)) // len(photos)} bytes), "
        f"{args.latency_ms:.0f} ms added latency, server in its own process"
    )
    concurrency = DownloadPolicy().concurrency
    concurrent, got_concurrent = download_seconds(base_url, args.images, concurrency)
    sequential, got_sequential = download_seconds(base_url, args.images, 1)
    concurrent = min(concurrent, download_seconds(base_url, args.images, concurrency)[0])
    assert got_concurrent == got_sequential == args.images
    print(
        f"concurrent ({concurrency}): {concurrent:6.2f} s  {args.images / concurrent:7.1f} images/s"
    )
    print(f"sequential (1):  {sequential:6.2f} s  {args.images / sequential:7.1f} images/s")
    print(f"ratio concurrent/sequential: {sequential / concurrent:.1f}x (target >= 10x)")

    for size in args.sizes:
        result = collect_in_child(base_url, size)
        print(
            f"collect {size:5d} images: {result['seconds']:6.1f} s, peak RSS {result['rss_peak']:6.0f} MiB "
            f"(after loading TensorFlow and the base: {result['rss_before']:.0f} MiB)"
        )
    server.terminate()
    server.wait()


if __name__ == "__main__":
    main()
