"""`channelmodel retrain NAME`: the Admin UI's retrain button.

Skips debounce and cooldown, not the concurrency cap or `suspend`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from channelmodel.api.annotations import RETRAIN_REQUESTED_AT
from channelmodel.commands.annotate import add_target_arguments, patch_annotations
from channelmodel.rfc3339 import format_time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return patch_annotations(args, {RETRAIN_REQUESTED_AT: format_time(datetime.now(UTC))})
