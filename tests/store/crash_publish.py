"""Publish a version and die (os._exit, no cleanup) just before the N-th durable write.

Run as a subprocess by test_crash.py: `python crash_publish.py STORE_URI N`.
File store: a durable write ends in fsync(2); S3: a write is a PutObject request.
Exits with CRASHED if the crash point was reached, 0 if publish finished first.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from channelmodel.store import open_store
from channelmodel.store.filesystem import FileStore
from channelmodel.store.s3 import S3Store

CRASHED = 17


def main(uri: str, crash_at: int) -> int:
    store = open_store(uri)
    writes = 0

    def count_write(*_args: Any, **_kwargs: Any) -> None:
        nonlocal writes
        writes += 1
        if writes == crash_at:
            os._exit(CRASHED)

    if isinstance(store, FileStore):
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            count_write()
            real_fsync(fd)

        os.fsync = fsync  # type: ignore[assignment]
    elif isinstance(store, S3Store):
        store.client.meta.events.register("before-send.s3.PutObject", count_write)
    files = {
        "model.json": b'{"crashed": true}',
        "weights.bin": b"\0" * 1024,
        "metadata.json": b"{}",
    }
    store.publish_version("shop-1", "1.0.0", files)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
