"""Importing the real Teachable Machine export: what gets published, from every
kind of source, and which version number it gets."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from channelmodel.store import ArtifactStore, open_store
from tests.migrate.conftest import Importer, edit_json, shard_export, stored_files
from tests.migrate.httpserve import serve_folder


def test_zip_is_published_as_first_version(
    reference_zip: Path, reference_dir: Path, run_import: Importer, store: ArtifactStore
) -> None:
    run = run_import(str(reference_zip))

    assert run.code == 0, run.stderr
    assert run.result == {
        "ok": True,
        "channelId": "shop-1",
        "version": "1.0.0",
        "origin": f"imported:{reference_zip.resolve()}",
        "labels": 2,
        "labelsLookLikeProductIds": False,
        "metrics": {"classes": 2},
    }
    assert json.loads(run.stdout) == run.result
    assert "look like names" in run.stderr
    assert store.list_versions("shop-1") == ["1.0.0"]
    # TM's model.json already names one weights.bin: its bytes are kept as they are.
    for name in ("model.json", "weights.bin"):
        assert store.read_file("shop-1", "1.0.0", name) == (reference_dir / name).read_bytes()


def test_metadata_is_completed_as_the_tm_library_would(
    reference_dir: Path, run_import: Importer, store: ArtifactStore
) -> None:
    original = json.loads((reference_dir / "metadata.json").read_text())
    assert "packageName" not in original and "imageSize" not in original  # a 2019 export

    assert run_import(str(reference_dir)).code == 0
    metadata = json.loads(store.read_file("shop-1", "1.0.0", "metadata.json"))

    assert metadata["labels"] == original["labels"] == ["Class 1", "Class 2"]
    assert metadata["packageName"] == "@teachablemachine/image"
    assert metadata["imageSize"] == 224
    assert metadata["packageVersion"] == "0.8.5"
    # What the export says is kept: its versions, time, name and extra keys.
    for key in ("tfjsVersion", "tmVersion", "timeStamp", "modelName", "tmSupportVersion"):
        assert metadata[key] == original[key]
    assert metadata["userMetadata"] == {
        "channelId": "shop-1",
        "version": "1.0.0",
        "origin": f"imported:{reference_dir.resolve()}",
    }


def test_missing_optional_fields_get_tm_defaults(
    export_copy: Path, run_import: Importer, store: ArtifactStore
) -> None:
    (export_copy / "metadata.json").write_text(json.dumps({"labels": ["p-1", "p-2"]}))

    run = run_import(str(export_copy))

    assert run.code == 0, run.stderr
    assert run.result["labelsLookLikeProductIds"] is True
    metadata = json.loads(store.read_file("shop-1", "1.0.0", "metadata.json"))
    assert metadata["modelName"] == "untitled"
    assert metadata["tmVersion"] == "2.4.10"
    assert metadata["tfjsVersion"] == "1.1.2"  # from the model's "tfjs-layers 1.1.2"
    assert metadata["timeStamp"].endswith("Z")


@pytest.mark.parametrize(
    ("labels", "look_like_ids"),
    [
        (["123", "456"], True),
        (["prod-1", "prod-2"], True),
        (["6f1c2a9e-0d4b-4a57-9a0e-3f3e0c7b1d21", "c0ffee00-1111-2222-3333-444455556666"], True),
        (["banana", "prod-2"], False),
        (["Class 1", "Class 2"], False),
    ],
)
def test_labels_that_are_not_product_ids_are_flagged_not_refused(
    labels: list[str], look_like_ids: bool, export_copy: Path, run_import: Importer
) -> None:
    edit_json(export_copy / "metadata.json", lambda m: m.update(labels=labels))

    run = run_import(str(export_copy))

    assert run.code == 0, run.stderr
    assert run.result["labelsLookLikeProductIds"] is look_like_ids


def test_versions_count_up_from_the_newest(
    reference_dir: Path, run_import: Importer, store: ArtifactStore
) -> None:
    assert run_import(str(reference_dir)).result["version"] == "1.0.0"
    assert run_import(str(reference_dir)).result["version"] == "1.0.1"
    assert run_import(str(reference_dir), "--version", "1.0.10").result["version"] == "1.0.10"
    # Numeric order: the next after 1.0.10 is 1.0.11, not 1.0.2.
    assert run_import(str(reference_dir)).result["version"] == "1.0.11"
    assert run_import(str(reference_dir), channel="other").result["version"] == "1.0.0"
    assert store.list_versions("shop-1") == ["1.0.0", "1.0.1", "1.0.10", "1.0.11"]


def test_shards_are_joined_into_one_weights_bin(
    export_copy: Path, run_import: Importer, store: ArtifactStore
) -> None:
    weights, specs = shard_export(export_copy)
    topology = json.loads((export_copy / "model.json").read_text())["modelTopology"]

    assert run_import(str(export_copy)).code == 0

    assert store.read_file("shop-1", "1.0.0", "weights.bin") == weights
    published = json.loads(store.read_file("shop-1", "1.0.0", "model.json"))
    assert published["weightsManifest"] == [{"paths": ["weights.bin"], "weights": specs}]
    assert published["modelTopology"] == topology


def test_shards_of_the_wrong_length_are_refused(
    export_copy: Path, run_import: Importer, store_uri: str
) -> None:
    shard_export(export_copy)
    shard = export_copy / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes()[:-4])

    run = run_import(str(export_copy))

    assert run.code == 1
    assert "group1-shard1of2.bin + group1-shard2of2.bin together are" in run.result["error"]
    assert stored_files(store_uri) == []


def test_zip_of_a_folder_is_read_one_level_down(
    reference_dir: Path, tmp_path: Path, run_import: Importer, store: ArtifactStore
) -> None:
    archive = tmp_path / "my-model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in reference_dir.iterdir():
            zf.write(path, f"my-model/{path.name}")

    assert run_import(str(archive)).code == 0
    assert (
        store.read_file("shop-1", "1.0.0", "weights.bin")
        == (reference_dir / "weights.bin").read_bytes()
    )


def test_model_json_path_reads_its_neighbours(
    reference_dir: Path, run_import: Importer, store: ArtifactStore
) -> None:
    run = run_import(str(reference_dir / "model.json"))
    assert run.code == 0, run.stderr
    assert store.list_versions("shop-1") == ["1.0.0"]


def test_url_with_bearer_token_and_credentials_kept_out_of_origin(
    reference_dir: Path, run_import: Importer, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANNELMODEL_MANIFEST_TOKEN", "s3cr3t-token")
    with serve_folder(reference_dir, token="s3cr3t-token") as (base, seen):
        url = base.replace("http://", "http://user:pw@") + "model.json?signature=abc"
        run = run_import(url)

    assert run.code == 0, run.stderr
    assert run.result["origin"] == f"imported:{base}model.json"
    assert seen == ["Bearer s3cr3t-token"] * 3  # model.json, metadata.json, weights.bin
    assert "s3cr3t" not in run.stdout + run.stderr + json.dumps(run.result)
    assert (
        store.read_file("shop-1", "1.0.0", "weights.bin")
        == (reference_dir / "weights.bin").read_bytes()
    )


def test_url_without_the_token_is_refused_without_leaking_the_query(
    reference_dir: Path, run_import: Importer, store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHANNELMODEL_MANIFEST_TOKEN", raising=False)
    with serve_folder(reference_dir, token="needed") as (base, _):
        run = run_import(base + "model.json?signature=abc")

    assert run.code == 1
    assert run.result["error"] == f"cannot fetch {base}model.json: HTTP 401"
    assert stored_files(store_uri) == []


def test_url_to_a_zip(
    reference_zip: Path, tmp_path: Path, run_import: Importer, store: ArtifactStore
) -> None:
    shutil.copy(reference_zip, tmp_path / "export.zip")
    with serve_folder(tmp_path) as (base, _):
        run = run_import(base + "export.zip")
    assert run.code == 0, run.stderr
    assert run.result["origin"] == f"imported:{base}export.zip"
    assert store.list_versions("shop-1") == ["1.0.0"]


def test_url_with_missing_weights_is_refused(
    export_copy: Path, run_import: Importer, store_uri: str
) -> None:
    (export_copy / "weights.bin").unlink()
    with serve_folder(export_copy) as (base, _):
        run = run_import(base + "model.json")
    assert run.code == 1
    assert run.result["error"] == f"weights.bin is missing: {base}weights.bin answered 404"
    assert stored_files(store_uri) == []


def test_unwritable_termination_log_is_ignored(
    reference_dir: Path, store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from channelmodel.cli import main

    monkeypatch.setenv("CHANNELMODEL_TERMINATION_LOG", "/nonexistent/dir/termination-log")
    assert main(["import", "--channel", "shop-1", "--store", store_uri, str(reference_dir)]) == 0
    assert open_store(store_uri).list_versions("shop-1") == ["1.0.0"]
