"""Two trainers publishing the same version at once (issue 12, finding 2).

Exactly one commits; every other writer gets VersionExists, and nothing a
loser writes may touch the committed version: it reads back whole, as the
winner wrote it, on both backends, every time.
"""

from __future__ import annotations

import threading

import pytest
from store_helpers import model_files

from channelmodel.store import MODEL_FILES, ArtifactStore, VersionExists
from channelmodel.store.base import etag_of

ROUNDS = 10
WRITERS = 4


def _race(store: ArtifactStore, version: str, contents: list[dict[str, bytes]]) -> list[int]:
    barrier = threading.Barrier(len(contents))
    winners: list[int] = []
    errors: list[BaseException] = []

    def publish(index: int) -> None:
        barrier.wait()
        try:
            store.publish_version("shop-1", version, contents[index])
            winners.append(index)
        except VersionExists:
            pass
        except BaseException as exc:  # anything else fails the test
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(len(contents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return winners


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_losing_publishers_never_touch_the_committed_version(
    store: ArtifactStore, round_: int
) -> None:
    version = f"1.0.{round_}"
    contents = [model_files(seed=100 * round_ + i, weights_size=64 * 1024) for i in range(WRITERS)]

    winners = _race(store, version, contents)

    assert len(winners) == 1, f"{len(winners)} publishers committed {version}"
    won = contents[winners[0]]
    assert store.list_versions("shop-1") == [version]
    for name in MODEL_FILES:
        assert store.read_file("shop-1", version, name) == won[name]
        assert store.stat_file("shop-1", version, name).etag == etag_of(won[name])


def test_a_loser_leaves_nothing_behind_that_outlives_the_version(store: ArtifactStore) -> None:
    contents = [model_files(seed=i) for i in range(WRITERS)]
    _race(store, "1.0.0", contents)

    store.delete_version("shop-1", "1.0.0")

    assert store.list_versions("shop-1") == []
    store.publish_version("shop-1", "1.0.0", contents[0])  # the name is free again
    assert store.read_file("shop-1", "1.0.0", "weights.bin") == contents[0]["weights.bin"]
