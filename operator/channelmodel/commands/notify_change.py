"""`channelmodel notify-change NAME --kind productAdded`: report a catalog change.

Exactly what a backend does after a product or image changes: set the change
time and kind annotations. Bursts are debounced by the operator.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from channelmodel.api.annotations import INVENTORY_CHANGE, INVENTORY_CHANGED_AT, ChangeKind
from channelmodel.commands.annotate import add_target_arguments, patch_annotations, time_argument
from channelmodel.rfc3339 import format_time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "--kind",
        choices=[k.value for k in ChangeKind],
        default=ChangeKind.PRODUCT_ADDED.value,
        help="What changed (default: productAdded).",
    )
    parser.add_argument(
        "--at", type=time_argument, help="RFC 3339 time of the change (default: now)."
    )


def run(args: argparse.Namespace) -> int:
    at = args.at or datetime.now(UTC)
    return patch_annotations(
        args, {INVENTORY_CHANGED_AT: format_time(at), INVENTORY_CHANGE: args.kind}
    )
