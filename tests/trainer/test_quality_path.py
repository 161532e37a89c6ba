"""The quality path (fine-tuning), the fast path on the channel's fine-tuned
base, the gate's like-with-like figure, group hold-out and the mode choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channelmodel.store import open_store
from channelmodel_trainer.finetune import FineTuneRecipe
from channelmodel_trainer.manifest import load_manifest
from channelmodel_trainer.pipeline import (
    FAST,
    FINE_TUNE,
    TrainingRequest,
    resolve_mode,
    run_training,
)
from channelmodel_trainer.served import base_blob_key, find_served
from channelmodel_trainer.train import HeadRecipe, split_per_class
from tests.trainer.trainer_testlib import patterned_jpeg

QUICK_HEAD = HeadRecipe(epochs=3)
QUICK_TUNE = FineTuneRecipe(epochs=2, probe_epochs=3, batch_size=8)


@pytest.mark.parametrize(
    ("mode", "trigger", "expected"),
    [
        ("Auto", "initial", FINE_TUNE),
        ("Auto", "schedule", FINE_TUNE),
        ("Auto", "manual", FINE_TUNE),
        ("Auto", "event", FAST),
        ("Auto", "spec", FAST),
        ("Auto", None, FAST),
        ("Fast", "schedule", FAST),
        ("FineTune", "event", FINE_TUNE),
    ],
)
def test_mode_resolution(mode: str, trigger: str | None, expected: str) -> None:
    assert resolve_mode(mode, trigger) == expected


def test_split_holds_out_whole_groups() -> None:
    labels = np.array([0] * 12 + [1] * 12)
    groups = [f"day-{i // 4}" for i in range(12)] * 2  # 3 capture days per product
    train, val = split_per_class(labels, 0.15, seed=3, groups=groups)
    assert len(train) + len(val) == 24
    for label in (0, 1):
        held = {groups[i] for i in val if labels[i] == label}
        kept = {groups[i] for i in train if labels[i] == label}
        assert len(held) == 1 and not held & kept  # one whole day held out, none split
    # Without groups (or with one group per class) the per-photo split is unchanged.
    plain = split_per_class(labels, 0.15, seed=3)
    one_group = split_per_class(labels, 0.15, seed=3, groups=["same"] * 24)
    assert all(np.array_equal(a, b) for a, b in zip(plain, one_group, strict=True))


def test_manifest_image_objects_carry_groups(tmp_path: Path) -> None:
    manifest = {
        "channelId": "g",
        "products": [
            {"id": "a", "images": ["1.jpg", {"url": "2.jpg", "group": "shelf-1"}]},
            {"id": "b", "images": [{"url": "3.jpg", "capturedAt": "2026-11-30T23:10:00+01:00"}]},
        ],
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    refs, rejected = load_manifest(str(path)).image_refs()
    assert not rejected
    assert [r.group for r in refs] == [None, "group:shelf-1", "day:2026-11-30"]
    path.write_text(json.dumps({**manifest, "products": [
        {"id": "a", "images": [{"url": "1.jpg", "capturedAt": "yesterday"}]}, {"id": "b"}]}))  # fmt: skip
    with pytest.raises(Exception, match="capturedAt"):
        load_manifest(str(path))


def _catalog(folder: Path, products: dict[str, list[int]], grouped: bool = True) -> Path:
    for seeds in products.values():
        for seed in seeds:
            (folder / f"{seed}.jpg").write_bytes(patterned_jpeg(seed))

    def entry(seed: int) -> object:
        return {"url": f"{seed}.jpg", "group": f"g{seed % 3}"} if grouped else f"{seed}.jpg"

    manifest = {
        "channelId": "q",
        "products": [
            {"id": p, "images": [entry(s) for s in seeds]} for p, seeds in products.items()
        ],
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.slow
def test_quality_path_then_fast_path_on_its_base(tmp_path: Path, base_model: Any) -> None:
    store = open_store((tmp_path / "store").as_uri())
    # 6 photos per product: none held out, so the base surely changes (with held-out
    # photos, fine-tuning that does not beat the linear probe keeps the pretrained base).
    catalog = {p: list(range(10 * i, 10 * i + 6)) for i, p in enumerate("abc")}
    manifest = _catalog(tmp_path, catalog, grouped=False)

    def request(version: str, mode: str) -> TrainingRequest:
        return TrainingRequest(manifest=str(manifest), channel_id="q", version=version,
                               recipe=QUICK_HEAD, views=1, mode=mode, fine_tune=QUICK_TUNE)  # fmt: skip

    first = run_training(request("1.0.0", FINE_TUNE), store, base=base_model)
    assert first.mode == FINE_TUNE and first.metrics["path"] == FINE_TUNE
    assert first.base.identity != base_model.identity  # the base learned
    assert first.metrics["validationImages"] == 0 and first.metrics["accuracy"] is None
    assert store.get_blob(base_blob_key("q", first.base.identity)) is not None
    metadata = json.loads(first.files["metadata.json"])
    assert metadata["userMetadata"]["baseIdentity"] == first.base.identity
    assert first.embedded == 18  # the cache is warmed with the new base
    # The exported head is the fine-tuned head trained again on the new base's views.
    from channelmodel_trainer.served import head_weights

    exported = head_weights(first.files["model.json"], first.files["weights.bin"], 3)
    assert first.fine_tuned is not None and "headOnViews" in first.timings
    tuned = first.fine_tuned.head.get_weights()
    assert not np.allclose(exported[2], tuned[2])
    assert np.corrcoef(exported[2].ravel(), tuned[2].ravel())[0, 1] > 0.5  # from it, not anew
    store.set_pointer("q", {"version": "1.0.0"})

    # Nightly is served; a product is added during the day: the fast path runs
    # on the served model's fine-tuned base and embeds only the new photos.
    # Two more photos per product (so that photos are held out, in whole groups).
    catalog = {
        p: [*seeds, 100 + 2 * i, 101 + 2 * i] for i, (p, seeds) in enumerate(catalog.items())
    }
    catalog["d"] = list(range(40, 48))
    _catalog(tmp_path, catalog)
    second = run_training(request("1.0.1", FAST), store)
    assert second.base.identity == first.base.identity
    assert (second.embedded, second.cache_hits) == (14, 18)
    assert second.metrics["heldOutGroups"] is True and second.metrics["validationImages"] > 0
    assert second.metrics["servedVersion"] == "1.0.0"
    assert second.metrics["servedAccuracy"] is not None  # the served head, same photos
    served = find_served(store, "q")
    assert served is not None and served.base_identity == first.base.identity

    # The quality path scores the served model too (whole model, on pixels).
    store.set_pointer("q", {"version": "1.0.1"})
    third = run_training(request("1.0.2", FINE_TUNE), store, base=base_model)
    assert third.metrics["servedVersion"] == "1.0.1"
    assert third.metrics["servedAccuracy"] is not None

    # Every figure reaches the result JSON the operator reads.
    from channelmodel_trainer.result import success_result

    for run in (second, third):
        reported = success_result(channel_id="q", version=run.version, metrics=run.metrics,
                                  skipped={}, timings=run.timings).metrics  # fmt: skip
        assert reported is not None
        assert reported.model_dump(exclude_none=True).keys() >= {
            "accuracy", "servedAccuracy", "servedVersion", "validationImages", "path"}  # fmt: skip


@pytest.mark.slow
def test_cache_look_ups_start_before_the_base_and_a_wrong_hint_is_undone(
    tmp_path: Path, reference_export: Path
) -> None:
    from channelmodel_trainer.pipeline import recorded_identity

    store = open_store((tmp_path / "store").as_uri())
    catalog = {p: list(range(10 * i, 10 * i + 3)) for i, p in enumerate("ab")}
    manifest = _catalog(tmp_path, catalog)

    def fast(version: str) -> Any:
        request = TrainingRequest(manifest=str(manifest), channel_id="q", version=version,
                                  base_model=str(reference_export), recipe=QUICK_HEAD, views=1)  # fmt: skip
        return run_training(request, store)

    first = fast("1.0.0")
    # The configured base's identity is recorded by its files' hash, for the next runs.
    assert recorded_identity(store, str(reference_export)) == first.base.identity
    assert (first.embedded, first.cache_hits) == (6, 0)
    assert (fast("1.0.1").embedded, fast("1.0.2").cache_hits) == (0, 6)

    # A served model naming a base the store does not have: the hint is wrong,
    # the run falls back to the configured base and still reads the right vectors.
    store.set_pointer("q", {"version": "1.0.2"})
    served_files = {n: store.read_file("q", "1.0.2", n) for n in ("model.json", "weights.bin")}
    metadata = json.loads(store.read_file("q", "1.0.2", "metadata.json"))
    metadata["userMetadata"]["baseIdentity"] = "mobilenetv2-0.35-224-0000000000000000"
    store.publish_version(
        "q", "1.0.3", {**served_files, "metadata.json": json.dumps(metadata).encode()}
    )
    store.set_pointer("q", {"version": "1.0.3"})
    fourth = fast("1.0.4")
    assert fourth.base.identity == first.base.identity
    assert (fourth.embedded, fourth.cache_hits) == (0, 6)


def test_split_by_content_hash_is_stable_when_products_come_and_go() -> None:
    def held_out(catalog: dict[int, list[str]]) -> set[str]:
        labels = np.array([label for label, keys in catalog.items() for _ in keys])
        keys = [key for keys in catalog.values() for key in keys]
        _, val = split_per_class(labels, 0.15, seed=0, keys=keys)
        return {keys[i] for i in val}

    catalog = {label: [f"{label}-{i}" for i in range(10)] for label in range(5)}
    before = held_out(catalog)
    # A new product sorts first (it shifts every label) and one product gets a photo more.
    shifted = {label + 1: keys for label, keys in catalog.items()}
    shifted[0] = [f"new-{i}" for i in range(10)]
    shifted[3] = [*shifted[3], "extra"]
    after = held_out(shifted)
    unchanged = {key for key in before if not key.startswith("2-")}
    assert unchanged <= after  # the served model never trained on the next run's held-out photos
    assert len(before) == 5 and len([k for k in after if k.startswith("new-")]) == 1


@pytest.mark.slow
def test_the_fast_path_starts_from_the_served_head_on_the_same_base(
    tmp_path: Path, base_model: Any
) -> None:
    store = open_store((tmp_path / "store").as_uri())
    manifest = _catalog(tmp_path, {"a": [1, 2, 3], "b": [4, 5, 6]})

    def fast(version: str, recipe: HeadRecipe) -> Any:
        request = TrainingRequest(manifest=str(manifest), channel_id="q", version=version,
                                  recipe=recipe, views=1)  # fmt: skip
        return run_training(request, store, base=base_model)

    first = fast("1.0.0", QUICK_HEAD)
    store.set_pointer("q", {"version": "1.0.0"})
    # A product is added, and the manifest lists the products in another order.
    _catalog(tmp_path, {"c": [7, 8, 9], "b": [4, 5, 6], "a": [1, 2, 3]})
    # A learning rate of 0 keeps the starting weights: they are the served head's.
    second = fast("1.0.1", HeadRecipe(warm_epochs=1, warm_learning_rate=0.0))
    (w1, b1, w2), (v1, c1, v2) = first.head.model.get_weights(), second.head.model.get_weights()
    np.testing.assert_array_equal(v1, w1)
    np.testing.assert_array_equal(c1, b1)
    for product in ("a", "b"):  # each known product keeps its own column
        np.testing.assert_array_equal(
            v2[:, second.labels.index(product)], w2[:, first.labels.index(product)]
        )
    new_column = v2[:, second.labels.index("c")]
    assert not any(np.array_equal(new_column, w2[:, j]) for j in range(w2.shape[1]))


def test_no_warm_start_from_a_head_on_another_base_or_an_unreadable_one() -> None:
    from channelmodel_trainer.served import ServedModel, warm_start

    class Unreadable:
        def read_file(self, *_: object) -> bytes:
            raise OSError("gone")

    other = ServedModel(version="1.0.0", labels=["a"], base_identity="base-1", store=Unreadable())
    assert warm_start(other, "base-2", ["a"]) is None  # its columns mean nothing on this base
    assert warm_start(other, "base-1", ["a"]) is None  # cannot be read: start from scratch
    assert warm_start(None, "base-1", ["a"]) is None
