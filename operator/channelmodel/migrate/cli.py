"""`channelmodel import`: publish a Teachable Machine export as a version of a channel.

    channelmodel import --channel ID SOURCE --store STORE_URI [--version X.Y.Z]
                        [--name NAME [-n NS] [--kubeconfig K]]

SOURCE is a folder, a zip as TM downloads it, or an http(s) URL to model.json
(bearer token from CHANNELMODEL_MANIFEST_TOKEN). Everything is checked before
anything is published. The result goes to the termination log as JSON, like
the trainer's, so the operator follows an import Job like a training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from channelmodel.api.models import CHANNEL_ID_PATTERN
from channelmodel.migrate.bundle import ImportedVersion, build_version
from channelmodel.migrate.errors import ImportRefused
from channelmodel.migrate.kube import ChannelModelRef, annotate_imported, check_target
from channelmodel.migrate.result import JobResult, failure_result, success_result, write_result
from channelmodel.migrate.sources import open_source
from channelmodel.store import StoreError, VersionExists, open_store
from channelmodel.store.base import ArtifactStore, is_channel_id
from channelmodel.versions import is_version, next_version
from channelmodel.versions import parse as parse_version

TOKEN_ENV = "CHANNELMODEL_MANIFEST_TOKEN"
STORE_ENV = "CHANNELMODEL_STORE_URI"


def _channel(value: str) -> str:
    if not is_channel_id(value):
        raise argparse.ArgumentTypeError(f"{value!r} does not match {CHANNEL_ID_PATTERN}")
    return value


def _version(value: str) -> str:
    if not is_version(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a semantic version X.Y.Z")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", metavar="SOURCE", help="export folder, TM zip, or http(s) URL of model.json"
    )
    parser.add_argument("--channel", required=True, type=_channel, help="channel ID")
    parser.add_argument(
        "--store",
        default=os.environ.get(STORE_ENV),
        required=STORE_ENV not in os.environ,
        help=f"artifact store: file:///path or s3://bucket/prefix [{STORE_ENV}]",
    )
    parser.add_argument(
        "--version",
        type=_version,
        help="version to publish (default: 1.0.0 for a new channel, else the next patch)",
    )
    parser.add_argument(
        "--name", help="ChannelModel to annotate so the operator adopts the version"
    )
    parser.add_argument("-n", "--namespace", default="default", help="its namespace [default]")
    parser.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster, KUBECONFIG)")
    parser.add_argument(
        "--result-file",
        help="result JSON path (default: $CHANNELMODEL_TERMINATION_LOG or /dev/termination-log)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        result = _import(args)
    except ImportRefused as exc:
        result = failure_result(str(exc))
    except Exception as exc:  # a bug still ends as a one-line reason for the operator
        result = failure_result(f"internal error: {exc.__class__.__name__}: {exc}")
    write_result(result, args.result_file)
    if result.ok:
        print(json.dumps(result.model_dump(mode="json", exclude_none=True), indent=2))
        if not result.labelsLookLikeProductIds:
            print(
                "channelmodel import: warning: the labels look like names, not product IDs; "
                "retraining from the manifest will replace them with product IDs",
                file=sys.stderr,
            )
        return 0
    print(f"channelmodel import: {result.error}", file=sys.stderr)
    return 1


def _import(args: argparse.Namespace) -> JobResult:
    try:
        store = open_store(args.store)
    except StoreError as exc:
        raise ImportRefused(str(exc)) from None
    target = None
    taken: list[str] = []
    if args.name:
        target = ChannelModelRef(args.name, args.namespace, args.kubeconfig)
        taken = check_target(target, args.channel)  # before anything is published
    version = args.version or _next_version(store, args.channel, taken)
    with open_source(args.source, token=os.environ.get(TOKEN_ENV) or None) as source:
        imported = build_version(source, channel_id=args.channel, version=version)
    _publish(store, args.channel, version, imported)
    if target is not None:
        annotate_imported(target, version, imported.origin)
    return success_result(
        channel_id=args.channel,
        version=version,
        origin=imported.origin,
        labels=imported.labels,
        labels_look_like_product_ids=imported.labels_look_like_product_ids,
    )


def _next_version(store: ArtifactStore, channel_id: str, taken: list[str]) -> str:
    """After the newest in the store and any the ChannelModel knows or is training."""
    try:
        known = [*store.list_versions(channel_id), *taken]
    except StoreError as exc:
        raise ImportRefused(f"cannot list versions of {channel_id}: {exc}") from None
    return next_version(max(known, key=parse_version) if known else None)


def _publish(
    store: ArtifactStore, channel_id: str, version: str, imported: ImportedVersion
) -> None:
    try:
        store.publish_version(channel_id, version, imported.files)
    except VersionExists:
        raise ImportRefused(
            f"version {version} of channel {channel_id} already exists in {store.uri}"
        ) from None
    except StoreError as exc:
        raise ImportRefused(f"cannot publish {channel_id} v{version}: {exc}") from None
