"""RFC 3339 times: the one place they are parsed and written.

Annotations, status, Events, webhook payloads and log lines all carry UTC times
ending in `Z`. Parsing accepts `Z` or any offset and refuses a time without
one (RFC 3339 requires it): a naive datetime would be read as local time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Timespec = Literal["auto", "seconds", "milliseconds", "microseconds"]


def format_time(value: datetime, timespec: Timespec = "milliseconds") -> str:
    """`2026-11-21T10:00:00.123Z`: in UTC, at `timespec` precision."""
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def format_timestamp(seconds: float) -> str:
    """Unix seconds as `format_time` writes them (milliseconds)."""
    return format_time(datetime.fromtimestamp(seconds, UTC))


def parse_time(text: str) -> datetime:
    """An aware datetime; ValueError when `text` is not RFC 3339 or has no offset."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (RFC 3339 needs one, e.g. Z)")
    return parsed


def parse_time_or_none(value: str | None) -> datetime | None:
    """`parse_time`, or None for a missing or invalid value (annotations people write)."""
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None
