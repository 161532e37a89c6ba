"""A minimal OpenAPI v3 discovery, enough for `kubectl apply` with its default validation.

kubectl checks in `/openapi/v3/<group-version>` whether a resource's PATCH
accepts the `fieldValidation` query parameter; when it does, validation is left
to the server (the emulator's CRD admission, `fieldValidation=Strict`) and no
OpenAPI v2 document is needed. CRD schemas are included as components so that
`kubectl explain` has something to show.
"""

from __future__ import annotations

from typing import Any

from channelmodel_sandbox.resources import Registry, ResourceType

_QUERY_PARAMS = ("fieldValidation", "dryRun", "fieldManager", "force")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}"}
    return {"paths": paths}


def _schema_name(rtype: ResourceType) -> str:
    reversed_group = (
        ".".join(reversed(rtype.group.split("."))) if rtype.group else "io.k8s.api.core"
    )
    return f"{reversed_group}.{rtype.version}.{rtype.kind}"


def group_version(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = [rtype for rtype in registry if rtype.group == group and rtype.version == version]
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rtype in types:
        gvk = {"group": group, "version": version, "kind": rtype.kind}
        prefix = f"/{_gv_path(group, version)}"
        if rtype.namespaced:
            prefix += "/namespaces/{namespace}"
        parameters = [
            {"name": name, "in": "query", "schema": {"type": "string"}} for name in _QUERY_PARAMS
        ]
        operation = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": parameters,
            "responses": {"200": {"description": "OK"}},
        }
        paths[f"{prefix}/{rtype.plural}/{{name}}"] = {"patch": operation, "put": operation}
        paths[f"{prefix}/{rtype.plural}"] = {"post": operation}
        if rtype.schema is not None:
            schemas[_schema_name(rtype)] = {
                **rtype.schema.schema,
                "x-kubernetes-group-version-kind": [gvk],
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes API emulator", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
