"""The Vendure plugin (integrations/vendure-plugin): its unit tests, and its end-to-end test in a
real Vendure server (@vendure/testing, sql.js) against the operator on the test Kubernetes API.

End to end: a stand-in trainer (manifest_trainer.py) fetches the plugin's manifest through the
Job's Secret with the real trainer's manifest code and publishes the products as labels; the
operator's signed webhooks carry each version back into the Channel custom fields.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from channelmodel_sandbox.containers import StandInCommand
from tests.integrations.conftest import REPO_ROOT, package_dir, run_npm, tap_counts
from tests.support.k8s import Cluster

pytestmark = pytest.mark.slow

MANIFEST_TRAINER = Path(__file__).with_name("manifest_trainer.py")
SECRET = "vendure-channelmodel"


def test_unit_tests_pass() -> None:
    plugin = package_dir("vendure-plugin")
    output = run_npm(plugin, "test", env={"CHANNELMODEL_E2E_CONFIG": ""})
    counts = tap_counts(output)
    assert counts.get("fail") == 0 and counts.get("pass", 0) >= 8, output[-3000:]
    for line in output.splitlines():
        if "manifest 20000 products:" in line:  # the streaming figure, for docs/benchmarks.md
            sys.stdout.write(line.lstrip("# \\") + "\n")


def _stand_in(pod: dict[str, Any]) -> StandInCommand:
    container = pod["spec"]["containers"][0]
    pythonpath = os.pathsep.join([str(REPO_ROOT / "operator"), str(REPO_ROOT / "trainer")])
    return StandInCommand(
        [sys.executable, str(MANIFEST_TRAINER), *container["args"]], env={"PYTHONPATH": pythonpath}
    )


@pytest.mark.e2e
@pytest.mark.both_backends  # the real control plane where it is built, and the emulator
def test_vendure_server_with_the_operator(
    k8s: Cluster, start_job_runner: Any, operator_process: Any, tmp_path: Path
) -> None:
    plugin = package_dir("vendure-plugin")
    manifest_token = base64.urlsafe_b64encode(os.urandom(24)).decode()
    webhook_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()  # Standard Webhooks
    data = {"manifest-token": manifest_token, "webhook-hmac": webhook_secret}
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        kubernetes.client.V1Secret(
            # Opted in for the channel's ChannelModel (the operator's Secret policy).
            metadata=kubernetes.client.V1ObjectMeta(
                name=SECRET, annotations={"ml.dukarun.io/channel-models": "vendure-channel-t-1"}
            ),
            data={key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
        ),
    )
    start_job_runner(stand_in=_stand_in)
    operator = operator_process()
    config = tmp_path / "e2e.json"
    config.write_text(
        json.dumps(
            {
                "kubeconfig": str(k8s.kubeconfig),
                "namespace": k8s.namespace,
                "storeDir": str(tmp_path / "store"),
                "secretName": SECRET,
                "manifestToken": manifest_token,
                "webhookSecret": webhook_secret,
            }
        )
    )
    output = run_npm(plugin, "test:e2e", env={"CHANNELMODEL_E2E_CONFIG": str(config)})
    counts = tap_counts(output)
    assert counts.get("fail") == 0 and counts.get("skipped") == 0, output[-3000:]
    assert counts.get("pass", 0) >= 1, output[-3000:]
    for line in output.splitlines():
        if "burst:" in line:  # the coalescing figure, for docs/benchmarks.md
            sys.stdout.write(line.lstrip("# ") + "\n")
    log = operator.log_text()
    assert manifest_token not in log and webhook_secret not in log
