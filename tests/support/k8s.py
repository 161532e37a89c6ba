"""pytest plugin: the Kubernetes API emulator with the ChannelModel CRD applied.

Fixtures:
  k8s             -> Cluster: emulator on 127.0.0.1:<free port>, kubeconfig file,
                     official `kubernetes` ApiClient, request counting.
  start_job_runner-> factory: start the local Job controller/kubelet on k8s,
                     optionally with a stand-in command.
Helpers: wait_for(predicate, timeout, message).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest

from channelmodel.api.crd import crd_manifest
from channelmodel.api.models import GROUP, PLURAL, VERSION
from channelmodel.sandbox.emulator import KubernetesAPIEmulator
from channelmodel.sandbox.jobrunner import JobRunner, StandIn
from channelmodel.sandbox.kubeconfig import write_kubeconfig
from channelmodel.sandbox.runtime import EmulatorThread

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(
    predicate: Callable[[], T | bool | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Poll until `predicate()` is truthy and return its value; fail the test on timeout.

    Exceptions from the predicate (e.g. a 404 while an object does not exist yet)
    count as "not yet" and are reported if the wait times out.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value  # type: ignore[return-value]
        except Exception as error:
            last_error = error
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout}s waiting for {text}{suffix}")
        time.sleep(interval)


@dataclass
class Cluster:
    """A running emulator and clients for it."""

    thread: EmulatorThread
    kubeconfig: Path
    api_client: kubernetes.client.ApiClient
    namespace: str = "default"
    _runners: list[JobRunner] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def emulator(self) -> KubernetesAPIEmulator:
        """Direct access; use only through `call()` (the state lives on the emulator's loop)."""
        return self.thread.emulator

    def call(self, fn: Callable[[KubernetesAPIEmulator], T]) -> T:
        return self.thread.call(fn)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api_client)

    @property
    def batch(self) -> kubernetes.client.BatchV1Api:
        return kubernetes.client.BatchV1Api(self.api_client)

    # ChannelModel shortcuts -------------------------------------------------------------
    def create_channelmodel(
        self, name: str, spec: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ChannelModel",
            "metadata": {"name": name},
            "spec": spec,
        }
        return dict(
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace or self.namespace, PLURAL, body
            )
        )

    def get_channelmodel(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace or self.namespace, PLURAL, name
            )
        )

    def patch_channelmodel(
        self, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        return dict(
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace or self.namespace, PLURAL, name, patch
            )
        )

    def delete_channelmodel(self, name: str, namespace: str | None = None) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, namespace or self.namespace, PLURAL, name
        )

    def jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.call(lambda emulator: emulator.list_objects("batch/v1", "jobs", namespace))

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.call(lambda emulator: emulator.list_objects("v1", "events", namespace))

    # Request counting -------------------------------------------------------------------
    def request_mark(self) -> int:
        return self.call(lambda emulator: emulator.requests_served)

    def count_requests(self, since: int = 0, **filters: Any) -> int:
        return self.call(lambda emulator: emulator.count_requests(since=since, **filters))


def start_cluster(tmp_path: Path, manifests: list[dict[str, Any]] | None = None) -> Cluster:
    thread = EmulatorThread(manifests=[crd_manifest(), *(manifests or [])]).start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", thread.url)
    api_client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    return Cluster(thread=thread, kubeconfig=kubeconfig, api_client=api_client)


@pytest.fixture
def k8s(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh emulator per test, ChannelModel CRD applied."""
    cluster = start_cluster(tmp_path)
    try:
        yield cluster
    finally:
        for runner in cluster._runners:
            cluster.thread.run(runner.aclose(), timeout=30)
        cluster.api_client.close()
        cluster.thread.stop()


JobRunnerFactory = Callable[..., JobRunner]


@pytest.fixture
def start_job_runner(k8s: Cluster, tmp_path: Path) -> JobRunnerFactory:
    """Start the local job runner against `k8s`; `stand_in=` swaps every Job's command."""

    def start(stand_in: StandIn | None = None, **options: Any) -> JobRunner:
        runner = JobRunner(
            k8s.url,
            stand_in=stand_in,
            work_dir=tmp_path / f"jobrunner-{len(k8s._runners)}",
            **options,
        )
        k8s.thread.spawn(runner.run)
        k8s.thread.run(runner.wait_started(), timeout=10)
        k8s._runners.append(runner)
        return runner

    return start
