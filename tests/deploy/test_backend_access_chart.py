"""backendAccess in the chart: the backend's Role and the ValidatingAdmissionPolicy
that limits its ChannelModel writes to the change annotations. Rendered only when
enabled, valid for every Kubernetes that has ValidatingAdmissionPolicy v1, and
bad values refused. What the API server does with it: tests/realcluster/
test_backend_admission_policy.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from channelmodel.api import annotations as ann
from channelmodel.api.models import GROUP, PLURAL
from tests.deploy.cases import CASE_IDS, CASES, S3
from tests.deploy.chart_render import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    Manifest,
    Values,
    assert_refused,
    only,
    render,
    run_helm,
    select,
    template_args,
)

POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
COMPONENT = "backend-access"
BACKEND_SA = {"name": "shop-backend"}
# VAP v1 is GA from 1.30 (the chart refuses older clusters) to the newest the validator knows.
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]


def backend_access(**overrides: Any) -> dict[str, Any]:
    return {"backendAccess": {"enabled": True, "serviceAccounts": [BACKEND_SA], **overrides}}


ENABLED_CASES = [
    Values("backend", backend_access()),
    Values(
        "backend-identities-read",
        backend_access(
            serviceAccounts=[BACKEND_SA, {"name": "vendure", "namespace": "shop-backend"}],
            users=["backend@shop.example"],
            groups=["shop-backends"],
            role={"create": True, "read": True},
            admissionPolicy={"enabled": True, "validationActions": ["Warn", "Audit"]},
        ),
    ),
    Values(
        "backend-namespaces",
        {**backend_access(), "watch": {"namespaces": ["shop-a", "shop-b"]}, "store": S3},
    ),
    Values(
        "backend-cluster-wide",
        {**backend_access(), "watch": {"clusterWide": True, "namespaces": ["shop-a"]}, "store": S3},
    ),
    Values("backend-policy-only", backend_access(role={"create": False, "read": False})),
    Values(
        "backend-role-only",
        backend_access(admissionPolicy={"enabled": False, "validationActions": ["Deny"]}),
    ),
]


def backend_objects(objects: list[Manifest]) -> list[Manifest]:
    return [
        obj
        for obj in objects
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == COMPONENT
    ]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_nothing_is_rendered_unless_enabled(case: Values, tmp_path: Path) -> None:
    objects = render(case, tmp_path)
    assert backend_objects(objects) == []
    assert not [obj for obj in objects if obj["kind"] in POLICY_KINDS]


@pytest.mark.parametrize("case", ENABLED_CASES, ids=[c.name for c in ENABLED_CASES])
def test_enabled_cases_lint_strictly_and_validate(case: Values, tmp_path: Path) -> None:
    result = run_helm(
        [
            "lint",
            "--strict",
            str(CHART_DIR),
            "--namespace",
            NAMESPACE,
            "--values",
            str(case.write(tmp_path)),
        ]
    )
    assert "0 chart(s) failed" in result.stdout
    rendered = backend_objects(render(case, tmp_path))
    assert rendered
    for obj in rendered:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(
                    f"{obj['kind']} {obj['metadata']['name']} invalid for {version}: "
                    f"{error.message} at {list(error.path)}"
                )


def test_the_policy_matches_channelmodels_of_the_backend_only(tmp_path: Path) -> None:
    objects = render(ENABLED_CASES[1], tmp_path)
    policy = only(objects, "ValidatingAdmissionPolicy")
    binding = only(objects, "ValidatingAdmissionPolicyBinding")
    name = f"{RELEASE}-channelmodel-{NAMESPACE}-backend-access"
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == name
    assert "namespace" not in policy["metadata"]
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    # The main resource only: status is a subresource ("channelmodels/status") and not matched.
    assert spec["matchConstraints"] == {
        "resourceRules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": ["*"],
                "resources": [PLURAL],
                "operations": ["CREATE", "UPDATE", "DELETE"],
            }
        ]
    }
    [condition] = spec["matchConditions"]
    users = json.dumps(
        [
            f"system:serviceaccount:{NAMESPACE}:shop-backend",
            "system:serviceaccount:shop-backend:vendure",
            "backend@shop.example",
        ],
        separators=(",", ":"),
    )
    assert condition["expression"] == (
        f"request.userInfo.username in {users} || "
        'request.userInfo.groups.exists(g, g in ["shop-backends"])'
    )
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    # The same keys the operator reads (channelmodel/api/annotations.py).
    keys = [ann.INVENTORY_CHANGED_AT, ann.INVENTORY_CHANGE, ann.RETRAIN_REQUESTED_AT]
    assert json.loads(variables["changeAnnotations"]) == keys
    checked = " ".join(v["expression"] for v in spec["validations"])
    for field in ("spec", "labels", "finalizers", "ownerReferences", "variables.newAnnotations"):
        assert field in checked
    for validation in spec["validations"]:
        assert validation["reason"] == "Forbidden"
        assert "may only set or remove the ChannelModel annotations" in validation["message"]
        assert all(key in validation["message"] for key in keys)
    assert binding["spec"] == {"policyName": name, "validationActions": ["Warn", "Audit"]}
    assert not binding["spec"].get("matchResources")


def test_the_policy_name_is_unique_per_release_namespace(tmp_path: Path) -> None:
    names = set()
    for namespace in ("shop-a", "shop-b"):
        args = template_args(Values("ns", backend_access()).write(tmp_path), namespace=namespace)
        out = run_helm([*args, "--show-only", "templates/backend-access.yaml"]).stdout
        names.add(next(line for line in out.splitlines() if "-backend-access" in line).strip())
    assert names == {
        f"name: {RELEASE}-channelmodel-shop-a-backend-access",
        f"name: {RELEASE}-channelmodel-shop-b-backend-access",
    }


@pytest.mark.parametrize(
    ("case", "namespaces"),
    [
        (ENABLED_CASES[0], [NAMESPACE]),
        (ENABLED_CASES[2], ["shop-a", "shop-b"]),
        (ENABLED_CASES[3], [NAMESPACE, "shop-a"]),
    ],
    ids=["release", "namespaces", "cluster-wide"],
)
def test_the_role_grants_patch_where_channelmodels_live(
    case: Values, namespaces: list[str], tmp_path: Path
) -> None:
    rendered = backend_objects(render(case, tmp_path))
    roles = select(rendered, "Role")
    bindings = select(rendered, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(namespaces)
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(namespaces)
    assert not select(rendered, "ClusterRole") and not select(rendered, "ClusterRoleBinding")
    for role in roles:
        assert role["rules"] == [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["patch"]}]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "shop-backend", "namespace": NAMESPACE}
        ]


def test_read_adds_read_verbs_and_every_identity_is_bound(tmp_path: Path) -> None:
    rendered = backend_objects(render(ENABLED_CASES[1], tmp_path))
    [role] = select(rendered, "Role")
    assert role["rules"][0]["verbs"] == ["patch", "get", "list", "watch"]
    [binding] = select(rendered, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "shop-backend", "namespace": NAMESPACE},
        {"kind": "ServiceAccount", "name": "vendure", "namespace": "shop-backend"},
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "backend@shop.example"},
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "shop-backends"},
    ]


def test_role_and_policy_can_be_switched_off_separately(tmp_path: Path) -> None:
    policy_only = backend_objects(render(ENABLED_CASES[4], tmp_path))
    assert sorted(o["kind"] for o in policy_only) == sorted(POLICY_KINDS)
    role_only = backend_objects(render(ENABLED_CASES[5], tmp_path))
    assert sorted(o["kind"] for o in role_only) == ["Role", "RoleBinding"]


BAD_VALUES = [
    ({"backendAccess": {"enabled": True}}, ["backendAccess"]),
    (
        backend_access(serviceAccounts=[{"name": "Shop_Backend"}]),
        ["backendAccess.serviceAccounts.0.name"],
    ),
    (backend_access(serviceAccounts=[{"namespace": "x"}]), ["name is required"]),
    (backend_access(groups=["system:authenticated"]), ["backendAccess.groups.0"]),
    (backend_access(groups=["system:serviceaccounts"]), ["backendAccess.groups.0"]),
    (backend_access(groups=["system:serviceaccounts:shop"]), ["backendAccess.groups.0"]),
    (backend_access(groups=["system:masters"]), ["backendAccess.groups.0"]),
    (backend_access(users=["system:serviceaccount:models:x"]), ["backendAccess.users.0"]),
    (backend_access(users=['a"] || true || ["']), ["backendAccess.users.0"]),
    (
        backend_access(admissionPolicy={"enabled": True, "validationActions": ["Deny", "Warn"]}),
        ["backendAccess.admissionPolicy.validationActions"],
    ),
    (
        backend_access(admissionPolicy={"enabled": True, "validationActions": ["Block"]}),
        ["backendAccess.admissionPolicy.validationActions.0"],
    ),
    (
        backend_access(admissionPolicy={"enabled": True, "validationActions": []}),
        ["backendAccess.admissionPolicy.validationActions"],
    ),
    (backend_access(role={"create": True, "verbs": ["*"]}), ["Additional property verbs"]),
    (backend_access(user=["x"]), ["Additional property user is not allowed"]),
    # What the schema cannot say: the templates refuse it.
    (
        backend_access(serviceAccounts=[{"name": "shop-channelmodel-operator"}]),
        ["names the operator's own ServiceAccount", "give the backend an account of its own"],
    ),
]


@pytest.mark.parametrize(
    ("overrides", "messages"), BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))]
)
def test_bad_values_are_refused(
    overrides: dict[str, Any], messages: list[str], tmp_path: Path
) -> None:
    assert_refused(overrides, messages, tmp_path)


def test_no_identities_is_refused_even_without_the_schema(tmp_path: Path) -> None:
    values = Values("none", {"backendAccess": {"enabled": True}})
    result = run_helm(
        [*template_args(values.write(tmp_path)), "--skip-schema-validation"], check=False
    )
    assert result.returncode != 0
    assert "backendAccess.enabled=true needs the backend's identities" in result.stderr


def test_a_cluster_without_admission_policy_v1_is_told_so(tmp_path: Path) -> None:
    args = template_args(Values("old", backend_access()).write(tmp_path))
    result = run_helm([*args, "--kube-version", "1.29.4"], check=False)
    assert result.returncode != 0
    assert "needs Kubernetes 1.30 or newer" in result.stderr
    assert "backendAccess.admissionPolicy.enabled=false" in result.stderr
    # Without the policy, the Role alone still renders there.
    role_only = Values(
        "old-role",
        backend_access(admissionPolicy={"enabled": False, "validationActions": ["Deny"]}),
    )
    run_helm([*template_args(role_only.write(tmp_path)), "--kube-version", "1.29.4"])
