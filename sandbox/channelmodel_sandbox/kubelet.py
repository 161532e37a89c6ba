"""A process kubelet: one Node whose Pods run as local processes.

Beside the real control plane (`controlplane.py`) this is the only stand-in
left. It does what a kubelet does, at the API:

- registers a Node with the capacity, labels and taints of a GPU node
  (`nvidia.com/gpu`, the labels and taints GPU clusters and the chart use),
  keeps its Lease in `kube-node-lease` and its Ready condition fresh;
- runs each Pod the scheduler binds to it as local processes (first container):
  command and args (`channelmodel` is this interpreter's module, or a test's
  stand-in), env with `valueFrom` secretKeyRef / configMapKeyRef / fieldRef
  and `envFrom`, read through the API (a missing one keeps the Pod Pending in
  CreateContainerConfigError and is retried, as the kubelet does), volumes as
  local folders (emptyDir, hostPath, PVC, Secret, ConfigMap), workingDir, the
  termination message with the kubelet's 4096-byte limit and
  FallbackToLogsOnError, container states, Pod conditions and phases;
- stops a Pod on deletion gracefully: SIGTERM to the process group, SIGKILL
  after the grace period, terminal status, then the final delete.

What it does not emulate: images (the command runs on this machine), mount
namespaces (a mount is visible to the process only where the folder already is
the mount path; an emptyDir at /tmp becomes TMPDIR), resource limits, probes,
restarts (`restartPolicy` Never only), init and sidecar containers,
runAsUser. See docs/decisions/0008-real-control-plane.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from channelmodel_sandbox.containers import (
    TERMINATION_LOG_ENV,
    ConfigError,
    Obj,
    StandIn,
    choose_command,
    now_rfc3339,
    resolve_env,
    terminate,
    termination_message,
)

logger = logging.getLogger(__name__)

USER_AGENT = "channelmodel-process-kubelet"
KUBELET_VERSION = "v1.37.2"
GPU_RESOURCE = "nvidia.com/gpu"
# What GPU nodes carry: the NVIDIA device plugin's resource, GPU feature
# discovery's label and the taint that keeps CPU workloads off.
GPU_LABELS = {"nvidia.com/gpu.present": "true"}
GPU_TAINTS = [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class NodeConfig:
    """The Node this kubelet registers."""

    name: str = "gpu-node-1"
    cpu: str = "16"
    memory: str = "64Gi"
    pods: str = "110"
    gpus: int = 2
    labels: dict[str, str] = field(default_factory=lambda: dict(GPU_LABELS))
    taints: list[dict[str, str]] = field(default_factory=lambda: [dict(t) for t in GPU_TAINTS])

    @classmethod
    def without_gpus(cls, name: str) -> NodeConfig:
        """A plain node: no GPU, no taint."""
        return cls(name=name, gpus=0, labels={}, taints=[])

    def manifest(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    **self.labels,
                },
            },
            "spec": {"taints": self.taints} if self.taints else {},
        }

    def status(self) -> Obj:
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": self.pods}
        if self.gpus:
            capacity[GPU_RESOURCE] = str(self.gpus)
        now = now_rfc3339()

        def condition(kind: str, status: str, reason: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": f"process kubelet: {reason}",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        return {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("Ready", "True", "KubeletReady"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": os.uname().release,
                "osImage": "process kubelet",
                "containerRuntimeVersion": "local://0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass
class PodRun:
    """A Pod this kubelet has taken on."""

    namespace: str
    name: str
    uid: str
    task: asyncio.Task[None] | None = None
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    grace_seconds: float = 30.0
    finished: bool = False


class ProcessKubelet:
    """Run it with `await kubelet.run()` (until cancelled) beside an API server.

    `namespaces`: when given, only Pods in these namespaces are run (each with
    its own stand-in, see `admit`); Pods elsewhere are left Pending, as on a
    node whose kubelet has not got to them. Tests share one node this way.
    """

    def __init__(
        self,
        api_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        node: NodeConfig | None = None,
        work_dir: Path,
        stand_in: StandIn | None = None,
        only_admitted_namespaces: bool = False,
        heartbeat_seconds: float = 10.0,
        config_retry_seconds: float = 1.0,
        inherit_env: bool = True,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.ssl_context = ssl_context
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.node = node or NodeConfig()
        self.work_dir = work_dir
        self.stand_in = stand_in
        self.only_admitted = only_admitted_namespaces
        self.admitted: dict[str, StandIn | None] = {}
        self.heartbeat_seconds = heartbeat_seconds
        self.config_retry_seconds = config_retry_seconds
        self.inherit_env = inherit_env
        self.runs: dict[str, PodRun] = {}  # by Pod uid
        self._pods: dict[str, Obj] = {}  # last seen, by uid
        self._session: aiohttp.ClientSession | None = None
        self._started = asyncio.Event()

    # -------------------------------------------------------------- lifecycle

    @property
    def started(self) -> bool:
        """Registered and watching its Pods."""
        return self._started.is_set()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.ssl_context or False)
        async with aiohttp.ClientSession(headers=self.headers, connector=connector) as session:
            self._session = session
            try:
                await self._register()
                heartbeat = asyncio.create_task(self._heartbeat(), name="kubelet heartbeat")
                try:
                    await self._watch_pods()
                finally:
                    heartbeat.cancel()
                    await asyncio.gather(heartbeat, return_exceptions=True)
            finally:
                await self._stop_all()

    async def _stop_all(self) -> None:
        tasks = [run.task for run in self.runs.values() if run.task and not run.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def admit(self, namespace: str, stand_in: StandIn | None = None) -> None:
        """Run the Pods of `namespace` from now on (with `stand_in` for their command)."""
        self.admitted[namespace] = stand_in
        for pod in list(self._pods.values()):
            if pod["metadata"]["namespace"] == namespace:
                self._consider(pod)

    async def release(self, namespace: str) -> None:
        """Stop running the Pods of `namespace`; their processes are killed."""
        self.admitted.pop(namespace, None)
        tasks = []
        for run in self.runs.values():
            if run.namespace == namespace and run.task and not run.task.done():
                run.task.cancel()
                tasks.append(run.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    def logs(self, pod_name: str) -> str:
        for run in self.runs.values():
            if run.name == pod_name and run.log_path and run.log_path.exists():
                return run.log_path.read_text(errors="replace")
        return ""

    # -------------------------------------------------------------- API access

    async def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Obj:
        assert self._session is not None
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self._session.request(
            method,
            self.api_url + path,
            data=json.dumps(body) if body is not None else None,
            params=params,
            headers=headers,
        ) as response:
            data: Obj = await response.json(content_type=None)
            if response.status >= 400:
                raise ApiError(response.status, str(data.get("message")))
            return data

    async def _read_object(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self._request("GET", f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    # -------------------------------------------------------------- the Node

    async def _register(self) -> None:
        try:
            await self._request("POST", "/api/v1/nodes", self.node.manifest())
        except ApiError as error:
            if error.status != 409:
                raise
        await self._patch_node_status()
        await self._renew_lease()

    async def _patch_node_status(self) -> None:
        await self._request(
            "PATCH",
            f"/api/v1/nodes/{self.node.name}/status",
            {"status": self.node.status()},
            content_type="application/strategic-merge-patch+json",
        )

    async def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node.name}"
        spec = {
            "holderIdentity": self.node.name,
            "leaseDurationSeconds": 40,
            "renewTime": now_micro(),
        }
        try:
            await self._request(
                "PATCH", path, {"spec": spec}, content_type="application/merge-patch+json"
            )
        except ApiError as error:
            if error.status != 404:
                raise
            await self._request(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.node.name, "namespace": "kube-node-lease"},
                    "spec": spec,
                },
            )

    async def _heartbeat(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            beats += 1
            try:
                await self._renew_lease()
                if beats % 3 == 0:  # the status less often than the Lease, as the kubelet does
                    await self._patch_node_status()
            except (aiohttp.ClientError, ApiError, OSError) as error:
                logger.debug("heartbeat failed: %r", error)

    # -------------------------------------------------------------- watching Pods

    async def _watch_pods(self) -> None:
        assert self._session is not None
        selector = quote(f"spec.nodeName={self.node.name}")
        path = f"/api/v1/pods?fieldSelector={selector}"
        version = ""
        while True:
            try:
                if not version:
                    listing = await self._request("GET", path)
                    for pod in listing.get("items", []):
                        self._seen(pod)
                    version = listing["metadata"]["resourceVersion"]
                    self._started.set()
                async with self._session.get(
                    self.api_url + path,
                    params={
                        "watch": "true",
                        "resourceVersion": version,
                        "allowWatchBookmarks": "true",
                    },
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                ) as response:
                    if response.status == 410:
                        version = ""
                        continue
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            if obj.get("code") == 410:
                                version = ""  # expired: list again
                            break
                        version = obj["metadata"].get("resourceVersion") or version
                        if event["type"] == "BOOKMARK":
                            continue
                        if event["type"] == "DELETED":
                            self._gone(obj)
                        else:
                            self._seen(obj)
            except (aiohttp.ClientError, ConnectionError, ApiError, TimeoutError) as error:
                logger.debug("pod watch interrupted: %r", error)
                await asyncio.sleep(0.5)

    def _seen(self, pod: Obj) -> None:
        self._pods[pod["metadata"]["uid"]] = pod
        self._consider(pod)

    def _consider(self, pod: Obj) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        run = self.runs.get(uid)
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            if run is not None and not run.finished:
                run.grace_seconds = float(grace if grace is not None else 30)
                run.stop_requested.set()
            else:
                # Nothing runs for it (any more): confirm the deletion, also for Pods of
                # namespaces it was not told to run, or a namespace could never go away.
                asyncio.get_running_loop().create_task(self._finalize_delete(pod))
            return
        if run is not None or not self._admitted(meta["namespace"]):
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        run = PodRun(namespace=meta["namespace"], name=meta["name"], uid=uid)
        self.runs[uid] = run
        run.task = asyncio.create_task(
            self._run_pod(run, pod), name=f"pod {run.namespace}/{run.name}"
        )

    def _admitted(self, namespace: str) -> bool:
        return not self.only_admitted or namespace in self.admitted

    def _gone(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        self._pods.pop(uid, None)
        run = self.runs.get(uid)
        if run and run.task and not run.task.done():
            run.task.cancel()

    # -------------------------------------------------------------- one Pod

    def _pod_path(self, run: PodRun) -> str:
        return f"/api/v1/namespaces/{run.namespace}/pods/{run.name}"

    async def _patch_status(self, run: PodRun, status: Obj) -> None:
        """Report the Pod's status; while the API server is unreachable, keep trying
        (the kubelet's status manager does the same)."""
        while True:
            try:
                await self._request(
                    "PATCH",
                    self._pod_path(run) + "/status",
                    {"status": status},
                    content_type="application/strategic-merge-patch+json",
                )
                return
            except ApiError as error:
                if error.status < 500:
                    return  # the Pod is gone, or the server refuses: nothing to report to
                await asyncio.sleep(1.0)
            except (aiohttp.ClientError, OSError) as error:
                logger.debug("status of %s/%s not reported yet: %r", run.namespace, run.name, error)
                await asyncio.sleep(1.0)

    async def _finalize_delete(self, pod: Obj) -> None:
        """The kubelet's last word on a deleted Pod: remove it for good."""
        meta = pod["metadata"]
        with contextlib.suppress(ApiError, aiohttp.ClientError):
            await self._request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )

    @staticmethod
    def _conditions(ready: bool, initialized: bool, started: str) -> list[Obj]:
        def condition(kind: str, status: bool) -> Obj:
            return {
                "type": kind,
                "status": "True" if status else "False",
                "lastProbeTime": None,
                "lastTransitionTime": started,
            }

        return [
            condition("PodReadyToStartContainers", initialized),
            condition("Initialized", True),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", True),
        ]

    @staticmethod
    def _container_status(container: Mapping[str, Any], state: Obj, *, ready: bool) -> Obj:
        return {
            "name": container.get("name", "main"),
            "ready": ready,
            "started": "running" in state,
            "restartCount": 0,
            "image": container.get("image", ""),
            "imageID": "",
            "state": state,
        }

    async def _prepare_volumes(self, pod: Obj, pod_dir: Path) -> dict[str, Path]:
        """Each volume as a local folder (what a mount of it would show)."""
        folders: dict[str, Path] = {}
        namespace = pod["metadata"]["namespace"]
        for volume in pod["spec"].get("volumes") or []:
            name = volume["name"]
            folder = pod_dir / "volumes" / name
            if "hostPath" in volume:
                folder = Path(volume["hostPath"]["path"])
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                folder = await self._claim_folder(namespace, claim)
            elif "secret" in volume or "configMap" in volume:
                kind = "secrets" if "secret" in volume else "configmaps"
                source = volume.get("secret") or volume["configMap"]
                ref = source.get("secretName") or source.get("name")
                obj = await self._read_object(kind, namespace, ref)
                if obj is None:
                    if source.get("optional"):
                        obj = {}
                    else:
                        raise ConfigError(f'{kind[:-1]} "{ref}" not found')
                folder.mkdir(parents=True, exist_ok=True)
                for key, value in (obj.get("data") or {}).items():
                    raw = base64.b64decode(value) if kind == "secrets" else str(value).encode()
                    (folder / key).write_bytes(raw)
            folder.mkdir(parents=True, exist_ok=True)
            folders[name] = folder
        return folders

    async def _claim_folder(self, namespace: str, claim: str) -> Path:
        """A PVC's folder: its bound PersistentVolume's hostPath, else one per claim."""
        pvc = await self._request(
            "GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"
        )
        volume_name = (pvc.get("spec") or {}).get("volumeName")
        if volume_name:
            pv = await self._request("GET", f"/api/v1/persistentvolumes/{volume_name}")
            host_path = (pv.get("spec") or {}).get("hostPath", {}).get("path")
            if host_path:
                return Path(host_path)
        return self.work_dir / "claims" / namespace / claim

    async def _run_pod(self, run: PodRun, pod: Obj) -> None:
        try:
            await self._run_pod_inner(run, pod)
        finally:
            run.finished = True
            if run.stop_requested.is_set():
                await self._finalize_delete(pod)

    async def _run_pod_inner(self, run: PodRun, pod: Obj) -> None:
        spec = pod["spec"]
        container = (spec.get("containers") or [{}])[0]
        started = now_rfc3339()
        pod_dir = self.work_dir / run.namespace / run.name
        pod_dir.mkdir(parents=True, exist_ok=True)
        pod_ip = {
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
        }

        # Config errors keep the Pod Pending and are retried until it is deleted.
        while True:
            try:
                folders = await self._prepare_volumes(pod, pod_dir)
                container_env = await resolve_env(pod, container, self._read_object)
                break
            except ConfigError as error:
                await self._patch_status(
                    run,
                    {
                        "phase": "Pending",
                        **pod_ip,
                        "startTime": started,
                        "conditions": self._conditions(False, False, started),
                        "containerStatuses": [
                            self._container_status(
                                container,
                                {
                                    "waiting": {
                                        "reason": "CreateContainerConfigError",
                                        "message": str(error),
                                    }
                                },
                                ready=False,
                            )
                        ],
                    },
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.stop_requested.wait(), self.config_retry_seconds)
                if run.stop_requested.is_set():
                    return

        termination_log = pod_dir / "termination-log"
        termination_log.write_bytes(b"")
        log_path = run.log_path = pod_dir / "output.log"
        env = dict(os.environ) if self.inherit_env else {"PATH": os.environ.get("PATH", "")}
        env.update(container_env)
        env[TERMINATION_LOG_ENV] = str(termination_log)
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath") == "/tmp" and mount["name"] in folders:
                env["TMPDIR"] = str(folders[mount["name"]])
        stand_in = self.admitted.get(run.namespace) if self.only_admitted else self.stand_in
        command = choose_command(pod, container, stand_in)
        env.update(command.env)
        cwd = Path(container["workingDir"]) if container.get("workingDir") else pod_dir
        cwd.mkdir(parents=True, exist_ok=True)

        with log_path.open("ab") as log:
            try:
                run.process = await asyncio.create_subprocess_exec(
                    *command.argv,
                    env=env,
                    cwd=cwd,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                await self._patch_status(
                    run,
                    {
                        "phase": "Failed",
                        **pod_ip,
                        "startTime": started,
                        "conditions": self._conditions(False, True, started),
                        "containerStatuses": [
                            self._container_status(
                                container,
                                {
                                    "terminated": {
                                        "exitCode": 128,
                                        "reason": "StartError",
                                        "message": str(error),
                                        "startedAt": started,
                                        "finishedAt": now_rfc3339(),
                                    }
                                },
                                ready=False,
                            )
                        ],
                    },
                )
                return
        process = run.process
        await self._patch_status(
            run,
            {
                "phase": "Running",
                **pod_ip,
                "startTime": started,
                "conditions": self._conditions(True, True, started),
                "containerStatuses": [
                    self._container_status(
                        container, {"running": {"startedAt": started}}, ready=True
                    )
                ],
            },
        )
        try:
            exited = asyncio.ensure_future(process.wait())
            stop = asyncio.ensure_future(run.stop_requested.wait())
            await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not exited.done():
                await terminate(run.process, run.grace_seconds)
            exit_code = await exited
        except asyncio.CancelledError:
            await terminate(run.process, 0)
            raise
        if exit_code < 0:
            exit_code = 128 - exit_code  # killed by a signal: 128 + its number
        message = termination_message(
            termination_log,
            log_path,
            exit_code=exit_code,
            policy=container.get("terminationMessagePolicy"),
        )
        terminated: Obj = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now_rfc3339(),
            "containerID": f"local://{process.pid}",
        }
        if message:
            terminated["message"] = message
        await self._patch_status(
            run,
            {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                **pod_ip,
                "startTime": started,
                "conditions": self._conditions(False, True, started),
                "containerStatuses": [
                    self._container_status(container, {"terminated": terminated}, ready=False)
                ],
            },
        )
