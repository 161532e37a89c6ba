"""Nothing outside the store root is reachable, whatever the encoding.

Requests are written byte for byte on a socket so no client normalises them.
Every attempt must be refused before the store is asked anything; symlinks
planted inside the root are refused by the store itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from server_helpers import PREFIX, model_files, raw_get

from channelmodel.server import create_app
from channelmodel.store.filesystem import FileStore

SECRET = b"TOP-SECRET-CONTENT"

ATTEMPTS: list[bytes] = [
    b"/assets/ml-models/../../secret.txt",
    b"/assets/ml-models/shop-1/v1.0.0/../../../secret.txt",
    b"/assets/ml-models/shop-1/v1.0.0/../../../../etc/passwd",
    b"/assets/ml-models/%2e%2e/%2e%2e/secret.txt",
    b"/assets/ml-models/%2E%2E/v1.0.0/model.json",
    b"/assets/ml-models/shop-1/v1.0.0/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    b"/assets/ml-models/..%2f..%2f/v1.0.0/model.json",
    b"/assets/ml-models/%252e%252e/v1.0.0/model.json",
    b"/assets/ml-models/shop-1/v1.0.0/%252e%252e%252f%252e%252e%252fsecret.txt",
    b"/assets/ml-models/%c0%ae%c0%ae/v1.0.0/model.json",
    b"/assets/ml-models/shop-1/v1.0.0/..%5c..%5c..%5csecret.txt",
    b"/assets/ml-models/shop-1\\..\\..\\/v1.0.0/model.json",
    b"/assets/ml-models/shop-1/v1.0.0/..\\..\\..\\secret.txt",
    b"/assets/ml-models/%2fetc%2fpasswd/v1.0.0/model.json",
    b"/assets/ml-models//etc/passwd",
    b"/assets/ml-models/shop-1/v1.0.0//etc/passwd",
    b"/assets/ml-models/shop-1/v1.0.0/model.json%00.txt",
    b"/assets/ml-models/shop-1%00/v1.0.0/model.json",
    b"/assets/ml-models/shop-1/v1.0.0/model.json\x00",
    b"/assets/ml-models/shop-1/v..%2f..%2fsecret/model.json",
    b"/assets/ml-models/shop-1/v1.0.0%2f..%2f..%2f..%2fsecret.txt/model.json",
    b"/assets/ml-models/shop-1;/v1.0.0/model.json",
    b"/assets/ml-models/.hidden/v1.0.0/model.json",
    b"/assets/ml-models/shop-1/v1.0.0/.committed",
    b"/assets/ml-models/shop-1/served.json",
    b"/assets/ml-models/_cache/v1.0.0/model.json",
    b"/assets/ml-models/shop-1/v1.0.0/model.json/..",
    b"//etc/passwd",
    b"/../secret.txt",
    b"/%2e%2e/secret.txt",
    b"http://127.0.0.1/../secret.txt",
    b"file:///etc/passwd",
    b"*",
]


class RecordingStore(FileStore):
    """A FileStore that notes every name it is asked about."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def stat_file(self, *args: Any) -> Any:
        self.calls.append(("stat_file", args))
        return super().stat_file(*args)

    def list_versions(self, *args: Any) -> Any:
        self.calls.append(("list_versions", args))
        return super().list_versions(*args)

    def get_pointer(self, *args: Any) -> Any:
        self.calls.append(("get_pointer", args))
        return super().get_pointer(*args)


@pytest.fixture
def tree(tmp_path: Path) -> RecordingStore:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "srv" / "models"
    store = RecordingStore(root)
    store.publish_version("shop-1", "1.0.0", model_files())
    (root.parent / "secret.txt").write_bytes(SECRET)
    (root / "shop-1" / "secret.txt").write_bytes(SECRET)
    (root / "secret.txt").write_bytes(SECRET)
    # A fake committed version outside the root, and symlinks to it from inside.
    outside = tmp_path / "outside"
    donor = FileStore(outside)
    donor.publish_version("evil", "1.0.0", {**model_files(), "weights.bin": SECRET})
    (root / "evil").symlink_to(outside / "evil", target_is_directory=True)
    (root / "shop-1" / "v6.6.6").symlink_to(outside / "evil" / "v1.0.0", target_is_directory=True)
    store.publish_version("linked", "1.0.0", model_files())
    weights = root / "linked" / "v1.0.0" / "weights.bin"
    weights.unlink()
    weights.symlink_to(tmp_path / "secret.txt")
    store.calls.clear()
    return store


@pytest.fixture
async def server(tree: RecordingStore) -> AsyncIterator[TestServer]:
    async with TestServer(create_app(tree), host="127.0.0.1") as test_server:
        yield test_server


@pytest.mark.parametrize(
    "target", ATTEMPTS, ids=[a.decode("latin-1").replace("\x00", "NUL") for a in ATTEMPTS]
)
async def test_traversal_attempt_is_refused(
    server: TestServer, tree: RecordingStore, target: bytes
) -> None:
    status, body = await raw_get("127.0.0.1", server.port or 0, target)
    assert status in (400, 404), (status, body[:200])
    assert SECRET not in body
    # Refused on the path's grammar alone: the store was never asked.
    assert tree.calls == []


@pytest.mark.parametrize(
    "path",
    [
        f"{PREFIX}/evil/v1.0.0/weights.bin",  # symlinked channel directory
        f"{PREFIX}/evil/latest.json",
        f"{PREFIX}/shop-1/v6.6.6/weights.bin",  # symlinked version directory
        f"{PREFIX}/linked/v1.0.0/weights.bin",  # symlinked file in a committed version
    ],
)
async def test_symlinks_inside_the_root_are_not_followed(server: TestServer, path: str) -> None:
    status, body = await raw_get("127.0.0.1", server.port or 0, path.encode())
    assert status == 404
    assert SECRET not in body


async def test_a_legitimate_request_still_works(server: TestServer, tree: RecordingStore) -> None:
    status, body = await raw_get(
        "127.0.0.1", server.port or 0, f"{PREFIX}/shop-1/v1.0.0/model.json".encode()
    )
    assert status == 200
    assert b"layers-model" in body
    assert tree.calls == [("stat_file", ("shop-1", "1.0.0", "model.json"))]
