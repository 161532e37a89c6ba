from datetime import UTC, datetime, timedelta, timezone

import pytest

from channelmodel.rfc3339 import format_time, format_timestamp, parse_time, parse_time_or_none


def test_format_then_parse_is_the_same_instant() -> None:
    at = datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=UTC)
    assert format_time(at) == "2026-11-21T10:00:00.123Z"
    assert parse_time(format_time(at)) == at
    assert format_timestamp(at.timestamp()) == "2026-11-21T10:00:00.123Z"


def test_other_offsets_are_written_in_utc() -> None:
    at = datetime(2026, 11, 21, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(at, "seconds") == "2026-11-21T10:00:00Z"
    assert format_time(at, "auto") == "2026-11-21T10:00:00Z"
    assert parse_time("2026-11-21T12:00:00+02:00") == at


def test_a_time_without_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_time("2026-11-21T10:00:00")
    assert parse_time_or_none("2026-11-21T10:00:00") is None
    assert parse_time_or_none("yesterday") is None
    assert parse_time_or_none(None) is None
    assert parse_time_or_none(" 2026-11-21T10:00:00Z ") == datetime(2026, 11, 21, 10, tzinfo=UTC)
