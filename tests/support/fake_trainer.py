"""A stand-in for `channelmodel train` in operator tests: same arguments, publishes
tiny placeholder files to the real store and reports like the trainer does.

Behaviour is steered by environment variables the test sets on the job runner:
FAKE_DELAY (seconds), FAKE_ACCURACY, FAKE_ERROR (fail with this reason). Like the
trainer, it waits for `--not-before` before its run begins; the placeholder
model.json says when its run began (`readManifestAt`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from channelmodel.store import open_store

# The flags of `channelmodel train` that the operator's Jobs pass.
TRAINER_FLAGS = (
    "--manifest",
    "--channel",
    "--version",
    "--store",
    "--epochs",
    "--base-model",
    "--mode",
    "--trigger",
    "--not-before",
)


def parse_trainer_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """A Job's trainer command line (`train --manifest ...`), every flag a plain string.

    Shared with the shop-integration stand-in (tests/integrations/manifest_trainer.py).
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    for flag in TRAINER_FLAGS:
        parser.add_argument(flag)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_trainer_args()
    if args.not_before:
        wait = datetime.fromisoformat(args.not_before.replace("Z", "+00:00")) - datetime.now(UTC)
        time.sleep(max(0.0, wait.total_seconds()))
    read_at = datetime.now(UTC).isoformat()
    started = time.monotonic()
    time.sleep(float(os.environ.get("FAKE_DELAY", "0.5")))
    result_path = os.environ.get("CHANNELMODEL_TERMINATION_LOG", "/dev/termination-log")
    error = os.environ.get("FAKE_ERROR")
    if error:
        with open(result_path, "w") as out:
            json.dump({"ok": False, "error": error}, out)
        print(error, file=sys.stderr)
        return 1
    files = {
        "model.json": json.dumps(
            {"format": "layers-model", "version": args.version, "readManifestAt": read_at}
        ).encode(),
        "weights.bin": b"\0" * 16,
        "metadata.json": json.dumps({"labels": ["a", "b"], "imageSize": 224}).encode(),
    }
    open_store(args.store).publish_version(args.channel, args.version, files)
    metrics = {
        "accuracy": float(os.environ.get("FAKE_ACCURACY", "0.9")),
        "classes": 2,
        "images": 20,
        "skippedImages": 1,
        "seconds": round(time.monotonic() - started, 3),
    }
    with open(result_path, "w") as out:
        json.dump(
            {"ok": True, "channelId": args.channel, "version": args.version, "metrics": metrics},
            out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
