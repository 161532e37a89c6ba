"""How the emulator reads a request URL and records what it served."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiPath:
    """A parsed `/api/...` or `/apis/...` URL."""

    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


def parse_api_path(path: str) -> ApiPath | None:
    """Split a resource URL; None for non-resource paths (`/version`, `/openapi/v2`, ...).

    `/api/v1/namespaces/x` is the Namespace `x`, `/api/v1/namespaces/x/pods` the
    pods in it: the same ambiguity kube-apiserver resolves the same way.
    """
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace: str | None = None
    is_namespace_object = (
        group == ""
        and rest[:1] == ["namespaces"]
        and (len(rest) <= 2 or (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES))
    )
    if rest[:1] == ["namespaces"] and len(rest) >= 3 and not is_namespace_object:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return ApiPath(group, version, plural, namespace, name, subresource)


def verb_of(method: str, api: ApiPath, watch: bool) -> str:
    """The Kubernetes verb (as in RBAC and audit logs) of a resource request."""
    method = method.upper()
    if method == "GET":
        if watch:
            return "watch"
        return "get" if api.name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if api.name else "deletecollection"
    return method.lower()


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class RequestRecord:
    """One served request, for request counting in tests and benchmarks."""

    seq: int  # 0, 1, 2, ... in arrival order; survives the log's trimming
    method: str
    path: str
    verb: str | None
    resource: str | None  # "plural.group" or "plural" for core, with "/subresource"
    namespace: str | None
    name: str | None
    user_agent: str
    status: int = 0

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS
