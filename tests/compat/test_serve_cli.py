"""`channelmodel serve` mounts the compatibility API only when asked, and never without a token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from channelmodel_sandbox.kubeconfig import write_kubeconfig
from tests.support.processes import free_port


def _serve(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELMODEL_")}
    full_env.update(
        KUBECONFIG=str(kubeconfig), CHANNELMODEL_STORE_URI=f"file://{tmp_path / 'store'}", **env
    )
    return subprocess.Popen(
        [sys.executable, "-m", "channelmodel", "serve"], env=full_env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_enabled_without_token_refuses_to_start(tmp_path: Path) -> None:
    process = _serve(
        tmp_path, CHANNELMODEL_COMPAT_ENABLED="true", CHANNELMODEL_SERVER_PORT=str(free_port())
    )
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "compatibility API" in out


def test_mounted_only_when_enabled(tmp_path: Path) -> None:
    for enabled, expected in (("false", 404), ("true", 401)):
        port = free_port()
        process = _serve(
            tmp_path, CHANNELMODEL_COMPAT_ENABLED=enabled, CHANNELMODEL_COMPAT_TOKEN="s3cret",
            CHANNELMODEL_SERVER_HOST="127.0.0.1", CHANNELMODEL_SERVER_PORT=str(port),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "model server did not start"
                    time.sleep(0.2)
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/train", json={"channelId": "42"})
            assert answer.status_code == expected
            assert "s3cret" not in answer.text
        finally:
            process.terminate()
            process.wait(10)
