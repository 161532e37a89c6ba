"""Validate a ChannelModel object against the CRD's openAPIV3Schema, offline.

Used by tests on `examples/`, by the API emulator (which, like the real API
server, rejects what the schema rejects) and by `channelmodel dev`. Messages
name the field the way `kubectl` does: `spec.channelId: ...`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from channelmodel.api.crd import crd_manifest


def openapi_schema(crd: Mapping[str, Any] | None = None) -> dict[str, Any]:
    crd = crd or crd_manifest()
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _to_jsonschema(node: Any) -> Any:
    """OpenAPI's structural schema is JSON Schema minus a few Kubernetes extensions."""
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
    elif out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False  # the API server prunes; we reject, so typos are seen
    return out


def schema_errors(obj: Mapping[str, Any], crd: Mapping[str, Any] | None = None) -> list[str]:
    """Human-readable schema violations of a ChannelModel object; empty when valid."""
    schema = _to_jsonschema(openapi_schema(crd))
    # metadata and status are validated by the API server itself / written by us
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["status"] = {"type": "object"}
    validator = jsonschema.Draft7Validator(schema)
    messages = []
    for error in sorted(validator.iter_errors(dict(obj)), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "<root>"
        messages.append(f"{path}: {_explain(error)}")
    return messages


def _explain(error: jsonschema.ValidationError) -> str:
    if error.validator == "pattern":
        return f"Invalid value: {error.instance!r}: should match {error.validator_value!r}"
    if error.validator == "enum":
        supported = ", ".join(repr(v) for v in list(error.validator_value or []))  # type: ignore[arg-type]
        return f"Unsupported value: {error.instance!r}: supported values: {supported}"
    if error.validator == "required":
        return f"Required value: {error.message.split(' is a required')[0]} is required"
    if error.validator in ("minimum", "maximum"):
        word = (
            "greater than or equal to" if error.validator == "minimum" else "less than or equal to"
        )
        return f"Invalid value: {error.instance!r}: should be {word} {error.validator_value}"
    if error.validator == "additionalProperties":
        return f"Unknown field: {error.message}"
    if error.validator == "type":
        return f"Invalid value: {error.instance!r}: must be of type {error.validator_value}"
    return error.message
