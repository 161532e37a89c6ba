"""Model server throughput against a plain static file server, same files, same run.

    .venv/bin/python bench/server_throughput.py [--clients 200] [--rounds 5] [--repeats 3]
                                                [--client curl|aiohttp ...] [--s3]

Publishes one version with a ~2.2 MB weights.bin into a file:// store, starts
`channelmodel serve` on it and, as the baseline, Python's `http.server`
(ThreadingHTTPServer, accept backlog raised to 1024 like ours so that neither
drops SYNs) on the same directory, each in its own process. Then N concurrent
clients fetch weights.bin `rounds` times each from one server, then the other,
alternating `repeats` times. The load comes from curl's parallel mode (C, little
CPU, so the 2 cores go to the servers) or from an aiohttp client (Python).
Reports throughput of each, the ratio (target >= 1x), latency percentiles and
what revalidation with If-None-Match costs in body bytes.
With --s3, also measures our server on an S3 store (moto server on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
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


def curlrc_quote(value: str) -> str:
    """Escape a value for a double-quoted curl config string (ETags carry quotes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def curl_many(
    name: str, url: str, clients: int, rounds: int, headers: dict[str, str] | None = None
) -> Run:
    """The same load from curl's parallel mode: a C client that leaves the CPU to the servers."""
    lines = []
    for _ in range(clients * rounds):
        lines.append(f'url = "{url}"\noutput = "/dev/null"\n')
        lines.extend(
            f'header = "{curlrc_quote(f"{key}: {value}")}"\n'
            for key, value in (headers or {}).items()
        )
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


Loader = Callable[..., Awaitable[Run]]


async def compare(args: argparse.Namespace, load: Loader, ours_url: str, static_url: str) -> None:
    ours_name, base_name = "channelmodel serve (file://)", "python http.server"
    await load("warm-up", ours_url, 10, 2)
    await load("warm-up", static_url, 10, 2)
    runs: dict[str, list[Run]] = {ours_name: [], base_name: []}
    for _ in range(args.repeats):  # alternate, so that background load hits both alike
        runs[ours_name].append(await load(ours_name, ours_url, args.clients, args.rounds))
        runs[base_name].append(await load(base_name, static_url, args.clients, args.rounds))
    print("| server | requests | req/s | MB/s | p50 ms | p95 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for series in runs.values():
        for run in series:
            print(report_line(run))
    ours = statistics.median(r.mb_per_s for r in runs[ours_name])
    base = statistics.median(r.mb_per_s for r in runs[base_name])
    print(
        f"\nmedian throughput: ours {ours:.0f} MB/s, http.server {base:.0f} MB/s, ratio {ours / base:.2f}x\n"
    )

    etag = await etag_of(ours_url)
    condition = {"If-None-Match": etag}
    ours_304 = await load("ours, If-None-Match", ours_url, args.clients, args.rounds, condition)
    base_304 = await load(
        "http.server, If-None-Match", static_url, args.clients, args.rounds, condition
    )
    print("| revalidation | requests | req/s | body MB/s | p50 ms | p95 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    print(report_line(ours_304))
    print(report_line(base_304))
    for run in (ours_304, base_304):
        print(f"{run.name}: statuses {run.statuses}, body bytes {run.body_bytes}")  # type: ignore[attr-defined]


async def main_async(args: argparse.Namespace) -> int:
    loaders: dict[str, Loader] = {"curl": curl_many, "aiohttp": fetch_many}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        files = {
            "model.json": b'{"format": "layers-model"}',
            "weights.bin": os.urandom(WEIGHTS_SIZE),
            "metadata.json": b'{"labels": []}',
        }
        open_store(root.as_uri()).publish_version(CHANNEL, VERSION, files)
        ours_port, static_port = free_port(), free_port()
        ours_url = f"http://127.0.0.1:{ours_port}/assets/ml-models/{CHANNEL}/v{VERSION}/weights.bin"
        static_url = f"http://127.0.0.1:{static_port}/{CHANNEL}/v{VERSION}/weights.bin"
        with (
            process(our_server(root.as_uri(), ours_port), f"http://127.0.0.1:{ours_port}/healthz"),
            process(static_server(root, static_port), f"http://127.0.0.1:{static_port}/"),
        ):
            for client in args.client:
                print(
                    f"## client: {client}; {args.clients} concurrent clients x {args.rounds} GETs of "
                    f"weights.bin ({WEIGHTS_SIZE} bytes), {args.repeats} alternating repeats, "
                    f"{os.cpu_count()} CPUs\n"
                )
                await compare(args, loaders[client], ours_url, static_url)
                print()
        if args.s3:
            await s3_run(args, files, loaders[args.client[0]])
    return 0


async def s3_run(args: argparse.Namespace, files: dict[str, bytes], load: Loader) -> None:
    moto_port, ours_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    moto_cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)]
    with process(moto_cmd, f"{endpoint}/moto-api/"):
        env = {**os.environ, **S3_TEST_ENV, "CHANNELMODEL_S3_ENDPOINT_URL": endpoint}
        os.environ.update(env)
        bucket = create_bucket(endpoint)
        open_store(f"s3://{bucket}/models").publish_version(CHANNEL, VERSION, files)
        url = f"http://127.0.0.1:{ours_port}/assets/ml-models/{CHANNEL}/v{VERSION}/weights.bin"
        ready = f"http://127.0.0.1:{ours_port}/healthz"
        with process(our_server(f"s3://{bucket}/models", ours_port), ready, env):
            clients = min(args.clients, 50)
            run = await load("channelmodel serve (s3:// on moto)", url, clients, 2)
            etag = await etag_of(url)
            revalidated = await load(
                "same, If-None-Match", url, clients, 2, {"If-None-Match": etag}
            )
            print(f"## S3 backend (moto server, one process), {clients} clients x 2\n")
            print("| server | requests | req/s | MB/s | p50 ms | p95 ms | errors |")
            print("|---|---|---|---|---|---|---|")
            print(report_line(run))
            print(report_line(revalidated))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--client",
        action="append",
        choices=["curl", "aiohttp"],
        help="load generator(s); default curl (C, parallel mode) if installed, else aiohttp",
    )
    parser.add_argument(
        "--s3", action="store_true", help="also measure the S3 backend against moto"
    )
    args = parser.parse_args()
    if not args.client:
        args.client = ["curl"] if shutil.which("curl") else ["aiohttp"]
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
