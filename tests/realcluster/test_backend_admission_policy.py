"""The chart's backendAccess on a real API server: RBAC gives the shop backend
`patch` on ChannelModels, and the ValidatingAdmissionPolicy (CEL, evaluated by the
API server itself) lets its writes change nothing but the change annotations.
Everyone else (the operator, people) is not affected."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from channelmodel.api import annotations as ann
from channelmodel.api.models import GROUP, PLURAL, VERSION
from tests.deploy.chart_render import Values, helm_binary, only, render
from tests.support.k8s import RealCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.real_only]

BACKEND_SA = "shop-backend"
ALLOWED = "may only set or remove the ChannelModel annotations"
CHANGE_KEYS = (ann.INVENTORY_CHANGED_AT, ann.INVENTORY_CHANGE, ann.RETRAIN_REQUESTED_AT)
SPEC = {"channelId": "shop-42", "manifest": {"url": "https://backend.test/m/42"}}


def refusal(action: Callable[[], Any]) -> tuple[int, str]:
    """(status, message) of a refused request; fails the test when it succeeds."""
    try:
        action()
    except kubernetes.client.ApiException as error:
        return error.status, str(json.loads(error.body or "{}").get("message", error.body))
    raise AssertionError("the request was allowed")


def by_policy(action: Callable[[], Any], what: str) -> None:
    """Refused by the admission policy (not RBAC), with a message naming what is allowed."""
    status, message = refusal(action)
    assert status == 403, (status, message)
    assert "ValidatingAdmissionPolicy" in message, message
    assert ALLOWED in message and all(key in message for key in CHANGE_KEYS), message
    assert what in message, message


def by_rbac(action: Callable[[], Any]) -> None:
    status, message = refusal(action)
    assert status == 403, (status, message)
    assert "ValidatingAdmissionPolicy" not in message and "cannot" in message, message


class Backend:
    """The policy (and Role) the chart renders, applied; clients acting as the backend."""

    def __init__(self, k8s: RealCluster, objects: list[dict[str, Any]]) -> None:
        self.k8s = k8s
        self.admission = kubernetes.client.AdmissionregistrationV1Api(k8s.api_client)
        self.policy = only(objects, "ValidatingAdmissionPolicy")
        self.binding = only(objects, "ValidatingAdmissionPolicyBinding")
        [self.role] = [
            obj
            for obj in objects
            if obj["kind"] == "Role"
            and obj["metadata"]["labels"]["app.kubernetes.io/component"] == "backend-access"
        ]
        k8s.apply_rbac(objects)
        self.admission.create_validating_admission_policy(self.policy)
        self.admission.create_validating_admission_policy_binding(self.binding)

    def close(self) -> None:
        for delete, obj in (
            (self.admission.delete_validating_admission_policy_binding, self.binding),
            (self.admission.delete_validating_admission_policy, self.policy),
        ):
            try:
                delete(obj["metadata"]["name"])
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise

    def wait_active(self, custom: kubernetes.client.CustomObjectsApi, name: str) -> float:
        """Seconds until the policy refuses a (dry-run) label patch by this client."""

        def refused() -> bool:
            try:
                custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.k8s.namespace,
                    PLURAL,
                    name,
                    {"metadata": {"labels": {"probe": "x"}}},
                    dry_run="All",
                )
            except kubernetes.client.ApiException as error:
                return error.status == 403 and "ValidatingAdmissionPolicy" in str(error.body)
            return False

        start = time.monotonic()
        wait_for(refused, timeout=30, message="the backend admission policy to be active")
        return time.monotonic() - start


@pytest.fixture
def backend(k8s: RealCluster, tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    made: list[Backend] = []

    def make(**backend_access: Any) -> Backend:
        helm_binary()  # skips with the reason when helm is missing
        values = {"backendAccess": {"enabled": True, **backend_access}}
        objects = render(Values("backend", values), tmp_path, namespace=k8s.namespace)
        made.append(Backend(k8s, objects))
        return made[-1]

    yield make
    for item in made:
        item.close()


def channelmodel(k8s: RealCluster, name: str) -> None:
    k8s.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        k8s.namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ChannelModel",
            "metadata": {
                "name": name,
                "labels": {"team": "shop"},
                "annotations": {"example.test/owner": "gitops"},
            },
            "spec": SPEC,
        },
    )


def as_service_account(k8s: RealCluster, name: str, tmp_path: Path) -> kubernetes.client.ApiClient:
    path = k8s.service_account_kubeconfig(name, k8s.namespace, tmp_path / f"{name}.kubeconfig")
    return kubernetes.config.new_client_from_config(config_file=str(path))


def impersonating(
    k8s: RealCluster, user: str, group: str | None = None
) -> kubernetes.client.ApiClient:
    client = kubernetes.config.new_client_from_config(config_file=str(k8s.kubeconfig))
    client.set_default_header("Impersonate-User", user)
    if group is not None:
        client.set_default_header("Impersonate-Group", group)
    return client


def test_the_backend_service_account_may_change_only_the_change_annotations(
    k8s: RealCluster, backend: Callable[..., Backend], tmp_path: Path
) -> None:
    k8s.ensure_namespace(k8s.namespace, service_account=BACKEND_SA)
    policy = backend(serviceAccounts=[{"name": BACKEND_SA}])
    assert policy.policy["metadata"]["name"].endswith(f"-{k8s.namespace}-backend-access")
    channelmodel(k8s, "shop-42")
    client = as_service_account(k8s, BACKEND_SA, tmp_path)
    custom = kubernetes.client.CustomObjectsApi(client)
    waited = policy.wait_active(custom, "shop-42")
    print(f"policy active after {waited:.2f} s")

    def patch(body: dict[str, Any]) -> Callable[[], Any]:
        return lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, k8s.namespace, PLURAL, "shop-42", body
        )

    # What the backend is for: report a change, ask for a retrain, clear a request.
    patch(
        {
            "metadata": {
                "annotations": {
                    ann.INVENTORY_CHANGED_AT: "2026-12-02T08:00:00Z",
                    ann.INVENTORY_CHANGE: "productAdded",
                    ann.RETRAIN_REQUESTED_AT: "2026-12-02T08:00:01Z",
                }
            }
        }
    )()
    patch({"metadata": {"annotations": {ann.RETRAIN_REQUESTED_AT: None}}})()
    stored = k8s.get_channelmodel("shop-42")
    assert stored["metadata"]["annotations"] == {
        "example.test/owner": "gitops",
        ann.INVENTORY_CHANGED_AT: "2026-12-02T08:00:00Z",
        ann.INVENTORY_CHANGE: "productAdded",
    }

    # Anything else, even together with a change annotation, is refused whole.
    by_policy(patch({"spec": {"manifest": {"url": "https://evil.test/m"}}}), "the spec")
    by_policy(
        patch(
            {
                "metadata": {"annotations": {ann.INVENTORY_CHANGE: "imageChanged"}},
                "spec": {"suspend": True},
            }
        ),
        "the spec",
    )
    by_policy(patch({"metadata": {"labels": {"team": "evil"}}}), "labels")
    by_policy(patch({"metadata": {"labels": {"extra": "x"}}}), "labels")
    by_policy(patch({"metadata": {"annotations": {"example.test/new": "x"}}}), "other annotations")
    by_policy(
        patch({"metadata": {"annotations": {"example.test/owner": None}}}), "other annotations"
    )
    by_policy(
        patch({"metadata": {"annotations": {"example.test/owner": "backend"}}}),
        "other annotations",
    )
    by_policy(patch({"metadata": {"finalizers": ["example.test/hold"]}}), "finalizers")
    after = k8s.get_channelmodel("shop-42")
    assert after["spec"]["manifest"] == SPEC["manifest"]
    assert after["metadata"]["labels"] == {"team": "shop"}
    assert after["metadata"]["annotations"] == stored["metadata"]["annotations"]
    assert not after["metadata"].get("finalizers")

    # Verbs the Role does not grant: RBAC refuses them before admission.
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ChannelModel",
        "metadata": {"name": "sneaky"},
        "spec": {"channelId": "sneaky", "manifest": {"url": "https://evil.test/m"}},
    }
    create = lambda: custom.create_namespaced_custom_object(  # noqa: E731
        GROUP, VERSION, k8s.namespace, PLURAL, body
    )
    delete = lambda: custom.delete_namespaced_custom_object(  # noqa: E731
        GROUP, VERSION, k8s.namespace, PLURAL, "shop-42"
    )
    by_rbac(create)
    by_rbac(delete)
    by_rbac(
        lambda: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, k8s.namespace, PLURAL, "shop-42", {"status": {"modelVersion": "6.6.6"}}
        )
    )
    # A wider Role granted elsewhere still meets the policy: no create, no delete.
    k8s.apply_rbac(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "too-wide", "namespace": k8s.namespace},
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "resources": [PLURAL],
                        "verbs": ["create", "delete", "update"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "too-wide", "namespace": k8s.namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "too-wide",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": BACKEND_SA, "namespace": k8s.namespace}
                ],
            },
        ]
    )
    wait_for(
        lambda: "ValidatingAdmissionPolicy" in refusal(create)[1],
        timeout=30,
        message="the wider Role to reach the authorizer",
    )
    by_policy(create, "may not create or delete")
    by_policy(delete, "may not create or delete")
    # A full replace (PUT, `update` granted above) is an UPDATE like a patch.
    current = k8s.get_channelmodel("shop-42")  # the Role grants no get
    current["metadata"]["annotations"][ann.INVENTORY_CHANGE] = "productDeleted"
    custom.replace_namespaced_custom_object(
        GROUP, VERSION, k8s.namespace, PLURAL, "shop-42", current
    )
    current = k8s.get_channelmodel("shop-42")  # the Role grants no get
    current["spec"]["suspend"] = True
    by_policy(
        lambda: custom.replace_namespaced_custom_object(
            GROUP, VERSION, k8s.namespace, PLURAL, "shop-42", current
        ),
        "the spec",
    )

    # The operator's identity and people (here the admin) are not affected.
    k8s.patch_channelmodel(
        "shop-42",
        {
            "metadata": {
                "labels": {"team": "other"},
                "annotations": {"example.test/owner": "ops"},
                "finalizers": ["example.test/hold"],
            },
            "spec": {"manifest": {"url": "https://backend.test/m/42-v2"}},
        },
    )
    k8s.patch_channelmodel("shop-42", {"metadata": {"finalizers": None}})
    k8s.create_channelmodel("by-admin", {"channelId": "by-admin", "manifest": SPEC["manifest"]})
    k8s.delete_channelmodel("by-admin")
    assert k8s.get_channelmodel("shop-42")["spec"]["manifest"]["url"].endswith("42-v2")


def test_users_and_groups_are_matched_too(
    k8s: RealCluster, backend: Callable[..., Backend]
) -> None:
    user, group = f"{k8s.namespace}-user", f"{k8s.namespace}-backends"
    policy = backend(users=[user], groups=[group])
    channelmodel(k8s, "shop-7")
    as_user = kubernetes.client.CustomObjectsApi(impersonating(k8s, user))
    # Someone else, in the backend's group only.
    in_group = kubernetes.client.CustomObjectsApi(impersonating(k8s, "someone", group))
    print(f"policy active after {policy.wait_active(as_user, 'shop-7'):.2f} s")
    for custom in (as_user, in_group):
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            k8s.namespace,
            PLURAL,
            "shop-7",
            {"metadata": {"annotations": {ann.RETRAIN_REQUESTED_AT: "2026-12-02T08:30:00Z"}}},
        )
        by_policy(
            lambda custom=custom: custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                k8s.namespace,
                PLURAL,
                "shop-7",
                {"spec": {"manifest": {"url": "https://evil.test/m"}}},
            ),
            "the spec",
        )
    # A user outside both lists, with the same rights (bound here), is not matched.
    outsider = f"{k8s.namespace}-ops"
    k8s.apply_rbac(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "ops", "namespace": k8s.namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": policy.role["metadata"]["name"],
                },
                "subjects": [
                    {"kind": "User", "name": outsider, "apiGroup": "rbac.authorization.k8s.io"}
                ],
            }
        ]
    )
    ops = kubernetes.client.CustomObjectsApi(impersonating(k8s, outsider))
    wait_for(
        lambda: _patched(ops, k8s, {"spec": {"manifest": {"url": "https://backend.test/m/7"}}}),
        timeout=30,
        message="a spec patch by a user the policy does not name",
    )


def _patched(custom: kubernetes.client.CustomObjectsApi, k8s: RealCluster, body: Any) -> bool:
    try:
        custom.patch_namespaced_custom_object(GROUP, VERSION, k8s.namespace, PLURAL, "shop-7", body)
    except kubernetes.client.ApiException as error:
        if error.status == 403 and "ValidatingAdmissionPolicy" in str(error.body):
            raise AssertionError(f"the policy refused an unnamed user: {error.body}") from error
        return False
    return True
