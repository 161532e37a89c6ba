"""Wall time of the quality path on all grocery photos, as the Job runs it.

    .venv/bin/python bench/trainer_quality_wall.py [--work-dir /tmp/quality-wall]

One manifest of all 81 products' train photos (2,640, local files), a file
store, `run_training` in FineTune mode with the trainer's defaults: the
photos, fine-tuning, the views embedded with the new base, the head on them,
export and publish. Prints the wall time, its ratio to the 10-minute target of
issue #14 and the trainer's own stage timings. Over a network, the photos'
download adds to the `images` stage.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from channelmodel.store import open_store
from channelmodel_trainer.pipeline import FINE_TUNE, TrainingRequest, run_training
from trainer_common import grocery_split, machine, reference_export

TARGET_SECONDS = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.work_dir or Path(tempfile.mkdtemp(prefix="quality-wall-"))
    folder.mkdir(parents=True, exist_ok=True)
    products: dict[str, list[str]] = {}
    for path, fine in grocery_split("train"):
        products.setdefault(f"p{fine:02d}", []).append(str(path))
    manifest = {
        "channelId": "all",
        "products": [{"id": p, "images": images} for p, images in products.items()],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    store = open_store((folder / "store").as_uri())
    request = TrainingRequest(
        manifest=str(folder / "manifest.json"), channel_id="all", version="1.0.0",
        mode=FINE_TUNE, base_model=str(reference_export()),
    )  # fmt: skip
    started = time.perf_counter()
    outcome = run_training(request, store)
    wall = time.perf_counter() - started
    print(f"{machine()}; {outcome.metrics['images']} photos of {len(products)} products")
    print(
        f"quality path wall time {wall:.0f} s, target {TARGET_SECONDS:.0f} s: "
        f"ratio {wall / TARGET_SECONDS:.2f}; held-out accuracy {outcome.metrics['accuracy']}"
    )
    for stage, seconds in outcome.timings.items():
        print(f"  {stage:12s} {seconds:8.1f} s")


if __name__ == "__main__":
    main()
