"""Server-side `Table` output (`kubectl get`), from a CRD's additionalPrinterColumns."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from channelmodel_sandbox.resources import ResourceType

_STEP = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]"
)


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def json_path(obj: Any, path: str) -> Any:
    """The JSONPaths printer columns use: `.spec.channelId`, `.status.versions[0].version`,
    `.status.conditions[?(@.type=="Ready")].status` (the first match of a filter)."""
    node = obj
    for field, index, key, value in _STEP.findall(path.strip().strip("{}")):
        if field:
            node = node.get(field) if isinstance(node, dict) else None
        elif key:
            items = node if isinstance(node, list) else []
            node = next((i for i in items if isinstance(i, dict) and i.get(key) == value), None)
        else:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        if node is None:
            return None
    return node


def human_duration(seconds: float) -> str:
    """Like apimachinery's duration.HumanDuration, which kubectl shows in AGE columns."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _cell(value: Any, column_type: str) -> Any:
    if value is None:
        return "<none>" if column_type != "date" else "<unknown>"
    if column_type == "date" and isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return human_duration((datetime.now(UTC) - when).total_seconds())
    return value


def table(
    rtype: ResourceType, items: list[dict[str, Any]], resource_version: int
) -> dict[str, Any]:
    columns = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name of the object",
            "priority": 0,
        }
    ]
    paths: list[tuple[str, str]] = []
    printer = rtype.printer_columns or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]
    for column in printer:
        columns.append(
            {
                "name": column["name"],
                "type": column.get("type", "string"),
                "format": column.get("format", ""),
                "description": column.get("description", ""),
                "priority": column.get("priority", 0),
            }
        )
        paths.append((column["jsonPath"], column.get("type", "string")))
    rows = []
    for obj in items:
        meta = obj.get("metadata", {})
        cells = [meta.get("name")] + [_cell(json_path(obj, path), kind) for path, kind in paths]
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": columns,
        "rows": rows,
    }
