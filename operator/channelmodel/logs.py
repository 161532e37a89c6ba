"""Logging: plain text for people, JSON lines for log pipelines; secrets never leave.

One setup (`configure_logging`) for the operator, the model server and the
trainer: times in UTC, RFC 3339 with milliseconds; a line about a ChannelModel
(kopf's per-object logger, or `extra=object_extra(namespace, name)`) carries
its namespace and name. The format comes from CHANNELMODEL_LOG_FORMAT (text or
json) unless the caller passes one; the chart sets it for every component.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Literal

from channelmodel.rfc3339 import format_timestamp

LogFormat = Literal["text", "json"]
LOG_FORMAT_ENV = "CHANNELMODEL_LOG_FORMAT"

# Bearer tokens and AWS keys can reach a log line through an exception text.
_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:authorization|token|secret|password|aws_secret_access_key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
    ),
]


# A URL's userinfo, query and fragment may carry credentials (`?k=...`, `?hooktoken=...`,
# `https://user:pass@host`): log lines keep the scheme, host and path only.
_URL = re.compile(r"(?i)\b(https?|s3)://(?:[^\s/?#@]*@)?([^\s?#]*)(?:\?[^\s#]*)?(?:#\S*)?")


def redact_urls(text: str) -> str:
    return _URL.sub(lambda m: f"{m.group(1)}://{m.group(2)}", text)


def redact(text: str) -> str:
    text = redact_urls(text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


def utc_time(created: float) -> str:
    """RFC 3339 in UTC with milliseconds: 2026-11-21T10:00:00.123Z."""
    return format_timestamp(created)


def object_extra(namespace: str, name: str, kind: str = "ChannelModel") -> dict[str, Any]:
    """`extra=` for a log line about an object, in kopf's own shape (k8s_ref)."""
    return {"k8s_ref": {"kind": kind, "namespace": namespace, "name": name}}


def _object_of(record: logging.LogRecord) -> dict[str, Any] | None:
    ref = getattr(record, "k8s_ref", None)
    return ref if isinstance(ref, dict) and ref.get("name") else None


class RedactingFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> [<namespace>/<name>]: <message>`."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s%(object)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ref = _object_of(record)
        record.object = f" [{ref.get('namespace')}/{ref['name']}]" if ref else ""
        return f"{utc_time(record.created)} {redact(super().format(record))}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        ref = _object_of(record)
        if ref:
            entry["kind"] = ref.get("kind")
            entry["namespace"] = ref.get("namespace")
            entry["name"] = ref["name"]
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class DropRoutineSuccess(logging.Filter):
    """kopf logs every timer tick at INFO; a healthy idle fleet should be quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "kopf.objects" and record.getMessage().endswith("' succeeded."))


def log_format_from_env() -> LogFormat:
    """CHANNELMODEL_LOG_FORMAT as the operator reads it (the operator passes it to Jobs)."""
    return "json" if os.environ.get(LOG_FORMAT_ENV) == "json" else "text"


def configure_logging(fmt: LogFormat | None = None, level: int = logging.INFO) -> None:
    """The one logging setup of every process (operator, trainer, server): stderr, UTC
    times; secrets and URL queries never reach a log line, at any level."""
    chosen = fmt or log_format_from_env()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else RedactingFormatter())
    root = logging.getLogger()
    handler.addFilter(DropRoutineSuccess())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs each request URL at INFO: URLs may carry tokens.
    for noisy in (
        "kubernetes.client.rest",
        "urllib3",
        "botocore",
        "aiohttp.access",
        "httpx",
        "httpcore",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
