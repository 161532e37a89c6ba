"""What the ChannelModel commands share: which object (name, namespace, kubeconfig
context), how results print (`-o text|json|yaml`), and the exit codes.

The namespace defaults like kubectl's: the kubeconfig context's namespace, the
Pod's namespace in a cluster, else `default`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from channelmodel import rfc3339
from channelmodel.api.models import GROUP, PLURAL, VERSION

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ExitCode(IntEnum):
    """Exit statuses of the ChannelModel commands (documented in docs/operations.md)."""

    OK = 0
    API_ERROR = 1  # the API refused or could not be reached (forbidden, invalid, timeout)
    USAGE = 2  # bad arguments (argparse's own status)
    NOT_FOUND = 3  # no such ChannelModel
    NO_CONFIG = 4  # no kubeconfig, unknown context, not in a cluster


class OutputFormat:
    TEXT, JSON, YAML = "text", "json", "yaml"
    CHOICES = (TEXT, JSON, YAML)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="ChannelModel name (metadata.name).")
    parser.add_argument(
        "-n",
        "--namespace",
        help="Namespace (default: the kubeconfig context's namespace, in a Pod its own, "
        "else default).",
    )
    parser.add_argument(
        "--kubeconfig", help="Kubeconfig file (default: KUBECONFIG or ~/.kube/config)."
    )
    parser.add_argument("--context", help="Kubeconfig context (default: the current context).")
    add_output_argument(parser)


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=OutputFormat.CHOICES,
        default=OutputFormat.TEXT,
        help="text for people (default), json or yaml for scripts.",
    )


class TargetError(Exception):
    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    api: client.CustomObjectsApi
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def connect(args: argparse.Namespace) -> Target:
    """An API client for the chosen kubeconfig context, and the resolved namespace."""
    in_cluster = (
        not args.kubeconfig and not args.context and "KUBERNETES_SERVICE_HOST" in os.environ
    )
    try:
        if in_cluster:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            namespace = args.namespace or _pod_namespace()
        else:
            api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=args.kubeconfig, context=args.context
            )
            namespace = args.namespace or _context_namespace(args.kubeconfig, args.context)
            return Target(client.CustomObjectsApi(api_client), args.name, namespace)
    except (config.ConfigException, OSError) as exc:
        raise TargetError(ExitCode.NO_CONFIG, f"no usable kubeconfig: {exc}") from None
    return Target(client.CustomObjectsApi(), args.name, namespace)


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def _pod_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def api_failure(target: Target, exc: ApiException) -> TargetError:
    if exc.status == 404:
        return TargetError(ExitCode.NOT_FOUND, f"ChannelModel {target}: not found")
    return TargetError(ExitCode.API_ERROR, f"ChannelModel {target}: {exc.status} {exc.reason}")


def run_command(
    command: str, args: argparse.Namespace, action: Callable[[Target], Mapping[str, Any]],
    text: Callable[[Mapping[str, Any]], str],
) -> int:  # fmt: skip
    """Connect, act, print the result in the chosen format; errors to stderr with their code."""
    try:
        target = connect(args)
        try:
            result = action(target)
        except ApiException as exc:
            raise api_failure(target, exc) from None
    except TargetError as exc:
        print(f"channelmodel {command}: {exc}", file=sys.stderr)
        return int(exc.code)
    emit(result, args.output, text)
    return int(ExitCode.OK)


def emit(result: Mapping[str, Any], output: str, text: Callable[[Mapping[str, Any]], str]) -> None:
    if output == OutputFormat.JSON:
        print(json.dumps(result, indent=2, default=str))
    elif output == OutputFormat.YAML:
        print(yaml.safe_dump(json.loads(json.dumps(result, default=str)), sort_keys=False), end="")
    else:
        print(text(result))


def time_argument(text: str) -> datetime:
    """An argparse type: an RFC 3339 time with its offset."""
    try:
        return rfc3339.parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def patch_annotations(args: argparse.Namespace, annotations: dict[str, str]) -> int:
    def patch(target: Target) -> dict[str, Any]:
        target.api.patch_namespaced_custom_object(
            GROUP, VERSION, target.namespace, PLURAL, target.name,
            {"metadata": {"annotations": annotations}},
        )  # fmt: skip
        return {"namespace": target.namespace, "name": target.name, "annotations": annotations}

    def text(result: Mapping[str, Any]) -> str:
        where = f"{result['namespace']}/{result['name']}"
        return "\n".join(f"{where}: {key}={value}" for key, value in annotations.items())

    return run_command(args.command, args, patch, text)
