"""metadata.json as Teachable Machine writes it, with what is missing filled in
the way `@teachablemachine/image` fills it when it loads a model."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from channelmodel.migrate.errors import ImportRefused

# The versions our own trainer writes (channelmodel_trainer.export); TM's library
# fills packageName, timeStamp, userMetadata, modelName and imageSize itself.
TFJS_VERSION = "1.3.1"
TM_VERSION = "2.4.10"
TM_PACKAGE = "@teachablemachine/image"
TM_PACKAGE_VERSION = "0.8.5"
IMAGE_SIZE = 224
_TFJS_LAYERS_VERSION = re.compile(r"^tfjs-layers (\d+\.\d+\.\d+)")
# Product IDs are identifiers (Vendure: numbers or UUIDs; "prod-1"); hand-made
# models often use names ("Class 1", "banana"). Flagged, never refused.
_PRODUCT_ID_LIKE = re.compile(r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


def parse_labels(raw: bytes) -> tuple[dict[str, Any], list[str]]:
    """metadata.json and its labels: a non-empty list of unique, non-empty strings."""
    try:
        metadata = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ImportRefused("metadata.json is not JSON") from None
    if not isinstance(metadata, dict):
        raise ImportRefused("metadata.json is not a JSON object")
    labels = metadata.get("labels")
    if not isinstance(labels, list) or not labels:
        raise ImportRefused("metadata.json has no labels (a non-empty list of class names)")
    bad = [label for label in labels if not isinstance(label, str) or not label.strip()]
    if bad:
        raise ImportRefused(f"metadata.json: labels must be non-empty strings, got {bad[0]!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        shown = ", ".join(repr(label) for label in duplicates[:5])
        raise ImportRefused(f"metadata.json: duplicate labels: {shown}")
    image_size = metadata.get("imageSize", IMAGE_SIZE)
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise ImportRefused(
            f"metadata.json: imageSize must be a positive integer, got {image_size!r}"
        )
    return metadata, list(labels)


def filled_metadata(
    metadata: Mapping[str, Any],
    model: Mapping[str, Any],
    *,
    channel_id: str,
    version: str,
    origin: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every TM field present; the original's values and extra keys kept."""
    stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    user_metadata = metadata.get("userMetadata")
    defaults: dict[str, Any] = {
        "tfjsVersion": _tfjs_version(model),
        "tmVersion": TM_VERSION,
        "packageVersion": TM_PACKAGE_VERSION,
        "packageName": TM_PACKAGE,
        "timeStamp": stamp,
        "userMetadata": {},
        "modelName": "untitled",
        "labels": [],
        "imageSize": IMAGE_SIZE,
    }
    filled = {**defaults, **{key: value for key, value in metadata.items() if value is not None}}
    filled["userMetadata"] = {
        **(user_metadata if isinstance(user_metadata, dict) else {}),
        "channelId": channel_id,
        "version": version,
        "origin": origin,
    }
    return filled


def labels_look_like_product_ids(labels: list[str]) -> bool:
    return all(_PRODUCT_ID_LIKE.fullmatch(label) for label in labels)


def _tfjs_version(model: Mapping[str, Any]) -> str:
    """The TF.js version that wrote the model when it says so, else the one TM pins."""
    keras_version = model.get("modelTopology", {}).get("keras_version")
    match = _TFJS_LAYERS_VERSION.match(keras_version) if isinstance(keras_version, str) else None
    return match.group(1) if match else TFJS_VERSION
