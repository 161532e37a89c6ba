"""The real-cluster path: scripts/kind-e2e.sh (kind cluster, images, chart, a
ChannelModel trained to 1.0.0 and its model.json fetched through the model
server). Skips, saying what is missing, where docker or kind are unavailable."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.chart_render import REPO_ROOT, helm_binary

SCRIPT = REPO_ROOT / "scripts" / "kind-e2e.sh"


def shared_dir() -> Path:
    return Path(os.environ.get("CHANNELMODEL_SHARED", REPO_ROOT / ".." / "shared"))


def missing_prerequisite() -> str | None:
    """Why the kind end-to-end test cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return "no docker engine: `docker info` failed"
    if shutil.which("kind") is None:
        return "no kind binary on PATH"
    if shutil.which("kubectl") is None:
        return "no kubectl binary on PATH"
    if not (shared_dir() / "datasets" / "grocery-store" / "dataset" / "train").is_dir():
        return f"no grocery-store dataset under {shared_dir()}"
    return None


def test_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.kind
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_kind_end_to_end() -> None:
    reason = missing_prerequisite()
    if reason is not None:
        pytest.skip(f"kind end-to-end needs docker, kind and kubectl: {reason}")
    helm_binary()  # skips with "helm not installed: run scripts/setup.sh"
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=3500, cwd=REPO_ROOT
    )
    assert result.returncode == 0, (
        f"kind-e2e.sh failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    )
    assert "kind-e2e: model.json OK" in result.stdout


def _readme_commands() -> list[str]:
    """The README's install commands, read independently of the script."""
    readme = (REPO_ROOT / "README.md").read_text()
    commands: list[str] = []
    for block in readme.split("<!-- kind-e2e:")[1:]:
        code = block.split("-->", 1)[1].lstrip("\n").split("\n\n", 1)[0]
        joined = "\n".join(line.removeprefix("    ") for line in code.splitlines())
        commands += [" ".join(c.split()) for c in joined.replace("\\\n", " ").splitlines()]
    return commands


def test_dry_run_lists_exactly_the_readmes_install_steps() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KIND_E2E_DRY_RUN": "1"},
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    steps = [line.removeprefix("step: ") for line in result.stdout.splitlines()]
    expected = [
        cmd.replace("docker push ", "kind load docker-image --name channelmodel-e2e ")
        for cmd in _readme_commands()
    ]
    expected[0] = "REGISTRY=kind.local/channelmodel " + expected[0].split(" ", 1)[1]
    assert steps == expected
    assert any(s.startswith("helm install ") for s in steps)
    assert steps[-2:] == [
        "kubectl apply -n channelmodel -f examples/channelmodel-cpu.yaml",
        "kubectl wait -n channelmodel --for=condition=Ready chm/shop-1 --timeout=15m",
    ]
