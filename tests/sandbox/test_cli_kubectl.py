"""`channelmodel emulator` as a process, driven with kubectl."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.k8s import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.emulator]

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


JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: print-crd
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: channelmodel:test
        command: [channelmodel, crd]
"""


@contextlib.contextmanager
def emulator_process(tmp_path: Path, *options: str) -> Iterator[Path]:
    """`channelmodel emulator` on a free port; yields its kubeconfig."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")
    path = tmp_path / "kubeconfig"
    argv = [
        sys.executable,
        "-m",
        "channelmodel",
        "emulator",
        "--port",
        "0",
        "--kubeconfig",
        str(path),
    ]
    with (tmp_path / "emulator.log").open("wb") as log:
        process = subprocess.Popen([*argv, *options], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(path.exists, timeout=20, message="the emulator's kubeconfig")
        yield path
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    with emulator_process(tmp_path, "--no-jobs") as path:
        yield path


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
    assert table[0].split()[:5] == [
        "NAME",
        "CHANNEL",
        "READY",
        "VERSION",
        "STATUS",
    ]  # printer columns
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


def test_the_emulator_command_runs_jobs_applied_with_kubectl(tmp_path: Path) -> None:
    with emulator_process(tmp_path, "--work-dir", str(tmp_path / "jobs")) as config:
        kubectl(config, "apply", "-f", "-", stdin=JOB)

        def complete() -> bool:
            jsonpath = "{.status.conditions[?(@.type=='Complete')].status}"
            return (
                kubectl(config, "get", "job", "print-crd", "-o", f"jsonpath={jsonpath}") == "True"
            )

        wait_for(complete, timeout=60, message="the Job to complete")
        pod = yaml.safe_load(
            kubectl(config, "get", "pods", "-l", "job-name=print-crd", "-o", "yaml")
        )["items"][0]
        assert pod["status"]["phase"] == "Succeeded"
        logs = "".join(path.read_text() for path in (tmp_path / "jobs").glob("*/output.log"))
        assert "kind: CustomResourceDefinition" in logs


def test_kubectl_shows_ready_and_url_and_waits_for_ready(kubeconfig: Path, tmp_path: Path) -> None:
    kubectl(kubeconfig, "apply", "-f", "-", stdin=MANIFEST)
    header = kubectl(kubeconfig, "get", "chm").splitlines()[0].split()
    assert header[:4] == ["NAME", "CHANNEL", "READY", "VERSION"]
    assert "URL" not in header
    status = {
        "modelVersion": "1.0.2",
        "modelBaseUrl": "http://models.test/assets/ml-models/shop-a/v1.0.2/",
        "trainingStatus": "Succeeded",
        "lastRun": {"accuracy": 0.93, "images": 48, "seconds": 11.5},
        "conditions": [
            {"type": "Training", "status": "False", "reason": "Idle", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "True", "reason": "ModelServed", "message": "serving 1.0.2",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
    }  # fmt: skip
    kubectl(
        kubeconfig, "patch", "chm", "shop-a", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    row = kubectl(kubeconfig, "get", "chm", "shop-a", "--no-headers").split()
    assert row[:4] == ["shop-a", "shop-a", "True", "1.0.2"]
    wide = kubectl(kubeconfig, "get", "chm", "shop-a", "-o", "wide").splitlines()
    columns = wide[0].split()
    assert columns[-6:] == ["URL", "ACCURACY", "IMAGES", "SECONDS", "JOB", "REASON"]
    cells = wide[1].split()
    assert status["modelBaseUrl"] in cells and "0.93" in cells and "48" in cells
    assert cells[-1] == "Idle"
    waited = kubectl(kubeconfig, "wait", "--for=condition=Ready", "chm/shop-a", "--timeout=10s")
    assert "condition met" in waited
