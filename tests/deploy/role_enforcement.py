"""A Kubernetes client held to a rendered Role, as the API server's RBAC authorizer
would hold it: a request the Role does not grant fails with 403 before it is sent.

The emulator grants everything; this is how a test finds out whether the rules the
chart renders are enough for the code (no 403 it cannot handle) and no more than it
uses (every rule exercised).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes
from kubernetes.client.exceptions import ForbiddenException

from channelmodel_sandbox.requests import parse_api_path, verb_of
from tests.deploy.chart_render import Manifest

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)


@dataclass(frozen=True)
class Attempt:
    """One resource request the client made (or was refused)."""

    grant: Grant
    namespace: str | None
    name: str | None
    allowed: bool


def role_allows(role: Manifest, attempt: Attempt) -> bool:
    """RBAC's rule matching for a namespaced Role (no wildcards: the chart renders none)."""
    if attempt.namespace != role["metadata"]["namespace"]:
        return False
    group, resource, verb = attempt.grant
    return any(
        group in rule["apiGroups"]
        and resource in rule["resources"]
        and verb in rule["verbs"]
        and ("resourceNames" not in rule or attempt.name in rule["resourceNames"])
        for rule in role["rules"]
    )


def enforcing_client(
    kubeconfig: Path, role: Manifest
) -> tuple[kubernetes.client.ApiClient, list[Attempt]]:
    """A client for the cluster in `kubeconfig` allowed exactly what `role` grants,
    and the log of every resource request it attempted."""
    api_client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    attempts: list[Attempt] = []
    rest = api_client.rest_client
    send = rest.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        api = parse_api_path(parts.path)
        if api is not None and api.plural:
            watch = parse_qs(parts.query).get("watch", [""])[0] in ("true", "1")
            resource = f"{api.plural}/{api.subresource}" if api.subresource else api.plural
            attempt = Attempt(
                grant=(api.group, resource, verb_of(method, api, watch)),
                namespace=api.namespace,
                name=api.name,
                allowed=False,
            )
            attempt = replace(attempt, allowed=role_allows(role, attempt))
            attempts.append(attempt)
            if not attempt.allowed:
                raise ForbiddenException(status=403, reason="Forbidden")
        return send(method, url, *args, **kwargs)

    rest.request = request
    return api_client, attempts
