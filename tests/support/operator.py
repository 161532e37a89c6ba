"""pytest plugin: the operator as a real process against the emulator.

Fixtures:
  operator_process -> factory: start(env=..., argv=...) -> OperatorProcess
                      (`python -m channelmodel run` with KUBECONFIG of `k8s`);
                      kill() sends SIGKILL, restart() starts it again with the
                      same log file; logs are printed when the test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from channelmodel_sandbox.controlplane import die_with_parent
from tests.support.k8s import Cluster

LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR_ARGV = (sys.executable, "-m", "channelmodel", "run")


class OperatorProcess:
    """One operator (or any process) whose output goes to a log file that survives restarts."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path = REPO_ROOT
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> OperatorProcess:
        if self.running:
            raise RuntimeError("already running")
        with open(self.log_path, "ab") as log:
            self.starts += 1
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # a killed test run leaves no operator behind
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, like a node dying: no cleanup handlers run."""
        if self.process is not None and self.running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (kopf shuts down gracefully); SIGKILL if it hangs."""
        if self.process is None:
            return None
        if self.running:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def restart(self) -> OperatorProcess:
        self.kill()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} not in the log after {timeout}s:\n{self.log_text()[-4000:]}"
                )
            if not self.running:
                raise AssertionError(
                    f"process exited ({self.process and self.process.returncode}) before logging {text!r}:\n{self.log_text()[-4000:]}"
                )
            time.sleep(0.05)


OperatorFactory = Callable[..., OperatorProcess]


def operator_env(
    k8s: Cluster, tmp_path: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of an operator process pointed at the emulator."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHANNELMODEL_")}
    env.update(
        {
            "KUBECONFIG": str(k8s.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT / "operator"), env.get("PYTHONPATH")])
            ),
            "CHANNELMODEL_STORE_URI": f"file://{tmp_path / 'store'}",
            "CHANNELMODEL_PUBLIC_BASE_URL": "http://models.test",
            "CHANNELMODEL_METRICS_PORT": "0",
            **k8s.operator_env(),
            # Test receivers, manifests and images listen on loopback: allowed explicitly.
            "CHANNELMODEL_EGRESS_ALLOW_NETWORKS": LOOPBACK_NETWORKS,
        }
    )
    env.update(extra or {})
    return env


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, Any, Any]:
    report = yield
    item.stash.setdefault(_FAILED, False)
    if report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def operator_process(
    k8s: Cluster, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorFactory]:
    """Start operator processes; all are stopped at teardown and their logs shown on failure."""
    started: list[OperatorProcess] = []

    def start(
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] = OPERATOR_ARGV,
        name: str = "operator",
    ) -> OperatorProcess:
        log_path = tmp_path / f"{name}-{len(started)}.log"
        process = OperatorProcess(argv, operator_env(k8s, tmp_path, env), log_path).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(timeout=10)
    if request.node.stash.get(_FAILED, False):
        for process in started:
            sys.stdout.write(
                f"\n----- {process.log_path.name} -----\n{process.log_text()[-20000:]}\n"
            )
