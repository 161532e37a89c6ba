"""Shared fixtures of the trainer tests: ../shared material, a local image
catalog server, the pretrained base model, small image factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.trainer_testlib import (
    GROCERY,
    GROCERY_CLASSES,
    GROCERY_PHOTOS_PER_PRODUCT,
    REFERENCE_EXPORT,
    CatalogServer,
    grocery_images,
    serve,
    shared_dir,
)


@pytest.fixture(scope="session")
def reference_export() -> Path:
    path = shared_dir() / REFERENCE_EXPORT
    if not path.is_file():
        pytest.skip(
            f"missing {path}: the Teachable Machine reference export (set CHANNELMODEL_SHARED)"
        )
    return path


@pytest.fixture(scope="session")
def grocery_dir() -> Path:
    path = shared_dir() / GROCERY
    if not (path / "train.txt").is_file():
        pytest.skip(f"missing {path}: the grocery-store dataset (set CHANNELMODEL_SHARED)")
    return path


@pytest.fixture(scope="session")
def base_model(reference_export: Path) -> Any:
    """The pretrained MobileNetV2 0.35 base from the reference export (loaded once)."""
    from channelmodel_trainer.base_model import load_base_model

    return load_base_model(str(reference_export))


@pytest.fixture
def catalog_server() -> Iterator[CatalogServer]:
    catalog = CatalogServer()
    server, thread = serve(catalog)
    yield catalog
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def make_catalog_server() -> Iterator[Callable[[], CatalogServer]]:
    """For tests that need a second origin."""
    started: list[ThreadingHTTPServer] = []

    def make() -> CatalogServer:
        catalog = CatalogServer()
        server, _ = serve(catalog)
        started.append(server)
        return catalog

    yield make
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def file_store(tmp_path: Path) -> Any:
    """A real `file://` artifact store in a temporary folder."""
    from channelmodel.store import open_store

    return open_store((tmp_path / "store").as_uri())


@pytest.fixture(scope="session")
def grocery_run(
    grocery_dir: Path, base_model: Any, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One real training on a few grocery products (local manifest), shared by slow tests."""
    import json

    from channelmodel.store import open_store
    from channelmodel_trainer.pipeline import TrainingRequest, run_training

    folder = tmp_path_factory.mktemp("grocery")
    photos = grocery_images(grocery_dir, "train", GROCERY_CLASSES, GROCERY_PHOTOS_PER_PRODUCT)
    manifest = {
        "channelId": "grocery",
        "products": [
            {"id": f"class-{c}", "images": [str(p) for p in paths]} for c, paths in photos.items()
        ],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    store = open_store((folder / "store").as_uri())
    request = TrainingRequest(
        manifest=str(folder / "manifest.json"), channel_id="grocery", version="1.0.0"
    )
    outcome = run_training(request, store, base=base_model)
    outcome.manifest_path = str(folder / "manifest.json")  # type: ignore[attr-defined]
    return outcome
