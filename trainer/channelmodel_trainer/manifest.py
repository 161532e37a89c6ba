"""Fetch and validate the channel's product manifest.

    {"channelId": "123", "products": [{"id": "prod-1", "images": ["https://shop/img/1.jpg"]}]}

An image entry may also be an object, `{"url": "...", "group": "shelf-2",
"capturedAt": "2026-11-30T10:12:00Z", "sha256": "<64 hex>"}` (all but `url`
optional): photos of one group (or, without a group, of one capture day) are
held out for validation together, so the reported accuracy is measured on
photos taken apart from the training ones (docs/trainer.md); a photo whose
stated `sha256` has cached embeddings is not downloaded on the fast path.

Over http(s) the bearer token (from the Job's secret) is sent with the manifest
request and, later, only with image requests to the manifest's own origin. A
local path or `file://` URL is local mode: image entries may then also be
paths, relative ones resolved against the manifest's folder.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from channelmodel.egress import REFUSED_REASON, EgressPolicy, guarded_transport, is_refusal
from channelmodel_trainer.errors import ManifestError

MAX_PRODUCTS = 5000
MAX_IMAGES_PER_PRODUCT = 500
MAX_IMAGES = 100_000  # per manifest: bounds a Job's time, memory and cache size
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MANIFEST_DEADLINE_SECONDS = 120.0  # the whole download, however slowly bytes arrive
CHANNEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
HTTP_SCHEMES = ("http", "https")


def _lower_text(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _id_as_text(value: object) -> object:
    # Shop backends often serialise numeric IDs as numbers; labels are text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


ProductId = Annotated[
    str,
    BeforeValidator(_id_as_text),
    Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$"),
]


class ImageEntry(BaseModel):
    """The object form of an image entry: a location plus what says which photos belong together."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    url: str = Field(min_length=1, max_length=4096)
    group: Annotated[str, BeforeValidator(_id_as_text)] | None = Field(
        default=None, min_length=1, max_length=200
    )
    capturedAt: AwareDatetime | None = None
    # The photo's SHA-256 as the backend knows it: a photo whose embeddings are
    # cached is then not downloaded again (a downloaded photo is hashed anyway,
    # and its own hash wins).
    sha256: Annotated[str, BeforeValidator(_lower_text)] | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$"
    )

    def holdout_group(self) -> str | None:
        """Photos with the same value are held out together: the group, else the capture day."""
        if self.group is not None:
            return f"group:{self.group}"
        if self.capturedAt is not None:
            return f"day:{self.capturedAt.date().isoformat()}"
        return None


class Product(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: ProductId
    images: list[Annotated[str, Field(min_length=1, max_length=4096)] | ImageEntry] = Field(
        default_factory=list, max_length=MAX_IMAGES_PER_PRODUCT
    )


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    channel_id: Annotated[str, BeforeValidator(_id_as_text)] = Field(
        alias="channelId", pattern=CHANNEL_ID_PATTERN
    )
    # A classifier needs at least two classes.
    products: list[Product] = Field(min_length=2, max_length=MAX_PRODUCTS)

    @field_validator("products")
    @classmethod
    def _unique_ids(cls, products: list[Product]) -> list[Product]:
        counts = Counter(product.id for product in products)
        duplicates = sorted(product_id for product_id, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate product IDs: {', '.join(duplicates[:5])}")
        total = sum(len(product.images) for product in products)
        if total > MAX_IMAGES:
            raise ValueError(f"{total} images is more than {MAX_IMAGES}")
        return products


@dataclass(frozen=True)
class ImageRef:
    """One image entry: `location` is an http(s) URL or, in local mode, a file path."""

    product_id: str
    location: str
    is_url: bool
    group: str | None = None  # hold-out group (ImageEntry.holdout_group)
    sha256: str | None = None  # the content hash the manifest states, if it does


@dataclass(frozen=True)
class LoadedManifest:
    manifest: Manifest
    source: str  # manifest URL or path, for messages
    local_root: Path | None  # set in local mode
    token_origin: str | None  # scheme://host:port that may receive the token

    def image_refs(self) -> tuple[list[ImageRef], dict[str, int]]:
        """Every image entry resolved, plus per-product counts of unusable entries."""
        refs: list[ImageRef] = []
        rejected: dict[str, int] = {}
        for product in self.manifest.products:
            for entry in product.images:
                if isinstance(entry, ImageEntry):
                    ref = self._resolve(product.id, entry.url)
                    if ref is not None:
                        ref = replace(ref, group=entry.holdout_group(), sha256=entry.sha256)
                else:
                    ref = self._resolve(product.id, entry)
                if ref is None:
                    rejected[product.id] = rejected.get(product.id, 0) + 1
                else:
                    refs.append(ref)
        return refs, rejected

    def _resolve(self, product_id: str, entry: str) -> ImageRef | None:
        try:
            scheme = urlsplit(entry).scheme.lower()
        except ValueError:
            return None  # e.g. "http://[::1": counted with the other unusable entries
        if scheme in HTTP_SCHEMES:
            return ImageRef(product_id, entry, is_url=True) if _valid_url(entry) else None
        if self.local_root is None:
            if scheme:
                return None  # no file:, ftp:, data: ... from a remote manifest
            try:
                url = urljoin(self.source, entry)
            except ValueError:
                return None
            return ImageRef(product_id, url, is_url=True) if _valid_url(url) else None
        if scheme == "file":
            return ImageRef(product_id, unquote(urlsplit(entry).path), is_url=False)
        if scheme and len(scheme) > 1:  # one letter is a Windows drive
            return None
        return ImageRef(product_id, str(self.local_root / entry), is_url=False)


def _valid_url(url: str) -> bool:
    """An http(s) URL httpx can request: a host, a port in range, no control characters."""
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port out of range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return False
    return bool(parts.hostname)


def origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def redact(url: str) -> str:
    """A URL fit for logs: no credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def load_manifest(
    location: str,
    *,
    token: str | None = None,
    timeout_seconds: float = 30.0,
    deadline_seconds: float = MANIFEST_DEADLINE_SECONDS,
    egress: EgressPolicy | None = None,
) -> LoadedManifest:
    """Fetch (http/https) or read (path, file://) the manifest and validate it.

    A fetch goes only where `egress` (default: CHANNELMODEL_EGRESS_ALLOW_NETWORKS)
    allows and must end within `deadline_seconds`, however slowly bytes drip in.
    """
    scheme = urlsplit(location).scheme.lower()
    if scheme in HTTP_SCHEMES:
        raw = _fetch(
            location, token, timeout_seconds, deadline_seconds, egress or EgressPolicy.from_env()
        )
        return LoadedManifest(_parse(raw, redact(location)), location, None, origin(location))
    if scheme == "file":
        path = Path(unquote(urlsplit(location).path))
    elif not scheme or len(scheme) == 1:
        path = Path(location)
    else:
        raise ManifestError(
            f"unsupported manifest location scheme {scheme!r}: use http(s), a path or file://"
        )
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest {path} is larger than {MAX_MANIFEST_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    return LoadedManifest(_parse(raw, str(path)), str(path), path.resolve().parent, None)


def _fetch(
    url: str,
    token: str | None,
    timeout_seconds: float,
    deadline_seconds: float,
    egress: EgressPolicy,
) -> bytes:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    shown = redact(url)
    deadline = time.monotonic() + deadline_seconds
    try:
        # follow_redirects stays off: a redirect would carry the token elsewhere.
        with (
            httpx.Client(
                timeout=timeout_seconds, transport=guarded_transport(egress, retries=2)
            ) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise ManifestError(f"manifest {shown} answered HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                if time.monotonic() > deadline:
                    raise ManifestError(
                        f"manifest {shown} took longer than {deadline_seconds:g} s to download"
                    )
                size += len(chunk)
                if size > MAX_MANIFEST_BYTES:
                    raise ManifestError(
                        f"manifest {shown} is larger than {MAX_MANIFEST_BYTES} bytes"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        reason = REFUSED_REASON if is_refusal(exc) else exc.__class__.__name__
        raise ManifestError(f"cannot fetch manifest {shown}: {reason}") from None


def _parse(raw: bytes, shown: str) -> Manifest:
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ManifestError(f"manifest {shown} is nested too deeply") from None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of thousands of digits
        raise ManifestError(f"manifest {shown} is not JSON: {str(exc)[:200]}") from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'manifest'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise ManifestError(f"invalid manifest {shown}: {problems}{more}") from exc
