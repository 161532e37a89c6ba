"""The old trainer service's API as an aiohttp sub-application (off by default).

    POST /v1/train          {channelId, manifestUrl, webhookUrl, authToken}
                            -> 202 {"message": "Training job accepted", "jobId": ...}
    GET  /v1/jobs/<jobId>   -> {"jobId", "state": queued|training|succeeded|failed, ...}

Both need `Authorization: Bearer <CHANNELMODEL_COMPAT_TOKEN>`. A train call
does not train: it asks for a retrain the way the backend will later do itself,
by patching the ChannelModel's annotations, so debounce, cooldown and the
concurrency cap keep working. Tokens are never logged or answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated
from urllib.parse import unquote

from aiohttp import web
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError

from channelmodel.api.models import CHANNEL_ID_PATTERN, HTTP_URL_PATTERN
from channelmodel.compat.auth import is_authorized, unauthorized
from channelmodel.compat.channels import (
    ChannelModels,
    ChannelNotFound,
    NameTaken,
    TrainCall,
    WebhookLocked,
)
from channelmodel.compat.jobs import JobId, job_view
from channelmodel.compat.settings import CompatSettings
from channelmodel.kube import load_client_config

log = logging.getLogger(__name__)

PREFIX = "/v1"
ACCEPTED = "Training job accepted"
SETTINGS = web.AppKey("compat_settings", CompatSettings)
CHANNELS = web.AppKey("compat_channels", ChannelModels)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _id_as_text(value: object) -> object:
    # Shop backends often send numeric IDs as JSON numbers.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TrainBody(BaseModel):
    """The old service's body; unknown fields are ignored as it ignored them."""

    model_config = ConfigDict(extra="ignore")

    channelId: Annotated[str, BeforeValidator(_id_as_text)] = Field(pattern=CHANNEL_ID_PATTERN)
    manifestUrl: str | None = Field(default=None, pattern=HTTP_URL_PATTERN, max_length=2048)
    webhookUrl: str | None = Field(default=None, pattern=HTTP_URL_PATTERN, max_length=2048)
    authToken: SecretStr | None = None


def create_compat_app(
    settings: CompatSettings, *, api_client: client.ApiClient | None = None
) -> web.Application:
    """A standalone application answering the compatibility routes under /v1."""
    app = web.Application()
    mount(app, settings, api_client=api_client)
    return app


def mount(
    app: web.Application, settings: CompatSettings, *, api_client: client.ApiClient | None = None
) -> None:
    """Add /v1/train and /v1/jobs/<jobId> to `app` (e.g. the model server's)."""
    settings.bearer_token()  # no token configured: refuse to start rather than accept nobody
    app.add_subapp(PREFIX, _compat_subapp(settings, api_client))


def _compat_subapp(
    settings: CompatSettings, api_client: client.ApiClient | None
) -> web.Application:
    sub = web.Application(middlewares=[_bearer_auth])
    sub[SETTINGS] = settings
    sub.cleanup_ctx.append(_kubernetes_client(api_client))
    sub.router.add_post("/train", train, name="compat_train")
    sub.router.add_get("/jobs/{job_id:.+}", job_status, name="compat_job")
    return sub


def _kubernetes_client(
    given: client.ApiClient | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        api_client = given
        if api_client is None:
            await asyncio.to_thread(load_client_config)
            api_client = client.ApiClient()
        app[CHANNELS] = ChannelModels(api_client, app[SETTINGS].namespace)
        yield
        if given is None:
            api_client.close()  # type: ignore[no-untyped-call]

    return context


@web.middleware
async def _bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_authorized(request, request.app[SETTINGS]):
        log.warning(
            "compat API: rejected %s %s: bad or missing token", request.method, request.path
        )
        raise unauthorized()
    return await handler(request)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def train(request: web.Request) -> web.Response:
    try:
        body = TrainBody.model_validate(await request.json())
    except RecursionError:
        return _error(400, "invalid request: JSON nested too deeply")
    except ValueError as exc:  # not JSON, or a ValidationError: never echo the input
        return _error(400, _describe(exc))
    settings = request.app[SETTINGS]
    call = TrainCall(
        channel_id=body.channelId,
        manifest_url=body.manifestUrl,
        webhook_url=body.webhookUrl,
        auth_token=body.authToken.get_secret_value() if body.authToken else None,
    )
    channels = request.app[CHANNELS]
    try:
        job = await asyncio.to_thread(
            channels.request_training, call, mode=settings.mode, create=settings.create
        )
    except ChannelNotFound:
        return _error(
            404, f"no ChannelModel for channel {body.channelId} in namespace {settings.namespace}"
        )
    except (NameTaken, WebhookLocked) as exc:
        return _error(409, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    except ApiException as exc:
        return _kubernetes_error(exc)
    return web.json_response({"message": ACCEPTED, "jobId": str(job)}, status=202)


async def job_status(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    job = JobId.parse(unquote(request.match_info["job_id"]))
    if job is None or job.namespace != settings.namespace:
        return _error(404, "unknown job")
    try:
        obj = await asyncio.to_thread(request.app[CHANNELS].get, job.name)
    except ApiException as exc:
        return _kubernetes_error(exc)
    if obj is None:
        return _error(404, "unknown job: its ChannelModel no longer exists")
    return web.json_response(job_view(job, obj))


def _kubernetes_error(exc: ApiException) -> web.Response:
    log.error("compat API: Kubernetes API answered %s %s", exc.status, exc.reason)
    if exc.status == 422:
        return _error(400, "the ChannelModel for this request is invalid (see operator logs)")
    return _error(503, "Kubernetes API unavailable")


def _describe(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        return f"invalid request: {problems}"
    return "invalid request: body is not JSON"
