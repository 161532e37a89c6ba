"""RBAC as rendered: enumerate every granted (apiGroup, resource, verb) and hold
it against least privilege (docs/decisions/0004-rbac-and-chart.md)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.deploy.cases import COMPAT, COMPAT_CREATE, S3
from tests.deploy.chart_render import NAMESPACE, Manifest, Values, deployment, render, select

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

# What the operator may do in a namespace it serves: nothing else. No `update`
# (kopf patches) and no pods/log (issue 12: granted, never used).
SECRET_GRANTS: set[Grant] = {("", "secrets", "get")}
OBJECT_GRANTS: set[Grant] = {
    *{("ml.dukarun.io", "channelmodels", v) for v in ("get", "list", "watch", "patch")},
    *{("ml.dukarun.io", "channelmodels/status", v) for v in ("get", "patch")},
    # blockOwnerDeletion on the Jobs' ownerReferences needs update on finalizers.
    ("ml.dukarun.io", "channelmodels/finalizers", "update"),
    *{("batch", "jobs", v) for v in ("get", "list", "watch", "create", "delete")},
    *{("", "pods", v) for v in ("get", "list", "watch")},
    *{(group, "events", v) for group in ("", "events.k8s.io") for v in ("create", "patch")},
}
NAMESPACED_GRANTS: set[Grant] = OBJECT_GRANTS | SECRET_GRANTS
# Cluster-wide mode adds read access to CRDs only (kopf re-scans resources on CRD changes).
CLUSTER_ONLY_GRANTS: set[Grant] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")
}
RBAC_KINDS = ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
# The model server's compatibility API (server.compat, channelmodel/compat/channels.py):
# find a channel's ChannelModel (list), follow a job (get), request a retrain (patch).
COMPAT_GRANTS: set[Grant] = {
    ("ml.dukarun.io", "channelmodels", v) for v in ("get", "list", "patch")
}
# createChannelModels: create the ChannelModel and then its manifest-token Secret (get
# and patch on a clash or a rotated token). Never delete (issue 12).
COMPAT_CREATE_GRANTS: set[Grant] = {
    *COMPAT_GRANTS,
    ("ml.dukarun.io", "channelmodels", "create"),
    *{("", "secrets", v) for v in ("create", "get", "patch")},
}


def grants(role: Manifest) -> set[Grant]:
    found: set[Grant] = set()
    for rule in role["rules"]:
        assert "resourceNames" not in rule or rule["resourceNames"], (
            "empty resourceNames grants everything"
        )
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), (
                        f"wildcard in {role['metadata']['name']}: {rule}"
                    )
                    found.add((group, resource, verb))
    return found


def operator_service_account(objects: Iterable[Manifest]) -> tuple[str, str]:
    pod = deployment(objects, "operator")["spec"]["template"]["spec"]
    return pod["serviceAccountName"], NAMESPACE


def bound_subjects(binding: Manifest) -> set[tuple[str, str]]:
    return {
        (s["name"], s["namespace"]) for s in binding["subjects"] if s["kind"] == "ServiceAccount"
    }


def server_service_account(objects: Iterable[Manifest]) -> tuple[str, str]:
    pod = deployment(objects, "server")["spec"]["template"]["spec"]
    return pod["serviceAccountName"], NAMESPACE


def bindings_of(objects: list[Manifest], subject: tuple[str, str]) -> list[Manifest]:
    return [
        binding
        for binding in select(objects, "RoleBinding") + select(objects, "ClusterRoleBinding")
        if subject in bound_subjects(binding)
    ]


def bound_role(objects: list[Manifest], binding: Manifest) -> Manifest:
    ref = binding["roleRef"]
    (role,) = [
        role
        for role in select(objects, ref["kind"], ref["name"])
        if ref["kind"] == "ClusterRole"
        or role["metadata"]["namespace"] == binding["metadata"]["namespace"]
    ]
    return role


@pytest.mark.parametrize(
    ("overrides", "namespaces"),
    [
        ({}, {NAMESPACE}),
        ({"watch": {"namespaces": ["shop-a", "shop-b"]}, "store": S3}, {"shop-a", "shop-b"}),
    ],
    ids=["release-namespace", "listed-namespaces"],
)
def test_namespaced_mode_grants_nothing_cluster_wide(
    overrides: dict[str, object], namespaces: set[str], tmp_path: Path
) -> None:
    objects = render(Values("namespaced", overrides), tmp_path)
    assert select(objects, "ClusterRole") == []
    assert select(objects, "ClusterRoleBinding") == []
    roles = select(objects, "Role")
    bindings = select(objects, "RoleBinding")
    assert {r["metadata"]["namespace"] for r in roles} == namespaces
    assert {b["metadata"]["namespace"] for b in bindings} == namespaces
    subject = operator_service_account(objects)
    for role in roles:
        granted = grants(role)
        assert granted == NAMESPACED_GRANTS, (
            f"unexpected: {granted - NAMESPACED_GRANTS}, missing: {NAMESPACED_GRANTS - granted}"
        )
        assert not {verb for group, resource, verb in granted if resource == "secrets"} & {
            "list",
            "watch",
        }
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert bound_subjects(binding) == {subject}
        role_names = {
            r["metadata"]["name"]
            for r in roles
            if r["metadata"]["namespace"] == binding["metadata"]["namespace"]
        }
        assert binding["roleRef"]["name"] in role_names
    # The operator watches exactly the namespaces it has Roles in.
    env = {
        e["name"]: e.get("value")
        for e in deployment(objects, "operator")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert set(env["CHANNELMODEL_NAMESPACES"].split(",")) == namespaces


def test_cluster_wide_mode_adds_only_crd_reads_and_reads_secrets_only_where_named(
    tmp_path: Path,
) -> None:
    overrides = {"watch": {"clusterWide": True, "namespaces": ["shop-a"]}, "store": S3}
    objects = render(Values("cluster", overrides), tmp_path)
    (role,) = select(objects, "ClusterRole")
    (binding,) = select(objects, "ClusterRoleBinding")
    assert grants(role) == OBJECT_GRANTS | CLUSTER_ONLY_GRANTS
    # Issue 12: no Secret of the whole cluster, only in the namespaces the chart names.
    secret_roles = select(objects, "Role")
    assert {r["metadata"]["namespace"] for r in secret_roles} == {NAMESPACE, "shop-a"}
    assert all(grants(r) == SECRET_GRANTS for r in secret_roles)
    subject = operator_service_account(objects)
    secret_bindings = select(objects, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in secret_bindings} == {NAMESPACE, "shop-a"}
    assert all(bound_subjects(b) == {subject} for b in secret_bindings)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert bound_subjects(binding) == {operator_service_account(objects)}
    # Cluster-scoped names carry the namespace: two releases in two namespaces never collide.
    assert NAMESPACE in role["metadata"]["name"]
    env = {
        e["name"]: e.get("value")
        for e in deployment(objects, "operator")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CHANNELMODEL_NAMESPACES"] == ""


@pytest.mark.parametrize(
    "overrides",
    [{}, {"watch": {"clusterWide": True, "namespaces": ["shop-a"]}, "store": S3}],
    ids=["namespaced", "cluster-wide"],
)
def test_trainer_service_account_has_no_token_and_no_rights(
    overrides: dict[str, object], tmp_path: Path
) -> None:
    objects = render(Values("trainer", overrides), tmp_path)
    trainers = [
        sa
        for sa in select(objects, "ServiceAccount")
        if sa["metadata"]["labels"]["app.kubernetes.io/component"] == "trainer"
    ]
    assert trainers
    operator_env = {
        e["name"]: e.get("value")
        for e in deployment(objects, "operator")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    for account in trainers:
        assert account["automountServiceAccountToken"] is False
        assert account["metadata"]["name"] == operator_env["CHANNELMODEL_TRAINER_SERVICE_ACCOUNT"]
    trainer_names = {(sa["metadata"]["name"], sa["metadata"]["namespace"]) for sa in trainers}
    for binding in select(objects, "RoleBinding") + select(objects, "ClusterRoleBinding"):
        assert not bound_subjects(binding) & trainer_names


@pytest.mark.parametrize(
    "overrides",
    [{}, {"server": {"compat": {**COMPAT_CREATE, "enabled": False}}}],
    ids=["defaults", "compat-configured-but-off"],
)
def test_only_the_operator_gets_a_token(overrides: dict[str, object], tmp_path: Path) -> None:
    objects = render(Values("token", overrides), tmp_path)
    server_pod = deployment(objects, "server")["spec"]["template"]["spec"]
    assert server_pod["automountServiceAccountToken"] is False
    server_accounts = select(objects, "ServiceAccount", server_pod["serviceAccountName"])
    assert [sa["automountServiceAccountToken"] for sa in server_accounts] == [False]
    assert bindings_of(objects, server_service_account(objects)) == []
    kinds = {o["kind"] for o in objects}
    assert kinds & set(RBAC_KINDS) == {"Role", "RoleBinding"}
    # Every Role there is is the operator's.
    assert {b["roleRef"]["name"] for b in select(objects, "RoleBinding")} == {
        r["metadata"]["name"] for r in select(objects, "Role")
    }
    assert all(
        bound_subjects(b) == {operator_service_account(objects)}
        for b in select(objects, "RoleBinding")
    )


@pytest.mark.parametrize(
    ("overrides", "namespace", "expected"),
    [
        ({"server": {"compat": COMPAT}}, NAMESPACE, COMPAT_GRANTS),
        (
            {"server": {"compat": {**COMPAT, "createChannelModels": True}}},
            NAMESPACE,
            COMPAT_CREATE_GRANTS,
        ),
        (
            {
                "watch": {"namespaces": ["shop-a", "shop-b"]},
                "store": S3,
                "server": {"compat": COMPAT_CREATE},
            },
            "shop-b",
            COMPAT_CREATE_GRANTS,
        ),
        (
            {
                "watch": {"clusterWide": True},
                "store": S3,
                "server": {"compat": {**COMPAT, "namespace": "shop-c"}},
            },
            "shop-c",
            COMPAT_GRANTS,
        ),
    ],
    ids=["find-only", "create", "create-other-namespace", "cluster-wide"],
)
def test_compat_grants_the_server_exactly_what_the_api_calls(
    overrides: dict[str, object], namespace: str, expected: set[Grant], tmp_path: Path
) -> None:
    objects = render(Values("compat", overrides), tmp_path)
    server = server_service_account(objects)
    (binding,) = bindings_of(objects, server)
    # One Role in one namespace: nothing cluster-wide, whatever the operator's mode.
    assert binding["kind"] == "RoleBinding"
    assert binding["metadata"]["namespace"] == namespace
    assert bound_subjects(binding) == {server}
    role = bound_role(objects, binding)
    assert role["kind"] == "Role"
    granted = grants(role)
    assert granted == expected, f"unexpected: {granted - expected}, missing: {expected - granted}"
    assert not {verb for _, resource, verb in granted if resource == "secrets"} & {"list", "watch"}
    # The operator's rights are untouched by the server's.
    operator = operator_service_account(objects)
    cluster_wide = "ClusterRoleBinding" in binding_kinds(objects, operator)
    for operator_binding in bindings_of(objects, operator):
        expected_grants = (
            NAMESPACED_GRANTS
            if not cluster_wide
            else OBJECT_GRANTS | CLUSTER_ONLY_GRANTS
            if operator_binding["kind"] == "ClusterRoleBinding"
            else SECRET_GRANTS
        )
        assert grants(bound_role(objects, operator_binding)) == expected_grants
    # The server now mounts an API token; the trainer still never does.
    pod = deployment(objects, "server")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert [
        sa["automountServiceAccountToken"] for sa in select(objects, "ServiceAccount", server[0])
    ] == [True]
    trainers = [
        sa
        for sa in select(objects, "ServiceAccount")
        if sa["metadata"]["labels"]["app.kubernetes.io/component"] == "trainer"
    ]
    assert trainers and all(sa["automountServiceAccountToken"] is False for sa in trainers)


def binding_kinds(objects: list[Manifest], subject: tuple[str, str]) -> set[str]:
    return {binding["kind"] for binding in bindings_of(objects, subject)}
