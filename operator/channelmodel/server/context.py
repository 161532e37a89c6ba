"""What the server's handlers share: application keys and the store's thread pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiohttp import web

from channelmodel.server.cors import CorsPolicy
from channelmodel.server.metrics import ServerMetrics
from channelmodel.store import ArtifactStore

STORE = web.AppKey("store", ArtifactStore)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
CORS = web.AppKey("cors", CorsPolicy)
METRICS = web.AppKey("metrics", ServerMetrics)
PUBLIC_BASE_URL = web.AppKey("public_base_url", str)

T = TypeVar("T")


async def off_loop(request: web.Request, func: Callable[..., T], *args: object) -> T:
    """Run a blocking store call in the server's thread pool, not on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], func, *args)


def etag_matches(request: web.Request, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x"."""
    conditions = request.if_none_match
    if not conditions:
        return False
    bare = etag.strip('"')
    return any(cond.value == "*" or cond.value == bare for cond in conditions)
