"""What the emulated API server serves: built-in resources and registered CRDs.

Built-in resources come from kmock's bundled discovery data (taken from a real
K3s cluster); a CustomResourceDefinition adds its served versions, with the
schema used for admission and the printer columns used for `kubectl get`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kmock

from channelmodel_sandbox.schema import CustomResourceSchema

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")

# Subresource verbs as discovery reports them.
_SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"]}


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA > beta > alpha, then the higher number first."""
    match = _VERSION_RE.match(version)
    if not match:
        return (-1, 0, 0)
    major, stage, minor = match.groups()
    stage_rank = {"alpha": 0, "beta": 1, None: 2}[stage]
    return (stage_rank, int(major), int(minor or 0))


@dataclass
class ResourceType:
    """One group/version/plural with what the server needs to know about it."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    verbs: list[str]
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    subresources: set[str] = field(default_factory=set)
    schema: CustomResourceSchema | None = None
    status_schema: CustomResourceSchema | None = None
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    crd_name: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`channelmodels.ml.dukarun.io`, as error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def discovery_entries(self) -> Iterator[dict[str, Any]]:
        yield {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
            **({"shortNames": self.short_names} if self.short_names else {}),
            **({"categories": self.categories} if self.categories else {}),
        }
        for sub in sorted(self.subresources):
            yield {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
            }


def builtin_types() -> list[ResourceType]:
    """Built-in resources from kmock's bundled discovery snapshot."""
    bundled = kmock.ResourcesArray()
    bundled.load_bundled()
    types: list[ResourceType] = []
    for resource in bundled:
        info = bundled[resource]
        types.append(
            ResourceType(
                group=resource.group or "",
                version=resource.version or "",
                plural=resource.plural or "",
                kind=info.kind or (resource.plural or "").capitalize(),
                singular=info.singular or (info.kind or "").lower(),
                namespaced=bool(info.namespaced),
                verbs=sorted(info.verbs),
                short_names=sorted(info.shortnames),
                categories=sorted(info.categories),
                subresources=set(info.subresources),
            )
        )
    return types


def crd_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The served versions of an apiextensions.k8s.io/v1 CustomResourceDefinition."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    types: list[ResourceType] = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        schema = version.get("schema", {}).get("openAPIV3Schema")
        subresources = set(version.get("subresources", {}) or {})
        status_schema = None
        if schema is not None and "status" in schema.get("properties", {}):
            status_schema = CustomResourceSchema(
                {"type": "object", "properties": {"status": schema["properties"]["status"]}}
            )
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                verbs=[
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ],
                short_names=list(names.get("shortNames", [])),
                categories=list(names.get("categories", [])),
                subresources=subresources,
                schema=CustomResourceSchema(schema) if schema is not None else None,
                status_schema=status_schema,
                printer_columns=list(version.get("additionalPrinterColumns", [])),
                crd_name=crd.get("metadata", {}).get("name"),
            )
        )
    return types


class Registry:
    """Resource types by group/version/plural, with discovery documents."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}

    def add(self, rtype: ResourceType) -> None:
        self._types[rtype.key] = rtype

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        removed = [rtype for rtype in self._types.values() if rtype.crd_name == crd_name]
        for rtype in removed:
            del self._types[rtype.key]
        return removed

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rtype in self._types.values():
            if rtype.api_version == api_version and rtype.kind == kind:
                return rtype
        return None

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def groups(self) -> dict[str, list[str]]:
        """Group name -> versions, preferred version first."""
        found: dict[str, set[str]] = {}
        for rtype in self._types.values():
            found.setdefault(rtype.group, set()).add(rtype.version)
        return {
            group: sorted(versions, key=version_priority, reverse=True)
            for group, versions in found.items()
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.groups().get(group)
        if not versions or not group:
            return None
        entries = [
            {"groupVersion": f"{group}/{version}", "version": version} for version in versions
        ]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def api_group_list(self) -> dict[str, Any]:
        groups = [self.api_group(group) for group in sorted(self.groups()) if group]
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [group for group in groups if group],
        }

    def api_resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = [
            rtype
            for rtype in self._types.values()
            if rtype.group == group and rtype.version == version
        ]
        if not types:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [
                entry
                for rtype in sorted(types, key=lambda t: t.plural)
                for entry in rtype.discovery_entries()
            ],
        }
