"""What only a real kube-apiserver can tell about the generated CRD: it is accepted
as structural, `kubectl explain` reads it, defaults come back from the server,
every CEL rule is evaluated, and the examples are accepted or rejected with the
messages that examples/invalid documents."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from channelmodel.api.crd import crd_manifest
from channelmodel.api.models import GROUP, PLURAL, VERSION, ChannelModelSpec
from tests.support.k8s import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.real_only]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))
MINIMAL = {"channelId": "shop-1", "manifest": {"url": "https://backend.test/manifest"}}


def kubectl(k8s: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={k8s.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_crd_is_accepted_as_structural_and_established(k8s: Cluster) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(k8s.api_client)
    crd = ext.read_custom_resource_definition(crd_manifest()["metadata"]["name"])
    conditions = {c.type: c for c in crd.status.conditions}
    assert conditions["Established"].status == "True"
    assert conditions["NamesAccepted"].status == "True"
    # The API server flags a schema it cannot prune or default with NonStructuralSchema.
    assert "NonStructuralSchema" not in conditions
    assert crd.status.accepted_names.short_names == ["chm"]


def test_kubectl_explain_reads_the_descriptions_from_the_server(k8s: Cluster) -> None:
    result = kubectl(k8s, "explain", "chm.spec.training")
    assert result.returncode == 0, result.stderr
    training = ChannelModelSpec.model_fields["training"].annotation
    assert training is not None
    for name, field in training.model_fields.items():  # type: ignore[union-attr]
        assert name in result.stdout
        first_words = " ".join((field.description or "").split()[:3])
        assert first_words in " ".join(result.stdout.split()), f"{name}: {first_words!r}"


def test_the_server_applies_the_same_defaults_as_the_operator(k8s: Cluster) -> None:
    created = k8s.create_channelmodel("defaults", copy.deepcopy(MINIMAL))
    # What the operator parses from the minimal spec, with its own defaults.
    parsed = ChannelModelSpec.model_validate(MINIMAL).model_dump(mode="json", exclude_none=True)

    def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                out.update(leaves(value, f"{prefix}.{key}" if prefix else key))
            return out
        return {prefix: node}

    server = leaves(created["spec"])
    operator = leaves(parsed)
    assert server, "the server returned no spec"
    # Every default the server filled in is the operator's default too...
    assert {k: v for k, v in server.items() if k in operator} == {
        k: operator[k] for k in server if k in operator
    }
    # ...and the server fills every defaulted scalar the operator relies on.
    for key in ("debounceSeconds", "cooldownSeconds", "autoRetrain", "training.epochs"):
        assert server[key] == operator[key], key


def cel_rules(node: Any, path: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations") or []:
            found.append((path, rule["rule"]))
        for key, value in (node.get("properties") or {}).items():
            found += cel_rules(value, f"{path}.{key}" if path else key)
        if isinstance(node.get("items"), dict):
            found += cel_rules(node["items"], f"{path}[]")
    return found


# For each CEL rule in the CRD: (a valid object, a patch the rule must refuse, the message).
CEL_CASES: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any], str]] = {
    ("spec.channelId", "self == oldSelf"): (
        MINIMAL,
        {"spec": {"channelId": "shop-2"}},
        "channelId is immutable",
    ),
}


def test_every_cel_rule_has_a_case() -> None:
    schema = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert set(cel_rules(schema)) == set(CEL_CASES)


@pytest.mark.parametrize("rule", sorted(CEL_CASES), ids=lambda r: r[0])
def test_the_server_evaluates_each_cel_rule(k8s: Cluster, rule: tuple[str, str]) -> None:
    spec, patch, message = CEL_CASES[rule]
    k8s.create_channelmodel("cel", copy.deepcopy(spec))
    with pytest.raises(kubernetes.client.ApiException) as refused:
        k8s.patch_channelmodel("cel", patch)
    assert refused.value.status == 422
    assert message in json.loads(refused.value.body)["message"]
    # A patch that keeps the rule is fine.
    k8s.patch_channelmodel("cel", {"spec": {"debounceSeconds": 7}})


@pytest.mark.both_backends  # the emulator must word them like the real server
@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_examples_are_refused_with_the_documented_message(k8s: Cluster, path: Path) -> None:
    text = path.read_text()
    expected = text.splitlines()[0].removeprefix("# expect: ")
    # What a user runs; kubectl asks for strict field validation, so typos are errors too.
    result = kubectl(k8s, "apply", "-f", "-", stdin=text)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr


@pytest.mark.both_backends
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_valid_examples_are_accepted_unchanged(k8s: Cluster, path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    result = kubectl(k8s, "apply", "--dry-run=server", "-o", "json", "-f", str(path))
    assert result.returncode == 0, result.stderr
    returned = json.loads(result.stdout)

    def contained(given: Any, back: Any) -> bool:
        if isinstance(given, dict):
            return isinstance(back, dict) and all(
                k in back and contained(v, back[k]) for k, v in given.items()
            )
        return bool(given == back)

    assert contained(obj["spec"], returned["spec"]), "the server pruned or changed a field"


def test_status_is_a_subresource_the_spec_endpoint_ignores(k8s: Cluster) -> None:
    k8s.create_channelmodel("sub", copy.deepcopy(MINIMAL))
    k8s.patch_channelmodel("sub", {"status": {"modelVersion": "9.9.9"}})
    assert "modelVersion" not in (k8s.get_channelmodel("sub").get("status") or {})
    k8s.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, k8s.namespace, PLURAL, "sub", {"status": {"modelVersion": "1.0.0"}}
    )
    assert k8s.get_channelmodel("sub")["status"]["modelVersion"] == "1.0.0"
