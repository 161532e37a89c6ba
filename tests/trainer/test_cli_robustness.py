"""`channelmodel train` end to end against a messy catalog served over HTTP:
every bad entry is skipped and counted, bad manifests fail with one line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from channelmodel.cli import main
from channelmodel.store import open_store
from tests.trainer.trainer_testlib import CatalogServer, Route, patterned_jpeg

pytestmark = pytest.mark.slow


def png_bomb(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (side, side)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def train(
    catalog: CatalogServer,
    manifest: object,
    tmp_path: Path,
    reference_export: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, dict[str, Any], str]:
    catalog.add("manifest.json", json.dumps(manifest).encode(), "application/json")
    result_path = tmp_path / "termination-log"
    monkeypatch.setenv("CHANNELMODEL_TERMINATION_LOG", str(result_path))
    monkeypatch.setenv("CHANNELMODEL_MANIFEST_TOKEN", "tok-123")
    code = main(
        [
            "train",
            "--manifest",
            catalog.url("manifest.json"),
            "--channel",
            "shop-1",
            "--version",
            "1.0.0",
            "--store",
            (tmp_path / "store").as_uri(),
            "--base-model",
            str(reference_export),
            "--epochs",
            "5",
            "--views",
            "1",
        ]
    )
    raw = result_path.read_bytes()
    assert len(raw) < 4096  # Kubernetes keeps 4096 bytes of a termination message
    return code, json.loads(raw), capsys.readouterr().err


def test_messy_catalog_skips_and_counts_every_bad_entry(
    catalog_server: CatalogServer,
    tmp_path: Path,
    reference_export: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    photo = iter(range(100))
    url = catalog_server.add

    def good(name: str) -> str:
        return url(name, patterned_jpeg(next(photo)))

    truncated = patterned_jpeg(99, size=400)
    catalog_server.routes["/flaky.jpg"] = Route(body=patterned_jpeg(98), fail_first=[503])
    manifest = {
        "channelId": "shop-1",
        "products": [
            {
                "id": "apple",
                "images": [good("a1.jpg"), good("a2.jpg"), url("gone.jpg", b"", status=404)],
            },
            {
                "id": "pear",
                "images": [
                    good("p1.jpg"),
                    catalog_server.url("flaky.jpg"),
                    url("notes.jpg", b"just some text, not a photo\n" * 20, "image/jpeg"),
                    url("half.jpg", truncated[: len(truncated) // 2]),
                ],
            },
            {
                "id": "plum",
                "images": [
                    good("l1.jpg"),
                    good("l2.jpg"),
                    url(
                        "huge.jpg", b"\xff\xd8" + b"\0" * (17 * 1024 * 1024)
                    ),  # over the 16 MiB limit
                    url("bomb.png", png_bomb(8200), "image/png"),  # 67 M pixels
                ],
            },
            {"id": "ghost", "images": [catalog_server.url("nothing-here.jpg")]},
            {"id": "empty", "images": []},
        ],
    }

    code, result, stderr = train(
        catalog_server, manifest, tmp_path, reference_export, monkeypatch, capsys
    )

    assert code == 0, stderr
    assert result["ok"] is True
    assert result["metrics"]["classes"] == 3
    assert result["metrics"]["images"] == 6
    assert result["metrics"]["skippedImages"] == 6
    assert result["skipped"] == {"pear": 2, "plum": 2, "apple": 1, "ghost": 1}
    assert result["productsWithoutImages"] == ["ghost", "empty"]
    assert sum(result["skipReasons"].values()) == 6  # each skip says why
    assert all(reason for reason in result["skipReasons"])
    assert set(result["timings"]) >= {
        "manifest",
        "baseModel",
        "images",
        "train",
        "export",
        "publish",
        "total",
    }
    # The token went with every request to the manifest's origin (all of them here).
    assert {auth for _, auth in catalog_server.requests} == {"Bearer tok-123"}
    assert "tok-123" not in stderr

    store = open_store((tmp_path / "store").as_uri())
    assert store.list_versions("shop-1") == ["1.0.0"]
    metadata = json.loads(store.read_file("shop-1", "1.0.0", "metadata.json"))
    assert metadata["labels"] == ["apple", "pear", "plum"]
    assert metadata["userMetadata"]["metrics"]["images"] == 6


@pytest.mark.parametrize(
    ("products", "reason"),
    [
        ([{"id": "a", "images": []}, {"id": "a", "images": []}], "duplicate product IDs: a"),
        ([{"id": "only", "images": []}], "products: List should have at least 2 items"),
    ],
)
def test_invalid_manifest_fails_with_one_line(
    catalog_server: CatalogServer,
    tmp_path: Path,
    reference_export: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    products: list[dict[str, object]],
    reason: str,
) -> None:
    manifest = {"channelId": "shop-1", "products": products}

    code, result, stderr = train(
        catalog_server, manifest, tmp_path, reference_export, monkeypatch, capsys
    )

    assert code != 0
    assert result["ok"] is False
    assert reason in result["error"]
    assert "\n" not in result["error"]
    assert stderr.strip().splitlines()[-1] == f"channelmodel train: {result['error']}"
    assert not (tmp_path / "store" / "shop-1").exists()


def test_too_few_usable_products_is_an_error_not_a_model(
    catalog_server: CatalogServer,
    tmp_path: Path,
    reference_export: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = {
        "channelId": "shop-1",
        "products": [
            {"id": "a", "images": [catalog_server.add("a.jpg", patterned_jpeg(1))]},
            {"id": "b", "images": [catalog_server.url("missing.jpg")]},
        ],
    }

    code, result, _ = train(
        catalog_server, manifest, tmp_path, reference_export, monkeypatch, capsys
    )

    assert code != 0
    assert result == {
        "ok": False,
        "error": "only 1 product(s) have usable images; a classifier needs 2",
    }


def test_manifest_for_another_channel_is_refused(
    catalog_server: CatalogServer,
    tmp_path: Path,
    reference_export: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = {"channelId": "shop-2", "products": [{"id": "a"}, {"id": "b"}]}
    code, result, _ = train(
        catalog_server, manifest, tmp_path, reference_export, monkeypatch, capsys
    )
    assert code != 0
    assert result["error"] == "manifest is for channel 'shop-2', not 'shop-1'"
