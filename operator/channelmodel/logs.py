"""Logging: plain text for people, JSON lines for log pipelines; secrets never leave."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Literal

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


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in ("namespace", "name"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        k8s_obj = getattr(record, "k8s_ref", None)
        if isinstance(k8s_obj, dict):
            entry["object"] = f"{k8s_obj.get('namespace')}/{k8s_obj.get('name')}"
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class DropRoutineSuccess(logging.Filter):
    """kopf logs every timer tick at INFO; a healthy idle fleet should be quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "kopf.objects" and record.getMessage().endswith("' succeeded."))


def log_format_from_env() -> Literal["text", "json"]:
    """CHANNELMODEL_LOG_FORMAT as the operator reads it (the operator passes it to Jobs)."""
    return "json" if os.environ.get("CHANNELMODEL_LOG_FORMAT") == "json" else "text"


def configure_logging(fmt: Literal["text", "json"], level: int = logging.INFO) -> None:
    """The logging of every channelmodel process (operator, trainer, server):
    secrets and URL queries never reach a log line, at any level."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
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
