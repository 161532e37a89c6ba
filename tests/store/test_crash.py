"""A process killed between the writes of a publish leaves no visible version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import model_files

from channelmodel.store import NotFound, open_store

HELPER = Path(__file__).with_name("crash_publish.py")
CRASHED = 17


# Writes of one publish: three files, then the commit record (and on the file
# store the staging directory's fsync): dying before any of them must hide it all.
@pytest.mark.parametrize("crash_at", [1, 2, 3, 4])
def test_crash_before_write_leaves_no_version(store_uri: str, crash_at: int) -> None:
    result = subprocess.run(
        [sys.executable, str(HELPER), store_uri, str(crash_at)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == CRASHED, result.stderr

    store = open_store(store_uri)
    assert store.list_versions("shop-1") == []
    assert "shop-1" not in store.list_channels()
    assert not store.has_version("shop-1", "1.0.0")
    for name in ("model.json", "weights.bin", "metadata.json"):
        with pytest.raises(NotFound):
            store.stat_file("shop-1", "1.0.0", name)
        with pytest.raises(NotFound):
            store.iter_file("shop-1", "1.0.0", name)

    # The debris of the crash does not block a later publish of the same version.
    files = model_files(seed=5)
    store.publish_version("shop-1", "1.0.0", files)
    assert store.list_versions("shop-1") == ["1.0.0"]
    assert {name: store.read_file("shop-1", "1.0.0", name) for name in files} == files


def test_crash_helper_completes_without_crash_point(store_uri: str) -> None:
    # Guards the helper itself: with a crash point beyond the last write it publishes normally.
    result = subprocess.run(
        [sys.executable, str(HELPER), store_uri, "99"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert open_store(store_uri).list_versions("shop-1") == ["1.0.0"]
