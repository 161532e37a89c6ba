"""One logging setup for operator, model server and trainer: UTC RFC 3339 times
with milliseconds, and the ChannelModel's namespace/name on every operator line
about it (JSON fields, or `[namespace/name]` in text)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from channelmodel.logs import JsonFormatter, RedactingFormatter, object_extra
from tests.support.k8s import Cluster, wait_for
from tests.support.processes import free_port

RFC3339_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROOT = Path(__file__).resolve().parents[2]


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "channelmodel.x", logging.INFO, __file__, 1, "hello %s", ("x",), None
    )
    record.created = 1_764_000_000.25  # 2025-11-24T16:00:00.250Z
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_utc_milliseconds_and_the_object() -> None:
    entry = json.loads(JsonFormatter().format(_record(**object_extra("shops", "shop-42"))))
    assert entry["time"] == "2025-11-24T16:00:00.250Z"
    assert (entry["namespace"], entry["name"], entry["kind"]) == (
        "shops",
        "shop-42",
        "ChannelModel",
    )
    assert entry["logger"] == "channelmodel.x"
    plain = json.loads(JsonFormatter().format(_record()))
    assert "name" not in plain and "namespace" not in plain  # never the logger's name


def test_text_lines_carry_utc_milliseconds_and_the_object() -> None:
    line = RedactingFormatter().format(_record(**object_extra("shops", "shop-42")))
    assert line == "2025-11-24T16:00:00.250Z INFO channelmodel.x [shops/shop-42]: hello x"


@pytest.mark.e2e
def test_operator_json_lines_name_the_channelmodel(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, fake_trainer: Any
) -> None:
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator = operator_process(env={"CHANNELMODEL_LOG_FORMAT": "json"})
    k8s.create_channelmodel(
        "shop-1", {"channelId": "shop-1", "manifest": {"url": "http://b.test/m"},
                   "training": {"gpus": 0}},
    )  # fmt: skip
    operator.wait_for_log("created Job shop-1-train-1")
    entries = [
        json.loads(line) for line in operator.log_text().splitlines() if line.startswith("{")
    ]
    assert entries and all(RFC3339_MS_UTC.match(e["time"]) for e in entries)
    created = next(e for e in entries if "created Job shop-1-train-1" in e["message"])
    assert (created["namespace"], created["name"]) == (k8s.namespace, "shop-1")
    job = wait_for(lambda: (jobs := k8s.jobs()) and jobs[0], timeout=30, message="Job")
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CHANNELMODEL_LOG_FORMAT"] == "json"  # the trainer logs like the operator


@pytest.mark.e2e
def test_model_server_uses_the_same_setup(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELMODEL_")}
    env |= {
        "PYTHONPATH": str(ROOT / "operator"),
        "CHANNELMODEL_LOG_FORMAT": "json",
        "CHANNELMODEL_STORE_URI": f"file://{tmp_path}",
        "CHANNELMODEL_SERVER_HOST": "127.0.0.1",
        "CHANNELMODEL_SERVER_PORT": str(free_port()),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "channelmodel", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        entry = json.loads(server.stderr.readline())
    finally:
        server.terminate()
        server.wait(10)
    assert RFC3339_MS_UTC.match(entry["time"]) and entry["message"].startswith("serving ")
