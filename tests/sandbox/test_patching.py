"""Patch flavours of the Kubernetes API."""

from __future__ import annotations

import pytest

from channelmodel_sandbox.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
)

OBJ = {
    "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {"containers": [{"name": "main", "image": "v1", "env": [{"name": "A", "value": "1"}]}]},
}


def test_merge_patch_merges_objects_deletes_nulls_and_replaces_lists() -> None:
    result = apply_patch(
        OBJ, {"metadata": {"labels": {"a": None, "c": "3"}, "finalizers": ["y"]}}, MERGE_PATCH
    )
    assert result["metadata"] == {"labels": {"b": "2", "c": "3"}, "finalizers": ["y"]}
    assert OBJ["metadata"]["labels"] == {"a": "1", "b": "2"}  # the target is untouched


def test_strategic_merge_patch_merges_lists_by_key() -> None:
    patch = {
        "spec": {"containers": [{"name": "main", "image": "v2"}, {"name": "side", "image": "s"}]},
        "metadata": {"finalizers": ["y"]},
    }
    result = apply_patch(OBJ, patch, STRATEGIC_MERGE_PATCH + "; charset=utf-8")
    assert result["spec"]["containers"] == [
        {"name": "main", "image": "v2", "env": [{"name": "A", "value": "1"}]},
        {"name": "side", "image": "s"},
    ]
    assert result["metadata"]["finalizers"] == ["x", "y"]


def test_json_patch_applies_operations_and_fails_on_a_failed_test() -> None:
    ops = [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "remove", "path": "/metadata/finalizers"},
    ]
    assert "finalizers" not in apply_patch(OBJ, ops, JSON_PATCH)["metadata"]
    with pytest.raises(PatchError):
        apply_patch(OBJ, [{"op": "test", "path": "/metadata/labels/a", "value": "2"}], JSON_PATCH)


def test_unsupported_patch_type_is_an_error() -> None:
    with pytest.raises(PatchError, match="unsupported patch type"):
        apply_patch(OBJ, {}, "application/apply-patch+yaml")
