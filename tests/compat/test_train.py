"""POST /v1/train asks for a retrain the way the backend will later do itself:
annotations on the channel's ChannelModel (found, or created when allowed)."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from channelmodel.api import annotations as ann
from channelmodel.compat.channels import channel_model_name
from tests.compat.conftest import AUTH, SPEC, CompatClient, train_body
from tests.support.k8s import Cluster


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def post_train(client: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/train", json=body, headers=AUTH)
    return response.status, await response.json()


@pytest.mark.both_backends  # request counts: the emulator's log, the API server's audit log
async def test_unknown_channel_is_404_and_nothing_is_created(
    k8s: Cluster, compat_client: CompatClient
) -> None:
    k8s.create_channelmodel("shop-1", SPEC)
    mark = k8s.request_mark()
    async with compat_client() as client:
        status, body = await post_train(client, train_body("shop-2", authToken="manifest-secret"))

    assert status == 404
    assert body == {"error": f"no ChannelModel for channel shop-2 in namespace {k8s.namespace}"}
    assert k8s.count_requests(since=mark, verbs={"create", "patch"}) == 0
    assert k8s.core.list_namespaced_secret(k8s.namespace).items == []


async def test_event_mode_twice_in_a_row_records_one_pending_change(
    k8s: Cluster, compat_client: CompatClient
) -> None:
    k8s.create_channelmodel("shop-one", SPEC)
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    async with compat_client() as client:
        first_status, first = await post_train(client, train_body())
        second_status, second = await post_train(client, train_body())

    assert (first_status, second_status) == (202, 202)
    assert first["message"] == second["message"] == "Training job accepted"
    namespace, name, first_at = first["jobId"].split("/")
    assert (namespace, name) == (k8s.namespace, "shop-one")
    second_at = second["jobId"].split("/")[2]
    assert before <= parse(first_at) <= parse(second_at) <= datetime.now(UTC)
    annotations = k8s.get_channelmodel("shop-one")["metadata"]["annotations"]
    # The later change replaces the earlier: the debounce sees one pending change.
    assert annotations[ann.INVENTORY_CHANGED_AT] == second_at
    assert annotations[ann.INVENTORY_CHANGE] == "productAdded"
    assert ann.RETRAIN_REQUESTED_AT not in annotations


async def test_manual_mode_requests_a_retrain(k8s: Cluster, compat_client: CompatClient) -> None:
    k8s.create_channelmodel("shop-one", SPEC)
    async with compat_client(mode="manual") as client:
        status, body = await post_train(client, train_body())

    assert status == 202
    requested_at = body["jobId"].split("/")[2]
    annotations = k8s.get_channelmodel("shop-one")["metadata"]["annotations"]
    assert annotations[ann.RETRAIN_REQUESTED_AT] == requested_at
    assert abs(parse(requested_at) - datetime.now(UTC)) < timedelta(minutes=1)
    assert ann.INVENTORY_CHANGE not in annotations  # not an event: no debounce, no cooldown


async def test_webhook_url_is_mapped_onto_notify(k8s: Cluster, compat_client: CompatClient) -> None:
    k8s.create_channelmodel("shop-one", {**SPEC, "notify": {"webhookUrl": "https://old.test/h"}})
    async with compat_client() as client:
        status, _ = await post_train(client, train_body(webhookUrl="https://backend.test/new"))
        generation = k8s.get_channelmodel("shop-one")["metadata"]["generation"]
        again, _ = await post_train(client, train_body(webhookUrl="https://backend.test/new"))

    assert (status, again) == (202, 202)
    obj = k8s.get_channelmodel("shop-one")
    assert obj["spec"]["notify"] == {"webhookUrl": "https://backend.test/new"}
    assert obj["metadata"]["generation"] == generation  # same URL: the spec is left alone


async def test_a_signed_webhook_cannot_be_retargeted(
    k8s: Cluster, compat_client: CompatClient
) -> None:
    # Issue 12: the API let a caller move a signed webhook to 169.254.169.254.
    notify = {"webhookUrl": "https://old.test/hook", "secretRef": {"name": "hooks", "key": "h"}}
    k8s.create_channelmodel("shop-one", {**SPEC, "notify": notify})
    async with compat_client() as client:
        status, body = await post_train(
            client, train_body(webhookUrl="http://169.254.169.254/latest/meta-data")
        )
        same, _ = await post_train(client, train_body(webhookUrl="https://old.test/hook"))

    assert status == 409
    assert "signed webhook" in body["error"]
    assert same == 202  # the URL it already has is fine
    obj = k8s.get_channelmodel("shop-one")
    assert obj["spec"]["notify"] == notify
    assert ann.INVENTORY_CHANGED_AT in obj["metadata"]["annotations"]  # from the second call


async def test_deeply_nested_json_is_a_400(k8s: Cluster, compat_client: CompatClient) -> None:
    k8s.create_channelmodel("shop-one", SPEC)
    deep = "[" * 100_000 + "]" * 100_000
    huge_number = '{"channelId": ' + "9" * 5000 + "}"
    async with compat_client() as client:
        answers = []
        for raw in (deep, huge_number):
            response = await client.post(
                "/v1/train",
                data=raw,
                headers={**AUTH, "Content-Type": "application/json"},
            )
            answers.append((response.status, (await response.json())["error"]))
    assert [status for status, _ in answers] == [400, 400]
    assert all(error.startswith("invalid request") for _, error in answers)


async def test_creation_when_enabled_keeps_the_token_in_a_secret(
    k8s: Cluster, compat_client: CompatClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "manifest-bearer-9f8e7d"
    async with compat_client(create=True) as client:
        response = await client.post(
            "/v1/train", json=train_body("Shop_7", authToken=token), headers=AUTH
        )
        text = await response.text()

    assert response.status == 202
    assert token not in text
    assert token not in caplog.text
    name = channel_model_name("Shop_7")
    assert name.startswith("shop-7-") and name != channel_model_name("shop-7")
    obj = k8s.get_channelmodel(name)
    assert obj["spec"]["channelId"] == "Shop_7"
    assert obj["spec"]["manifest"]["url"] == "https://shop.test/channels/Shop_7/manifest.json"
    assert obj["spec"]["notify"]["webhookUrl"] == "https://backend.test/hooks/training"
    ref = obj["spec"]["manifest"]["authSecretRef"]
    secret = k8s.core.read_namespaced_secret(ref["name"], k8s.namespace)
    assert base64.b64decode(secret.data[ref["key"]]).decode() == token
    assert token not in str(obj)
    owner = secret.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("ChannelModel", name, obj["metadata"]["uid"])
    # Opted in for exactly this ChannelModel (issue 12): the operator may hand it to its Jobs.
    assert secret.metadata.annotations == {
        "ml.dukarun.io/channel-models": name,
        # the token may only go to the backend it came with
        "ml.dukarun.io/token-origins": "https://shop.test",
    }
    # The request is on the object from the start: the first training covers it.
    requested_at = text.split('"jobId": "')[1].split('"')[0].split("/")[2]
    assert obj["metadata"]["annotations"][ann.INVENTORY_CHANGED_AT] == requested_at


async def test_second_call_for_a_created_channel_reuses_it_and_rotates_its_token(
    k8s: Cluster, compat_client: CompatClient
) -> None:
    async with compat_client(create=True) as client:
        first, _ = await post_train(client, train_body("shop-9", authToken="old-token"))
        second, body = await post_train(client, train_body("shop-9", authToken="new-token"))

    assert (first, second) == (202, 202)
    assert body["jobId"].startswith(f"{k8s.namespace}/shop-9/")
    items = k8s.custom.list_namespaced_custom_object(
        "ml.dukarun.io", "v1alpha1", k8s.namespace, "channelmodels"
    )["items"]
    assert [item["metadata"]["name"] for item in items] == ["shop-9"]
    secret = k8s.core.read_namespaced_secret("shop-9-manifest-token", k8s.namespace)
    assert base64.b64decode(secret.data["token"]).decode() == "new-token"


async def test_a_secret_managed_elsewhere_is_never_overwritten(
    k8s: Cluster, compat_client: CompatClient
) -> None:
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {"metadata": {"name": "shop-creds"}, "data": {"token": base64.b64encode(b"ops").decode()}},
    )
    k8s.create_channelmodel(
        "shop-one",
        {
            **SPEC,
            "manifest": {
                **SPEC["manifest"],
                "authSecretRef": {"name": "shop-creds", "key": "token"},
            },
        },
    )
    async with compat_client() as client:
        status, _ = await post_train(client, train_body(authToken="backend-token"))

    assert status == 202
    secret = k8s.core.read_namespaced_secret("shop-creds", k8s.namespace)
    assert base64.b64decode(secret.data["token"]) == b"ops"


@pytest.mark.both_backends  # request counts: the emulator's log, the API server's audit log
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            {"channelId": "bad id!", "authToken": "leak-me"},
            "channelId: String should match pattern",
        ),
        ({"channelId": "shop-1", "manifestUrl": "ftp://x", "authToken": "leak-me"}, "manifestUrl"),
        ({"authToken": "leak-me"}, "channelId: Field required"),
    ],
)
async def test_invalid_body_is_400_without_echoing_it(
    body: dict[str, Any], problem: str, k8s: Cluster, compat_client: CompatClient
) -> None:
    mark = k8s.request_mark()
    async with compat_client(create=True) as client:
        response = await client.post("/v1/train", json=body, headers=AUTH)
        text = await response.text()

    assert response.status == 400
    assert problem in text
    assert "leak-me" not in text and "bad id!" not in text
    assert k8s.count_requests(since=mark) == 0


async def test_numeric_channel_id_is_accepted_as_text(
    k8s: Cluster, compat_client: CompatClient
) -> None:
    k8s.create_channelmodel("channel-123", {**SPEC, "channelId": "123"})
    async with compat_client() as client:
        status, body = await post_train(
            client, {"channelId": 123, "manifestUrl": "https://s.test/m"}
        )
    assert status == 202
    assert body["jobId"].startswith(f"{k8s.namespace}/channel-123/")


async def test_creation_needs_a_manifest_url(k8s: Cluster, compat_client: CompatClient) -> None:
    async with compat_client(create=True) as client:
        status, body = await post_train(client, {"channelId": "shop-5"})
    assert status == 400
    assert body == {"error": "manifestUrl is required to create a ChannelModel"}


async def test_creation_never_takes_over_a_name_in_use(
    k8s: Cluster, compat_client: CompatClient
) -> None:
    k8s.create_channelmodel("shop-5", {**SPEC, "channelId": "legacy-5"})
    k8s.core.create_namespaced_secret(
        k8s.namespace,
        {
            "metadata": {"name": "shop-6-manifest-token"},
            "data": {"token": base64.b64encode(b"ops").decode()},
        },
    )
    async with compat_client(create=True) as client:
        taken_model, model_body = await post_train(client, train_body("shop-5", authToken="t1"))
        taken_secret, secret_body = await post_train(client, train_body("shop-6", authToken="t2"))

    assert taken_model == taken_secret == 409
    assert model_body == {
        "error": f"ChannelModel {k8s.namespace}/shop-5 exists for another channel"
    }
    assert secret_body == {
        "error": f"Secret {k8s.namespace}/shop-6-manifest-token exists and is not managed by this API"
    }
    assert k8s.get_channelmodel("shop-5")["spec"]["channelId"] == "legacy-5"
    names = [s.metadata.name for s in k8s.core.list_namespaced_secret(k8s.namespace).items]
    assert names == ["shop-6-manifest-token"]  # no Secret was made for shop-5 (none deleted)
    assert k8s.count_requests(since=0, verbs={"delete"}) == 0
    assert [m["metadata"]["name"] for m in _channel_models(k8s)] == ["shop-5"]
    secret = k8s.core.read_namespaced_secret("shop-6-manifest-token", k8s.namespace)
    assert base64.b64decode(secret.data["token"]) == b"ops"


def _channel_models(k8s: Cluster) -> list[dict[str, Any]]:
    listing = k8s.custom.list_namespaced_custom_object(
        "ml.dukarun.io", "v1alpha1", "default", "channelmodels"
    )
    return list(listing["items"])
