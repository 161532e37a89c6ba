"""Batched base-model embeddings of decoded images."""

from __future__ import annotations

from typing import Any

import numpy as np

from channelmodel_trainer import tfcompat
from channelmodel_trainer.base_model import EMBEDDING_SIZE, IMAGE_SIZE, BaseModel


class Embedder:
    """Runs the frozen base on uint8 batches; TM's `x/127 - 1` scaling runs in the graph."""

    def __init__(self, base: BaseModel, batch_size: int = 32) -> None:
        tf = tfcompat.tensorflow()
        self.batch_size = batch_size
        self.images_embedded = 0
        model = base.model

        def forward(pixels: Any) -> Any:
            return model(tf.cast(pixels, tf.float32) / 127.0 - 1.0, training=False)

        # A traced function with a fixed signature: no retracing per batch size.
        signature = [tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8)]
        self._forward = tf.function(forward, input_signature=signature)

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) uint8 to (n, 1280) float32, in batches of `batch_size`."""
        if len(pixels) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        parts = [
            self._forward(pixels[start : start + self.batch_size]).numpy()
            for start in range(0, len(pixels), self.batch_size)
        ]
        self.images_embedded += len(pixels)
        return np.concatenate(parts).astype(np.float32, copy=False)


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """Teachable Machine's input scaling, for feeding a full exported model."""
    return pixels.astype(np.float32) / 127.0 - 1.0
