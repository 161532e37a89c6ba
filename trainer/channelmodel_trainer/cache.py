"""Embeddings cached in the artifact store, keyed by image content and base model.

Key: `embeddings/<base-id>/<sha256 of the image bytes>` (the store puts it under
`_cache/`). `base-id` names the base weights and the augmentation recipe, so a
different base or recipe never reads stale vectors. A value is an `.npy` array
of shape (1 + views, 1280): the plain view first.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import numpy as np

from channelmodel_trainer.base_model import EMBEDDING_SIZE

if TYPE_CHECKING:
    from channelmodel.store.base import ArtifactStore

log = logging.getLogger(__name__)


class EmbeddingCache:
    def __init__(self, store: ArtifactStore | None, base_id: str) -> None:
        self._store = store
        self.base_id = base_id
        self._warned = False

    def key(self, sha256: str) -> str:
        return f"embeddings/{self.base_id}/{sha256}"

    def get(self, sha256: str, rows: int) -> np.ndarray | None:
        """The cached (rows, 1280) embeddings, or None (missing, unreadable or other shape)."""
        if self._store is None:
            return None
        try:
            blob = self._store.get_blob(self.key(sha256))
        except Exception as exc:  # a cache must never fail a training
            self._warn_once("read", exc)
            return None
        if blob is None:
            return None
        try:
            array: np.ndarray = np.load(io.BytesIO(blob), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None
        if array.shape != (rows, EMBEDDING_SIZE) or array.dtype != np.float32:
            return None
        return array

    def put(self, sha256: str, embeddings: np.ndarray) -> None:
        if self._store is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, embeddings.astype(np.float32, copy=False), allow_pickle=False)
        try:
            self._store.put_blob(self.key(sha256), buffer.getvalue())
        except Exception as exc:
            self._warn_once("write", exc)

    def _warn_once(self, action: str, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("embedding cache %s failed, embedding without it: %s", action, exc)
