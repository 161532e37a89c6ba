"""Bearer token check of the compatibility API, in constant time."""

from __future__ import annotations

import hmac

from aiohttp import hdrs, web

from channelmodel.compat.settings import CompatSettings

_SCHEME = "bearer "


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if header[: len(_SCHEME)].lower() != _SCHEME:
        return None
    return header[len(_SCHEME) :].strip() or None


def is_authorized(request: web.Request, settings: CompatSettings) -> bool:
    presented = presented_token(request)
    expected = settings.bearer_token()
    # compare_digest takes as long whatever the first differing byte: no timing oracle.
    return hmac.compare_digest((presented or "").encode(), expected.encode()) and bool(presented)


def unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text='{"error": "missing or invalid bearer token"}',
        content_type="application/json",
        headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="channelmodel"'},
    )
