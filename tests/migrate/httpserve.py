"""Serving folders and aiohttp applications on 127.0.0.1 from a thread, for tests."""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web


class FolderHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; with `token` set, only for `Authorization: Bearer <token>`."""

    token: str | None = None
    seen_authorization: list[str | None]

    def do_GET(self) -> None:
        self.seen_authorization.append(self.headers.get("Authorization"))
        if self.token is not None and self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_error(401)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_folder(folder: Path, token: str | None = None) -> Iterator[tuple[str, list[str | None]]]:
    """(base URL ending in "/", the Authorization headers received)."""
    seen: list[str | None] = []
    handler = type("Handler", (FolderHandler,), {"token": token, "seen_authorization": seen})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    """An aiohttp application on its own loop in a thread; its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])
        ready.set()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the test server did not start")
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
