"""Custom-resource admission against the ChannelModel CRD's schema, without a server."""

from __future__ import annotations

from typing import Any

from channelmodel.api.crd import crd_manifest
from channelmodel_sandbox.schema import CustomResourceSchema, unsupported_rules

SCHEMA = CustomResourceSchema(crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
SPEC = {"channelId": "shop-a", "manifest": {"url": "http://backend.test/m.json"}}


def obj(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ml.dukarun.io/v1alpha1",
        "kind": "ChannelModel",
        "metadata": {"name": "x"},
        "spec": {**SPEC, **spec},
    }


def test_defaults_fill_missing_fields_but_keep_given_ones() -> None:
    admitted = SCHEMA.admit(obj(training={"epochs": 5})).obj["spec"]
    assert admitted["training"]["epochs"] == 5
    assert admitted["training"]["backoffLimit"] == 1
    assert admitted["retainVersions"] == 5
    assert "notify" not in admitted  # optional objects without a default stay absent


def test_metadata_is_never_pruned_or_validated() -> None:
    admitted = SCHEMA.admit({**obj(), "metadata": {"name": "x", "labels": {"a": "b"}}}).obj
    assert admitted["metadata"] == {"name": "x", "labels": {"a": "b"}}


def test_error_messages_name_field_and_value() -> None:
    errors = SCHEMA.admit(obj(channelId="bad id", debounceSeconds=-1, autoRetrain="yes")).errors
    messages = {error.field: error.message for error in errors}
    assert messages["spec.channelId"].startswith(
        'spec.channelId: Invalid value: "bad id": spec.channelId in body should match'
    )
    assert messages["spec.debounceSeconds"] == (
        "spec.debounceSeconds: Invalid value: -1: spec.debounceSeconds in body should be greater than or equal to 0"
    )
    assert messages["spec.autoRetrain"] == (
        'spec.autoRetrain: Invalid value: "string": spec.autoRetrain in body must be of type boolean: "string"'
    )


def test_nulls_are_dropped_before_defaulting() -> None:
    admitted = SCHEMA.admit(obj(debounceSeconds=None)).obj["spec"]
    assert admitted["debounceSeconds"] == 60


def test_immutability_rule_applies_only_to_changes() -> None:
    old = SCHEMA.admit(obj()).obj
    assert SCHEMA.admit(obj(minAccuracy=0.5), old).errors == []
    [error] = SCHEMA.admit(obj(channelId="other"), old).errors
    assert error.message == 'spec.channelId: Invalid value: "string": channelId is immutable'
    assert error.cause()["message"] == 'Invalid value: "string": channelId is immutable'


def test_the_crd_uses_no_cel_rule_the_emulator_cannot_evaluate() -> None:
    assert unsupported_rules(SCHEMA.schema) == []
