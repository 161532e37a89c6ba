"""Download (or read, in local mode) the manifest's images concurrently.

Workers pull image references from a queue and hand each result to an async
sink; a slow sink (decode, embedding) holds the workers back, so at most
`concurrency` images are in memory however large the catalog is.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import stamina

from channelmodel.egress import REFUSED_REASON, EgressPolicy, guarded_async_transport, is_refusal
from channelmodel_trainer.manifest import ImageRef, origin

log = logging.getLogger(__name__)

# S3 and many CDNs serve images without a precise type; Pillow decides those.
_ACCEPTED_GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream", "")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class DownloadPolicy:
    concurrency: int = 16
    timeout_seconds: float = 20.0  # one attempt, start to last byte (not per read)
    deadline_seconds: float = 60.0  # one image, every attempt and backoff included
    attempts: int = 4  # first try plus retries, on 5xx/429 and transport errors
    backoff_seconds: float = 0.25  # doubled each retry, with jitter
    max_backoff_seconds: float = 8.0
    max_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class Downloaded:
    """An image's bytes, or why there are none (a short reason, no secrets)."""

    image: ImageRef
    data: bytes | None
    reason: str | None = None


Sink = Callable[[Downloaded], Awaitable[None]]


class _Skip(Exception):
    """This image is skipped; the message says why."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


async def download_images(
    images: Iterable[ImageRef],
    sink: Sink,
    *,
    policy: DownloadPolicy | None = None,
    token: str | None = None,
    token_origin: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    egress: EgressPolicy | None = None,
) -> None:
    """Fetch every image and await `sink` with each result, in completion order.

    Image URLs come from the manifest: without a `transport`, connections go only
    where `egress` (default: CHANNELMODEL_EGRESS_ALLOW_NETWORKS) allows.
    """
    policy = policy or DownloadPolicy()
    if transport is None:
        transport = guarded_async_transport(egress or EgressPolicy.from_env())
    queue: asyncio.Queue[ImageRef] = asyncio.Queue()
    for image in images:
        queue.put_nowait(image)
    limits = httpx.Limits(
        max_connections=policy.concurrency, max_keepalive_connections=policy.concurrency
    )
    async with httpx.AsyncClient(
        timeout=policy.timeout_seconds, limits=limits, follow_redirects=False, transport=transport
    ) as client:
        fetcher = _Fetcher(client, policy, token, token_origin)

        async def worker() -> None:
            while True:
                try:
                    image = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await sink(await fetcher.fetch(image))

        workers = min(policy.concurrency, max(queue.qsize(), 1))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())


class _Fetcher:
    def __init__(
        self,
        client: httpx.AsyncClient,
        policy: DownloadPolicy,
        token: str | None,
        token_origin: str | None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._token = token
        self._token_origin = token_origin

    async def fetch(self, image: ImageRef) -> Downloaded:
        """The image, or why not: no failure of one image ends the run."""
        try:
            if image.is_url:
                async with asyncio.timeout(self._policy.deadline_seconds):
                    data = await self._fetch_url(image.location)
            else:
                data = await asyncio.to_thread(
                    _read_file, Path(image.location), self._policy.max_bytes
                )
        except _Skip as skip:
            return Downloaded(image, None, str(skip))
        except TimeoutError:
            return Downloaded(image, None, f"over the {self._policy.deadline_seconds:g} s deadline")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, UnicodeError):
            return Downloaded(image, None, "invalid URL")
        except Exception as exc:  # a bug or an odd library error: this image, not the run
            log.warning("image download failed unexpectedly", exc_info=True)
            return Downloaded(image, None, f"download failed: {exc.__class__.__name__}")
        return Downloaded(image, data)

    async def _fetch_url(self, url: str) -> bytes:
        headers = {"Accept": "image/*"}
        if self._token and self._token_origin and origin(url) == self._token_origin:
            headers["Authorization"] = f"Bearer {self._token}"
        policy = self._policy

        def backoff(exc: Exception) -> bool | float:
            # A server's Retry-After wins over the exponential backoff (capped).
            if not isinstance(exc, _Retryable):
                return False
            if exc.retry_after is not None:
                return min(exc.retry_after, policy.max_backoff_seconds)
            return True

        # stamina (on tenacity): exponential backoff with jitter, and the
        # stamina_retries_total Prometheus counter where prometheus_client is installed.
        tries = 0
        try:
            async for attempt in stamina.retry_context(
                on=backoff,
                attempts=policy.attempts,
                timeout=None,
                wait_initial=policy.backoff_seconds,
                wait_max=policy.max_backoff_seconds,
                wait_jitter=policy.backoff_seconds / 2,
            ):
                with attempt:
                    tries = attempt.num
                    return await self._fetch_once(url, headers)
        except _Retryable as retryable:
            raise _Skip(f"{retryable} after {tries} attempts") from retryable
        raise AssertionError("unreachable")

    async def _fetch_once(self, url: str, headers: dict[str, str]) -> bytes:
        max_bytes = self._policy.max_bytes
        try:
            async with (
                asyncio.timeout(self._policy.timeout_seconds),
                self._client.stream("GET", url, headers=headers) as response,
            ):
                status = response.status_code
                if status in _RETRY_STATUSES:
                    raise _Retryable(
                        f"HTTP {status}", _retry_after(response.headers.get("retry-after"))
                    )
                if status != 200:
                    raise _Skip(f"HTTP {status}")
                content_type = (
                    response.headers.get("content-type", "").split(";")[0].strip().lower()
                )
                if not (
                    content_type.startswith("image/") or content_type in _ACCEPTED_GENERIC_TYPES
                ):
                    raise _Skip(f"content-type {content_type[:60]}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise _Skip(f"larger than {max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise _Skip(f"larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise _Retryable("timeout") from exc
        except httpx.TransportError as exc:
            if is_refusal(exc):
                raise _Skip(REFUSED_REASON) from None  # not retried, whatever the port
            raise _Retryable(exc.__class__.__name__) from exc


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise _Skip("file not found") from None
    except OSError as exc:
        raise _Skip(f"cannot read file: {exc.strerror or exc.__class__.__name__}") from None
    if len(data) > max_bytes:
        raise _Skip(f"larger than {max_bytes} bytes")
    return data
