"""Non-resource endpoints: `/version`, `/api`, `/apis`, group and version discovery, OpenAPI v3."""

from __future__ import annotations

from typing import Any

from channelmodel_sandbox import openapi
from channelmodel_sandbox.apierrors import ApiError
from channelmodel_sandbox.requests import parse_api_path
from channelmodel_sandbox.resources import Registry

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-channelmodel-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _root_paths(registry: Registry) -> dict[str, Any]:
    paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/openapi/v3"}
    for group, versions in registry.groups().items():
        if group:
            paths.add(f"/apis/{group}")
            paths.update(f"/apis/{group}/{version}" for version in versions)
    return {"paths": sorted(paths)}


def document(path: str, registry: Registry, server_address: str) -> dict[str, Any]:
    """The JSON document served at a non-resource path; ApiError 404 if there is none."""
    found: dict[str, Any] | None = None
    if path == "/version":
        found = SERVER_VERSION
    elif path == "/":
        found = _root_paths(registry)
    elif path in ("/healthz", "/readyz", "/livez"):
        found = {"status": "ok"}
    elif path == "/api":
        found = {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }
    elif path == "/apis":
        found = registry.api_group_list()
    elif path == "/openapi/v3":
        found = openapi.root(registry)
    elif path.startswith("/openapi/v3/"):
        gv = parse_api_path(path.removeprefix("/openapi/v3"))
        found = openapi.group_version(registry, gv.group, gv.version) if gv else None
    elif path.startswith("/apis/") and path.count("/") == 2:
        group = registry.api_group(path.split("/")[2])
        found = {"kind": "APIGroup", "apiVersion": "v1", **group} if group else None
    else:
        gv = parse_api_path(path)
        if gv is not None and gv.plural is None:
            found = registry.api_resource_list(gv.group, gv.version)
    if found is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return found
