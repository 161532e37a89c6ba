"""Render the CustomResourceDefinition from the pydantic models.

Kubernetes wants a *structural* OpenAPI v3 schema: no `$ref`, no `anyOf` with
null, no titles. pydantic's JSON schema is rewritten into that shape here.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from channelmodel.api.models import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ChannelModelSpec,
    ChannelModelStatus,
)

_DROPPED_KEYS = {"title", "$defs"}


def _condition(type_: str, field: str) -> str:
    return f'.status.conditions[?(@.type=="{type_}")].{field}'


# `kubectl get chm`; priority 1 columns only with `-o wide`. `kubectl wait
# --for=condition=Ready chm/NAME` reads the same Ready condition.
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Channel", "type": "string", "jsonPath": ".spec.channelId"},
    {"name": "Ready", "type": "string", "jsonPath": _condition("Ready", "status")},
    {"name": "Version", "type": "string", "jsonPath": ".status.modelVersion"},
    {"name": "Status", "type": "string", "jsonPath": ".status.trainingStatus"},
    {"name": "Last Trained", "type": "date", "jsonPath": ".status.lastTrained"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "URL", "type": "string", "jsonPath": ".status.modelBaseUrl", "priority": 1,
     "description": "URL prefix of the served version's files."},
    {"name": "Accuracy", "type": "number", "jsonPath": ".status.lastRun.accuracy", "priority": 1,
     "description": "Validation accuracy of the last run that reported metrics."},
    {"name": "Images", "type": "integer", "jsonPath": ".status.lastRun.images", "priority": 1,
     "description": "Images the last run trained on."},
    {"name": "Seconds", "type": "number", "jsonPath": ".status.lastRun.seconds", "priority": 1,
     "description": "Wall time of the last run."},
    {"name": "Job", "type": "string", "jsonPath": ".status.currentJob.name", "priority": 1,
     "description": "The training Job in flight."},
    {"name": "Reason", "type": "string", "jsonPath": _condition("Training", "reason"),
     "priority": 1, "description": "Why it trains or waits (the Training condition's reason)."},
]  # fmt: skip


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        # Optional[X] is `anyOf: [X, {type: null}]`: absence already means None.
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union in a structural schema: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        merged = {**_structural(options[0], defs), **rest}
        if merged.get("default", ...) is None:
            del merged["default"]
        return _structural(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "additionalProperties" and value is False:
            continue  # Kubernetes prunes unknown fields already
        else:
            out[key] = _structural(value, defs)
    if out.get("x-kubernetes-preserve-unknown-fields") and out.get("type") == "object":
        out.pop("additionalProperties", None)
    return out


def structural_schema(model: type[BaseModel], *, mode: str = "validation") -> dict[str, Any]:
    raw = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
    return dict(_structural(raw, raw.get("$defs", {})))


def crd_manifest() -> dict[str, Any]:
    spec_schema = structural_schema(ChannelModelSpec)
    status_schema = structural_schema(ChannelModelStatus, mode="serialization")
    status_schema.pop("required", None)  # every status field is optional on the wire
    status_schema["x-kubernetes-preserve-unknown-fields"] = True  # kopf's own bookkeeping
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "channelmodel",
                "app.kubernetes.io/part-of": "channelmodel",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "One Teachable-Machine image model per shop channel, trained and served.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `channelmodel crd` from channelmodel.api.models: do not edit by hand.\n"


def render_crd_yaml(*, keep: bool = False) -> str:
    """The CRD as YAML; `keep` adds `helm.sh/resource-policy: keep` (the CRD chart's copy,
    a template Helm upgrades but never deletes on uninstall)."""
    manifest = crd_manifest()
    if keep:
        manifest["metadata"]["annotations"] = {"helm.sh/resource-policy": "keep"}
    return HEADER + yaml.safe_dump(manifest, sort_keys=False, width=1000)
