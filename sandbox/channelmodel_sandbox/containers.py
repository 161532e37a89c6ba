"""Running a Pod's container as a local process: what the job runner and the process kubelet share.

- the command: `channelmodel ...` runs as `python -m channelmodel ...` with this
  interpreter (the trainer image's entrypoint), or a test's stand-in;
- the environment: `value`, `valueFrom` (secretKeyRef, configMapKeyRef,
  fieldRef) and `envFrom`, read through the API like the kubelet does;
- the termination message: the file the container wrote, capped like the kubelet.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

# Local processes cannot write /dev/termination-log: the path of the container's
# termination message file is passed in this variable (the trainer honours it).
TERMINATION_LOG_ENV = "CHANNELMODEL_TERMINATION_LOG"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes per container, as the kubelet caps it
FALLBACK_LOG_BYTES = 2048  # FallbackToLogsOnError: the kubelet's tail of the log
FALLBACK_LOG_LINES = 80


def now_rfc3339() -> str:
    """A timestamp as Kubernetes writes them in status (seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StandInCommand:
    """What to run instead of a container's command."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


# A stand-in gets the Pod (its spec says what the real command would have been).
StandIn = Callable[[Obj], "StandInCommand | Sequence[str]"]


def container_argv(container: Mapping[str, Any]) -> list[str]:
    """The container's command + args; `channelmodel` becomes this interpreter's module."""
    argv = [
        str(part) for part in [*(container.get("command") or []), *(container.get("args") or [])]
    ]
    if argv and os.path.basename(argv[0]) == "channelmodel":
        return [sys.executable, "-m", "channelmodel", *argv[1:]]
    return argv


def choose_command(
    pod: Obj, container: Mapping[str, Any], stand_in: StandIn | None
) -> StandInCommand:
    if stand_in is None:
        return StandInCommand(container_argv(container))
    chosen = stand_in(pod)
    return chosen if isinstance(chosen, StandInCommand) else StandInCommand(list(chosen))


class ConfigError(Exception):
    """The kubelet's CreateContainerConfigError: a referenced Secret, ConfigMap or key is missing."""


# Reads a Secret or ConfigMap: (kind "secrets"/"configmaps", namespace, name) -> object or None.
ObjectReader = Callable[[str, str, str], Awaitable[Obj | None]]

_LABEL_PATH = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """A downward-API fieldRef: metadata.name, metadata.labels['x'], spec.nodeName, status.podIP ..."""
    match = _LABEL_PATH.match(path)
    if match:
        return str((pod.get("metadata", {}).get(match[1]) or {}).get(match[2], ""))
    node: Any = pod
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def _decode(kind: str, value: str) -> str:
    return base64.b64decode(value).decode() if kind == "secrets" else str(value)


async def resolve_env(pod: Obj, container: Mapping[str, Any], read: ObjectReader) -> dict[str, str]:
    """The container's environment, in the kubelet's order: envFrom first, then env."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = (
            ("secrets", source["secretRef"])
            if "secretRef" in source
            else ("configmaps", source["configMapRef"])
        )
        obj = await read(kind, namespace, ref["name"])
        if obj is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind[:-1]} "{ref["name"]}" not found')
        prefix = source.get("prefix", "")
        for key, value in (obj.get("data") or {}).items():
            env[prefix + key] = _decode(kind, value)
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        value_from = item.get("valueFrom") or {}
        if "secretKeyRef" in value_from or "configMapKeyRef" in value_from:
            kind = "secrets" if "secretKeyRef" in value_from else "configmaps"
            ref = value_from.get("secretKeyRef") or value_from["configMapKeyRef"]
            obj = await read(kind, namespace, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind[:-1]} "{ref["name"]}" not found')
            data = obj.get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(
                    f"couldn't find key {ref['key']} in {'Secret' if kind == 'secrets' else 'ConfigMap'} {namespace}/{ref['name']}"
                )
            env[name] = _decode(kind, data[ref["key"]])
        elif "fieldRef" in value_from:
            env[name] = field_value(pod, value_from["fieldRef"]["fieldPath"])
        else:
            env[name] = ""
    return env


async def terminate(process: asyncio.subprocess.Process | None, grace_seconds: float) -> None:
    """SIGTERM the process group, SIGKILL after the grace period (as the kubelet does)."""
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), max(grace_seconds, 0.1))
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.CancelledError):
            await process.wait()


def termination_message(
    termination_log: Path,
    output_log: Path,
    *,
    exit_code: int,
    policy: str | None,
) -> str:
    """What the kubelet puts in `state.terminated.message`."""
    message = termination_log.read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode(
        "utf-8", errors="replace"
    )
    if not message and exit_code != 0 and policy == "FallbackToLogsOnError":
        tail = output_log.read_bytes()[-FALLBACK_LOG_BYTES:].decode("utf-8", errors="replace")
        message = "\n".join(tail.splitlines()[-FALLBACK_LOG_LINES:])
    return message
