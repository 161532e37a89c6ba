"""The public asset routes: versioned model files and latest.json.

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
from typing import IO

from aiohttp import hdrs, web

from channelmodel.model_urls import model_base_url, parse_version_segment
from channelmodel.server.context import CORS, PUBLIC_BASE_URL, STORE, etag_matches, off_loop
from channelmodel.server.metrics import CountedStreamResponse
from channelmodel.store import MODEL_FILES, FileInfo, NotFound, StoreError
from channelmodel.store.base import is_channel_id

log = logging.getLogger(__name__)

IMMUTABLE = "public, max-age=31536000, immutable"
LATEST_CACHE = "public, max-age=30"
CONTENT_TYPES = {
    "model.json": "application/json",
    "metadata.json": "application/json",
    "weights.bin": "application/octet-stream",
}
CHUNK_SIZE = 1024 * 1024


class StreamAborted(Exception):
    """The store failed after the headers went out: the connection is dropped, not answered."""


def _versioned_file(request: web.Request) -> tuple[str, str, str]:
    channel_id = request.match_info["channel"]
    version = parse_version_segment(request.match_info["version"])
    name = request.match_info["name"]
    if not (is_channel_id(channel_id) and version is not None and name in MODEL_FILES):
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
        info = await off_loop(request, store.stat_file, channel_id, version, name)
    except NotFound:
        raise web.HTTPNotFound() from None
    headers = _file_headers(info, name)
    if etag_matches(request, info.etag):
        return web.Response(status=304, headers=headers)
    response = CountedStreamResponse(headers=headers)
    response.content_length = info.size
    # Streamed responses send their headers before the middleware sees them.
    request.app[CORS].apply(request, response)
    if request.method == hdrs.METH_HEAD:
        await response.prepare(request)
        return response
    try:
        local = await off_loop(request, store.open_local_file, channel_id, version, name)
        if local is None:
            chunks = await off_loop(request, store.iter_file, channel_id, version, name, CHUNK_SIZE)
    except NotFound:  # deleted since the stat, or not a regular file inside the root
        raise web.HTTPNotFound() from None
    if local is not None:
        return await _send_local_file(request, response, local, info)
    await response.prepare(request)
    try:
        while (chunk := await off_loop(request, next, chunks, None)) is not None:
            await response.write(chunk)
    except StoreError as exc:
        log.error("store error while streaming %s: %s", request.path, exc)
        raise StreamAborted(request.path) from exc
    finally:
        await off_loop(request, _close, chunks)
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
        await off_loop(request, handle.close)
    await response.write_eof()
    return response


def _unavailable() -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(
        headers={hdrs.RETRY_AFTER: "30", hdrs.CACHE_CONTROL: "no-store"},
        text="the channel's serving pointer is broken",
    )


def _latest_body(
    request: web.Request, channel_id: str, version: str, pinned: bool
) -> dict[str, object]:
    base = model_base_url(request.app[PUBLIC_BASE_URL], channel_id, version)
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
    # A broken pointer is an outage, not a reason to guess: the newest committed
    # version may be one the quality gate rejected.
    try:
        pointer = await off_loop(request, store.get_pointer, channel_id)
    except StoreError as exc:
        log.error("serving pointer of %s is unreadable: %s", channel_id, exc)
        raise _unavailable() from None
    if pointer is not None and pointer.get("version") is None:
        raise web.HTTPNotFound()  # the operator says nothing is served (yet)
    versions = await off_loop(request, store.list_versions, channel_id)
    pointed = pointer.get("version") if pointer else None
    if pointer and pointed in versions:
        assert isinstance(pointed, str)
        version, pinned = pointed, bool(pointer.get("pinned", False))
    elif pointer and versions:
        log.error("serving pointer of %s names %s, which is not committed", channel_id, pointed)
        raise _unavailable()
    elif versions:
        # No pointer at all: a store no operator manages (an import, `channelmodel serve`).
        version, pinned = versions[-1], False
    else:
        raise web.HTTPNotFound()
    body = json.dumps(_latest_body(request, channel_id, version, pinned), sort_keys=True).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {hdrs.ETAG: etag, hdrs.CACHE_CONTROL: LATEST_CACHE}
    if etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers, content_type="application/json")
