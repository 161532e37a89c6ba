"""A local Job controller and kubelet: runs batch/v1 Jobs of an API server as local processes.

It watches Jobs in all namespaces over HTTP, and for each new (unsuspended) Job
creates a Pod owned by it, runs the container's command as a process, and
writes Pod and Job status back the way the Job controller and kubelet do:
`startTime`/`active`, then `succeeded` or `failed`, `completionTime`, and a
`Complete` or `Failed` condition (`BackoffLimitExceeded`, `DeadlineExceeded`).
The container's termination message is the content of the file named by
`CHANNELMODEL_TERMINATION_LOG` (capped at 4096 bytes like the kubelet's).

Command mapping: `channelmodel ...` runs as `python -m channelmodel ...` with
this interpreter; a test may swap the whole command with a stand-in.
Deleting a Job kills its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from channelmodel_sandbox.containers import (
    TERMINATION_LOG_ENV,
    ConfigError,
    Obj,
    StandIn,
    StandInCommand,
    choose_command,
    now_rfc3339,
    resolve_env,
    terminate,
    termination_message,
)

logger = logging.getLogger(__name__)

USER_AGENT = "channelmodel-jobrunner"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# The Job controller's terminal Failed conditions (type, reason, message).
DEADLINE_EXCEEDED = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
BACKOFF_LIMIT_EXCEEDED = (
    "Failed",
    "BackoffLimitExceeded",
    "Job has reached the specified backoff limit",
)


def stand_in_script(
    result: Mapping[str, Any] | None = None,
    *,
    exit_code: int = 0,
    delay: float = 0.0,
    stdout: str = "",
) -> StandIn:
    """A stand-in trainer: sleeps, writes `result` as JSON termination message, exits."""
    script = (
        "import json, os, sys, time\n"
        f"time.sleep({delay!r})\n"
        f"print({stdout!r})\n"
        f"result = {json.dumps(result)!r}\n"
        f"path = os.environ.get({TERMINATION_LOG_ENV!r})\n"
        "if path and result != 'null':\n"
        "    open(path, 'w').write(result)\n"
        f"sys.exit({exit_code})\n"
    )
    return lambda pod: StandInCommand([sys.executable, "-c", script])


@dataclass
class JobRun:
    """What the runner knows about one Job it is running."""

    namespace: str
    name: str
    uid: str
    task: asyncio.Task[None] | None = None
    process: asyncio.subprocess.Process | None = None
    pods: list[str] = field(default_factory=list)
    log_paths: list[Path] = field(default_factory=list)
    outcome: str | None = None  # Complete / Failed


class JobRunner:
    """Run it with `await runner.run()` (until cancelled) next to an API server."""

    def __init__(
        self,
        api_url: str,
        *,
        stand_in: StandIn | None = None,
        work_dir: Path | None = None,
        retry_delay: float = 0.2,
        inherit_env: bool = True,
        kill_grace_seconds: float = 2.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.stand_in = stand_in
        self.work_dir = (
            work_dir or Path(os.environ.get("TMPDIR", "/tmp")) / "channelmodel-jobrunner"
        )
        self.retry_delay = retry_delay
        self.inherit_env = inherit_env
        self.kill_grace_seconds = kill_grace_seconds
        self.runs: dict[str, JobRun] = {}
        self._session: aiohttp.ClientSession | None = None
        self._started = asyncio.Event()
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def wait_started(self) -> None:
        await self._started.wait()

    async def run(self) -> None:
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
            self._session = session
            try:
                await self._watch_jobs()
            finally:
                await self._stop_all()

    async def aclose(self) -> None:
        self._closing = True
        await self._stop_all()

    async def _stop_all(self) -> None:
        tasks = [run.task for run in self.runs.values() if run.task and not run.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def logs(self, job_name: str) -> str:
        """Everything the Job's processes printed, attempts concatenated."""
        texts = []
        for run in self.runs.values():
            if run.name == job_name:
                texts += [
                    path.read_text(errors="replace") for path in run.log_paths if path.exists()
                ]
        return "".join(texts)

    # ------------------------------------------------------------------ API access

    async def _request(self, method: str, path: str, body: Any = None, **params: str) -> Obj:
        assert self._session is not None
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        async with self._session.request(
            method, self.api_url + path, json=body, params=params or None, headers=headers
        ) as response:
            data: Obj = await response.json(content_type=None)
            if response.status >= 400:
                raise aiohttp.ClientResponseError(
                    response.request_info,
                    (),
                    status=response.status,
                    message=str(data.get("message")),
                )
            return data

    @staticmethod
    def _job_path(namespace: str, name: str = "") -> str:
        return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")

    @staticmethod
    def _pod_path(namespace: str, name: str = "") -> str:
        return f"/api/v1/namespaces/{namespace}/pods" + (f"/{name}" if name else "")

    async def _patch_job_status(self, run: JobRun, status: Obj) -> None:
        with contextlib.suppress(aiohttp.ClientResponseError):  # the Job may be gone
            await self._request(
                "PATCH", self._job_path(run.namespace, run.name) + "/status", {"status": status}
            )

    async def _patch_pod_status(self, run: JobRun, pod: str, status: Obj) -> None:
        with contextlib.suppress(aiohttp.ClientResponseError):
            await self._request(
                "PATCH", self._pod_path(run.namespace, pod) + "/status", {"status": status}
            )

    # ------------------------------------------------------------------ watching

    async def _watch_jobs(self) -> None:
        assert self._session is not None
        while not self._closing:
            listing = await self._request("GET", "/apis/batch/v1/jobs")
            for job in listing.get("items", []):
                self._consider(job)
            version = listing["metadata"]["resourceVersion"]
            self._started.set()
            params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true"}
            try:
                async with self._session.get(
                    self.api_url + "/apis/batch/v1/jobs",
                    params=params,
                    timeout=aiohttp.ClientTimeout(total=None),
                ) as response:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break  # 410 Gone: list again
                        if event["type"] == "DELETED":
                            self._forget(event["object"])
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            self._consider(event["object"])
            except (aiohttp.ClientError, ConnectionError) as error:
                logger.debug("job watch interrupted: %r", error)
                await asyncio.sleep(0.2)

    def _consider(self, job: Obj) -> None:
        meta = job["metadata"]
        uid = meta["uid"]
        if uid in self.runs or job.get("spec", {}).get("suspend") or meta.get("deletionTimestamp"):
            return
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in job.get("status", {}).get("conditions", [])
        ):
            return
        run = JobRun(namespace=meta["namespace"], name=meta["name"], uid=uid)
        self.runs[uid] = run
        run.task = asyncio.create_task(
            self._run_job(run, job), name=f"job {run.namespace}/{run.name}"
        )

    def _forget(self, job: Obj) -> None:
        run = self.runs.get(job["metadata"]["uid"])
        if run and run.task and not run.task.done():
            logger.info("job %s/%s deleted: killing its process", run.namespace, run.name)
            run.task.cancel()

    # ------------------------------------------------------------------ one Job

    async def _run_job(self, run: JobRun, job: Obj) -> None:
        spec = job.get("spec", {})
        backoff_limit = int(spec.get("backoffLimit", 6))
        deadline_seconds = spec.get("activeDeadlineSeconds")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(deadline_seconds) if deadline_seconds else None
        started = now_rfc3339()
        await self._patch_job_status(run, {"startTime": started, "active": 1, "ready": 0})
        failed = 0
        try:
            while True:
                outcome = await self._run_pod(run, job, deadline)
                if outcome == "Succeeded":
                    condition = ("Complete", "", "")
                    break
                failed += 1
                if outcome == "DeadlineExceeded":
                    condition = DEADLINE_EXCEEDED
                    break
                if failed > backoff_limit:
                    condition = BACKOFF_LIMIT_EXCEEDED
                    break
                await self._patch_job_status(run, {"failed": failed, "active": 1})
                await asyncio.sleep(self.retry_delay)
            succeeded = 1 if outcome == "Succeeded" else 0
            await self._finish(
                run, started, succeeded=succeeded, failed=failed, condition=condition
            )
        except asyncio.CancelledError:
            await self._kill(run)
            raise
        finally:
            await self._schedule_ttl(run, job)

    async def _finish(
        self,
        run: JobRun,
        started: str,
        *,
        succeeded: int,
        failed: int,
        condition: tuple[str, str, str],
    ) -> None:
        kind, reason, message = condition
        now = now_rfc3339()
        conditions: list[Obj] = []
        if kind == "Failed":
            conditions.append(
                {
                    "type": "FailureTarget",
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
            )
        else:
            conditions.append(
                {
                    "type": "SuccessCriteriaMet",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
            )
        conditions.append(
            {
                "type": kind,
                "status": "True",
                "lastProbeTime": now,
                "lastTransitionTime": now,
                **(
                    {"reason": reason, "message": message}
                    if reason
                    else {
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                    }
                ),
            }
        )
        # Zero counts are omitted by the API server (omitempty): null deletes them here.
        status: Obj = {
            "startTime": started,
            "active": None,
            "ready": 0,
            "succeeded": succeeded or None,
            "failed": failed or None,
            "conditions": conditions,
        }
        if kind == "Complete":
            status["completionTime"] = now
        run.outcome = kind
        await self._patch_job_status(run, status)

    async def _schedule_ttl(self, run: JobRun, job: Obj) -> None:
        ttl = job.get("spec", {}).get("ttlSecondsAfterFinished")
        if ttl is None or run.outcome is None or self._closing:
            return

        async def expire() -> None:
            await asyncio.sleep(float(ttl))
            with contextlib.suppress(aiohttp.ClientError):
                await self._request(
                    "DELETE",
                    self._job_path(run.namespace, run.name),
                    {"propagationPolicy": "Background"},
                )

        if float(ttl) < 3600:  # TTLs of hours are left to a real cluster
            asyncio.get_running_loop().create_task(expire())

    async def _create_pod(self, run: JobRun, job: Obj) -> Obj:
        template = job.get("spec", {}).get("template", {})
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "job-name": run.name,
            "batch.kubernetes.io/job-name": run.name,
            "controller-uid": run.uid,
            "batch.kubernetes.io/controller-uid": run.uid,
        }
        pod_name = f"{run.name}-{''.join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": run.namespace,
                "labels": labels,
                "annotations": template.get("metadata", {}).get("annotations") or {},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": run.name,
                        "uid": run.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**template.get("spec", {}), "nodeName": "local"},
        }
        created = await self._request("POST", self._pod_path(run.namespace), pod)
        run.pods.append(pod_name)
        return created

    async def _read_object(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self._request("GET", f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except aiohttp.ClientResponseError:
            return None

    async def _run_pod(self, run: JobRun, job: Obj, deadline: float | None) -> str:
        """One attempt; returns Succeeded, Failed or DeadlineExceeded."""
        pod = await self._create_pod(run, job)
        pod_name = pod["metadata"]["name"]
        containers = pod["spec"].get("containers") or [{}]
        container = containers[0]
        attempt_dir = self.work_dir / f"{run.namespace}.{pod_name}"
        attempt_dir.mkdir(parents=True, exist_ok=True)
        termination_log = attempt_dir / "termination-log"
        termination_log.touch()
        log_path = attempt_dir / "output.log"
        run.log_paths.append(log_path)
        started = now_rfc3339()
        loop = asyncio.get_running_loop()

        try:
            container_env = await resolve_env(pod, container, self._read_object)
        except ConfigError as error:
            # The kubelet keeps such a Pod pending; only the Job's deadline ends it.
            await self._patch_pod_status(
                run,
                pod_name,
                {
                    "phase": "Pending",
                    "containerStatuses": [
                        {
                            "name": container.get("name", "main"),
                            "ready": False,
                            "restartCount": 0,
                            "image": container.get("image", ""),
                            "imageID": "",
                            "state": {
                                "waiting": {
                                    "reason": "CreateContainerConfigError",
                                    "message": str(error),
                                }
                            },
                        }
                    ],
                },
            )
            await asyncio.sleep(
                max(0.0, deadline - loop.time()) if deadline is not None else float("inf")
            )
            await self._patch_pod_status(
                run, pod_name, {"phase": "Failed", "reason": "DeadlineExceeded"}
            )
            return "DeadlineExceeded"

        env = dict(os.environ) if self.inherit_env else {"PATH": os.environ.get("PATH", "")}
        env.update(container_env)
        env[TERMINATION_LOG_ENV] = str(termination_log)
        command = choose_command(pod, container, self.stand_in)
        argv = command.argv
        env.update(command.env)
        if not argv:
            raise ValueError(f"job {run.namespace}/{run.name} has no command")

        await self._patch_pod_status(
            run,
            pod_name,
            {
                "phase": "Running",
                "startTime": started,
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "containerStatuses": [
                    {
                        "name": container.get("name", "main"),
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "image": container.get("image", ""),
                        "imageID": "",
                        "state": {"running": {"startedAt": started}},
                    }
                ],
            },
        )
        await self._patch_job_status(run, {"ready": 1})
        with log_path.open("ab") as log:  # the child writes to it, not this loop
            run.process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=attempt_dir,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        timed_out = False
        try:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            exit_code = await asyncio.wait_for(run.process.wait(), timeout)
        except TimeoutError:
            timed_out = True
            await self._kill(run)
            exit_code = run.process.returncode if run.process.returncode is not None else 137

        message = termination_message(
            termination_log,
            log_path,
            exit_code=exit_code,
            policy=container.get("terminationMessagePolicy"),
        )
        succeeded = exit_code == 0 and not timed_out
        reason = "Completed" if succeeded else "DeadlineExceeded" if timed_out else "Error"
        terminated = {
            "exitCode": exit_code if exit_code >= 0 else 128 - exit_code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": now_rfc3339(),
            "containerID": f"local://{run.process.pid}",
        }
        if message:
            terminated["message"] = message
        await self._patch_pod_status(
            run,
            pod_name,
            {
                "phase": "Succeeded" if succeeded else "Failed",
                **(
                    {
                        "reason": "DeadlineExceeded",
                        "message": "Pod was active on the node longer than the specified deadline",
                    }
                    if timed_out
                    else {}
                ),
                "containerStatuses": [
                    {
                        "name": container.get("name", "main"),
                        "ready": False,
                        "started": False,
                        "restartCount": 0,
                        "image": container.get("image", ""),
                        "imageID": "",
                        "state": {"terminated": terminated},
                    }
                ],
            },
        )
        if timed_out:
            return "DeadlineExceeded"
        return "Succeeded" if succeeded else "Failed"

    async def _kill(self, run: JobRun) -> None:
        await terminate(run.process, self.kill_grace_seconds)
