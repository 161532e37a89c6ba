"""`channelmodel dev`: the whole loop on one machine, no cluster.

Starts the Kubernetes API emulator, the local job runner (which runs the real
trainer), the operator and the model server as processes, and a sample
catalog backend; applies the packaged example (examples/channelmodel.yaml in
the repository) and narrates what the operator does until the model is served.

Ctrl-C or SIGTERM stops every child (operator, model server, job processes,
servers) before anything more is printed; the exit status is 130 after Ctrl-C,
143 after SIGTERM. A closed stdout (`channelmodel dev | head`) silences the
narration and nothing else. Works from a plain `pip install`: the example ships
as package data and the sample catalog is drawn on first use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from channelmodel.api.crd import crd_manifest
from channelmodel.api.models import GROUP, PLURAL, VERSION
from channelmodel_sandbox.catalog import EXTRA_PRODUCT, create_catalog_app, ensure_sample_catalog
from channelmodel_sandbox.emulator import KubernetesAPIEmulator
from channelmodel_sandbox.jobrunner import JobRunner
from channelmodel_sandbox.kubeconfig import write_kubeconfig
from channelmodel_sandbox.runtime import serving

# Package data (sandbox/pyproject.toml: *.yaml); examples/channelmodel.yaml links to it.
DEFAULT_EXAMPLE = Path(__file__).with_name("channelmodel.yaml")
# A source checkout: sandbox/channelmodel_sandbox/dev.py; ../shared beside it.
SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]
REFERENCE_EXPORT = "reference/teachable-machine-image-export.zip"
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells report

LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(".sandbox"),
        help="State and logs (default: .sandbox).",
    )
    parser.add_argument(
        "-f", "--filename", type=Path, default=DEFAULT_EXAMPLE, help="The ChannelModel to apply."
    )
    parser.add_argument(
        "--catalog-port", type=int, default=8765, help="Sample backend port (default: 8765)."
    )
    parser.add_argument(
        "--server-port", type=int, default=8080, help="Model server port (default: 8080)."
    )
    parser.add_argument(
        "--metrics-port", type=int, default=9090, help="Operator /metrics port (default: 9090)."
    )
    parser.add_argument(
        "--base-model",
        help="Trainer --base-model: a Teachable Machine export (.zip or folder) whose "
        "MobileNet the trainer reuses, or 'imagenet' (Keras downloads the weights once). "
        "Default: $CHANNELMODEL_BASE_MODEL, else the reference export in ../shared of a "
        "source checkout, else imagenet.",
    )
    parser.add_argument("--fresh", action="store_true", help="Forget models from earlier runs.")
    parser.add_argument(
        "--exit-when-served", action="store_true", help="Stop once the first model is served."
    )


def find_base_model(explicit: str | None) -> str:
    if explicit:
        return explicit
    for candidate in (
        os.environ.get("CHANNELMODEL_BASE_MODEL"),
        os.environ.get("CHANNELMODEL_SHARED")
        and str(Path(os.environ["CHANNELMODEL_SHARED"]) / REFERENCE_EXPORT),
        str(SOURCE_CHECKOUT.parent / "shared" / REFERENCE_EXPORT),
    ):
        if candidate and (candidate == "imagenet" or Path(candidate).exists()):
            return candidate
    return "imagenet"  # needs Keras' download (or weights baked into an image)


def write(text: str) -> None:
    """Print to stdout; a closed stdout (the reader went away) silences the rest."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        # Point fd 1 at /dev/null so neither later prints nor the interpreter's
        # final flush fail; the sandbox itself keeps running until stopped.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def say(message: str) -> None:
    write(f"[{time.strftime('%H:%M:%S')}] {message}\n")


class Sandbox:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = args.work_dir.resolve()
        self.store = self.work / "store"
        self.catalog = self.work / "catalog"
        self.extra = self.work / "catalog-extra"
        self.kubeconfig = self.work / "kubeconfig"
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def stop_processes(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def child_env(self, api_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELMODEL_")}
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "PYTHONUNBUFFERED": "1",
                "CHANNELMODEL_STORE_URI": f"file://{self.store}",
                "CHANNELMODEL_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.args.server_port}",
                "CHANNELMODEL_SERVER_HOST": "127.0.0.1",
                "CHANNELMODEL_SERVER_PORT": str(self.args.server_port),
                "CHANNELMODEL_METRICS_PORT": str(self.args.metrics_port),
                "CHANNELMODEL_BASE_MODEL": find_base_model(self.args.base_model),
                # A dozen photos per product leaves 2-3 for validation: accuracy moves
                # in steps of ~10 points, so the relative quality gate gets a wide margin.
                "CHANNELMODEL_QUALITY_MARGIN": "0.25",
                # The sandbox's manifest, images and webhooks are on this machine:
                # loopback is allowed here explicitly (refused by default).
                "CHANNELMODEL_EGRESS_ALLOW_NETWORKS": LOOPBACK_NETWORKS,
            }
        )
        return env


@contextlib.asynccontextmanager
async def catalog_server(catalog: Path, channel_id: str, port: int) -> AsyncIterator[str]:
    runner = web.AppRunner(create_catalog_app(catalog, channel_id), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def load_manifests(path: Path, catalog_url: str) -> list[dict[str, Any]]:
    """The file's objects; the ChannelModel is pointed at the sample catalog."""
    docs = [dict(d) for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("namespace", "default")
        if doc.get("kind") == "ChannelModel":
            doc["spec"]["manifest"]["url"] = f"{catalog_url}/manifest.json"
    return docs


async def narrate(
    sandbox: Sandbox,
    emulator: KubernetesAPIEmulator,
    namespace: str,
    name: str,
    stop: asyncio.Event,
) -> None:
    """Print each transition of the ChannelModel as the operator makes it."""
    seen: tuple[Any, ...] = ()
    served: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            obj = emulator.get_object(f"{GROUP}/{VERSION}", PLURAL, namespace, name) or {}
            status = obj.get("status") or {}
            job = status.get("currentJob") or {}
            state = (
                status.get("trainingStatus"),
                status.get("modelVersion"),
                job.get("name"),
                status.get("lastError"),
            )
            if state != seen:
                seen = state
                training_status, version, job_name, error = state
                if training_status == "Queued":
                    say(
                        f"queued: {status.get('queuedTrigger')} retrain after {status.get('trainAfter')}"
                    )
                elif training_status == "Training":
                    say(
                        f"training {job.get('version')} in Job {job_name} (log: {sandbox.work}/jobs/)"
                    )
                elif training_status == "Failed":
                    say(f"training failed: {error}")
                elif training_status == "Succeeded" and version:
                    run = status.get("lastRun") or {}
                    say(
                        f"trained {version}: accuracy {run.get('accuracy')}, {run.get('classes')} classes, {run.get('images')} images, {run.get('seconds')} s"
                    )
            version = status.get("modelVersion")
            if version and version not in served and status.get("modelBaseUrl"):
                url = status["modelBaseUrl"] + "model.json"
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        served.add(version)
                        say(f"served: {url}")
                        if len(served) == 1:
                            print_next_steps(sandbox, name)
                        if sandbox.args.exit_when_served:
                            stop.set()
            await asyncio.sleep(0.5)


def print_next_steps(sandbox: Sandbox, name: str) -> None:
    rel = os.path.relpath(sandbox.work)
    write(
        f"""
  Inspect it:     kubectl --kubeconfig {rel}/kubeconfig get chm {name} -o yaml
  Add a product:  cp -r {rel}/catalog-extra/{EXTRA_PRODUCT.id} {rel}/catalog/ && \\
                  .venv/bin/channelmodel notify-change {name} --kubeconfig {rel}/kubeconfig
  Metrics:        curl -s http://127.0.0.1:{sandbox.args.metrics_port}/metrics | grep channelmodel_
  Stop:           Ctrl-C
"""
    )


async def main(args: argparse.Namespace) -> int:
    sandbox = Sandbox(args)
    if args.fresh:
        for folder in (sandbox.store, sandbox.work / "jobs"):
            shutil.rmtree(folder, ignore_errors=True)
    sandbox.work.mkdir(parents=True, exist_ok=True)
    say(f"sandbox in {sandbox.work}")
    base_model = find_base_model(args.base_model)
    if base_model == "imagenet" and not args.base_model:
        say(
            "base model: imagenet (no Teachable Machine reference export in ../shared; "
            "Keras downloads the weights on first use; --base-model PATH to use an export)"
        )
    ensure_sample_catalog(sandbox.catalog, sandbox.extra)
    stop = asyncio.Event()
    received: list[signal.Signals] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    emulator = KubernetesAPIEmulator()
    emulator.apply_object(crd_manifest())
    channel_id = next(
        d["spec"]["channelId"]
        for d in yaml.safe_load_all(args.filename.read_text())
        if d and d.get("kind") == "ChannelModel"
    )
    async with (
        serving(emulator) as api_url,
        catalog_server(sandbox.catalog, channel_id, args.catalog_port) as catalog_url,
    ):
        write_kubeconfig(sandbox.kubeconfig, api_url)
        say(f"Kubernetes API emulator at {api_url}; sample catalog at {catalog_url}/manifest.json")
        runner = JobRunner(api_url, work_dir=sandbox.work / "jobs")
        runner_task = asyncio.create_task(runner.run())
        env = sandbox.child_env(api_url)
        sandbox.spawn("operator", [sys.executable, "-m", "channelmodel", "run"], env)
        sandbox.spawn("model-server", [sys.executable, "-m", "channelmodel", "serve"], env)
        say(
            f"operator and model server started (logs: {sandbox.work}/operator.log, model-server.log)"
        )
        docs = load_manifests(args.filename, catalog_url)
        for doc in sorted(docs, key=lambda d: d.get("kind") == "ChannelModel"):  # Secrets first
            emulator.apply_object(doc)
        channel_model = next(d for d in docs if d.get("kind") == "ChannelModel")
        name, namespace = channel_model["metadata"]["name"], channel_model["metadata"]["namespace"]
        say(f"applied ChannelModel {namespace}/{name} (channel {channel_id})")
        try:
            await narrate(sandbox, emulator, namespace, name, stop)
        finally:
            # Children first, then words: nothing printed may stand between a
            # Ctrl-C and the operator and server going away.
            sandbox.stop_processes()
            runner_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner_task
            await runner.aclose()
    say("stopped: operator, model server and jobs")
    return EXIT_STATUS[received[0]] if received else 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(main(args))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return EXIT_STATUS[signal.SIGINT]
