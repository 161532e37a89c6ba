"""Manifest fetching and validation: clear errors for bad input, token handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channelmodel_trainer.errors import ManifestError
from channelmodel_trainer.manifest import load_manifest, origin, redact
from tests.trainer.trainer_testlib import CatalogServer


def write_manifest(folder: Path, data: object) -> Path:
    path = folder / "manifest.json"
    path.write_text(json.dumps(data))
    return path


def products(*ids: str) -> list[dict[str, object]]:
    return [{"id": product_id, "images": [f"{product_id}.jpg"]} for product_id in ids]


def test_local_manifest_resolves_relative_images_against_its_folder(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, {"channelId": "c1", "products": products("a", "b")})

    loaded = load_manifest(str(path))
    refs, rejected = loaded.image_refs()

    assert loaded.manifest.channel_id == "c1"
    assert [(ref.product_id, ref.location, ref.is_url) for ref in refs] == [
        ("a", str(tmp_path / "a.jpg"), False),
        ("b", str(tmp_path / "b.jpg"), False),
    ]
    assert rejected == {}
    assert loaded.token_origin is None


def test_file_url_is_local_mode(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, {"channelId": "c1", "products": products("a", "b")})
    assert load_manifest(path.as_uri()).local_root == tmp_path


def test_numeric_ids_become_text_labels(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path, {"channelId": 7, "products": [{"id": 1, "images": []}, {"id": 2}]}
    )
    manifest = load_manifest(str(path)).manifest
    assert manifest.channel_id == "7"
    assert [p.id for p in manifest.products] == ["1", "2"]


def test_a_stated_hash_is_kept_in_lower_case_with_the_group(tmp_path: Path) -> None:
    digest = "AB" * 32
    path = write_manifest(
        tmp_path,
        {
            "channelId": "c1",
            "products": [
                {"id": "a", "images": [{"url": "a.jpg", "sha256": digest, "group": "g"}]},
                {"id": "b", "images": ["b.jpg"]},
            ],
        },
    )

    refs, _ = load_manifest(str(path)).image_refs()

    assert [(ref.sha256, ref.group) for ref in refs] == [("ab" * 32, "group:g"), (None, None)]


@pytest.mark.parametrize("digest", ["abc", "g" * 64, "a" * 65, 12])
def test_a_stated_hash_that_is_not_64_hex_digits_is_refused(tmp_path: Path, digest: object) -> None:
    data = {"channelId": "c1", "products": products("a", "b")}
    data["products"][0]["images"] = [{"url": "a.jpg", "sha256": digest}]  # type: ignore[index]
    path = write_manifest(tmp_path, data)
    with pytest.raises(ManifestError, match=r"products\.0\.images\.0\..*sha256"):
        load_manifest(str(path))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"channelId": "c1", "products": products("a", "b", "a")}, "duplicate product IDs: a"),
        ({"channelId": "c1", "products": products("only")}, "at least 2 items"),
        ({"channelId": "c1", "products": []}, "at least 2 items"),
        ({"channelId": "-bad", "products": products("a", "b")}, "channelId"),
        ({"products": products("a", "b")}, "channelId: Field required"),
        ({"channelId": "c1", "products": [{"id": "", "images": []}, {"id": "b"}]}, "products.0.id"),
        ([1, 2], "Input should be a valid dictionary"),
    ],
)
def test_invalid_manifest_is_a_clear_one_line_error(
    tmp_path: Path, data: object, message: str
) -> None:
    path = write_manifest(tmp_path, data)
    with pytest.raises(ManifestError, match="invalid manifest") as caught:
        load_manifest(str(path))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_counts_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from channelmodel_trainer import manifest as manifest_module

    monkeypatch.setattr(manifest_module, "MAX_IMAGES", 3)
    path = write_manifest(
        tmp_path,
        {
            "channelId": "c1",
            "products": [{"id": "a", "images": ["1", "2"]}, {"id": "b", "images": ["3", "4"]}],
        },
    )
    with pytest.raises(ManifestError, match="4 images is more than 3"):
        load_manifest(str(path))
    too_many = {"channelId": "c1", "products": [{"id": "a", "images": ["x"] * 501}, {"id": "b"}]}
    with pytest.raises(
        ManifestError, match=r"products\.0\.images: List should have at most 500 items"
    ):
        load_manifest(str(write_manifest(tmp_path, too_many)))


def test_not_json_and_missing_file_are_errors(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ManifestError, match="is not JSON"):
        load_manifest(str(tmp_path / "broken.json"))
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(str(tmp_path / "absent.json"))


def test_unsupported_scheme_is_refused() -> None:
    with pytest.raises(ManifestError, match="unsupported manifest location scheme 'ftp'"):
        load_manifest("ftp://shop.example/manifest.json")


def test_http_manifest_sends_token_and_keeps_only_http_images(
    catalog_server: CatalogServer,
) -> None:
    manifest = {
        "channelId": "c1",
        "products": [
            {
                "id": "a",
                "images": ["https://cdn.example/a.jpg", "img/a2.jpg", "file:///etc/passwd"],
            },
            {"id": "b", "images": ["data:image/png;base64,AAAA"]},
        ],
    }
    url = catalog_server.add(
        "shop/manifest.json", json.dumps(manifest).encode(), "application/json"
    )

    loaded = load_manifest(url + "?page=1", token="s3cret")
    refs, rejected = loaded.image_refs()

    assert catalog_server.requests == [("/shop/manifest.json", "Bearer s3cret")]
    assert [ref.location for ref in refs] == [
        "https://cdn.example/a.jpg",
        catalog_server.url("shop/img/a2.jpg"),
    ]
    assert all(ref.is_url for ref in refs)
    # A remote manifest may never make the trainer read local files.
    assert rejected == {"a": 1, "b": 1}
    assert loaded.token_origin == origin(catalog_server.base_url)


def test_http_manifest_error_status_names_the_url_without_secrets(
    catalog_server: CatalogServer,
) -> None:
    with pytest.raises(ManifestError, match=r"answered HTTP 404") as caught:
        load_manifest(catalog_server.url("missing.json?sig=SECRET"), token="s3cret")
    assert "SECRET" not in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_origin_and_redact() -> None:
    assert origin("HTTPS://Shop.Example/x") == "https://shop.example:443"
    assert origin("http://shop.example:8080/x") == "http://shop.example:8080"
    assert (
        redact("https://user:pw@shop.example:8443/a/b?token=1#f") == "https://shop.example:8443/a/b"
    )
