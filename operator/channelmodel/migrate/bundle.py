"""Turn an export into the three files of a version, checking everything first."""

from __future__ import annotations

import json
from dataclasses import dataclass

from channelmodel.migrate.errors import ImportRefused
from channelmodel.migrate.metadata import (
    filled_metadata,
    labels_look_like_product_ids,
    parse_labels,
)
from channelmodel.migrate.sources import METADATA_JSON, MODEL_JSON, ExportSource, MissingFile
from channelmodel.migrate.topology import output_units, parse_model_json
from channelmodel.migrate.weights import WEIGHTS_FILE, is_single_weights_bin, single_weights_file


@dataclass(frozen=True)
class ImportedVersion:
    files: dict[str, bytes]  # model.json, weights.bin, metadata.json
    labels: list[str]
    origin: str  # "imported:<source>"

    @property
    def labels_look_like_product_ids(self) -> bool:
        return labels_look_like_product_ids(self.labels)


def build_version(source: ExportSource, *, channel_id: str, version: str) -> ImportedVersion:
    """The version's files; ImportRefused (one line) when the export is not usable."""
    model_raw = source.read(MODEL_JSON)
    model = parse_model_json(model_raw)
    try:
        metadata_raw = source.read(METADATA_JSON)
    except MissingFile as exc:
        raise ImportRefused(f"{exc} (Teachable Machine keeps the labels there)") from None
    metadata, labels = parse_labels(metadata_raw)
    units = output_units(model["modelTopology"])
    if units != len(labels):
        raise ImportRefused(
            f"model.json outputs {units} classes but metadata.json has {len(labels)} labels"
        )
    weights, specs = single_weights_file(model, source.read)
    if not is_single_weights_bin(model):
        # Frontends fetch exactly model.json, weights.bin and metadata.json.
        model = {**model, "weightsManifest": [{"paths": [WEIGHTS_FILE], "weights": specs}]}
        model_raw = json.dumps(model, separators=(",", ":")).encode()
    origin = f"imported:{source.origin}"
    filled = filled_metadata(metadata, model, channel_id=channel_id, version=version, origin=origin)
    return ImportedVersion(
        files={
            MODEL_JSON: model_raw,  # TM's own bytes when already one weights.bin
            WEIGHTS_FILE: weights,
            METADATA_JSON: json.dumps(filled, indent=2).encode(),
        },
        labels=labels,
        origin=origin,
    )
