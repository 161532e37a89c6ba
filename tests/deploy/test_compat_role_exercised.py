"""The compatibility API, configured by the env the chart renders, against the API
emulator through a client held to the Role the chart binds to the model server:
every call it makes must be allowed (no 403 in any answer) and every rule must be
used by some call. The Role is then exactly what channelmodel/compat needs."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubernetes.client import V1ObjectMeta, V1Secret

from channelmodel.compat.app import create_compat_app
from channelmodel.compat.settings import CompatSettings
from tests.deploy.cases import COMPAT, COMPAT_CREATE, S3
from tests.deploy.chart_render import (
    NAMESPACE,
    Manifest,
    Values,
    container,
    deployment,
    plain_env,
    render,
    select,
)
from tests.deploy.role_enforcement import Attempt, Grant, enforcing_client
from tests.deploy.test_rendered_settings import only_env
from tests.support.k8s import Cluster, RealCluster

BEARER = "backend-bearer-token-0123"
AUTH = {"Authorization": f"Bearer {BEARER}"}

FIND_ONLY: dict[str, Any] = {"server": {"compat": COMPAT}}
CREATE: dict[str, Any] = {
    "watch": {"namespaces": ["shop-a", "shop-b"]},
    "store": S3,
    "server": {"compat": COMPAT_CREATE},
}


def train_body(channel_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "channelId": channel_id,
        "manifestUrl": f"https://shop.test/channels/{channel_id}/manifest.json",
        "webhookUrl": "https://backend.test/hooks/training",
        **extra,
    }


def channel_model_spec(channel_id: str, **manifest: Any) -> dict[str, Any]:
    return {
        "channelId": channel_id,
        "manifest": {"url": f"https://shop.test/channels/{channel_id}/m.json", **manifest},
    }


def server_role(objects: list[Manifest]) -> Manifest:
    """The one Role bound to the model server's ServiceAccount."""
    account = deployment(objects, "server")["spec"]["template"]["spec"]["serviceAccountName"]
    (binding,) = [
        b
        for b in select(objects, "RoleBinding")
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"])
    ]
    (role,) = [
        r
        for r in select(objects, "Role", binding["roleRef"]["name"])
        if r["metadata"]["namespace"] == binding["metadata"]["namespace"]
    ]
    return role


def rule_grants(role: Manifest) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


class Deployed:
    """The compatibility API as the chart deploys it, on the emulator."""

    def __init__(
        self,
        overrides: Mapping[str, Any],
        k8s: Cluster,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        objects = render(Values("compat", overrides), tmp_path)
        env = plain_env(container(deployment(objects, "server")))
        with only_env(monkeypatch, env):
            rendered = CompatSettings()
        token = tmp_path / "token"  # where the kubelet projects the Secret in the Pod
        token.write_text(BEARER)
        self.settings = rendered.model_copy(update={"token_file": token})
        self.namespace = self.settings.namespace
        self.role = server_role(objects)
        self.k8s = k8s
        self.attempts: list[Attempt] = []
        self.kubeconfig = k8s.kubeconfig
        k8s.ensure_namespace(self.namespace)
        if isinstance(k8s, RealCluster):
            # The real API server enforces the rendered Role on the server's own token;
            # the recording client below still lists what the code asked for.
            k8s.apply_rbac(objects)
            server = deployment(objects, "server")["spec"]["template"]["spec"]
            self.kubeconfig = k8s.service_account_kubeconfig(
                server["serviceAccountName"], NAMESPACE, tmp_path / "server.kubeconfig"
            )

    @asynccontextmanager
    async def client(self) -> AsyncIterator[TestClient[Any, Any]]:
        api_client, self.attempts = enforcing_client(self.kubeconfig, self.role)
        app = create_compat_app(self.settings, api_client=api_client)
        try:
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                yield client
        finally:
            api_client.close()  # type: ignore[no-untyped-call]

    def used(self) -> set[Grant]:
        return {attempt.grant for attempt in self.attempts}

    def refused(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if not attempt.allowed]


async def call(client: TestClient[Any, Any], method: str, path: str, **kwargs: Any) -> int:
    response = await client.request(method, path, headers=AUTH, **kwargs)
    await response.read()
    return response.status


async def test_find_only_role_covers_train_job_and_unknown_channel(
    k8s: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = Deployed(FIND_ONLY, k8s, tmp_path, monkeypatch)
    k8s.create_channelmodel("shop-1", channel_model_spec("shop-1"), deployed.namespace)
    async with deployed.client() as client:
        response = await client.post(
            "/v1/train", json=train_body("shop-1", authToken="m"), headers=AUTH
        )
        assert response.status == 202, await response.text()
        job_id = (await response.json())["jobId"]
        assert await call(client, "GET", f"/v1/jobs/{job_id}") == 200
        assert await call(client, "POST", "/v1/train", json=train_body("shop-2")) == 404

    assert deployed.refused() == []
    assert {a.namespace for a in deployed.attempts} == {deployed.namespace}
    assert deployed.used() == rule_grants(deployed.role), "a rule no call needs"
    spec = k8s.get_channelmodel("shop-1", deployed.namespace)["spec"]
    assert spec["notify"]["webhookUrl"] == "https://backend.test/hooks/training"


async def test_create_role_covers_creation_token_rotation_and_name_clash(
    k8s: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = Deployed(CREATE, k8s, tmp_path, monkeypatch)
    assert deployed.namespace == "shop-b"
    # The name channel "shop-8" would get belongs to another channel's ChannelModel.
    k8s.create_channelmodel("shop-8", channel_model_spec("other"), deployed.namespace)
    async with deployed.client() as client:
        new = train_body("Shop_7", authToken="first")
        assert await call(client, "POST", "/v1/train", json=new) == 202
        again = train_body("Shop_7", authToken="rotated")
        response = await client.post("/v1/train", json=again, headers=AUTH)
        assert response.status == 202, await response.text()
        job_id = (await response.json())["jobId"]
        assert await call(client, "GET", f"/v1/jobs/{job_id}") == 200
        clash = train_body("shop-8", authToken="x")
        assert await call(client, "POST", "/v1/train", json=clash) == 409

    assert deployed.refused() == []
    assert {a.namespace for a in deployed.attempts} == {deployed.namespace}
    assert deployed.used() == rule_grants(deployed.role), "a rule no call needs"
    listing: Any = k8s.custom.list_namespaced_custom_object(
        "ml.dukarun.io", "v1alpha1", deployed.namespace, "channelmodels"
    )
    (created,) = [item for item in listing["items"] if item["spec"]["channelId"] == "Shop_7"]
    ref = created["spec"]["manifest"]["authSecretRef"]
    secret = k8s.core.read_namespaced_secret(ref["name"], deployed.namespace)
    assert base64.b64decode((secret.data or {})[ref["key"]]) == b"rotated"
    # The clash left no Secret behind.
    secrets = k8s.core.list_namespaced_secret(deployed.namespace).items
    assert {s.metadata.name for s in secrets if s.metadata} == {ref["name"]}


async def test_find_only_role_suffices_for_a_channel_with_a_manifest_secret(
    k8s: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = Deployed(FIND_ONLY, k8s, tmp_path, monkeypatch)
    k8s.core.create_namespaced_secret(
        deployed.namespace,
        V1Secret(
            metadata=V1ObjectMeta(name="shop-creds"),
            data={"token": base64.b64encode(b"ops").decode()},
        ),
    )
    spec = channel_model_spec("shop-1", authSecretRef={"name": "shop-creds", "key": "token"})
    k8s.create_channelmodel("shop-1", spec, deployed.namespace)
    async with deployed.client() as client:
        status = await call(
            client, "POST", "/v1/train", json=train_body("shop-1", authToken="backend")
        )

    assert status == 202
