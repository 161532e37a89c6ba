"""The chart's RBAC on a real API server with the RBAC authorizer: the operator, the
compatibility API and the trainer run as their chart ServiceAccounts (tokens from
the TokenRequest API) with the chart's Roles. What they need works; what they must
not do is refused with 403 by the server itself."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from channelmodel.api.models import GROUP, PLURAL, VERSION
from tests.deploy.chart_render import Values, container, deployment, helm_binary, plain_env, render
from tests.support.k8s import RealCluster, bind_claim_to_folder, wait_for
from tests.support.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.real_only]


def service_account_client(
    k8s: RealCluster, name: str, tmp_path: Path
) -> tuple[kubernetes.client.ApiClient, Path]:
    """A client (and its kubeconfig) authenticated as ServiceAccount `name` by a bound token."""
    path = k8s.service_account_kubeconfig(name, k8s.namespace, tmp_path / f"{name}.kubeconfig")
    return kubernetes.config.new_client_from_config(config_file=str(path)), path


def forbidden(action: Callable[[], Any]) -> bool:
    try:
        action()
    except kubernetes.client.ApiException as error:
        return error.status == 403
    return False


def chart_objects(k8s: RealCluster, tmp_path: Path, **overrides: Any) -> list[dict[str, Any]]:
    helm_binary()  # skips with the reason when helm is missing
    return render(Values("real-rbac", overrides), tmp_path, namespace=k8s.namespace)


def sa_of(objects: list[dict[str, Any]], component: str) -> str:
    name: str = deployment(objects, component)["spec"]["template"]["spec"]["serviceAccountName"]
    return name


def test_the_operator_trains_with_its_chart_role_and_nothing_more(
    k8s: RealCluster,
    start_job_runner: Any,
    operator_process: Any,
    fake_trainer: Any,
    tmp_path: Path,
) -> None:
    objects = chart_objects(k8s, tmp_path)
    k8s.apply_rbac(objects)
    operator_sa = sa_of(objects, "operator")
    client, kubeconfig = service_account_client(k8s, operator_sa, tmp_path)
    spec = container(deployment(objects, "operator"))
    env = plain_env(spec)
    trainer_sa = env["CHANNELMODEL_TRAINER_SERVICE_ACCOUNT"]
    port = free_port()
    argv = [sys.executable, "-m", "channelmodel", *spec.get("args", [])]
    argv = [
        f"--liveness=http://127.0.0.1:{port}/healthz" if a.startswith("--liveness=") else a
        for a in argv
    ]
    env.update(
        {
            "KUBECONFIG": str(kubeconfig),
            "CHANNELMODEL_STORE_URI": f"file://{tmp_path / 'store'}",
            "CHANNELMODEL_METRICS_PORT": "0",
        }
    )
    assert env["CHANNELMODEL_NAMESPACES"] == k8s.namespace
    bind_claim_to_folder(
        k8s, k8s.namespace, env["CHANNELMODEL_STORE_VOLUME_CLAIM"], tmp_path / "store"
    )

    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    operator = operator_process(env=env, argv=argv, name="rbac-operator")
    # The CRD's defaults (one GPU) with the chart's defaults: it must land on the GPU node.
    k8s.create_channelmodel("demo", {"channelId": "demo", "manifest": {"url": "http://b.test/m"}})
    wait_for(
        lambda: (k8s.get_channelmodel("demo").get("status") or {}).get("modelVersion") == "1.0.0",
        timeout=90,
        message="1.0.0 trained by an operator holding only its chart Role",
    )
    [pod] = k8s.pods()
    assert pod["spec"]["serviceAccountName"] == trainer_sa
    assert pod["spec"]["nodeName"] == "gpu-node-1"
    assert pod["spec"]["automountServiceAccountToken"] is False
    # Deleting runs the finalizer: Jobs deleted, finalizer removed, all under the Role.
    k8s.delete_channelmodel("demo")
    wait_for(
        lambda: not any(i["metadata"]["name"] == "demo" for i in _channelmodels(k8s)),
        timeout=30,
        message="the ChannelModel to be gone",
    )
    wait_for(lambda: not k8s.jobs(), timeout=30, message="its Jobs to be deleted")
    log = operator.log_text()
    assert "Forbidden" not in log and " 403" not in log, log[-3000:]

    core = kubernetes.client.CoreV1Api(client)
    custom = kubernetes.client.CustomObjectsApi(client)
    other = f"{k8s.namespace[:50]}-other"
    k8s.ensure_namespace(other)
    refused = {
        "list Secrets": lambda: core.list_namespaced_secret(k8s.namespace),
        "watch Secrets": lambda: core.list_namespaced_secret(k8s.namespace, watch=False, limit=1),
        "create a Pod": lambda: core.create_namespaced_pod(
            k8s.namespace,
            {
                "metadata": {"name": "sneaky"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        ),
        "create a Secret": lambda: core.create_namespaced_secret(
            k8s.namespace, {"metadata": {"name": "sneaky"}}
        ),
        "delete a ChannelModel": lambda: custom.delete_namespaced_custom_object(
            GROUP, VERSION, k8s.namespace, PLURAL, "demo"
        ),
        "read another namespace": lambda: custom.list_namespaced_custom_object(
            GROUP, VERSION, other, PLURAL
        ),
        "list namespaces": lambda: core.list_namespace(),
        "read nodes": lambda: core.list_node(),
        "create a RoleBinding": lambda: kubernetes.client.RbacAuthorizationV1Api(
            client
        ).create_namespaced_role_binding(
            k8s.namespace,
            {
                "metadata": {"name": "escalate"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "admin",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": operator_sa, "namespace": k8s.namespace}
                ],
            },
        ),
    }
    allowed = [what for what, action in refused.items() if not forbidden(action)]
    assert allowed == [], f"the operator's ServiceAccount may {allowed}"


def _channelmodels(k8s: RealCluster) -> list[dict[str, Any]]:
    items = k8s.custom.list_namespaced_custom_object(GROUP, VERSION, k8s.namespace, PLURAL)
    return list(items.get("items", []))


def test_the_trainer_service_account_can_do_nothing(k8s: RealCluster, tmp_path: Path) -> None:
    objects = chart_objects(k8s, tmp_path)
    k8s.apply_rbac(objects)
    trainer_sa = plain_env(container(deployment(objects, "operator")))[
        "CHANNELMODEL_TRAINER_SERVICE_ACCOUNT"
    ]
    client, _ = service_account_client(k8s, trainer_sa, tmp_path)
    core = kubernetes.client.CoreV1Api(client)
    custom = kubernetes.client.CustomObjectsApi(client)
    batch = kubernetes.client.BatchV1Api(client)
    for what, action in {
        "read ChannelModels": lambda: custom.list_namespaced_custom_object(
            GROUP, VERSION, k8s.namespace, PLURAL
        ),
        "read Secrets": lambda: core.list_namespaced_secret(k8s.namespace),
        "read Pods": lambda: core.list_namespaced_pod(k8s.namespace),
        "read Jobs": lambda: batch.list_namespaced_job(k8s.namespace),
    }.items():
        assert forbidden(action), f"the trainer's ServiceAccount may {what}"


def test_the_compatibility_api_works_with_its_role_and_nothing_more(
    k8s: RealCluster, tmp_path: Path
) -> None:
    objects = chart_objects(
        k8s, tmp_path, server={"compat": {"enabled": True, "existingSecret": "compat"}}
    )
    k8s.apply_rbac(objects)
    server_sa = sa_of(objects, "server")
    client, _ = service_account_client(k8s, server_sa, tmp_path)
    custom = kubernetes.client.CustomObjectsApi(client)
    core = kubernetes.client.CoreV1Api(client)
    k8s.create_channelmodel(
        "shop-1", {"channelId": "shop-1", "manifest": {"url": "https://backend.test/m"}}
    )
    # What the compatibility API does: find a channel's ChannelModel, read it, ask for a retrain.
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, k8s.namespace, PLURAL)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["shop-1"]
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        k8s.namespace,
        PLURAL,
        "shop-1",
        {"metadata": {"annotations": {"example.test/touched": "yes"}}},
    )
    for what, action in {
        "read Secrets": lambda: core.list_namespaced_secret(k8s.namespace),
        "create ChannelModels": lambda: custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            k8s.namespace,
            PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ChannelModel",
                "metadata": {"name": "x"},
                "spec": {"channelId": "x", "manifest": {"url": "https://b.test/m"}},
            },
        ),
        "patch status": lambda: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, k8s.namespace, PLURAL, "shop-1", {"status": {"modelVersion": "6.6.6"}}
        ),
        "create Jobs": lambda: kubernetes.client.BatchV1Api(client).create_namespaced_job(
            k8s.namespace,
            {
                "metadata": {"name": "j"},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox"}],
                        }
                    }
                },
            },
        ),
    }.items():
        assert forbidden(action), f"the model server's ServiceAccount may {what}"


def test_two_replicas_elect_a_leader_with_the_chart_lease_role_and_nothing_more(
    k8s: RealCluster,
    start_job_runner: Any,
    operator_process: Any,
    fake_trainer: Any,
    tmp_path: Path,
) -> None:
    objects = chart_objects(k8s, tmp_path, operator={"replicas": 2})
    k8s.apply_rbac(objects)
    operator_sa = sa_of(objects, "operator")
    client, kubeconfig = service_account_client(k8s, operator_sa, tmp_path)
    spec = container(deployment(objects, "operator"))
    env = plain_env(spec, k8s.namespace)  # POD_NAMESPACE as the downward API sets it
    lease = env["CHANNELMODEL_LEADER_ELECTION_LEASE_NAME"]
    env.update(
        {
            "KUBECONFIG": str(kubeconfig),
            "CHANNELMODEL_STORE_URI": f"file://{tmp_path / 'store'}",
            "CHANNELMODEL_METRICS_PORT": "0",
        }
    )
    bind_claim_to_folder(
        k8s, k8s.namespace, env["CHANNELMODEL_STORE_VOLUME_CLAIM"], tmp_path / "store"
    )
    start_job_runner(stand_in=fake_trainer(FAKE_DELAY="0.2"))
    replicas = []
    for number in (1, 2):
        port = free_port()
        argv = [sys.executable, "-m", "channelmodel", *spec.get("args", [])]
        argv = [
            f"--liveness=http://127.0.0.1:{port}/healthz" if a.startswith("--liveness=") else a
            for a in argv
        ]
        replicas.append(
            operator_process(
                env={**env, "POD_NAME": f"op-{number}"}, argv=argv, name=f"op-{number}"
            )
        )
        replicas[-1].wait_for_log("acquired lease" if number == 1 else "standing by", 60)
    coordination = kubernetes.client.CoordinationV1Api(k8s.api_client)
    holder = coordination.read_namespaced_lease(lease, k8s.namespace).spec.holder_identity
    assert holder.startswith("op-1_")  # the Pod name and a per-process suffix
    k8s.create_channelmodel("demo", {"channelId": "demo", "manifest": {"url": "http://b.test/m"}})
    wait_for(
        lambda: (k8s.get_channelmodel("demo").get("status") or {}).get("modelVersion") == "1.0.0",
        timeout=90,
        message="1.0.0 trained by the leader holding only its chart Roles",
    )
    for replica in replicas:
        log = replica.log_text()
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]

    # The Lease Role: its own Lease only, in the release namespace only.
    leases = kubernetes.client.CoordinationV1Api(client)
    other = f"{k8s.namespace[:50]}-other"
    k8s.ensure_namespace(other)
    body = {"metadata": {"name": "someone-elses"}, "spec": {"holderIdentity": "x"}}
    coordination.create_namespaced_lease(k8s.namespace, body)
    refused = {
        "read another Lease": lambda: leases.read_namespaced_lease("someone-elses", k8s.namespace),
        "update another Lease": lambda: leases.replace_namespaced_lease(
            "someone-elses", k8s.namespace, body
        ),
        "list Leases": lambda: leases.list_namespaced_lease(k8s.namespace),
        "delete its Lease": lambda: leases.delete_namespaced_lease(lease, k8s.namespace),
        "create a Lease elsewhere": lambda: leases.create_namespaced_lease(other, body),
        "read its Lease elsewhere": lambda: leases.read_namespaced_lease(lease, other),
    }
    allowed = [what for what, action in refused.items() if not forbidden(action)]
    assert allowed == [], f"the operator's ServiceAccount may {allowed}"
