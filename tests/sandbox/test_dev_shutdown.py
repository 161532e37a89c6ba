"""`channelmodel dev` stops every child on Ctrl-C or SIGTERM, whatever happened
to its stdout, and runs from a built wheel (no source checkout).

The processes are real: the dev command, the operator and the model server it
spawns, the servers it listens with. After the signal no process that mentions
the sandbox folder may be left, and no port may still be listening.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from channelmodel_sandbox import dev
from tests.support.processes import free_port, pids_mentioning, port_is_free

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _wait(predicate: object, timeout: float, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"dev exited ({process.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _start_dev(
    tmp_path: Path, pythonpath: str, extra: list[str], cwd: Path
) -> tuple[subprocess.Popen[bytes], Path, dict[str, int]]:
    work = tmp_path / "sandbox"
    ports = {name: free_port() for name in ("catalog", "server", "metrics")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELMODEL_")}
    # Keep the caller's extra site directories, never a path into this checkout.
    inherited = [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if p and not Path(p).resolve().is_relative_to(ROOT)
    ]  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join([pythonpath, *inherited])
    argv = [
        sys.executable, "-m", "channelmodel", "dev", "--work-dir", str(work),
        "--catalog-port", str(ports["catalog"]), "--server-port", str(ports["server"]),
        "--metrics-port", str(ports["metrics"]), *extra,
    ]  # fmt: skip
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "dev.stderr").open("wb"),
        start_new_session=True,
    )
    return process, work, ports


def _all_listening(ports: dict[str, int]) -> bool:
    return not any(port_is_free(port) for port in ports.values())


def _stop_and_check(
    process: subprocess.Popen[bytes],
    sig: signal.Signals,
    work: Path,
    ports: dict[str, int],
    tmp_path: Path,
) -> int:
    children = pids_mentioning(str(work))
    assert len(children) >= 2, "the operator and the model server run"
    process.send_signal(sig)
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    left = [pid for pid in pids_mentioning(str(work)) if pid != process.pid]
    for pid in left:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes left behind: {left}"
    busy = {name: port for name, port in ports.items() if not port_is_free(port)}
    assert busy == {}, f"ports still listening: {busy}"
    stderr = (tmp_path / "dev.stderr").read_text()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr[-3000:]
    return code


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_dev_with_a_closed_stdout_stops_every_child_on_a_signal(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    example = yaml.safe_load(dev.DEFAULT_EXAMPLE.read_text())
    example["spec"]["suspend"] = True  # no training Job: this is about the processes
    manifest = tmp_path / "suspended.yaml"
    manifest.write_text(yaml.safe_dump(example))
    process, work, ports = _start_dev(
        tmp_path,
        str(ROOT / "operator"),
        ["-f", str(manifest), "--base-model", "imagenet"],
        cwd=tmp_path,
    )
    assert process.stdout is not None
    process.stdout.close()  # `channelmodel dev | head -0`: the reader is gone
    _wait(lambda: _all_listening(ports), 90, "catalog, model server and operator", process)
    time.sleep(1)  # narration lines hit the closed pipe meanwhile
    assert process.poll() is None, "a closed stdout must not stop the sandbox"
    assert _stop_and_check(process, sig, work, ports, tmp_path) == status


def test_dev_runs_from_a_built_wheel(tmp_path: Path) -> None:
    """A plain `pip install`: the example and sample data come from the package."""
    source = tmp_path / "src"
    source.mkdir()
    for item in ("pyproject.toml", "README.md", "operator", "trainer", "sandbox"):
        copy = shutil.copytree if (ROOT / item).is_dir() else shutil.copy
        copy(ROOT / item, source / item)
    installed = tmp_path / "site"
    names: dict[str, list[str]] = {}
    # Two distributions: the product, and the sandbox that `channelmodel dev` comes from.
    for project, prefix in (
        (source, "channelmodel-"),
        (source / "sandbox", "channelmodel_sandbox-"),
    ):
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
             str(project)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        wheels = list(tmp_path.glob(f"{prefix}*.whl"))
        if built.returncode != 0 or not wheels:
            pytest.skip(
                f"cannot build the wheel here (no index for setuptools?): {built.stderr[-500:]}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            names[prefix] = wheel.namelist()
            wheel.extractall(installed)
    assert "channelmodel_sandbox/channelmodel.yaml" in names["channelmodel_sandbox-"]
    assert not [n for n in names["channelmodel-"] if n.startswith("channelmodel_sandbox/")]
    elsewhere = tmp_path / "elsewhere"  # no examples/ and no ../shared around
    elsewhere.mkdir()
    process, work, ports = _start_dev(tmp_path, str(installed), [], cwd=elsewhere)
    assert process.stdout is not None
    lines: list[str] = []

    def applied() -> bool:
        assert process.stdout is not None
        lines.append(process.stdout.readline().decode())
        return "applied ChannelModel default/demo" in lines[-1]

    _wait(applied, 90, "the packaged example applied", process)
    assert any("base model: imagenet" in line for line in lines), lines
    _wait(lambda: _all_listening(ports), 60, "the servers", process)
    assert _stop_and_check(process, signal.SIGINT, work, ports, tmp_path) == 130
