"""Publish a trained version under another version number (what a training does to the store).

    python publish_version.py SOURCE_STORE_URI SOURCE_VERSION STORE_URI CHANNEL VERSION

Used by the model-sync browser test to bump the served version while the browser is open.
"""

from __future__ import annotations

import sys

from channelmodel.store import open_store

FILES = ("model.json", "weights.bin", "metadata.json")


def publish(
    source_uri: str, source_version: str, store_uri: str, channel: str, version: str
) -> None:
    source = open_store(source_uri)
    files = {name: source.read_file(channel, source_version, name) for name in FILES}
    open_store(store_uri).publish_version(channel, version, files)


if __name__ == "__main__":
    publish(*sys.argv[1:6])
