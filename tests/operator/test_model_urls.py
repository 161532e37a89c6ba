"""One URL scheme: what the operator writes to status.modelBaseUrl is what the server routes."""

from __future__ import annotations

import pytest
from aiohttp import web

from channelmodel import model_urls, versions
from channelmodel.settings import OperatorSettings


def test_the_operators_url_is_a_route_of_the_server() -> None:
    settings = OperatorSettings(public_base_url="https://models.example/cdn/")
    base = settings.model_base_url("shop-1", "1.0.12")
    assert base == "https://models.example/cdn/assets/ml-models/shop-1/v1.0.12/"

    router = web.UrlDispatcher()
    resource = router.add_resource(model_urls.ROUTE_MODEL_FILE)
    path = base.removeprefix("https://models.example/cdn") + "model.json"
    match = resource._match(path)
    assert match == {"channel": "shop-1", "version": "v1.0.12", "name": "model.json"}
    assert model_urls.parse_version_segment(match["version"]) == "1.0.12"
    latest = router.add_resource(model_urls.ROUTE_LATEST)._match(
        f"{model_urls.ASSET_PREFIX}/shop-1/latest.json"
    )
    assert latest == {"channel": "shop-1"}


@pytest.mark.parametrize("segment", ["1.0.0", "v1.0", "v01.0.0", "v1.0.0.0", "V1.0.0", "v", ""])
def test_anything_but_v_and_a_version_is_not_a_version_segment(segment: str) -> None:
    assert model_urls.parse_version_segment(segment) is None


def test_versions_have_one_grammar() -> None:
    assert versions.parse("1.0.10") > versions.parse("1.0.9")
    assert versions.next_version(None) == "1.0.0" and versions.next_version("2.3.9") == "2.3.10"
    for bad in ("1.0", "01.0.0", "1.0.0-rc1", " 1.0.0", ""):
        assert not versions.is_version(bad)
        with pytest.raises(ValueError, match="must be semver"):
            versions.parse(bad)
