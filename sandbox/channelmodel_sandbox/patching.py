"""The patch flavours of the Kubernetes API, chosen by Content-Type.

JSON merge patch (RFC 7386) is what kopf, `kubectl annotate` and `kubectl apply`
send for custom resources. Strategic merge patch is read as a merge patch,
except that lists merge by their conventional key (`name` for containers,
env and volumes, `type` for conditions, `uid` for ownerReferences), which is
what clients rely on in practice. JSON patch (RFC 6902) is applied with the
`jsonpatch` library.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
SUPPORTED = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
}
_SET_LISTS = {"finalizers"}


class PatchError(ValueError):
    """A patch that cannot be applied (kube-apiserver answers 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _strategic_list(key: str, target: Any, patch: list[Any]) -> list[Any]:
    if key in _SET_LISTS and isinstance(target, list):
        return [*target, *(item for item in patch if item not in target)]
    merge_key = _MERGE_KEYS.get(key)
    if (
        not merge_key
        or not isinstance(target, list)
        or not all(isinstance(item, dict) for item in patch)
    ):
        return copy.deepcopy(patch)
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        if item.get("$patch") == "delete":
            result = [old for old in result if old.get(merge_key) != item.get(merge_key)]
            continue
        for index, old in enumerate(result):
            if isinstance(old, dict) and old.get(merge_key) == item.get(merge_key):
                result[index] = strategic_merge_patch(old, item)
                break
        else:
            result.append(copy.deepcopy(item))
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _strategic_list(key, result.get(key), value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def apply_patch(target: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """Apply a patch body of the given Content-Type; the target is not modified."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == JSON_PATCH:
        if not isinstance(patch, list):
            raise PatchError("a JSON patch must be a list of operations")
        try:
            result = jsonpatch.apply_patch(target, patch, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise PatchError(str(error)) from error
    elif kind == STRATEGIC_MERGE_PATCH:
        result = strategic_merge_patch(target, patch)
    elif kind == MERGE_PATCH:
        result = merge_patch(target, patch)
    else:
        raise PatchError(f"unsupported patch type {content_type!r}")
    if not isinstance(result, dict):
        raise PatchError("the patched object is not a JSON object")
    return result
