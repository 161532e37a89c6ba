"""pytest plugin: a Kubernetes API for end-to-end tests, the real one or the emulator.

Backends (docs/decisions/0008-real-control-plane.md):
  real      the official control plane built by scripts/control-plane.sh (etcd,
            kube-apiserver, kube-controller-manager, kube-scheduler), started
            once per session; each test gets a namespace of its own; the process
            kubelet (channelmodel_sandbox.kubelet) runs the Pods bound to its GPU node.
  emulator  the in-repo API emulator, one per test; the local job runner plays
            the Job controller and the kubelet.

Which backend `k8s` is:
  - tests marked `emulator` get the emulator (they test the emulator itself or
    read its request log);
  - tests marked `both_backends` run once on each (the shared scenarios that
    keep the two from drifting apart);
  - every other test runs on $CHANNELMODEL_TEST_CLUSTER, `real` by default.
When the control plane is not built, real tests skip and say how to build it.

Fixtures:
  k8s              -> Cluster (kubeconfig, official ApiClient, ChannelModel helpers)
  start_job_runner -> factory: run the test's Pods/Jobs, optionally with a stand-in command
  control_plane    -> the session's ControlPlane (real backend only)
Helpers: wait_for(predicate, timeout, message).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import kubernetes.utils
import pytest
import yaml

from channelmodel.api.crd import crd_manifest
from channelmodel.api.models import GROUP, PLURAL, VERSION
from channelmodel.settings import OperatorSettings
from channelmodel_sandbox.containers import StandIn
from channelmodel_sandbox.controlplane import ControlPlane, find_binaries, kubeconfig_dict
from channelmodel_sandbox.emulator import KubernetesAPIEmulator
from channelmodel_sandbox.jobrunner import JobRunner
from channelmodel_sandbox.kubeconfig import write_kubeconfig
from channelmodel_sandbox.kubelet import NodeConfig, ProcessKubelet
from channelmodel_sandbox.runtime import EmulatorThread, LoopThread

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKEND_ENV = "CHANNELMODEL_TEST_CLUSTER"
REAL, EMULATOR = "real", "emulator"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
TRAINER_SERVICE_ACCOUNT = OperatorSettings.model_fields["trainer_service_account"].default


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


class Cluster:
    """What every test may use, on either backend."""

    backend = ""

    def __init__(
        self, kubeconfig: Path, api_client: kubernetes.client.ApiClient, namespace: str
    ) -> None:
        self.kubeconfig = kubeconfig
        self.api_client = api_client
        self.namespace = namespace

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api_client)

    @property
    def batch(self) -> kubernetes.client.BatchV1Api:
        return kubernetes.client.BatchV1Api(self.api_client)

    def operator_env(self) -> dict[str, str]:
        """What an operator process needs beside KUBECONFIG on this backend."""
        return {}

    def ensure_namespace(self, name: str) -> None:
        """Create namespace `name` (with the trainer's ServiceAccount) unless it exists."""

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

    # Plain dicts, as the API server sends them ------------------------------------------
    def _as_dicts(self, items: list[Any]) -> list[dict[str, Any]]:
        return [dict(self.api_client.sanitize_for_serialization(item)) for item in items]

    def jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._as_dicts(self.batch.list_namespaced_job(namespace or self.namespace).items)

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._as_dicts(self.core.list_namespaced_pod(namespace or self.namespace).items)

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._as_dicts(self.core.list_namespaced_event(namespace or self.namespace).items)


class EmulatorCluster(Cluster):
    """A running emulator and clients for it."""

    backend = EMULATOR

    def __init__(self, thread: EmulatorThread, kubeconfig: Path) -> None:
        super().__init__(
            kubeconfig,
            kubernetes.config.new_client_from_config(config_file=str(kubeconfig)),
            "default",
        )
        self.thread = thread
        self.runners: list[JobRunner] = []

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def emulator(self) -> KubernetesAPIEmulator:
        """Direct access; use only through `call()` (the state lives on the emulator's loop)."""
        return self.thread.emulator

    def call(self, fn: Callable[[KubernetesAPIEmulator], T]) -> T:
        return self.thread.call(fn)

    # Request counting -------------------------------------------------------------------
    def request_mark(self) -> int:
        return self.call(lambda emulator: emulator.requests_served)

    def count_requests(self, since: int = 0, **filters: Any) -> int:
        return self.call(lambda emulator: emulator.count_requests(since=since, **filters))

    def close(self) -> None:
        for runner in self.runners:
            self.thread.run(runner.aclose(), timeout=30)
        self.api_client.close()
        self.thread.stop()


def start_emulator(
    tmp_path: Path, manifests: list[dict[str, Any]] | None = None
) -> EmulatorCluster:
    thread = EmulatorThread(manifests=[crd_manifest(), *(manifests or [])]).start()
    return EmulatorCluster(thread, write_kubeconfig(tmp_path / "kubeconfig", thread.url))


class RealControlPlane:
    """The session's control plane, its process kubelet and its admin client."""

    def __init__(self, plane: ControlPlane, work_dir: Path) -> None:
        self.plane = plane
        self.loop = LoopThread("process-kubelets").start()
        # A cluster's usual shape: a plain node, and a GPU node (tainted, nvidia.com/gpu).
        self.kubelets = [
            ProcessKubelet(
                plane.url,
                ssl_context=plane.ssl_context(),
                node=node,
                work_dir=work_dir / node.name,
                only_admitted_namespaces=True,
            )
            for node in (NodeConfig.without_gpus("cpu-node-1"), NodeConfig(name="gpu-node-1"))
        ]
        for kubelet in self.kubelets:
            running = self.loop.spawn(kubelet.run())
            wait_for(
                lambda running=running, kubelet=kubelet: (
                    running.result() if running.done() else kubelet.started
                ),
                timeout=30,
                message=lambda kubelet=kubelet: f"kubelet {kubelet.node.name} to start",
            )
        self.api_client = kubernetes.config.new_client_from_config(
            config_file=str(plane.kubeconfig)
        )
        self.started_seconds = plane.started_seconds

    def apply_crd(self) -> None:
        ext = kubernetes.client.ApiextensionsV1Api(self.api_client)
        manifest = crd_manifest()
        ext.create_custom_resource_definition(manifest)

        def established() -> bool:
            crd = ext.read_custom_resource_definition(manifest["metadata"]["name"])
            return any(
                c.type == "Established" and c.status == "True"
                for c in (crd.status.conditions or [])
            )

        wait_for(established, timeout=30, message="the ChannelModel CRD to be established")

    def close(self) -> None:
        self.loop.stop()
        self.api_client.close()
        self.plane.stop()


class RealCluster(Cluster):
    """One test's namespace on the session's real control plane."""

    backend = REAL

    def __init__(self, control: RealControlPlane, namespace: str, tmp_path: Path) -> None:
        kubeconfig = tmp_path / "kubeconfig"
        plane = control.plane
        assert plane.admin is not None
        kubeconfig.write_text(
            yaml.safe_dump(
                kubeconfig_dict(
                    plane.url, plane.ca_file, user="admin", client=plane.admin, namespace=namespace
                ),
                sort_keys=False,
            )
        )
        super().__init__(
            kubeconfig,
            kubernetes.config.new_client_from_config(config_file=str(kubeconfig)),
            namespace,
        )
        self.control = control
        self.namespaces: list[str] = []
        self.admitted: KubeletNamespace | None = None
        self.ensure_namespace(namespace)

    @property
    def plane(self) -> ControlPlane:
        return self.control.plane

    @property
    def kubelets(self) -> list[ProcessKubelet]:
        return self.control.kubelets

    # Request counting, from the API server's audit log ----------------------------------
    def request_mark(self) -> int:
        with self.plane.audit_log.open("rb") as log:
            return sum(1 for _ in log)

    def count_requests(
        self,
        since: int = 0,
        *,
        verbs: set[str] | None = None,
        resource: str | None = None,
        user_agent: str | None = None,
    ) -> int:
        """Requests about this test's namespaces (not the cluster's own components')
        since the mark, by verb, resource and User-Agent, as EmulatorCluster counts them."""
        count = 0
        with self.plane.audit_log.open("rb") as log:
            for number, line in enumerate(log):
                if number < since:
                    continue
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                namespace = ref.get("namespace") or (
                    ref.get("name") if ref.get("resource") == "namespaces" else None
                )
                if namespace not in self.namespaces:
                    continue
                if str(event.get("user", {}).get("username", "")).startswith("system:"):
                    continue  # controllers and the scheduler
                if verbs is not None and event.get("verb") not in verbs:
                    continue
                if resource is not None and ref.get("resource") != resource:
                    continue
                if user_agent is not None and user_agent not in event.get("userAgent", ""):
                    continue
                count += 1
        return count

    def operator_env(self) -> dict[str, str]:
        # Other tests' namespaces share this API server: watch only this test's.
        return {"CHANNELMODEL_NAMESPACES": self.namespace}

    def ensure_namespace(self, name: str, service_account: str = TRAINER_SERVICE_ACCOUNT) -> None:
        """The namespace (the test's own for cleanup) with the trainer's ServiceAccount:
        the ServiceAccount admission plugin refuses Pods of a missing one."""

        def create() -> bool:
            try:
                self.core.create_namespace({"metadata": {"name": name}})
            except kubernetes.client.ApiException as error:
                if error.status != 409:
                    raise
                # A namespace of a fixed name that an earlier test left terminating.
                phase = self.core.read_namespace(name).status.phase
                return phase != "Terminating"
            self.namespaces.append(name)
            return True

        wait_for(create, timeout=60, message=f"namespace {name} (an earlier one to terminate)")
        try:
            self.core.create_namespaced_service_account(
                name, {"metadata": {"name": service_account}}
            )
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
        # Pods need the default ServiceAccount too, which its controller adds shortly.
        wait_for(
            lambda: self.core.read_namespaced_service_account("default", name),
            timeout=30,
            message=f"the default ServiceAccount of {name}",
        )
        if self.admitted is not None:
            self._admit(name, self.admitted.stand_in)

    def apply_rbac(self, objects: list[dict[str, Any]]) -> None:
        """Create the ServiceAccounts and RBAC objects among rendered `objects`."""
        for obj in objects:
            if obj["kind"] not in RBAC_KINDS:
                continue
            if obj["metadata"].get("namespace"):
                self.ensure_namespace(obj["metadata"]["namespace"])
            try:
                kubernetes.utils.create_from_dict(self.api_client, obj)
            except kubernetes.utils.FailToCreateError as error:
                if not all(e.status == 409 for e in error.api_exceptions):
                    raise

    def service_account_kubeconfig(self, name: str, namespace: str, path: Path) -> Path:
        """A kubeconfig authenticated as ServiceAccount `name` by a TokenRequest token,
        as a Pod running under it would be."""
        token = self.core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        config = kubeconfig_dict(
            self.plane.url, self.plane.ca_file, user=name, token=token, namespace=namespace
        )
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _admit(self, namespace: str, stand_in: StandIn | None) -> None:
        for kubelet in self.kubelets:
            self.control.loop.call(lambda kubelet=kubelet: kubelet.admit(namespace, stand_in))

    def admit(self, stand_in: StandIn | None) -> KubeletNamespace:
        """The kubelet runs this test's Pods (in all its namespaces) from now on."""
        for name in self.namespaces:
            self._admit(name, stand_in)
        self.admitted = KubeletNamespace(self, stand_in)
        return self.admitted

    def close(self) -> None:
        for name in self.namespaces:
            for kubelet in self.kubelets:
                self.control.loop.run(kubelet.release(name), timeout=30)
        # The operator is gone: drop ChannelModel finalizers so the namespaces can go.
        for name in self.namespaces:
            try:
                items = self.custom.list_namespaced_custom_object(GROUP, VERSION, name, PLURAL)
                for item in items.get("items", []):
                    if item["metadata"].get("finalizers"):
                        self.custom.patch_namespaced_custom_object(
                            GROUP,
                            VERSION,
                            name,
                            PLURAL,
                            item["metadata"]["name"],
                            {"metadata": {"finalizers": None}},
                        )
                self.core.delete_namespace(name)
            except kubernetes.client.ApiException:
                pass
        self.api_client.close()


def bind_claim_to_folder(cluster: RealCluster, namespace: str, claim: str, folder: Path) -> None:
    """Create PVC `claim` and a hostPath PersistentVolume at `folder` bound to it (what a
    storage provisioner would do); the process kubelet mounts the claim as that folder."""
    folder.mkdir(parents=True, exist_ok=True)
    cluster.ensure_namespace(namespace)
    # A PersistentVolume's name is a DNS subdomain (253 characters): no cut, which
    # could end in "-" or make two namespaces' volumes collide.
    volume = f"{namespace}-{claim}"
    cluster.core.create_persistent_volume(
        {
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": str(folder)},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    cluster.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "10Gi"}},
            },
        },
    )
    wait_for(
        lambda: (
            cluster.core.read_namespaced_persistent_volume_claim(claim, namespace).status.phase
            == "Bound"
        ),
        timeout=30,
        message=f"claim {namespace}/{claim} to be bound",
    )


class KubeletNamespace:
    """What `start_job_runner` returns on the real backend: the kubelet runs this test's Pods."""

    def __init__(self, cluster: RealCluster, stand_in: StandIn | None) -> None:
        self.cluster = cluster
        self._stand_in = stand_in

    @property
    def stand_in(self) -> StandIn | None:
        return self._stand_in

    @stand_in.setter
    def stand_in(self, value: StandIn | None) -> None:
        self._stand_in = value
        for name in self.cluster.namespaces:
            self.cluster._admit(name, value)

    def logs(self, job_name: str) -> str:
        """Everything the Job's Pods printed."""
        pods = [
            pod["metadata"]["name"]
            for pod in self.cluster.pods()
            if pod["metadata"].get("labels", {}).get("job-name") == job_name
        ]
        loop = self.cluster.control.loop
        return "".join(
            loop.call(lambda k=kubelet, n=name: k.logs(n))
            for name in pods
            for kubelet in self.cluster.kubelets
        )


# ---------------------------------------------------------------------- backend choice


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator: runs on the API emulator only (tests it, or reads its request log)"
    )
    config.addinivalue_line(
        "markers", "both_backends: runs on the real control plane and on the emulator"
    )
    config.addinivalue_line("markers", "real_only: needs the real control plane")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "k8s" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("k8s", [REAL, EMULATOR], indirect=True)


def chosen_backend(request: pytest.FixtureRequest) -> str:
    if getattr(request, "param", None) in (REAL, EMULATOR):
        return str(request.param)
    if request.node.get_closest_marker("emulator"):
        return EMULATOR
    if request.node.get_closest_marker("real_only"):
        return REAL
    backend = os.environ.get(BACKEND_ENV, REAL)
    if backend not in (REAL, EMULATOR):
        raise pytest.UsageError(f"{BACKEND_ENV} must be {REAL} or {EMULATOR}, not {backend!r}")
    return backend


_SESSION_PLANE = pytest.StashKey[RealControlPlane | BaseException]()
_NAMESPACE_NUMBERS = itertools.count(1)


def session_control_plane(request: pytest.FixtureRequest) -> RealControlPlane:
    """Started on first use, stopped at the end of the session; skips where not built."""
    config = request.config
    found = config.stash.get(_SESSION_PLANE, None)
    if isinstance(found, RealControlPlane):
        return found
    if isinstance(found, BaseException):
        raise found
    binaries = find_binaries(REPO_ROOT)
    if binaries is None:
        pytest.skip(
            "the real Kubernetes control plane is not built: run scripts/control-plane.sh "
            f"(or set {BACKEND_ENV}=emulator)"
        )
    work_dir = Path(request.getfixturevalue("tmp_path_factory").mktemp("control-plane"))
    try:
        plane = ControlPlane(binaries=binaries, work_dir=work_dir / "plane").start()
        control = RealControlPlane(plane, work_dir)
        control.apply_crd()
    except BaseException as error:
        config.stash[_SESSION_PLANE] = error
        raise
    config.stash[_SESSION_PLANE] = control
    config.add_cleanup(control.close)
    return control


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> RealControlPlane:
    return session_control_plane(request)


def namespace_for(node: pytest.Item) -> str:
    """A DNS-1123 namespace per test: t<n>-<test name>."""
    base = re.sub(r"[^a-z0-9-]+", "-", node.name.lower()).strip("-")
    return f"t{next(_NAMESPACE_NUMBERS)}-{base}"[:63].rstrip("-")


@pytest.fixture
def k8s(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """The test's Kubernetes API, ChannelModel CRD applied (see the module doc)."""
    if chosen_backend(request) == EMULATOR:
        emulated = start_emulator(tmp_path)
        try:
            yield emulated
        finally:
            emulated.close()
        return
    control = session_control_plane(request)
    cluster = RealCluster(control, namespace_for(request.node), tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()


JobRunnerFactory = Callable[..., Any]


@pytest.fixture
def start_job_runner(k8s: Cluster, tmp_path: Path) -> JobRunnerFactory:
    """Run the test's Jobs; `stand_in=` swaps every Pod's command.

    Real backend: the real Job controller creates the Pods, the scheduler binds
    them to the process kubelet's node, which runs this test's namespaces.
    Emulator: the local job runner plays both.
    """

    def start(stand_in: StandIn | None = None, **options: Any) -> Any:
        if isinstance(k8s, RealCluster):
            # The kubelet's grace period is the Pod's terminationGracePeriodSeconds.
            options.pop("kill_grace_seconds", None)
            if options:
                raise TypeError(f"job runner options need the emulator: {sorted(options)}")
            return k8s.admit(stand_in)
        assert isinstance(k8s, EmulatorCluster)
        runner = JobRunner(
            k8s.url,
            stand_in=stand_in,
            work_dir=tmp_path / f"jobrunner-{len(k8s.runners)}",
            **options,
        )
        k8s.thread.spawn(runner.run)
        k8s.thread.run(runner.wait_started(), timeout=10)
        k8s.runners.append(runner)
        return runner

    return start
