"""The official Kubernetes control plane as local processes, for tests and benchmarks.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler, built from
their Go modules by `scripts/control-plane.sh`, started on free loopback ports
with certificates generated here: a CA, the API server's serving certificate,
client certificates (admin in system:masters, the controller manager and the
scheduler as their system users) and the service-account signing key pair.
The API server runs with RBAC authorization, so a client authenticated as
anything else than admin gets exactly the rights its Roles give.

What is not here: a kubelet (see `kubelet.py`), kube-proxy, DNS, networking.
Why these versions and how they are built: docs/decisions/0008-real-control-plane.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import ipaddress
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BINARIES_ENV = "CHANNELMODEL_CONTROL_PLANE_DIR"
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_NAME = "channelmodel-test"
# The controllers the suite relies on, plus what Jobs and namespaces need around them.
CONTROLLERS = tuple(
    f"{name}-controller"
    for name in (
        "job",
        "garbage-collector",
        "namespace",
        "ttl-after-finished",
        "serviceaccount",
        "serviceaccount-token",
        "pod-garbage-collector",
        "node-lifecycle",
        "root-ca-certificate-publisher",
        "cronjob",
        "replicaset",
        "deployment",
        "disruption",
        "resourcequota",
        "endpointslice",
        "clusterrole-aggregation",
        "persistentvolume-binder",
        # The admission plugin puts protection finalizers on claims and volumes;
        # without these controllers a namespace with a claim never goes away.
        "persistentvolumeclaim-protection",
        "persistentvolume-protection",
    )
)


def find_binaries(repo_root: Path) -> Path | None:
    """The folder holding all four binaries: $CHANNELMODEL_CONTROL_PLANE_DIR or the built pin."""
    candidates = []
    if os.environ.get(BINARIES_ENV):
        candidates.append(Path(os.environ[BINARIES_ENV]))
    candidates.append(repo_root / ".tools" / "control-plane" / "current")
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in BINARIES):
            return folder.resolve()
    return None


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies (Linux),
    so a killed test run leaves no control plane behind."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class CertificateAuthority:
    """A throwaway CA that signs the control plane's serving and client certificates."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{CLUSTER_NAME}-ca")])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert = folder / "ca.crt"
        self.key = folder / "ca.key"
        self.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.key, self._key)

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        organizations: Sequence[str] = (),
        server_names: Sequence[str] = (),
    ) -> KeyPair:
        """A certificate signed by this CA: a server one when `server_names` is given."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
            + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        )
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server_names:
            sans: list[x509.GeneralName] = []
            for entry in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(entry)))
                except ValueError:
                    sans.append(x509.DNSName(entry))
            builder = builder.add_extension(
                x509.SubjectAlternativeName(sans), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        pair = KeyPair(self.folder / f"{name}.crt", self.folder / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pair.key, key)
        return pair


# ------------------------------------------------------------------ kubeconfigs


def kubeconfig_dict(
    server: str,
    ca_file: Path,
    *,
    user: str,
    client: KeyPair | None = None,
    token: str | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    credentials: dict[str, str] = {}
    if client is not None:
        credentials = {"client-certificate": str(client.cert), "client-key": str(client.key)}
    elif token is not None:
        credentials = {"token": token}
    context = f"{user}@{CLUSTER_NAME}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": CLUSTER_NAME, "user": user, "namespace": namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }


def write_yaml(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    path.chmod(0o600)
    return path


# ------------------------------------------------------------------ processes


@dataclass
class Component:
    """One control-plane process; its output goes to `<name>.log` in the work folder."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Own process group: a Ctrl-C of the test run reaches us, not them directly,
                # so shutdown order stays ours (scheduler, controllers, API server, etcd).
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, size: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        return ""


class ControlPlaneError(RuntimeError):
    pass


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on loopback.

    `start()` returns once /readyz answers ok and the controller manager has
    created the `default` ServiceAccount (its controllers are running);
    `stop()` ends every process and frees every port, also after a failed start.
    """

    binaries: Path
    work_dir: Path
    extra_apiserver_args: Sequence[str] = ()
    components: list[Component] = field(default_factory=list)
    api_port: int = 0
    etcd_port: int = 0
    started_seconds: float = 0.0

    # Set by start():
    ca: CertificateAuthority | None = None
    admin: KeyPair | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def pki(self) -> Path:
        return self.work_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        """The admin (system:masters) kubeconfig."""
        return self.work_dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    def component(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    # -------------------------------------------------------------- start

    def start(self, timeout: float = 90.0) -> ControlPlane:
        began = time.monotonic()
        try:
            self._prepare()
            self._start_etcd()
            self._start_apiserver()
            self._wait_ready(time.monotonic() + timeout)
            self._start_controllers()
            self._wait_controllers(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - began
        logger.info("control plane ready at %s in %.1f s", self.url, self.started_seconds)
        return self

    def _prepare(self) -> None:
        if self.work_dir.exists():
            shutil.rmtree(self.work_dir)
        self.work_dir.mkdir(parents=True)
        ca = self.ca = CertificateAuthority(self.pki)
        self.api_port, self.etcd_port = free_port(), free_port()
        self.serving = ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            server_names=[
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )
        self.admin = ca.issue("admin", common_name="admin", organizations=["system:masters"])
        controller_manager = ca.issue(
            "controller-manager", common_name="system:kube-controller-manager"
        )
        scheduler = ca.issue("scheduler", common_name="system:kube-scheduler")
        # Service-account tokens: the API server verifies with the public key,
        # signs TokenRequests and the controller manager signs legacy tokens with the private one.
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_private = self.pki / "sa.key"
        self.sa_public = self.pki / "sa.pub"
        _write_key(self.sa_private, sa_key)
        self.sa_public.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        write_yaml(
            self.kubeconfig, kubeconfig_dict(self.url, ca.cert, user="admin", client=self.admin)
        )
        self.controller_manager_kubeconfig = write_yaml(
            self.work_dir / "controller-manager.kubeconfig",
            kubeconfig_dict(
                self.url, ca.cert, user="system:kube-controller-manager", client=controller_manager
            ),
        )
        self.scheduler_kubeconfig = write_yaml(
            self.work_dir / "scheduler.kubeconfig",
            kubeconfig_dict(self.url, ca.cert, user="system:kube-scheduler", client=scheduler),
        )

    def _spawn(self, name: str, argv: list[str]) -> Component:
        component = Component(name, argv, self.work_dir / f"{name}.log")
        self.components.append(component)
        component.start()
        return component

    def _start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{free_port()}"
        self._spawn(
            "etcd",
            [
                str(self.binaries / "etcd"),
                "--name=test",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                # A test cluster's data is disposable: skip fsync, it costs seconds per test.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    @property
    def audit_log(self) -> Path:
        """Every request the API server completed, one JSON event per line."""
        return self.work_dir / "audit.log"

    def _start_apiserver(self) -> None:
        ca = self.ca
        assert ca is not None
        policy = write_yaml(
            self.work_dir / "audit-policy.yaml",
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["RequestReceived", "ResponseStarted"],
                "rules": [{"level": "Metadata"}],
            },
        )
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={self.serving.cert}",
                f"--tls-private-key-file={self.serving.key}",
                f"--client-ca-file={ca.cert}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={self.sa_public}",
                f"--service-account-signing-key-file={self.sa_private}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                # No kube-proxy or real endpoints here: nothing would use the reconciled ones.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                # Tests count requests from it, as they count the emulator's request log.
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-mode=blocking",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )

    def _start_controllers(self) -> None:
        ca = self.ca
        assert ca is not None
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries / "kube-controller-manager"),
                f"--kubeconfig={self.controller_manager_kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={self.sa_private}",
                f"--root-ca-file={ca.cert}",
                f"--cluster-signing-cert-file={ca.cert}",
                f"--cluster-signing-key-file={ca.key}",
                # Each controller acts with its own ServiceAccount's RBAC rights, as in a cluster.
                "--use-service-account-credentials=true",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.binaries / "kube-scheduler"),
                f"--kubeconfig={self.scheduler_kubeconfig}",
                f"--authentication-kubeconfig={self.scheduler_kubeconfig}",
                f"--authorization-kubeconfig={self.scheduler_kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )

    # -------------------------------------------------------------- readiness

    def ssl_context(self) -> ssl.SSLContext:
        assert self.admin is not None
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """An admin GET on the API server (for readiness checks and tests)."""
        try:
            with urllib.request.urlopen(
                self.url + path, context=self.ssl_context(), timeout=timeout
            ) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read()

    def _check_alive(self) -> None:
        for component in self.components:
            if not component.running:
                raise ControlPlaneError(
                    f"{component.name} exited ({component.process and component.process.returncode}):\n"
                    + component.log_tail()
                )

    def _wait_ready(self, deadline: float) -> None:
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self.get("/readyz", timeout=2)
                if status == 200:
                    return
                last = body.decode(errors="replace")[-2000:]
            except OSError as error:
                last = repr(error)
            time.sleep(0.2)
        raise ControlPlaneError(f"kube-apiserver not ready: {last}")

    def _wait_controllers(self, deadline: float) -> None:
        """The serviceaccount controller's first act is the default ServiceAccount."""
        while time.monotonic() < deadline:
            self._check_alive()
            status, _ = self.get("/api/v1/namespaces/default/serviceaccounts/default")
            if status == 200:
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            "kube-controller-manager created no default ServiceAccount:\n"
            + self.component("kube-controller-manager").log_tail()
        )

    # -------------------------------------------------------------- stop

    def stop(self) -> None:
        """Stop in reverse start order; safe to call more than once."""
        for component in reversed(self.components):
            component.stop()

    def stop_component(self, name: str) -> None:
        self.component(name).stop()

    def start_component(self, name: str) -> None:
        component = self.component(name)
        if not component.running:
            component.start()
        if name == "kube-apiserver":
            self._wait_ready(time.monotonic() + 60)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
