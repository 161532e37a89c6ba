"""The model server: versioned model files and latest.json, from any artifact store.

Only these paths exist:
    GET/HEAD /assets/ml-models/<channelId>/v<version>/<model.json|weights.bin|metadata.json>
    GET/HEAD /assets/ml-models/<channelId>/latest.json
    GET/HEAD /healthz, /readyz, /metrics
Every path segment is checked against its grammar (the CRD's channel ID
pattern, semver, the three file names) before the store is asked anything, so
no encoding trick can name a file outside the store: the store is only ever
called with names that cannot contain `/`, `\\`, `.`-segments or NUL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TypeVar

from aiohttp import hdrs, web

from channelmodel.server.cors import ALLOWED_METHODS, CorsPolicy
from channelmodel.server.metrics import CountedStreamResponse, Handler, ServerMetrics
from channelmodel.store import MODEL_FILES, ArtifactStore, FileInfo, NotFound, StoreError
from channelmodel.store.base import is_channel_id, is_version

log = logging.getLogger(__name__)

ASSET_PREFIX = "/assets/ml-models"
IMMUTABLE = "public, max-age=31536000, immutable"
LATEST_CACHE = "public, max-age=30"
CONTENT_TYPES = {
    "model.json": "application/json",
    "metadata.json": "application/json",
    "weights.bin": "application/octet-stream",
}
CHUNK_SIZE = 1024 * 1024
READY_TIMEOUT_SECONDS = 5.0

STORE = web.AppKey("store", ArtifactStore)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
CORS = web.AppKey("cors", CorsPolicy)
METRICS = web.AppKey("metrics", ServerMetrics)
PUBLIC_BASE_URL = web.AppKey("public_base_url", str)

T = TypeVar("T")


async def _off_loop(request: web.Request, func: Callable[..., T], *args: object) -> T:
    """Run a blocking store call in the server's thread pool, not on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], func, *args)


def _etag_matches(request: web.Request, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x"."""
    conditions = request.if_none_match
    if not conditions:
        return False
    bare = etag.strip('"')
    return any(cond.value == "*" or cond.value == bare for cond in conditions)


def _versioned_file(request: web.Request) -> tuple[str, str, str]:
    channel_id = request.match_info["channel"]
    version_segment = request.match_info["version"]
    name = request.match_info["name"]
    version = version_segment[1:]
    valid = (
        is_channel_id(channel_id)
        and version_segment.startswith("v")
        and is_version(version)
        and name in MODEL_FILES
    )
    if not valid:
        raise web.HTTPNotFound()
    return channel_id, version, name


def _file_headers(info: FileInfo, name: str) -> dict[str, str]:
    return {
        hdrs.ETAG: info.etag,
        hdrs.CACHE_CONTROL: IMMUTABLE,
        hdrs.CONTENT_TYPE: CONTENT_TYPES[name],
        hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff",
    }


async def serve_model_file(request: web.Request) -> web.StreamResponse:
    channel_id, version, name = _versioned_file(request)
    store = request.app[STORE]
    try:
        info = await _off_loop(request, store.stat_file, channel_id, version, name)
    except NotFound:
        raise web.HTTPNotFound() from None
    headers = _file_headers(info, name)
    if _etag_matches(request, info.etag):
        return web.Response(status=304, headers=headers)
    response = CountedStreamResponse(headers=headers)
    response.content_length = info.size
    # Streamed responses send their headers before the middleware sees them.
    request.app[CORS].apply(request, response)
    if request.method == hdrs.METH_HEAD:
        await response.prepare(request)
        return response
    try:
        local = await _off_loop(request, store.open_local_file, channel_id, version, name)
        if local is None:
            chunks = await _off_loop(
                request, store.iter_file, channel_id, version, name, CHUNK_SIZE
            )
    except NotFound:  # deleted since the stat, or not a regular file inside the root
        raise web.HTTPNotFound() from None
    if local is not None:
        return await _send_local_file(request, response, local, info)
    await response.prepare(request)
    try:
        while (chunk := await _off_loop(request, next, chunks, None)) is not None:
            await response.write(chunk)
    except StoreError as exc:
        log.error("store error while streaming %s: %s", request.path, exc)
        raise StreamAborted(request.path) from exc
    finally:
        await _off_loop(request, _close, chunks)
    await response.write_eof()
    return response


def _close(obj: object) -> None:
    close = getattr(obj, "close", None)
    if callable(close):
        close()


async def _send_local_file(
    request: web.Request, response: CountedStreamResponse, handle: IO[bytes], info: FileInfo
) -> web.StreamResponse:
    """Send an already opened local file with sendfile(2): the kernel copies, not Python.

    A StreamResponse writes its headers at prepare(); asyncio's sendfile waits
    for the transport's buffer to drain first, so the body follows them in order
    (aiohttp's own FileResponse does the same).
    """
    try:
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("client went away")
        # fallback=True: where sendfile(2) cannot be used (TLS), asyncio reads and writes chunks.
        sent = await asyncio.get_running_loop().sendfile(transport, handle, 0, info.size)
        response.streamed_bytes += sent
        if sent != info.size:
            log.error("%s: sent %d of %d bytes", request.path, sent, info.size)
            raise StreamAborted(request.path)
    finally:
        await _off_loop(request, handle.close)
    await response.write_eof()
    return response


def _latest_body(
    request: web.Request, channel_id: str, version: str, pinned: bool
) -> dict[str, object]:
    base = f"{request.app[PUBLIC_BASE_URL]}{ASSET_PREFIX}/{channel_id}/v{version}/"
    return {
        "channelId": channel_id,
        "version": version,
        "pinned": pinned,
        "modelBaseUrl": base,
        "modelUrl": base + "model.json",
        "weightsUrl": base + "weights.bin",
        "metadataUrl": base + "metadata.json",
    }


async def serve_latest(request: web.Request) -> web.Response:
    channel_id = request.match_info["channel"]
    if not is_channel_id(channel_id):
        raise web.HTTPNotFound()
    store = request.app[STORE]
    try:
        pointer = await _off_loop(request, store.get_pointer, channel_id)
    except StoreError as exc:
        log.warning("ignoring serving pointer of %s: %s", channel_id, exc)
        pointer = None
    versions = await _off_loop(request, store.list_versions, channel_id)
    pointed = pointer.get("version") if pointer else None
    if pointer and pointed in versions:
        assert isinstance(pointed, str)
        version, pinned = pointed, bool(pointer.get("pinned", False))
    elif versions:
        if pointer:
            log.warning(
                "serving pointer of %s names %s, which is not committed", channel_id, pointed
            )
        version, pinned = versions[-1], False
    else:
        raise web.HTTPNotFound()
    body = json.dumps(_latest_body(request, channel_id, version, pinned), sort_keys=True).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {hdrs.ETAG: etag, hdrs.CACHE_CONTROL: LATEST_CACHE}
    if _etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n", headers={hdrs.CACHE_CONTROL: "no-store"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(_off_loop(request, request.app[STORE].ping), READY_TIMEOUT_SECONDS)
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


class StreamAborted(Exception):
    """The store failed after the headers went out: the connection is dropped, not answered."""


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

    versioned = app.router.add_resource(
        f"{ASSET_PREFIX}/{{channel}}/{{version}}/{{name}}", name="model_file"
    )
    versioned.add_route(hdrs.METH_GET, serve_model_file)
    versioned.add_route(hdrs.METH_HEAD, serve_model_file)
    versioned.add_route(hdrs.METH_OPTIONS, preflight)
    latest = app.router.add_resource(f"{ASSET_PREFIX}/{{channel}}/latest.json", name="latest")
    latest.add_route(hdrs.METH_GET, serve_latest)
    latest.add_route(hdrs.METH_HEAD, serve_latest)
    latest.add_route(hdrs.METH_OPTIONS, preflight)
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics.handle, name="metrics")
    assert set(ALLOWED_METHODS) == {hdrs.METH_GET, hdrs.METH_HEAD}
    return app
