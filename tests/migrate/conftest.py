"""Fixtures for import tests: the real Teachable Machine export, copies to break,
a file store, and `channelmodel import` run in-process."""

from __future__ import annotations

import json
import math
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from channelmodel.cli import main
from channelmodel.store import ArtifactStore, open_store

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CHANNELMODEL_SHARED") or REPO_ROOT / ".." / "shared")
REFERENCE_ZIP = SHARED / "reference" / "teachable-machine-image-export.zip"


@dataclass
class ImportRun:
    code: int
    result: dict[str, Any]
    stdout: str
    stderr: str


Importer = Callable[..., ImportRun]


@pytest.fixture(scope="session")
def reference_zip() -> Path:
    if not REFERENCE_ZIP.is_file():
        pytest.skip(f"{REFERENCE_ZIP} missing (set CHANNELMODEL_SHARED to the shared folder)")
    return REFERENCE_ZIP


@pytest.fixture(scope="session")
def reference_dir(reference_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export unpacked, as a shop keeps it next to its point of sale."""
    folder = tmp_path_factory.mktemp("tm-export")
    with zipfile.ZipFile(reference_zip) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture
def export_copy(reference_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the unpacked export, free to break."""
    return Path(shutil.copytree(reference_dir, tmp_path / "export"))


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return (tmp_path / "store").as_uri()


@pytest.fixture
def store(store_uri: str) -> ArtifactStore:
    return open_store(store_uri)


@pytest.fixture
def run_import(store_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Importer:
    """`channelmodel import ... --store <tmp store>`; the result as the operator reads it."""

    def run(*args: str, channel: str = "shop-1", store: str | None = None) -> ImportRun:
        result_file = tmp_path / "termination-log"
        result_file.unlink(missing_ok=True)
        argv = ["import", "--channel", channel, "--store", store or store_uri]
        argv += ["--result-file", str(result_file), *args]
        code = main(argv)
        captured = capsys.readouterr()
        result = json.loads(result_file.read_text())
        return ImportRun(code, result, captured.out, captured.err)

    return run


def edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def stored_files(store_uri: str) -> list[Path]:
    root = Path(store_uri.removeprefix("file://"))
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def shard_export(folder: Path, split: int = 100) -> tuple[bytes, list[dict[str, Any]]]:
    """Rewrite an export as a converter writes it: two manifest groups, the first
    in two shards. Returns the original weights.bin and weight list."""
    model = json.loads((folder / "model.json").read_text())
    weights = (folder / "weights.bin").read_bytes()
    specs = model["weightsManifest"][0]["weights"]
    first_bytes = sum(4 * math.prod(spec["shape"]) for spec in specs[:split])
    (folder / "group1-shard1of2.bin").write_bytes(weights[:1000])
    (folder / "group1-shard2of2.bin").write_bytes(weights[1000:first_bytes])
    (folder / "group2-shard1of1.bin").write_bytes(weights[first_bytes:])
    (folder / "weights.bin").unlink()
    model["weightsManifest"] = [
        {"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": specs[:split]},
        {"paths": ["group2-shard1of1.bin"], "weights": specs[split:]},
    ]
    (folder / "model.json").write_text(json.dumps(model))
    return weights, specs
