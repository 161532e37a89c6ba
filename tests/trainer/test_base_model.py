"""The pretrained base: loaded from a Teachable Machine export, named by its weights."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channelmodel_trainer.base_model import EMBEDDING_SIZE, load_base_model
from channelmodel_trainer.errors import BaseModelError


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="does not exist"):
        load_base_model(str(tmp_path / "nowhere.zip"))


@pytest.mark.slow
def test_zip_without_a_model_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "not-a-model.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("readme.txt", "hello")
    with pytest.raises(BaseModelError, match=r"has no model\.json"):
        load_base_model(str(archive))


@pytest.mark.slow
def test_reference_export_gives_the_pretrained_features(
    base_model: Any, reference_export: Path
) -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 224, 224, 3)).astype(np.float32)

    embeddings = base_model.model(images, training=False).numpy()

    assert embeddings.shape == (4, EMBEDDING_SIZE)
    # Pretrained MobileNetV2 features: non-negative (ReLU6, pooled), varied, not all zero
    # (random or missing BatchNorm statistics give near-constant outputs).
    assert embeddings.min() >= 0
    assert embeddings.std(axis=1).min() > 0.1
    assert not base_model.model.trainable
    assert base_model.identity.startswith("mobilenetv2-0.35-224-")
    # The same export always gets the same identity: the embedding cache depends on it.
    assert load_base_model(str(reference_export)).identity == base_model.identity


def test_baked_imagenet_weights_are_taken_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from channelmodel_trainer.base_model import IMAGENET_WEIGHTS_ENV, imagenet_weights

    monkeypatch.delenv(IMAGENET_WEIGHTS_ENV, raising=False)
    assert imagenet_weights() == "imagenet"
    baked = tmp_path / "mobilenet.h5"
    baked.write_bytes(b"weights")
    monkeypatch.setenv(IMAGENET_WEIGHTS_ENV, str(baked))
    assert imagenet_weights() == str(baked)
    monkeypatch.setenv(IMAGENET_WEIGHTS_ENV, str(tmp_path / "missing.h5"))
    with pytest.raises(BaseModelError, match="does not exist"):
        imagenet_weights()


@pytest.mark.slow
def test_weights_read_from_the_shards_equal_tensorflowjs_loader(
    base_model: Any, reference_export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from channelmodel_trainer import base_model as module

    def refuse(*_: object) -> None:
        raise ValueError("quantised, say")

    monkeypatch.setattr(module, "_set_weights_from_shards", refuse)
    through_loader = load_base_model(str(reference_export))

    assert through_loader.identity == base_model.identity
    for direct, loaded in zip(base_model.model.weights, through_loader.model.weights, strict=True):
        np.testing.assert_array_equal(direct.numpy(), loaded.numpy())


@pytest.mark.slow
def test_a_shard_path_outside_the_export_folder_is_refused(
    reference_export: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    export.mkdir()
    with zipfile.ZipFile(reference_export) as archive:
        model_json = json.loads(archive.read("model.json"))
        (tmp_path / "weights.bin").write_bytes(archive.read("weights.bin"))
    model_json["weightsManifest"][0]["paths"] = ["../weights.bin"]
    (export / "model.json").write_text(json.dumps(model_json))

    with pytest.raises(BaseModelError, match="not a plain file name"):
        load_base_model(str(export))
