"""Serving the emulator on a TCP port: in the current event loop, or in a thread of its own.

The thread form is what tests and `channelmodel emulator` use: the official
(synchronous) `kubernetes` client, kubectl and subprocesses can then talk to it
while the caller's thread blocks. aiohttp's low-level server is used instead of
`kmock.Server`, which also patches aiohttp's DNS resolver process-wide.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

import aiohttp.web

from channelmodel_sandbox.emulator import KubernetesAPIEmulator

T = TypeVar("T")


@contextlib.asynccontextmanager
async def serving(
    emulator: KubernetesAPIEmulator, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve the emulator until the block exits; yields its base URL."""
    async with emulator:  # kmock's DSL needs its background feeder task
        server = aiohttp.web.Server(emulator, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound_port = runner.addresses[0][1]
        try:
            yield f"http://{host}:{bound_port}"
        finally:
            await runner.cleanup()


class EmulatorThread:
    """The emulator (and optional companions such as the job runner) on a private event loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        manifests: Iterable[Mapping[str, Any]] = (),
        emulator: KubernetesAPIEmulator | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.emulator = (
            emulator if emulator is not None else KubernetesAPIEmulator()
        )  # kmock: falsy when unused
        self._manifests = list(manifests)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)
        self._ready: Future[str] = Future()
        self._stop: asyncio.Event | None = None
        self._background: list[asyncio.Task[Any]] = []
        self.url = ""

    def start(self, timeout: float = 10.0) -> EmulatorThread:
        self._thread.start()
        self.url = self._ready.result(timeout)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            for manifest in self._manifests:
                self.emulator.apply_object(manifest)
            async with serving(self.emulator, self.host, self.port) as url:
                self._ready.set_result(url)
                await self._stop.wait()
                for task in self._background:
                    task.cancel()
                await asyncio.gather(*self._background, return_exceptions=True)
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(error)
            raise

    def call(self, fn: Callable[[KubernetesAPIEmulator], T], timeout: float = 10.0) -> T:
        """Run `fn(emulator)` on the emulator's loop (its state is not thread-safe)."""

        async def invoke() -> T:
            return fn(self.emulator)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def spawn(self, coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run a long-lived companion (e.g. the job runner) on the loop until stop()."""

        async def add() -> None:
            self._background.append(asyncio.create_task(coro_fn()))

        asyncio.run_coroutine_threadsafe(add(), self._loop).result(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LoopThread:
    """A private event loop in a daemon thread, for async companions of synchronous code
    (the process kubelet beside the real control plane in tests)."""

    def __init__(self, name: str = "sandbox-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def start(self) -> LoopThread:
        self._thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float | None = 10.0) -> T:
        """Run `fn()` on the loop (for state that only the loop may touch)."""

        async def invoke() -> T:
            return fn()

        return self.run(invoke(), timeout)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Run a long-lived coroutine on the loop until stop()."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self, timeout: float = 15.0) -> None:
        """Cancel every task on the loop, let each finish its cleanup, then end the thread."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(BaseException):
            self.run(shutdown(), timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
