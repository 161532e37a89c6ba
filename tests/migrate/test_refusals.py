"""An export that would break the point of sale is refused with one clear line,
and nothing reaches the store."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.migrate.conftest import Importer, edit_json, stored_files


def add_label(metadata: dict[str, Any]) -> None:
    metadata["labels"].append("Class 3")


def duplicate_label(metadata: dict[str, Any]) -> None:
    metadata["labels"] = ["Class 1", "Class 1"]


def empty_labels(metadata: dict[str, Any]) -> None:
    metadata["labels"] = []


def blank_label(metadata: dict[str, Any]) -> None:
    metadata["labels"] = ["Class 1", " "]


def graph_model(model: dict[str, Any]) -> None:
    model["format"] = "graph-model"


def no_topology(model: dict[str, Any]) -> None:
    del model["modelTopology"]


def wider_output(model: dict[str, Any]) -> None:
    # The last Dense of the nested head: 3 outputs for 2 labels.
    model["modelTopology"]["config"][-1]["config"][-1]["config"]["units"] = 3


def drop_weight_entry(model: dict[str, Any]) -> None:
    model["weightsManifest"][0]["weights"].pop()


def climbing_path(model: dict[str, Any]) -> None:
    model["weightsManifest"][0]["paths"] = ["../weights.bin"]


METADATA_BREAKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "labels-exceed-outputs": (
        add_label,
        "model.json outputs 2 classes but metadata.json has 3 labels",
    ),
    "duplicate-labels": (duplicate_label, "metadata.json: duplicate labels: 'Class 1'"),
    "no-labels": (empty_labels, "metadata.json has no labels"),
    "blank-label": (blank_label, "labels must be non-empty strings"),
}
MODEL_BREAKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "outputs-exceed-labels": (
        wider_output,
        "model.json outputs 3 classes but metadata.json has 2 labels",
    ),
    "graph-model": (graph_model, "model.json is a TF.js 'graph-model', not a layers model"),
    "no-topology": (no_topology, "model.json is not a TF.js layers model: no modelTopology"),
    "manifest-shorter-than-weights": (
        drop_weight_entry,
        "weights.bin is 2154032 bytes, but model.json's weightsManifest needs 2148912",
    ),
    "path-out-of-export": (climbing_path, "refusing file name '../weights.bin'"),
}


def assert_refused(run: Any, message: str, store_uri: str) -> None:
    assert run.code == 1
    assert run.result["ok"] is False
    assert message in run.result["error"]
    assert "\n" not in run.result["error"]
    assert message in run.stderr
    assert stored_files(store_uri) == []


@pytest.mark.parametrize("case", list(METADATA_BREAKS), ids=list(METADATA_BREAKS))
def test_bad_metadata_is_refused(
    case: str, export_copy: Path, run_import: Importer, store_uri: str
) -> None:
    change, message = METADATA_BREAKS[case]
    edit_json(export_copy / "metadata.json", change)
    assert_refused(run_import(str(export_copy)), message, store_uri)


@pytest.mark.parametrize("case", list(MODEL_BREAKS), ids=list(MODEL_BREAKS))
def test_bad_model_json_is_refused(
    case: str, export_copy: Path, run_import: Importer, store_uri: str
) -> None:
    change, message = MODEL_BREAKS[case]
    edit_json(export_copy / "model.json", change)
    assert_refused(run_import(str(export_copy)), message, store_uri)


def test_missing_weights_file_is_refused(
    export_copy: Path, run_import: Importer, store_uri: str
) -> None:
    (export_copy / "weights.bin").unlink()
    assert_refused(run_import(str(export_copy)), "weights.bin is missing from", store_uri)


@pytest.mark.parametrize("delta", [-4, 1], ids=["truncated", "trailing-byte"])
def test_weights_of_the_wrong_length_are_refused(
    delta: int, export_copy: Path, run_import: Importer, store_uri: str
) -> None:
    weights = export_copy / "weights.bin"
    data = weights.read_bytes()
    weights.write_bytes(data[:delta] if delta < 0 else data + b"\0" * delta)
    message = f"weights.bin is {len(data) + delta} bytes, but model.json's weightsManifest needs {len(data)}"
    assert_refused(run_import(str(export_copy)), message, store_uri)


def test_missing_metadata_is_refused(
    export_copy: Path, run_import: Importer, store_uri: str
) -> None:
    (export_copy / "metadata.json").unlink()
    assert_refused(
        run_import(str(export_copy)),
        "metadata.json is missing from",
        store_uri,
    )


def test_keras_h5_file_is_refused(tmp_path: Path, run_import: Importer, store_uri: str) -> None:
    h5 = tmp_path / "keras_model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert_refused(run_import(str(h5)), "is not a TF.js export", store_uri)


def test_json_that_is_not_a_model_is_refused(
    tmp_path: Path, run_import: Importer, store_uri: str
) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"channelId": "shop-1", "products": []}))
    assert_refused(
        run_import(str(tmp_path / "model.json")),
        "model.json is not a TF.js layers model: no modelTopology",
        store_uri,
    )


def test_zip_without_model_is_refused(tmp_path: Path, run_import: Importer, store_uri: str) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("img/1.jpg", b"\xff\xd8\xff")
    assert_refused(run_import(str(archive)), "holds no model.json", store_uri)


def test_existing_version_is_not_overwritten(
    reference_dir: Path, run_import: Importer, store_uri: str
) -> None:
    assert run_import(str(reference_dir), "--version", "2.0.0").code == 0
    before = [(p, p.read_bytes()) for p in stored_files(store_uri)]
    again = run_import(str(reference_dir), "--version", "2.0.0")
    assert again.code == 1
    assert "version 2.0.0 of channel shop-1 already exists" in again.result["error"]
    assert [(p, p.read_bytes()) for p in stored_files(store_uri)] == before
