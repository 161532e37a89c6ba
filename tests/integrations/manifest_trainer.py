"""A stand-in for `channelmodel train` in the shop-integration tests: it fetches and validates
the manifest with the real trainer's code (`channelmodel_trainer.manifest`, the bearer token from
the Job's Secret), then publishes placeholder files whose `metadata.json` labels are the manifest's
products with images, and reports like the trainer does. No TensorFlow: the point is the contract
between the Vendure plugin's manifest endpoint and the trainer, and the labels a version carries.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from channelmodel.store import open_store
from channelmodel_trainer.errors import ManifestError
from channelmodel_trainer.manifest import load_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script: `tests` is not importable otherwise
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.fake_trainer import parse_trainer_args  # noqa: E402


def main() -> int:
    args = parse_trainer_args()
    started = time.monotonic()
    result_path = os.environ.get("CHANNELMODEL_TERMINATION_LOG", "/dev/termination-log")
    try:
        loaded = load_manifest(args.manifest, token=os.environ.get("CHANNELMODEL_MANIFEST_TOKEN"))
        if loaded.manifest.channel_id != args.channel:
            raise ManifestError(f"manifest is for channel {loaded.manifest.channel_id!r}")
        refs, _ = loaded.image_refs()
        labels = sorted({ref.product_id for ref in refs if ref.is_url})
        if len(labels) < 2:
            raise ManifestError(f"only {len(labels)} product(s) have usable images")
    except ManifestError as error:
        with open(result_path, "w") as out:
            json.dump({"ok": False, "error": str(error)}, out)
        print(error, file=sys.stderr)
        return 1
    files = {
        "model.json": json.dumps({"format": "layers-model", "version": args.version}).encode(),
        "weights.bin": b"\0" * 16,
        "metadata.json": json.dumps({"labels": labels, "imageSize": 224}).encode(),
    }
    open_store(args.store).publish_version(args.channel, args.version, files)
    metrics = {"classes": len(labels), "images": len(refs), "skippedImages": 0,
               "seconds": round(time.monotonic() - started, 3)}  # fmt: skip
    with open(result_path, "w") as out:
        json.dump({"ok": True, "channelId": args.channel, "version": args.version,
                   "metrics": metrics}, out)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
