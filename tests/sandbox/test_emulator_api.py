"""The emulator's API-server semantics, through the official `kubernetes` client."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from channelmodel.api.models import GROUP, PLURAL, VERSION
from tests.support.k8s import Cluster

SPEC = {"channelId": "shop-a", "manifest": {"url": "http://backend.test/manifest.json"}}
NS = "default"


pytestmark = pytest.mark.emulator  # tests the emulator itself


def chm(name: str, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ChannelModel",
        "metadata": {"name": name, **meta},
        "spec": copy.deepcopy(spec or SPEC),
    }


def create(k8s: Cluster, body: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], int]:
    obj, status, _ = k8s.custom.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, NS, PLURAL, body, **kwargs
    )
    return dict(obj), status


def patch(k8s: Cluster, name: str, body: Any, **kwargs: Any) -> dict[str, Any]:
    return dict(
        k8s.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, body, **kwargs)
    )


def patch_status(k8s: Cluster, name: str, body: Any) -> dict[str, Any]:
    return dict(
        k8s.custom.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, name, body)
    )


def error_of(call: Any) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value


def status_body(error: ApiException) -> dict[str, Any]:
    return dict(json.loads(error.body))


def job(name: str, owner: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **meta}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "i", "command": ["true"]}],
                }
            }
        },
    }


# --- metadata, create, conflicts -------------------------------------------------------------


def test_create_answers_201_with_server_metadata(k8s: Cluster) -> None:
    obj, status = create(k8s, chm("a"))
    assert status == 201
    meta = obj["metadata"]
    assert len(meta["uid"]) == 36
    assert meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    assert meta["namespace"] == NS


def test_generate_name_makes_unique_names(k8s: Cluster) -> None:
    first, _ = create(k8s, {**chm(""), "metadata": {"generateName": "shop-"}})
    second, _ = create(k8s, {**chm(""), "metadata": {"generateName": "shop-"}})
    assert first["metadata"]["name"].startswith("shop-")
    assert first["metadata"]["name"] != second["metadata"]["name"]


def test_duplicate_create_is_409_already_exists(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    error = error_of(lambda: create(k8s, chm("a")))
    assert error.status == 409
    assert status_body(error)["reason"] == "AlreadyExists"
    assert status_body(error)["message"] == 'channelmodels.ml.dukarun.io "a" already exists'


def test_resource_version_is_global_and_bumped_on_every_write(k8s: Cluster) -> None:
    a, _ = create(k8s, chm("a"))
    b, _ = create(k8s, chm("b"))
    a2 = patch(k8s, "a", {"metadata": {"labels": {"x": "1"}}})
    versions = [int(a["metadata"]["resourceVersion"]), int(b["metadata"]["resourceVersion"])]
    versions.append(int(a2["metadata"]["resourceVersion"]))
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


def test_stale_resource_version_in_a_patch_is_409_conflict(k8s: Cluster) -> None:
    obj, _ = create(k8s, chm("a"))
    stale = obj["metadata"]["resourceVersion"]
    patch(k8s, "a", {"spec": {"minAccuracy": 0.1}})
    error = error_of(
        lambda: patch(
            k8s, "a", {"metadata": {"resourceVersion": stale}, "spec": {"minAccuracy": 0.2}}
        )
    )
    assert error.status == 409
    assert status_body(error)["reason"] == "Conflict"
    assert "the object has been modified" in status_body(error)["message"]
    fresh = k8s.get_channelmodel("a")["metadata"]["resourceVersion"]
    assert (
        patch(k8s, "a", {"metadata": {"resourceVersion": fresh}, "spec": {"minAccuracy": 0.2}})[
            "spec"
        ]["minAccuracy"]
        == 0.2
    )


def test_replace_with_stale_resource_version_is_409(k8s: Cluster) -> None:
    obj, _ = create(k8s, chm("a"))
    patch(k8s, "a", {"spec": {"minAccuracy": 0.1}})
    error = error_of(
        lambda: k8s.custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "a", obj)
    )
    assert error.status == 409


def test_failed_json_patch_test_is_422(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "replace", "path": "/spec/minAccuracy", "value": 0.5},
    ]
    error = error_of(lambda: patch(k8s, "a", ops))
    assert error.status == 422
    assert k8s.get_channelmodel("a")["spec"]["minAccuracy"] == 0.0


def test_noop_patch_keeps_the_resource_version(k8s: Cluster) -> None:
    obj, _ = create(k8s, chm("a"))
    again = patch(k8s, "a", {"spec": {"channelId": "shop-a"}})
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


# --- generation and the status subresource --------------------------------------------------


def test_generation_moves_with_spec_only(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    assert (
        patch(k8s, "a", {"metadata": {"annotations": {"a": "b"}, "labels": {"l": "v"}}})[
            "metadata"
        ]["generation"]
        == 1
    )
    assert (
        patch_status(k8s, "a", {"status": {"modelVersion": "1.0.0"}})["metadata"]["generation"] == 1
    )
    assert patch(k8s, "a", {"spec": {"minAccuracy": 0.3}})["metadata"]["generation"] == 2


def test_status_subresource_owns_status(k8s: Cluster) -> None:
    created, _ = create(k8s, {**chm("a"), "status": {"modelVersion": "9.9.9"}})
    assert "modelVersion" not in created.get("status", {})  # dropped on create

    after_main = patch(
        k8s, "a", {"spec": {"minAccuracy": 0.4}, "status": {"modelVersion": "9.9.9"}}
    )
    assert after_main["spec"]["minAccuracy"] == 0.4
    assert "modelVersion" not in after_main.get("status", {})  # ignored on the main resource

    after_status = patch_status(
        k8s, "a", {"status": {"modelVersion": "1.0.0"}, "spec": {"minAccuracy": 0.9}}
    )
    assert after_status["status"]["modelVersion"] == "1.0.0"
    assert after_status["spec"]["minAccuracy"] == 0.4  # ignored on /status


def test_status_writes_are_validated_against_the_status_schema(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    error = error_of(lambda: patch_status(k8s, "a", {"status": {"trainingStatus": "Bogus"}}))
    assert error.status == 422
    assert 'status.trainingStatus: Unsupported value: "Bogus"' in status_body(error)["message"]


def test_status_timestamps_must_be_rfc3339(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    error = error_of(lambda: patch_status(k8s, "a", {"status": {"lastTrained": "yesterday"}}))
    assert error.status == 422
    assert 'status.lastTrained: Invalid value: "yesterday"' in status_body(error)["message"]
    assert patch_status(k8s, "a", {"status": {"lastTrained": "2026-01-02T03:04:05+00:00"}})[
        "status"
    ]["lastTrained"]


# --- schema admission -------------------------------------------------------------------------


def test_schema_rejects_a_bad_channel_id_naming_the_field(k8s: Cluster) -> None:
    error = error_of(lambda: create(k8s, chm("a", {**SPEC, "channelId": "bad id"})))
    body = status_body(error)
    assert error.status == 422
    assert body["reason"] == "Invalid"
    assert body["message"].startswith(
        'ChannelModel.ml.dukarun.io "a" is invalid: spec.channelId: Invalid value: "bad id": '
    )
    assert "should match '^[A-Za-z0-9]" in body["message"]
    assert body["details"]["causes"][0]["field"] == "spec.channelId"


def test_schema_reports_every_error(k8s: Cluster) -> None:
    spec = {"channelId": "ok", "deletionPolicy": "Shred", "training": {"epochs": 0}}
    body = status_body(error_of(lambda: create(k8s, chm("a", spec))))
    fields = {cause["field"] for cause in body["details"]["causes"]}
    assert fields == {"spec.manifest", "spec.deletionPolicy", "spec.training.epochs"}
    assert (
        'spec.deletionPolicy: Unsupported value: "Shred": supported values: "Retain", "Delete"'
        in body["message"]
    )
    assert "spec.manifest: Required value" in body["message"]
    assert "spec.training.epochs in body should be greater than or equal to 1" in body["message"]


def test_schema_defaults_are_applied_on_create(k8s: Cluster) -> None:
    obj, _ = create(k8s, chm("a"))
    assert obj["spec"]["debounceSeconds"] == 60
    assert obj["spec"]["schedule"] == {"cron": "0 2 * * *", "timeZone": "UTC"}
    assert obj["spec"]["training"]["backoffLimit"] == 1


def test_unknown_fields_are_pruned_or_rejected_when_strict(k8s: Cluster) -> None:
    obj, _ = create(k8s, chm("a", {**SPEC, "colour": "red"}))
    assert "colour" not in obj["spec"]
    error = error_of(
        lambda: create(k8s, chm("b", {**SPEC, "colour": "red"}), field_validation="Strict")
    )
    assert error.status == 400
    assert 'unknown field "spec.colour"' in status_body(error)["message"]


def test_channel_id_is_immutable_but_other_fields_change(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    error = error_of(lambda: patch(k8s, "a", {"spec": {"channelId": "shop-b"}}))
    assert error.status == 422
    assert (
        'spec.channelId: Invalid value: "string": channelId is immutable'
        in status_body(error)["message"]
    )
    assert patch(k8s, "a", {"spec": {"suspend": True}})["spec"]["suspend"] is True


# --- deletion: finalizers, garbage collection, namespaces --------------------------------------


def test_finalizers_hold_deletion_until_removed(k8s: Cluster) -> None:
    create(k8s, chm("a", finalizers=["example.com/hold"]))
    k8s.delete_channelmodel("a")
    held = k8s.get_channelmodel("a")
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["generation"] == 2

    error = error_of(
        lambda: patch(k8s, "a", {"metadata": {"finalizers": ["example.com/hold", "x/y"]}})
    )
    assert error.status == 422
    assert "no new finalizers" in status_body(error)["message"]

    patch(k8s, "a", {"metadata": {"finalizers": None}})
    assert error_of(lambda: k8s.get_channelmodel("a")).status == 404


def test_deleting_an_owner_collects_its_dependents_in_cascade(k8s: Cluster) -> None:
    owner, _ = create(k8s, chm("a"))
    job_obj = k8s.batch.create_namespaced_job(NS, job("train-a", owner)).to_dict()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "train-a-pod",
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "train-a",
                    "uid": job_obj["metadata"]["uid"],
                }
            ],
        },
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    k8s.core.create_namespaced_pod(NS, pod)
    unrelated = k8s.batch.create_namespaced_job(NS, job("other"))

    k8s.delete_channelmodel("a")

    assert [j.metadata.name for j in k8s.batch.list_namespaced_job(NS).items] == [
        unrelated.metadata.name
    ]
    assert k8s.core.list_namespaced_pod(NS).items == []


def test_orphan_propagation_keeps_dependents(k8s: Cluster) -> None:
    owner, _ = create(k8s, chm("a"))
    k8s.batch.create_namespaced_job(NS, job("train-a", owner))
    k8s.custom.delete_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "a", propagation_policy="Orphan"
    )
    kept = k8s.batch.read_namespaced_job("train-a", NS)
    assert not kept.metadata.owner_references


def test_a_dependent_with_a_remaining_owner_survives(k8s: Cluster) -> None:
    a, _ = create(k8s, chm("a"))
    b, _ = create(k8s, chm("b"))
    shared = job("shared", a)
    shared["metadata"]["ownerReferences"].append(
        {
            "apiVersion": b["apiVersion"],
            "kind": "ChannelModel",
            "name": "b",
            "uid": b["metadata"]["uid"],
        }
    )
    k8s.batch.create_namespaced_job(NS, shared)
    k8s.delete_channelmodel("a")
    refs = k8s.batch.read_namespaced_job("shared", NS).metadata.owner_references
    assert [ref.name for ref in refs] == ["b"]
    k8s.delete_channelmodel("b")
    assert k8s.batch.list_namespaced_job(NS).items == []


def test_namespaces_are_listed_and_deleting_one_deletes_its_objects(k8s: Cluster) -> None:
    names = {ns.metadata.name for ns in k8s.core.list_namespace().items}
    assert {"default", "kube-system"} <= names
    k8s.core.create_namespace({"metadata": {"name": "team"}})
    k8s.custom.create_namespaced_custom_object(GROUP, VERSION, "team", PLURAL, chm("a"))
    k8s.core.delete_namespace("team")
    assert k8s.custom.list_namespaced_custom_object(GROUP, VERSION, "team", PLURAL)["items"] == []
    assert "team" not in {ns.metadata.name for ns in k8s.core.list_namespace().items}


def test_deleting_the_crd_unregisters_its_resource(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    ext = kubernetes.client.ApiextensionsV1Api(k8s.api_client)
    ext.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")
    assert error_of(lambda: k8s.get_channelmodel("a")).status == 404


# --- selectors, lists, watches -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=gold", {"a"}),
        ("tier!=gold", {"b", "c"}),
        ("tier in (gold,silver)", {"a", "b"}),
        ("tier notin (gold)", {"b", "c"}),
        ("tier", {"a", "b"}),
        ("!tier", {"c"}),
        ("tier=silver,region=eu", {"b"}),
    ],
)
def test_label_selectors_on_list(k8s: Cluster, selector: str, expected: set[str]) -> None:
    create(k8s, chm("a", labels={"tier": "gold"}))
    create(k8s, chm("b", labels={"tier": "silver", "region": "eu"}))
    create(k8s, chm("c"))
    found = k8s.custom.list_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, label_selector=selector
    )
    assert {item["metadata"]["name"] for item in found["items"]} == expected


def test_field_selectors_on_list(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    create(k8s, chm("b"))
    patch_status(k8s, "b", {"status": {"trainingStatus": "Training"}})
    by_name = k8s.custom.list_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, field_selector="metadata.name=a"
    )
    by_status = k8s.custom.list_cluster_custom_object(
        GROUP, VERSION, PLURAL, field_selector="status.trainingStatus!=Training"
    )
    assert [item["metadata"]["name"] for item in by_name["items"]] == ["a"]
    assert [item["metadata"]["name"] for item in by_status["items"]] == ["a"]


def test_bad_selector_is_400(k8s: Cluster) -> None:
    error = error_of(
        lambda: k8s.custom.list_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, label_selector="a in b"
        )
    )
    assert error.status == 400


def test_list_has_kind_and_resource_version(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    listing = k8s.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    assert listing["kind"] == "ChannelModelList"
    assert listing["apiVersion"] == f"{GROUP}/{VERSION}"
    assert int(listing["metadata"]["resourceVersion"]) >= int(
        listing["items"][0]["metadata"]["resourceVersion"]
    )


def test_watch_resumes_after_a_resource_version_with_a_selector(k8s: Cluster) -> None:
    create(k8s, chm("before", labels={"watch": "me"}))
    mark = k8s.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["metadata"][
        "resourceVersion"
    ]
    create(k8s, chm("ignored"))
    create(k8s, chm("after", labels={"watch": "me"}))
    patch(k8s, "ignored", {"metadata": {"labels": {"watch": "me"}}})  # enters the selection
    patch(k8s, "after", {"metadata": {"labels": {"watch": "no"}}})  # leaves it

    stream = kubernetes.watch.Watch().stream(
        k8s.custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        NS,
        PLURAL,
        label_selector="watch=me",
        resource_version=mark,
        timeout_seconds=1,
    )
    seen = [(event["type"], event["object"]["metadata"]["name"]) for event in stream]
    assert seen == [("ADDED", "after"), ("ADDED", "ignored"), ("DELETED", "after")]


def test_watch_without_resource_version_starts_with_current_objects(k8s: Cluster) -> None:
    create(k8s, chm("a"))
    stream = kubernetes.watch.Watch().stream(
        k8s.custom.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, timeout_seconds=1
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in stream] == [("ADDED", "a")]


def test_a_watch_with_timeout_seconds_zero_stays_open_for_later_events(k8s: Cluster) -> None:
    """kube-apiserver reads timeoutSeconds=0 as "no client timeout": the stream must
    not end after the current objects (a client would relist in a busy loop)."""
    create(k8s, chm("first"))
    url = f"{k8s.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}?watch=true&timeoutSeconds=0"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert json.loads(response.readline())["object"]["metadata"]["name"] == "first"
        create(k8s, chm("later"))
        event = json.loads(response.readline())
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "later")


def test_watch_from_a_forgotten_resource_version_is_410(k8s: Cluster) -> None:
    for index in range(5):
        create(k8s, chm(f"n{index}"))
    k8s.call(lambda emulator: emulator._hub._events.clear())  # history lost, as after compaction
    url = (
        f"{k8s.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}?watch=true&resourceVersion=1001"
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        event = json.loads(response.readline())
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


# --- discovery and other API surfaces ------------------------------------------------------------


def test_discovery_serves_core_and_custom_resources(k8s: Cluster) -> None:
    core = k8s.core.get_api_resources()
    assert core.group_version == "v1"
    assert "namespaces" in {r.name for r in core.resources}
    custom = kubernetes.client.CustomObjectsApi(k8s.api_client).get_api_resources(GROUP, VERSION)
    by_name = {r.name: r for r in custom.resources}
    assert by_name["channelmodels"].short_names == ["chm"]
    assert by_name["channelmodels"].kind == "ChannelModel"
    assert "channelmodels/status" in by_name
    groups = {g.name for g in kubernetes.client.ApisApi(k8s.api_client).get_api_versions().groups}
    assert {GROUP, "batch", "apiextensions.k8s.io", "events.k8s.io"} <= groups


def test_dynamic_client_finds_the_crd_through_discovery(k8s: Cluster) -> None:
    dynamic = kubernetes.dynamic.DynamicClient(k8s.api_client)
    resource = dynamic.resources.get(api_version=f"{GROUP}/{VERSION}", kind="ChannelModel")
    resource.create(body=chm("a"), namespace=NS)
    assert resource.get(name="a", namespace=NS).spec.channelId == "shop-a"


def test_events_in_both_apis(k8s: Cluster) -> None:
    obj, _ = create(k8s, chm("a"))
    ref = {
        "apiVersion": obj["apiVersion"],
        "kind": "ChannelModel",
        "name": "a",
        "namespace": NS,
        "uid": obj["metadata"]["uid"],
    }
    k8s.core.create_namespaced_event(
        NS,
        {
            "metadata": {"generateName": "a."},
            "involvedObject": ref,
            "reason": "Trained",
            "message": "1.0.0",
            "type": "Normal",
        },
    )
    events_api = kubernetes.client.EventsV1Api(k8s.api_client)
    events_api.create_namespaced_event(
        NS,
        {
            "metadata": {"generateName": "a."},
            "regarding": ref,
            "reason": "Served",
            "note": "1.0.0",
            "type": "Normal",
            "action": "Serve",
            "reportingController": "channelmodel",
            "reportingInstance": "x",
            "eventTime": "2026-01-01T00:00:00.000000Z",
        },
    )
    core = k8s.core.list_namespaced_event(NS, field_selector="involvedObject.name=a")
    assert [e.reason for e in core.items] == ["Trained"]
    assert [e.reason for e in events_api.list_namespaced_event(NS).items] == ["Served"]


def test_requests_are_counted_by_method_and_verb(k8s: Cluster) -> None:
    mark = k8s.request_mark()
    create(k8s, chm("a"))
    patch(k8s, "a", {"spec": {"minAccuracy": 0.5}})
    k8s.get_channelmodel("a")
    by_method = k8s.call(lambda emulator: emulator.requests_by_method(since=mark))
    assert by_method == {"POST": 1, "PATCH": 1, "GET": 1}
    assert k8s.count_requests(since=mark, verbs={"create", "patch", "update", "delete"}) == 2
    assert k8s.count_requests(since=mark, resource=f"{PLURAL}.{GROUP}") == 3


def test_kmock_reactions_still_take_precedence(k8s: Cluster) -> None:
    create(k8s, chm("a"))

    def inject(emulator: Any) -> None:
        (
            emulator["patch", emulator.resource(GROUP, VERSION, PLURAL)]
            << 503
            << {"kind": "Status", "code": 503}
        )

    k8s.call(inject)
    assert error_of(lambda: patch(k8s, "a", {"spec": {"minAccuracy": 0.5}})).status == 503
    assert k8s.get_channelmodel("a")["spec"]["minAccuracy"] == 0.0


def test_protobuf_bodies_are_415_unsupported(k8s: Cluster) -> None:
    request = urllib.request.Request(
        f"{k8s.url}/api/v1/namespaces/{NS}/configmaps",
        data=b"k8s\x00\x0a\x0f",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 415
    assert json.loads(caught.value.read())["reason"] == "UnsupportedMediaType"


def test_secret_string_data_is_folded_into_data(k8s: Cluster) -> None:
    import base64

    k8s.core.create_namespaced_secret(
        "default", {"metadata": {"name": "tok"}, "stringData": {"token": "abc"}}
    )
    secret = k8s.core.read_namespaced_secret("tok", "default")
    assert secret.data == {"token": base64.b64encode(b"abc").decode()}
    assert not secret.string_data
