"""Model server throughput against a plain static file server, same files, same run.

    .venv/bin/python bench/server_throughput.py [--clients 200] [--rounds 5] [--repeats 3] [--s3]

Publishes one version with a ~2.2 MB weights.bin into a file:// store, starts
`channelmodel serve` on it and, as the baseline, Python's `http.server`
(ThreadingHTTPServer, accept backlog raised to 1024 like ours so that neither
drops SYNs) on the same directory, each in its own process. Then N concurrent
clients (one aiohttp session, one connection each) fetch weights.bin `rounds`
times each from one server, then the other, alternating `repeats` times.
Reports throughput of each, the ratio (target >= 1x), latency percentiles and
what revalidation with If-None-Match costs in body bytes.
With --s3, also measures our server on an S3 store (moto server on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from channelmodel.store import open_store
from channelmodel.store.testing import S3_TEST_ENV, create_bucket

CHANNEL, VERSION = "shop-1", "1.0.0"
WEIGHTS_SIZE = 2_200_000


@dataclass
class Run:
    name: str
    requests: int
    body_bytes: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def mb_per_s(self) -> float:
        return self.body_bytes / self.seconds / 1e6

    @property
    def req_per_s(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(args: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_until_up(ready_url, proc)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def our_server(store_uri: str, port: int, env: dict[str, str] | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "channelmodel",
        "serve",
        "--store",
        store_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def static_server(directory: Path, port: int) -> list[str]:
    code = (
        "import functools, http.server as h; h.ThreadingHTTPServer.request_queue_size = 1024; "
        f"handler = functools.partial(h.SimpleHTTPRequestHandler, directory={str(directory)!r}); "
        "handler.log_message = lambda *a: None; "
        f"h.ThreadingHTTPServer(('127.0.0.1', {port}), handler).serve_forever()"
    )
    return [sys.executable, "-c", code]


async def fetch_many(
    name: str, url: str, clients: int, rounds: int, headers: dict[str, str] | None = None
) -> Run:
    latencies: list[float] = []
    counts = {"bytes": 0, "errors": 0}
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:

        async def client() -> None:
            for _ in range(rounds):
                started = time.perf_counter()
                try:
                    async with session.get(url, headers=headers) as response:
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                        async for chunk in response.content.iter_chunked(1 << 20):
                            counts["bytes"] += len(chunk)
                except aiohttp.ClientError:
                    counts["errors"] += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    run = Run(name, clients * rounds, counts["bytes"], seconds, latencies, counts["errors"])
    run.statuses = statuses  # type: ignore[attr-defined]
    return run


async def curl_many(
    name: str, url: str, clients: int, rounds: int, headers: dict[str, str] | None = None
) -> Run:
    """The same load from curl's parallel mode: a C client that leaves the CPU to the servers."""
    lines = []
    for _ in range(clients * rounds):
        lines.append(f'url = "{url}"\noutput = "/dev/null"\n')
        lines.extend(f'header = "{key}: {value}"\n' for key, value in (headers or {}).items())
    with tempfile.NamedTemporaryFile("w", suffix=".curlrc") as config:
        config.write("".join(lines))
        config.flush()
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "curl", "--no-progress-meter", "--parallel", "--parallel-immediate", "--parallel-max", str(clients),
            "-K", config.name, "-w", "%{http_code} %{size_download} %{time_total}\n",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await proc.communicate()
        seconds = time.perf_counter() - started
    statuses: dict[int, int] = {}
    body_bytes, latencies, errors = 0, [], 0
    for line in out.decode().splitlines():
        code, size, total = line.split()
        statuses[int(code)] = statuses.get(int(code), 0) + 1
        if code == "000":
            errors += 1
            continue
        body_bytes += int(size)
        latencies.append(float(total))
    run = Run(name, clients * rounds, body_bytes, seconds, latencies, errors)
    run.statuses = statuses  # type: ignore[attr-defined]
    return run


def report_line(run: Run) -> str:
    return (
        f"| {run.name} | {run.requests} | {run.req_per_s:.1f} | {run.mb_per_s:.0f} | "
        f"{run.percentile(0.5):.0f} | {run.percentile(0.95):.0f} | {run.errors} |"
    )


async def etag_of(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.head(url) as response:
        return response.headers["ETag"]


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        store = open_store(root.as_uri())
        files = {
            "model.json": b'{"format": "layers-model"}',
            "weights.bin": os.urandom(WEIGHTS_SIZE),
            "metadata.json": b'{"labels": []}',
        }
        store.publish_version(CHANNEL, VERSION, files)
        ours_port, static_port = free_port(), free_port()
        ours_url = f"http://127.0.0.1:{ours_port}/assets/ml-models/{CHANNEL}/v{VERSION}/weights.bin"
        static_url = f"http://127.0.0.1:{static_port}/{CHANNEL}/v{VERSION}/weights.bin"
        print(
            f"{args.clients} concurrent clients x {args.rounds} GETs of weights.bin ({WEIGHTS_SIZE} bytes), "
            f"{args.repeats} alternating repeats, {os.cpu_count()} CPUs\n"
        )
        with (
            process(our_server(root.as_uri(), ours_port), f"http://127.0.0.1:{ours_port}/healthz"),
            process(static_server(root, static_port), f"http://127.0.0.1:{static_port}/"),
        ):
            await fetch_many("warm-up", ours_url, 10, 2)
            await fetch_many("warm-up", static_url, 10, 2)
            runs: dict[str, list[Run]] = {
                "channelmodel serve (file://)": [],
                "python http.server": [],
            }
            for _ in range(args.repeats):
                runs["channelmodel serve (file://)"].append(
                    await fetch_many(
                        "channelmodel serve (file://)", ours_url, args.clients, args.rounds
                    )
                )
                runs["python http.server"].append(
                    await fetch_many("python http.server", static_url, args.clients, args.rounds)
                )
            print("| server | requests | req/s | MB/s | p50 ms | p95 ms | errors |")
            print("|---|---|---|---|---|---|---|")
            for series in runs.values():
                for run in series:
                    print(report_line(run))
            ours = statistics.median(r.mb_per_s for r in runs["channelmodel serve (file://)"])
            base = statistics.median(r.mb_per_s for r in runs["python http.server"])
            print(
                f"\nmedian throughput: ours {ours:.0f} MB/s, http.server {base:.0f} MB/s, ratio {ours / base:.2f}x"
            )

            etag = await etag_of(ours_url)
            revalidate = await fetch_many(
                "If-None-Match (ours)", ours_url, args.clients, 1, {"If-None-Match": etag}
            )
            static_revalidate = await fetch_many(
                "If-None-Match (http.server)", static_url, args.clients, 1, {"If-None-Match": etag}
            )
            print(
                f"\nrevalidation, {args.clients} clients with If-None-Match: ours statuses "
                f"{revalidate.statuses} body bytes {revalidate.body_bytes}; "  # type: ignore[attr-defined]
                f"http.server statuses {static_revalidate.statuses} "  # type: ignore[attr-defined]
                f"body bytes {static_revalidate.body_bytes}"
            )

        if args.s3:
            await s3_run(args, files)
    return 0


async def s3_run(args: argparse.Namespace, files: dict[str, bytes]) -> None:
    moto_port, ours_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    moto_cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)]
    with process(moto_cmd, f"{endpoint}/moto-api/"):
        env = {**os.environ, **S3_TEST_ENV, "CHANNELMODEL_S3_ENDPOINT_URL": endpoint}
        os.environ.update(env)
        bucket = create_bucket(endpoint)
        open_store(f"s3://{bucket}/models").publish_version(CHANNEL, VERSION, files)
        url = f"http://127.0.0.1:{ours_port}/assets/ml-models/{CHANNEL}/v{VERSION}/weights.bin"
        with process(
            our_server(f"s3://{bucket}/models", ours_port),
            f"http://127.0.0.1:{ours_port}/healthz",
            env,
        ):
            clients = min(args.clients, 50)
            run = await fetch_many("channelmodel serve (s3:// on moto)", url, clients, 2)
            print(f"\nS3 backend (moto server, single process, {clients} clients x 2):")
            print(report_line(run))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--s3", action="store_true", help="also measure the S3 backend against moto"
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
