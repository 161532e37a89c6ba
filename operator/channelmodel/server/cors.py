"""CORS for a public, read-only, credential-less asset server.

Browser PWAs fetch models from another origin. Allowed origins are either any
(`*`) or an exact list; no credentials are ever allowed, so nothing here can
leak a user's cookies. Preflights are answered only for GET and HEAD.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import hdrs, web

ALLOWED_METHODS = ("GET", "HEAD")
# The browser may read these response headers besides the CORS-safelisted ones.
EXPOSED_HEADERS = "ETag, Content-Length"
PREFLIGHT_MAX_AGE = "86400"


class CorsPolicy:
    def __init__(self, origins: Sequence[str]) -> None:
        self.any_origin = "*" in origins
        self.origins = frozenset(origin.rstrip("/") for origin in origins if origin != "*")

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def apply(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add the headers of an actual (non-preflight) cross-origin response."""
        if self.any_origin:
            # The same bytes for every origin: a cached copy serves CORS and plain requests alike.
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
            return
        # The answer depends on Origin: shared caches must key on it.
        response.headers.add(hdrs.VARY, hdrs.ORIGIN)
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and self.allows(origin):
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS

    def preflight(self, request: web.Request) -> web.Response:
        """Answer OPTIONS: 204 for an allowed preflight, 403 for a refused one, 405 otherwise."""
        origin = request.headers.get(hdrs.ORIGIN)
        method = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
        if origin is None or method is None:
            raise web.HTTPMethodNotAllowed(request.method, ALLOWED_METHODS)
        if not self.allows(origin) or method not in ALLOWED_METHODS:
            raise web.HTTPForbidden(text="CORS preflight refused\n")
        headers = {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*" if self.any_origin else origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(ALLOWED_METHODS),
            hdrs.ACCESS_CONTROL_MAX_AGE: PREFLIGHT_MAX_AGE,
        }
        requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if requested:
            # Nothing here depends on request headers beyond validators; allowing them is harmless.
            headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested
        response = web.Response(status=204, headers=headers)
        if not self.any_origin:
            response.headers.add(hdrs.VARY, hdrs.ORIGIN)
        return response
