"""Prometheus metrics of the model server: requests, bytes and latency per route.

Labels use the route's name, never the path, so channel IDs cannot blow up
the number of series.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNMATCHED = "unmatched"


class CountedStreamResponse(web.StreamResponse):
    """A streamed response that knows how many body bytes it wrote."""

    streamed_bytes = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await super().write(data)
        self.streamed_bytes += len(data)


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "channelmodel_server_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.response_bytes = Counter(
            "channelmodel_server_response_body_bytes",
            "Response body bytes sent, by route.",
            ["route"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "channelmodel_server_request_duration_seconds",
            "Time from request to the last body byte, by route.",
            ["route"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.name or UNMATCHED
        status = 500
        sent = 0
        try:
            response = await handler(request)
            status = response.status
            sent = body_bytes(request, response)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.requests.labels(route, request.method, str(status)).inc()
            self.response_bytes.labels(route).inc(sent)
            self.latency.labels(route).observe(time.perf_counter() - started)

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def body_bytes(request: web.Request, response: web.StreamResponse) -> int:
    """Body bytes of a response: streamed ones count what was written, others their body."""
    if request.method == "HEAD" or response.status in (204, 304):
        return 0
    if isinstance(response, CountedStreamResponse):
        return response.streamed_bytes
    if isinstance(response, web.Response) and response.body is not None:
        return response.content_length or 0
    return 0
