"""Helpers of the trainer benchmarks: ../shared material, grocery photos, timing."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[1]
for source_root in ("operator", "trainer"):
    if str(REPO_ROOT / source_root) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / source_root))

T = TypeVar("T")


def shared_dir() -> Path:
    configured = os.environ.get("CHANNELMODEL_SHARED")
    return Path(configured) if configured else (REPO_ROOT / ".." / "shared").resolve()


def reference_export() -> Path:
    path = shared_dir() / "reference" / "teachable-machine-image-export.zip"
    if not path.is_file():
        sys.exit(f"missing {path}: set CHANNELMODEL_SHARED to the shared folder")
    return path


def grocery_split(split: str) -> list[tuple[Path, int]]:
    """(photo, fine class) of a grocery-store split, in file order."""
    dataset = shared_dir() / "datasets" / "grocery-store" / "dataset"
    if not (dataset / f"{split}.txt").is_file():
        sys.exit(f"missing {dataset}: set CHANNELMODEL_SHARED to the shared folder")
    rows = []
    for line in (dataset / f"{split}.txt").read_text().splitlines():
        path, fine, _ = (part.strip() for part in line.split(","))
        rows.append((dataset / path, int(fine)))
    return rows


def load_base() -> Any:
    from channelmodel_trainer.base_model import load_base_model

    return load_base_model(str(reference_export()))


def best_of(runs: int, action: Callable[[], T]) -> tuple[float, T]:
    """Fastest wall time of `runs` calls (the least disturbed by other processes)."""
    best = float("inf")
    result: Any = None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
