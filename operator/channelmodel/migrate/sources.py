"""Where an export comes from: a folder, a zip as Teachable Machine downloads it,
or an http(s) URL to its model.json (the other files are fetched next to it).

Every source answers `read(name)` for names relative to model.json, the way
TF.js resolves weightsManifest paths, and refuses names that could climb out.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from channelmodel.egress import REFUSED_REASON, EgressPolicy, guarded_transport, is_refusal
from channelmodel.migrate.errors import ImportRefused

MODEL_JSON = "model.json"
METADATA_JSON = "metadata.json"
# A TM image model is about 2 MB; this only stops a wrong URL from filling memory.
MAX_FILE_BYTES = 256 * 1024 * 1024
HTTP_TIMEOUT_SECONDS = 30.0
_ZIP_MAGIC = b"PK\x03\x04"
_NOT_TFJS_HINT = (
    "expected a Teachable Machine TF.js export: a folder or .zip holding model.json, "
    "weights.bin and metadata.json, or the URL of its model.json"
)


class MissingFile(ImportRefused):
    """A file the export needs is not there."""


class ExportSource(Protocol):
    origin: str  # where the export came from, without credentials or query

    def read(self, name: str) -> bytes:
        """A file next to model.json; MissingFile when absent."""


def check_relative_name(name: str) -> str:
    """Weights paths are names next to model.json: nothing absolute, no `..`, no URL."""
    parts = urlsplit(name)
    if (
        not name
        or parts.scheme
        or parts.netloc
        or name.startswith("/")
        or "\\" in name
        or ".." in name.split("/")
        or "\x00" in name
    ):
        raise ImportRefused(
            f"refusing file name {name!r}: weightsManifest paths must be relative names "
            "next to model.json"
        )
    return name


def redact_url(url: str) -> str:
    """A URL without user info, query or fragment (they may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_size(name: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise ImportRefused(f"{name} is {size} bytes, more than the {MAX_FILE_BYTES} allowed")


class FolderSource:
    def __init__(self, root: Path, model_name: str = MODEL_JSON) -> None:
        self.root = root
        self.model_name = model_name
        named = root / model_name if model_name != MODEL_JSON else root
        self.origin = str(named.resolve())

    def read(self, name: str) -> bytes:
        path = self.root / check_relative_name(self.model_name if name == MODEL_JSON else name)
        if not path.is_file():
            raise MissingFile(f"{name} is missing from {self.origin}")
        _check_size(name, path.stat().st_size)
        return path.read_bytes()


class ZipSource:
    def __init__(self, archive: zipfile.ZipFile, origin: str) -> None:
        self.archive = archive
        self.origin = origin
        models = [
            info.filename
            for info in archive.infolist()
            if posixpath.basename(info.filename) == MODEL_JSON and not info.is_dir()
        ]
        if not models:
            raise ImportRefused(f"{origin} holds no model.json: {_NOT_TFJS_HINT}")
        if len(models) > 1:
            raise ImportRefused(f"{origin} holds several model.json files: {', '.join(models)}")
        # TM zips hold the files at the top; a re-zipped folder has them one level down.
        self.prefix = posixpath.dirname(models[0])

    def read(self, name: str) -> bytes:
        member = posixpath.join(self.prefix, check_relative_name(name))
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            raise MissingFile(f"{name} is missing from {self.origin}") from None
        _check_size(name, info.file_size)
        with self.archive.open(info) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        _check_size(name, len(data))
        return data


class UrlSource:
    """model.json at `url`; the other files resolved against it as TF.js does."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.client = client
        self.url = url
        self.origin = redact_url(url)

    def read(self, name: str) -> bytes:
        target = self.url if name == MODEL_JSON else urljoin(self.url, check_relative_name(name))
        return fetch(self.client, target, name)


def fetch(client: httpx.Client, url: str, name: str) -> bytes:
    shown = redact_url(url)
    try:
        with client.stream("GET", url) as response:
            if response.status_code == 404:
                raise MissingFile(f"{name} is missing: {shown} answered 404")
            if response.status_code != 200:
                raise ImportRefused(f"cannot fetch {shown}: HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit():
                _check_size(name, int(declared))
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                _check_size(name, size)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        reason = REFUSED_REASON if is_refusal(exc) else exc.__class__.__name__
        raise ImportRefused(f"cannot fetch {shown}: {reason}") from None
    return b"".join(chunks)


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _is_url(text: str) -> bool:
    return urlsplit(text).scheme in ("http", "https")


@contextmanager
def open_source(
    spec: str, *, token: str | None = None, transport: httpx.BaseTransport | None = None
) -> Iterator[ExportSource]:
    """The export named by `spec`: folder, zip, model.json path or http(s) URL."""
    if _is_url(spec):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if token:
            spec = _without_userinfo(spec)  # the bearer token wins over basic credentials
        # httpx drops Authorization when a redirect leaves the origin.
        with httpx.Client(
            headers=headers,
            timeout=HTTP_TIMEOUT_SECONDS,
            follow_redirects=True,
            # Redirects too go through the egress check: it runs at every connect.
            transport=transport or guarded_transport(EgressPolicy.from_env()),
        ) as client:
            first = fetch(client, spec, MODEL_JSON)
            if first.startswith(_ZIP_MAGIC):
                yield _zip_source(io.BytesIO(first), redact_url(spec))
                return
            source = UrlSource(client, spec)
            yield _Prefetched(source, first)
        return
    path = Path(spec)
    if path.is_dir():
        yield FolderSource(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        with path.open("rb") as handle:
            yield _zip_source(handle, str(path.resolve()))
    elif path.is_file() and path.suffix == ".json":
        yield FolderSource(path.parent, path.name)
    elif path.exists():
        raise ImportRefused(f"{path} is not a TF.js export: {_NOT_TFJS_HINT}")
    else:
        raise ImportRefused(f"{spec}: no such file, folder or http(s) URL")


def _zip_source(handle: IO[bytes], origin: str) -> ZipSource:
    try:
        archive = zipfile.ZipFile(handle)
    except zipfile.BadZipFile as exc:
        raise ImportRefused(f"{origin} is not a readable zip: {exc}") from None
    return ZipSource(archive, origin)


class _Prefetched:
    """A URL source whose model.json was fetched already (to tell it from a zip)."""

    def __init__(self, source: UrlSource, model_json: bytes) -> None:
        self.source = source
        self.model_json = model_json
        self.origin = source.origin

    def read(self, name: str) -> bytes:
        return self.model_json if name == MODEL_JSON else self.source.read(name)
