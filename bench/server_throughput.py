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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    errors: int  # failed transfers and answers other than 200/304
    statuses: dict[int, int] = field(default_factory=dict)
    server_cpu_s: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.body_bytes / self.seconds / 1e6

    @property
    def req_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1000

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
def process(args: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[int]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_until_up(ready_url, proc)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(load: Loader, pid: int, *args: Any) -> Run:
    """Run a load and note the CPU time the server process spent on it.

    On a busy machine wall-clock throughput swings with the neighbours' load;
    CPU time per request is what the server itself costs.
    """
    before = cpu_seconds(pid)
    run = await load(*args)
    run.server_cpu_s = cpu_seconds(pid) - before
    return run


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
    errors = counts["errors"] + sum(n for code, n in statuses.items() if code not in (200, 304))
    return Run(name, clients * rounds, counts["bytes"], seconds, latencies, errors, statuses)


async def curl_many(
    name: str, url: str, clients: int, rounds: int, headers: dict[str, str] | None = None
) -> Run:
    """The same load from curl's parallel mode: a C client that leaves the CPU to the servers."""
    # One config line pair per transfer; headers on the command line apply to all of them.
    transfers = f'url = "{url}"\noutput = "/dev/null"\n' * (clients * rounds)
    header_args = [
        arg for key, value in (headers or {}).items() for arg in ("-H", f"{key}: {value}")
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".curlrc") as config:
        config.write(transfers)
        config.flush()
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "curl", "--no-progress-meter", "--parallel", "--parallel-immediate", "--parallel-max", str(clients),
            *header_args, "-K", config.name, "-w", "%{http_code} %{size_download} %{time_total}\n",
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
    errors += sum(n for code, n in statuses.items() if code not in (0, 200, 304))
    return Run(name, clients * rounds, body_bytes, seconds, latencies, errors, statuses)


HEADER = (
    "| server | requests | req/s | MB/s | p50 ms | p95 ms | errors | server CPU ms/request |\n"
    "|---|---|---|---|---|---|---|---|"
)


def report_line(run: Run) -> str:
    return (
        f"| {run.name} | {run.requests} | {run.req_per_s:.1f} | {run.mb_per_s:.0f} | "
        f"{run.percentile(0.5):.0f} | {run.percentile(0.95):.0f} | {run.errors} | "
        f"{run.cpu_ms_per_request:.2f} |"
    )


async def etag_of(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.head(url) as response:
        return response.headers["ETag"]


Loader = Callable[..., Awaitable[Run]]


async def compare(
    args: argparse.Namespace, load: Loader, ours: tuple[str, int], base: tuple[str, int]
) -> None:
    """Alternate runs against our server and the baseline; `ours`/`base` are (url, pid)."""
    names = {"ours": "channelmodel serve (file://)", "base": "python http.server"}
    targets = {"ours": ours, "base": base}
    for url, _ in targets.values():
        await load("warm-up", url, 10, 2)
    runs: dict[str, list[Run]] = {"ours": [], "base": []}
    for _ in range(args.repeats):  # alternate, so that background load hits both alike
        for key, (url, pid) in targets.items():
            runs[key].append(await measured(load, pid, names[key], url, args.clients, args.rounds))
    print(HEADER)
    for series in runs.values():
        for run in series:
            print(report_line(run))

    def median(key: str, metric: Callable[[Run], float]) -> float:
        return statistics.median(metric(run) for run in runs[key])

    ours_mb, base_mb = median("ours", lambda r: r.mb_per_s), median("base", lambda r: r.mb_per_s)
    # Each pair ran back to back: its ratio is the least disturbed by background load.
    pairs = sorted(o.mb_per_s / b.mb_per_s for o, b in zip(runs["ours"], runs["base"], strict=True))
    ours_cpu = median("ours", lambda r: r.cpu_ms_per_request)
    base_cpu = median("base", lambda r: r.cpu_ms_per_request)
    print(
        f"\nthroughput (median): ours {ours_mb:.0f} MB/s, http.server {base_mb:.0f} MB/s, "
        f"ratio {ours_mb / base_mb:.2f}x; per back-to-back pair: median {statistics.median(pairs):.2f}x, "
        f"range {pairs[0]:.2f}x to {pairs[-1]:.2f}x"
    )
    print(
        f"server CPU per request (median): ours {ours_cpu:.2f} ms, http.server {base_cpu:.2f} ms, "
        f"http.server uses {base_cpu / ours_cpu:.2f}x the CPU of ours\n"
    )

    condition = {"If-None-Match": await etag_of(ours[0])}
    revalidations = [
        await measured(
            load, pid, f"{names[key]}, If-None-Match", url, args.clients, args.rounds, condition
        )
        for key, (url, pid) in targets.items()
    ]
    print(HEADER.replace("| server |", "| revalidation |"))
    for run in revalidations:
        print(report_line(run))
    for run in revalidations:
        print(f"{run.name}: statuses {run.statuses}, body bytes {run.body_bytes}")


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
            process(
                our_server(root.as_uri(), ours_port), f"http://127.0.0.1:{ours_port}/healthz"
            ) as ours_pid,
            process(
                static_server(root, static_port), f"http://127.0.0.1:{static_port}/"
            ) as base_pid,
        ):
            for client in args.client:
                print(
                    f"## client: {client}; {args.clients} concurrent clients x {args.rounds} GETs of "
                    f"weights.bin ({WEIGHTS_SIZE} bytes), {args.repeats} alternating repeats, "
                    f"{os.cpu_count()} CPUs\n"
                )
                await compare(args, loaders[client], (ours_url, ours_pid), (static_url, base_pid))
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
        with process(our_server(f"s3://{bucket}/models", ours_port), ready, env) as pid:
            clients = min(args.clients, 50)
            run = await measured(load, pid, "channelmodel serve (s3:// on moto)", url, clients, 2)
            etag = await etag_of(url)
            revalidated = await measured(
                load, pid, "same, If-None-Match", url, clients, 2, {"If-None-Match": etag}
            )
            print(f"## S3 backend (moto server, one process), {clients} clients x 2\n")
            print(HEADER)
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
