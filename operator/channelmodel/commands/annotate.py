"""Patch the trigger annotations of a ChannelModel: what the backend does, as a command."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from channelmodel.api.models import GROUP, PLURAL, VERSION
from channelmodel.kube import load_client_config


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="ChannelModel name (metadata.name).")
    parser.add_argument(
        "-n", "--namespace", default="default", help="Namespace (default: default)."
    )
    parser.add_argument(
        "--kubeconfig", help="Kubeconfig file (default: KUBECONFIG or ~/.kube/config)."
    )


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (RFC 3339 needs one, e.g. Z)")
    return parsed


def patch_annotations(args: argparse.Namespace, annotations: dict[str, str]) -> int:
    if args.kubeconfig:
        from kubernetes import config

        config.load_kube_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    else:
        load_client_config()
    api = client.CustomObjectsApi()
    try:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            args.namespace,
            PLURAL,
            args.name,
            {"metadata": {"annotations": annotations}},
        )
    except ApiException as exc:
        reason = "not found" if exc.status == 404 else f"{exc.status} {exc.reason}"
        print(f"channelmodel: ChannelModel {args.namespace}/{args.name}: {reason}", file=sys.stderr)
        return 1
    for key, value in annotations.items():
        print(f"{args.namespace}/{args.name}: {key}={value}")
    return 0
