from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from channelmodel.logs import JsonFormatter, redact
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
