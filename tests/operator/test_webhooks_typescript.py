"""The official Standard Webhooks verifier for TypeScript/JavaScript (npm
`standardwebhooks`, in tests/js/webhooks) accepts what the operator sends: with
each of two active `whsec_` keys, and with a raw 0.1 key; it refuses a tampered
body and a key that is not active."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from channelmodel.webhook_signature import new_message_id, signing_keys, webhook_headers

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "tests" / "js" / "webhooks" / "verify.js"
MODULES = ROOT / "tests" / "js" / "webhooks" / "node_modules" / "standardwebhooks"
OLD, NEW, RAW = b"old-key-0123456789abcdef", b"new-key-fedcba9876543210", b"a1b2c3-raw-hex-key"


def _whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def _verify(deliveries: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    if shutil.which("node") is None or not MODULES.is_dir():
        pytest.skip("node or tests/js/webhooks/node_modules missing: run scripts/setup.sh")
    path = tmp_path / "deliveries.json"
    path.write_text(json.dumps(deliveries))
    out = subprocess.run(
        ["node", str(VERIFIER), str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_the_typescript_library_verifies_operator_webhooks(tmp_path: Path) -> None:
    body = json.dumps({"type": "training.succeeded", "channelId": "42"}).encode()
    rotating = signing_keys(f"{_whsec(OLD)} {_whsec(NEW)}".encode())
    headers = webhook_headers(rotating, new_message_id(), "training.succeeded", body)
    raw_headers = webhook_headers(signing_keys(RAW), new_message_id(), "training.succeeded", body)
    text = body.decode()
    results = _verify(
        [
            {"key": _whsec(OLD), "body": text, "headers": headers},
            {"key": base64.b64encode(NEW).decode(), "body": text, "headers": headers},
            {"key": RAW.decode(), "raw": True, "body": text, "headers": raw_headers},
            {"key": _whsec(OLD), "body": text + " ", "headers": headers},
            {"key": _whsec(b"not-an-active-key"), "body": text, "headers": headers},
        ],
        tmp_path,
    )
    assert [r["ok"] for r in results] == [True, True, True, False, False], results
    assert results[0]["type"] == "training.succeeded"
