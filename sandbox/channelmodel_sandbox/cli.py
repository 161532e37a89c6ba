"""`channelmodel emulator`: a local Kubernetes API (with the ChannelModel CRD) and job runner.

channelmodel emulator --port 8001 --kubeconfig /tmp/kubeconfig
kubectl --kubeconfig /tmp/kubeconfig get chm
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import yaml

from channelmodel.api.crd import crd_manifest
from channelmodel_sandbox.emulator import KubernetesAPIEmulator
from channelmodel_sandbox.jobrunner import JobRunner
from channelmodel_sandbox.kubeconfig import write_kubeconfig
from channelmodel_sandbox.runtime import serving

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to listen on (default: %(default)s)."
    )
    parser.add_argument(
        "--port", type=int, default=0, help="Port; 0 picks a free one (default: %(default)s)."
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path("emulator.kubeconfig"),
        help="Where to write a kubeconfig for kubectl/kopf (default: %(default)s).",
    )
    parser.add_argument(
        "--jobs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Run batch/v1 Jobs as local processes (default: on).",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="Where job processes run and log."
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="manifests",
        type=Path,
        action="append",
        default=[],
        help="YAML manifests to apply at start (repeatable).",
    )


def read_manifests(paths: list[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    return docs


async def serve(args: argparse.Namespace) -> None:
    emulator = KubernetesAPIEmulator()
    for manifest in [crd_manifest(), *read_manifests(args.manifests)]:
        emulator.apply_object(manifest)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serving(emulator, args.host, args.port) as url:
        kubeconfig = write_kubeconfig(args.kubeconfig, url)
        runner_task: asyncio.Task[None] | None = None
        if args.jobs:
            runner = JobRunner(url, work_dir=args.work_dir)
            runner_task = asyncio.create_task(runner.run())
        print(f"Kubernetes API emulator at {url}", flush=True)
        print(
            f"kubeconfig: {kubeconfig.resolve()}  (kubectl --kubeconfig {kubeconfig} get chm)",
            flush=True,
        )
        await stop.wait()
        if runner_task is not None:
            runner_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner_task


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(serve(args))
    return 0
