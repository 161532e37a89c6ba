from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from channelmodel.logs import JsonFormatter, configure_logging, redact
from channelmodel.settings import OperatorSettings


def test_settings_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNELMODEL_NAMESPACES", "shops, staging")
    monkeypatch.setenv("CHANNELMODEL_MAX_CONCURRENT_TRAININGS", "3")
    monkeypatch.setenv("CHANNELMODEL_PUBLIC_BASE_URL", "https://models.example.com/")
    settings = OperatorSettings()
    assert settings.namespaces == ["shops", "staging"]
    assert not settings.cluster_wide
    assert settings.max_concurrent_trainings == 3
    assert (
        settings.model_base_url("42", "1.0.3")
        == "https://models.example.com/assets/ml-models/42/v1.0.3/"
    )


def test_empty_namespaces_mean_cluster_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNELMODEL_NAMESPACES", "")
    assert OperatorSettings().cluster_wide


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHANNELMODEL_MAX_CONCURRENT_TRAININGS", "0"),
        ("CHANNELMODEL_STORE_URI", "ftp://x/y"),
        ("CHANNELMODEL_PUBLIC_BASE_URL", "models.example.com"),
        ("CHANNELMODEL_LOG_FORMAT", "xml"),
        ("CHANNELMODEL_EGRESS_ALLOW_NETWORKS", "10.0.0.0/8,localhost"),
        ("CHANNELMODEL_MAX_MEMORY", "lots"),
        ("CHANNELMODEL_ALLOWED_NODE_SELECTORS", '{"pool": "gpu"}'),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as excinfo:
        OperatorSettings()
    assert name.removeprefix("CHANNELMODEL_").lower() in str(excinfo.value)


@pytest.mark.parametrize(
    "line",
    [
        "GET manifest failed: Authorization: Bearer abc.def-123",
        "token=s3cr3t-value rejected",
        '{"aws_secret_access_key": "AKIAxyz/abc"}',
    ],
)
def test_secrets_are_redacted_from_log_lines(line: str) -> None:
    out = redact(line)
    for secret in ("abc.def-123", "s3cr3t-value", "AKIAxyz/abc"):
        assert secret not in out
    assert "***" in out


def test_json_log_lines_are_json_and_redacted() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "using Bearer tok123 for %s", ("shop",), None
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "info"
    assert entry["message"] == "using Bearer *** for shop"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("GET https://cdn.test/a.jpg?k=s3cr3t-value failed", "GET https://cdn.test/a.jpg failed"),
        ("post http://u:s3cr3t-value@hooks.test/h?x=1#f", "post http://hooks.test/h"),
        ("webhook https://b.test/h?hooktoken=s3cr3t-value.", "webhook https://b.test/h"),
        ("store s3://bucket/models", "store s3://bucket/models"),
    ],
)
def test_urls_are_logged_without_userinfo_query_or_fragment(line: str, shown: str) -> None:
    assert redact(line) == shown


def test_every_process_logs_through_the_redacting_setup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Issue 12: the trainer logged every request URL with its query through httpx at INFO.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("text", logging.DEBUG)
        logging.getLogger("httpx").info("HTTP Request: GET https://c.test/i.jpg?k=s3cr3t-value")
        logging.getLogger("channelmodel").debug("fetching https://c.test/i.jpg?k=s3cr3t-value")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "s3cr3t-value" not in err
    assert "fetching https://c.test/i.jpg" in err
