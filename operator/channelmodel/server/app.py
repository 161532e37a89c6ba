"""The model server application: routes, middleware, health and readiness.

Only these paths exist:
    GET/HEAD /assets/ml-models/<channelId>/v<version>/<model.json|weights.bin|metadata.json>
    GET/HEAD /assets/ml-models/<channelId>/latest.json   (+ OPTIONS for CORS preflights)
    GET/HEAD /healthz, /readyz, /metrics
Anything else is 404, any other method 405.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from aiohttp import hdrs, web

from channelmodel.model_urls import ROUTE_LATEST, ROUTE_MODEL_FILE
from channelmodel.server.assets import serve_latest, serve_model_file
from channelmodel.server.context import CORS, EXECUTOR, METRICS, PUBLIC_BASE_URL, STORE, off_loop
from channelmodel.server.cors import CorsPolicy
from channelmodel.server.metrics import Handler, ServerMetrics
from channelmodel.store import ArtifactStore, StoreError

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 5.0


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n", headers={hdrs.CACHE_CONTROL: "no-store"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(off_loop(request, request.app[STORE].ping), READY_TIMEOUT_SECONDS)
    except (StoreError, TimeoutError) as exc:
        log.warning("not ready: %s", exc or "store did not answer in time")
        raise web.HTTPServiceUnavailable(
            text="store unreachable\n", headers={hdrs.CACHE_CONTROL: "no-store"}
        ) from None
    return web.Response(text="ready\n", headers={hdrs.CACHE_CONTROL: "no-store"})


async def preflight(request: web.Request) -> web.Response:
    return request.app[CORS].preflight(request)


@web.middleware
async def cors_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS headers on every answer (errors too, so the browser can read the status)."""
    cors = request.app[CORS]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if request.method != hdrs.METH_OPTIONS:
            cors.apply(request, exc)
        exc.headers[hdrs.X_CONTENT_TYPE_OPTIONS] = "nosniff"
        raise
    except StoreError as exc:
        # Messages may name storage internals: log them, answer generically.
        log.error("store error on %s: %s", request.path, exc)
        error = web.HTTPServiceUnavailable(text="store unavailable\n")
        cors.apply(request, error)
        raise error from None
    if not response.prepared:
        if request.method != hdrs.METH_OPTIONS:
            cors.apply(request, response)
        response.headers[hdrs.X_CONTENT_TYPE_OPTIONS] = "nosniff"
    return response


async def _shutdown_executor(app: web.Application) -> AsyncIterator[None]:
    yield
    app[EXECUTOR].shutdown(wait=True, cancel_futures=True)


def create_app(
    store: ArtifactStore,
    *,
    cors_origins: Sequence[str] = ("*",),
    public_base_url: str | None = None,
    metrics: ServerMetrics | None = None,
    max_store_threads: int = 32,
) -> web.Application:
    """The aiohttp application serving `store`. Blocking store calls run in a thread pool."""
    metrics = metrics if metrics is not None else ServerMetrics()
    app = web.Application(middlewares=[metrics.middleware, cors_and_errors])
    app[STORE] = store
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=max_store_threads, thread_name_prefix="store")
    app[CORS] = CorsPolicy(cors_origins)
    app[METRICS] = metrics
    app[PUBLIC_BASE_URL] = (public_base_url or "").rstrip("/")
    app.cleanup_ctx.append(_shutdown_executor)

    versioned = app.router.add_resource(ROUTE_MODEL_FILE, name="model_file")
    versioned.add_route(hdrs.METH_GET, serve_model_file)
    versioned.add_route(hdrs.METH_HEAD, serve_model_file)
    versioned.add_route(hdrs.METH_OPTIONS, preflight)
    latest = app.router.add_resource(ROUTE_LATEST, name="latest")
    latest.add_route(hdrs.METH_GET, serve_latest)
    latest.add_route(hdrs.METH_HEAD, serve_latest)
    latest.add_route(hdrs.METH_OPTIONS, preflight)
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics.handle, name="metrics")
    return app
