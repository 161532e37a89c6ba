"""`channelmodel emulator` as a process, driven with kubectl."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.k8s import wait_for

pytestmark = pytest.mark.e2e

MANIFEST = """
apiVersion: ml.dukarun.io/v1alpha1
kind: ChannelModel
metadata:
  name: shop-a
spec:
  channelId: shop-a
  manifest:
    url: http://backend.test/manifest.json
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")
    path = tmp_path / "kubeconfig"
    with (tmp_path / "emulator.log").open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "channelmodel",
                "emulator",
                "--port",
                "0",
                "--kubeconfig",
                str(path),
                "--no-jobs",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(path.exists, timeout=20, message="the emulator's kubeconfig")
        yield path
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kubectl_apply_get_annotate(kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "chm.yaml"
    manifest.write_text(MANIFEST)
    # Default (strict) validation: kubectl finds fieldValidation support in the OpenAPI v3 discovery.
    assert "channelmodel.ml.dukarun.io/shop-a created" in kubectl(
        kubeconfig, "apply", "-f", str(manifest)
    )
    assert "unchanged" in kubectl(kubeconfig, "apply", "-f", str(manifest))

    table = kubectl(kubeconfig, "get", "chm").splitlines()
    assert table[0].split()[:4] == ["NAME", "CHANNEL", "VERSION", "STATUS"]  # printer columns
    assert table[1].split()[:2] == ["shop-a", "shop-a"]

    kubectl(
        kubeconfig,
        "annotate",
        "chm",
        "shop-a",
        "ml.dukarun.io/retrain-requested-at=2026-01-01T00:00:00Z",
    )
    obj = yaml.safe_load(kubectl(kubeconfig, "get", "chm", "shop-a", "-o", "yaml"))
    assert (
        obj["metadata"]["annotations"]["ml.dukarun.io/retrain-requested-at"]
        == "2026-01-01T00:00:00Z"
    )
    assert obj["spec"]["debounceSeconds"] == 60  # defaulted by the server


def test_kubectl_shows_the_schema_error(kubeconfig: Path) -> None:
    bad = MANIFEST.replace("channelId: shop-a", 'channelId: "bad id"')
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        'The ChannelModel "shop-a" is invalid: spec.channelId: Invalid value: "bad id"'
        in result.stderr
    )
