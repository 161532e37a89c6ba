"""Retraining reuses cached embeddings: only new or changed photos are embedded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channelmodel.store import open_store
from channelmodel_trainer.decode import decode_image
from channelmodel_trainer.embed import Embedder
from channelmodel_trainer.pipeline import TrainingRequest, run_training
from channelmodel_trainer.train import HeadRecipe
from tests.trainer.trainer_testlib import patterned_jpeg

pytestmark = pytest.mark.slow

QUICK = HeadRecipe(epochs=3)


def write_catalog(folder: Path, photos: dict[str, list[int]]) -> Path:
    """Photos on disk, named by their seed: same seed, same bytes."""
    for seeds in photos.values():
        for seed in seeds:
            (folder / f"{seed}.jpg").write_bytes(patterned_jpeg(seed))
    manifest = {
        "channelId": "inc",
        "products": [
            {"id": product, "images": [f"{s}.jpg" for s in seeds]}
            for product, seeds in photos.items()
        ],
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def train(manifest: Path, store: Any, version: str, base: Any) -> Any:
    request = TrainingRequest(
        manifest=str(manifest), channel_id="inc", version=version, recipe=QUICK, views=1
    )
    return run_training(request, store, base=base)


def test_retrain_embeds_only_the_new_product_and_changed_photos(
    tmp_path: Path, base_model: Any
) -> None:
    store = open_store((tmp_path / "store").as_uri())
    catalog = {"a": [1, 2, 3], "b": [4, 5, 6], "c": [7, 8, 9]}

    first = train(write_catalog(tmp_path, catalog), store, "1.0.0", base_model)
    assert (first.embedded, first.cache_hits) == (9, 0)

    catalog["d"] = [10, 11, 12, 13]
    second = train(write_catalog(tmp_path, catalog), store, "1.0.1", base_model)
    assert (second.embedded, second.cache_hits) == (4, 9)
    assert second.labels == ["a", "b", "c", "d"]

    catalog["a"] = [1, 2, 14]  # one photo replaced
    third = train(write_catalog(tmp_path, catalog), store, "1.0.2", base_model)
    assert (third.embedded, third.cache_hits) == (1, 12)
    assert store.list_versions("inc") == ["1.0.0", "1.0.1", "1.0.2"]


def test_cached_embeddings_equal_freshly_computed_ones(tmp_path: Path, base_model: Any) -> None:
    store = open_store((tmp_path / "store").as_uri())
    manifest = write_catalog(tmp_path, {"a": [21, 22], "b": [23]})
    train(manifest, store, "1.0.0", base_model)

    again = train(manifest, store, "1.0.1", base_model)

    assert (again.embedded, again.cache_hits) == (0, 3)
    fresh = Embedder(base_model).embed(decode_image((tmp_path / "23.jpg").read_bytes())[np.newaxis])
    np.testing.assert_allclose(
        _cached(store, base_model, tmp_path / "23.jpg")[0], fresh[0], atol=1e-5
    )


def test_another_base_model_does_not_reuse_the_cache(tmp_path: Path, base_model: Any) -> None:
    store = open_store((tmp_path / "store").as_uri())
    manifest = write_catalog(tmp_path, {"a": [31], "b": [32]})
    train(manifest, store, "1.0.0", base_model)
    other_base = type(base_model)(base_model.model, base_model.identity + "-other", "test")

    again = train(manifest, store, "1.0.1", other_base)

    assert (again.embedded, again.cache_hits) == (2, 0)


def _cached(store: Any, base: Any, photo: Path) -> np.ndarray:
    import hashlib
    import io

    from channelmodel_trainer import augment

    key = f"embeddings/{base.identity}-v1-{augment.RECIPE}/{hashlib.sha256(photo.read_bytes()).hexdigest()}"
    blob = store.get_blob(key)
    assert blob is not None, key
    array: np.ndarray = np.load(io.BytesIO(blob), allow_pickle=False)
    assert array.shape == (2, 1280)
    return array


def test_s3_store_holds_the_version_and_the_cache(
    tmp_path: Path, base_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same pipeline against S3 (moto's S3 server on 127.0.0.1, a real S3 API)."""
    from channelmodel.store.testing import S3_TEST_ENV, create_bucket, moto_s3_server

    with moto_s3_server() as endpoint:
        for key, value in S3_TEST_ENV.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("CHANNELMODEL_S3_ENDPOINT_URL", endpoint)
        store = open_store(f"s3://{create_bucket(endpoint)}/models")
        manifest = write_catalog(tmp_path, {"a": [41, 42], "b": [43, 44]})

        first = train(manifest, store, "1.0.0", base_model)
        again = train(manifest, store, "1.0.1", base_model)

        assert (first.embedded, again.embedded, again.cache_hits) == (4, 0, 4)
        assert store.list_versions("inc") == ["1.0.0", "1.0.1"]
        assert store.read_file("inc", "1.0.0", "weights.bin") == first.files["weights.bin"]


def test_photos_the_manifest_names_by_hash_are_not_read_again_when_cached(
    tmp_path: Path, base_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib

    store = open_store((tmp_path / "store").as_uri())

    def write(photos: dict[str, list[int]], stated: dict[int, int] | None = None) -> Path:
        """Photos named by seed; each entry states the hash of seed `stated.get(s, s)`."""
        stated = stated or {}
        for seeds in photos.values():
            for seed in seeds:
                if not (tmp_path / f"{seed}.jpg").exists():
                    (tmp_path / f"{seed}.jpg").write_bytes(patterned_jpeg(seed))

        def entry(seed: int) -> dict[str, str]:
            digest = hashlib.sha256(patterned_jpeg(stated.get(seed, seed))).hexdigest()
            return {"url": f"{seed}.jpg", "sha256": digest}

        manifest = {
            "channelId": "inc",
            "products": [
                {"id": p, "images": [entry(s) for s in seeds]} for p, seeds in photos.items()
            ],
        }
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        return tmp_path / "manifest.json"

    first = train(write({"a": [1, 2, 3], "b": [4, 5, 6]}), store, "1.0.0", base_model)
    assert (first.embedded, first.cache_hits) == (6, 0)

    # The cached photos' files now hold other bytes: were they read, their hashes
    # would miss the cache and the bytes fail to decode (skipped).
    for seed in range(1, 7):
        (tmp_path / f"{seed}.jpg").write_bytes(b"not read again")
    # Product c is new; product d's entry states a stale hash (of a photo never seen).
    second = train(
        write({"a": [1, 2, 3], "b": [4, 5, 6], "c": [7, 8], "d": [9]}, stated={9: 99}),
        store,
        "1.0.1",
        base_model,
    )

    assert (second.embedded, second.cache_hits, sum(second.skipped.values())) == (3, 6, 0)
    assert second.labels == ["a", "b", "c", "d"]
    assert "1 photos did not match the sha256 the manifest states" in caplog.text
    # The stale entry was embedded under its own hash: the next run finds it cached.
    third = train(write({"c": [7, 8], "d": [9]}, stated={9: 99}), store, "1.0.2", base_model)
    assert (third.embedded, third.cache_hits) == (0, 3)
