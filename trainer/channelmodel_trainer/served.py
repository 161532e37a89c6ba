"""The channel's served model, scored on the candidate's held-out photos.

The quality gate compares like with like: a new version is served only if it
is at least as good as the served one on the same held-out photos, so the
trainer scores both. The served version is the one the operator's serving
pointer names (`<channel>/served.json`).

- Same base (the fast path on the channel's base): the served head runs on the
  held-out photos' embeddings; its weights are read straight from weights.bin.
- Another base (the quality path, or a model trained on another base): the
  whole served model runs on the held-out photos' pixels (when the path has them).

The fine-tuned base of every quality run is kept in the store as
`_cache/bases/<channel>/<identity>.npz`; the served model's metadata names its
base (`userMetadata.baseIdentity`), and the fast path trains on that base.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from channelmodel_trainer import tfcompat
from channelmodel_trainer.base_model import EMBEDDING_SIZE
from channelmodel_trainer.export import WEIGHTS_FILE
from channelmodel_trainer.tfjs_weights import read_weights
from channelmodel_trainer.train import HIDDEN_UNITS, WarmStart, top_classes

if TYPE_CHECKING:
    from channelmodel.store.base import ArtifactStore

log = logging.getLogger(__name__)


def base_blob_key(channel_id: str, identity: str) -> str:
    return f"bases/{channel_id}/{identity}.npz"


@dataclass
class ServedModel:
    version: str
    labels: list[str]
    base_identity: str | None  # None: trained before bases were recorded, or imported
    store: Any = field(repr=False)
    channel_id: str = ""
    _files: dict[str, bytes] | None = field(default=None, repr=False)

    def files(self) -> dict[str, bytes]:
        """Its model.json and weights.bin (read once: the warm start and the score use both)."""
        if self._files is None:
            self._files = {
                name: self.store.read_file(self.channel_id, self.version, name)
                for name in ("model.json", "weights.bin")
            }
        return self._files


def find_served(store: ArtifactStore | None, channel_id: str) -> ServedModel | None:
    """The version the serving pointer names, or None (none yet, or unreadable)."""
    if store is None:
        return None
    try:
        pointer = store.get_pointer(channel_id)
        version = pointer.get("version") if pointer else None
        if not isinstance(version, str) or not store.has_version(channel_id, version):
            return None
        metadata = json.loads(store.read_file(channel_id, version, "metadata.json"))
        labels = [str(label) for label in metadata.get("labels") or []]
        user = metadata.get("userMetadata") or {}
        identity = user.get("baseIdentity") if isinstance(user, dict) else None
        return ServedModel(
            version=version,
            labels=labels,
            base_identity=identity if isinstance(identity, str) else None,
            store=store,
            channel_id=channel_id,
        )
    except Exception as exc:  # comparing is a bonus: never fail a training over it
        log.warning("cannot read the served model of %s: %s", channel_id, exc)
        return None


def head_weights(model_json: bytes, weights_bin: bytes, classes: int) -> list[np.ndarray]:
    """[W1 (1280, 100), b1 (100,), W2 (100, classes)] of a TM-shaped export, by shape."""

    def only_weights_bin(path: str) -> bytes:
        if path != WEIGHTS_FILE:
            raise ValueError(f"a served model's weights are in {WEIGHTS_FILE}, not {path}")
        return weights_bin

    arrays = read_weights(json.loads(model_json), only_weights_bin)
    hidden = [n for n, a in arrays.items() if a.shape == (EMBEDDING_SIZE, HIDDEN_UNITS)]
    output = [n for n, a in arrays.items() if a.shape == (HIDDEN_UNITS, classes)]
    if len(hidden) != 1 or len(output) != 1:
        raise ValueError("not a Teachable Machine head (Dense(100), Dense(N))")
    bias = hidden[0].rsplit("/", 1)[0] + "/bias"
    if bias not in arrays:
        raise ValueError("the hidden layer has no bias")
    return [arrays[hidden[0]], arrays[bias], arrays[output[0]]]


def warm_start(
    served: ServedModel | None, base_identity: str, labels: list[str]
) -> WarmStart | None:
    """The served head as the start of the new one, when it was trained on the same
    base (the fast path during the day, after a nightly): its products keep what
    the nightly's fine-tuning taught their columns. None otherwise, or unreadable."""
    if served is None or served.base_identity != base_identity:
        return None
    try:
        files = served.files()
        weights = head_weights(files["model.json"], files["weights.bin"], len(served.labels))
    except Exception as exc:  # a head start, not a requirement: train from scratch
        log.warning("cannot start from the served head %s: %s", served.version, exc)
        return None
    return WarmStart.from_head(weights, served.labels, labels)


def accuracy_on_embeddings(
    served: ServedModel, embeddings: np.ndarray, truth: list[str]
) -> float | None:
    """Top-1 of the served head on (n, 1280) embeddings of its own base."""
    if not len(truth):
        return None
    files = served.files()
    weights = head_weights(files["model.json"], files["weights.bin"], len(served.labels))
    return _score(served.labels, top_classes(weights, embeddings), truth)


def accuracy_on_pixels(served: ServedModel, pixels: Any, truth: list[str]) -> float | None:
    """Top-1 of the whole served model on (n, 224, 224, 3) inputs in [-1, 1]."""
    if not len(truth):
        return None
    tfjs = tfcompat.tensorflowjs()
    with tempfile.TemporaryDirectory(prefix="channelmodel-served-") as tmp:
        for name, data in served.files().items():
            (Path(tmp) / name).write_bytes(data)
        model = tfjs.converters.load_keras_model(str(Path(tmp) / "model.json"))
    predicted = np.concatenate(
        [
            model.predict(pixels[s : s + 64], verbose=0).argmax(axis=1)
            for s in range(0, len(truth), 64)
        ]
    )
    return _score(served.labels, predicted, truth)


def _score(labels: list[str], predicted: np.ndarray, truth: list[str]) -> float:
    hits = sum(
        1
        for index, expected in zip(predicted.tolist(), truth, strict=True)
        if index < len(labels) and labels[index] == expected
    )
    return hits / len(truth)
