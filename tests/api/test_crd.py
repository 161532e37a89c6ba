"""The CRD is generated from the pydantic models; examples validate against it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from channelmodel.api.crd import crd_manifest, render_crd_yaml
from channelmodel.api.models import ChannelModelSpec, ChannelModelStatus
from channelmodel.api.validation import openapi_schema
from channelmodel_sandbox.schema import CustomResourceSchema

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "deploy" / "crds" / "channelmodels.ml.dukarun.io.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))


def emulator_errors(obj: dict[str, object]) -> list[str]:
    """What the API emulator answers for `obj` under kubectl's strict field validation:
    kube-apiserver's wording (tests/realcluster checks the real server says the same)."""
    admission = CustomResourceSchema(openapi_schema()).admit(obj)
    return [e.message for e in admission.errors] + [
        f'strict decoding error: unknown field "{path}"' for path in admission.unknown_fields
    ]


def test_checked_in_crd_matches_models() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml(), (
        "deploy/crds drifted from channelmodel.api.models: run `make crd`"
    )


def _walk(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found


def test_schema_is_structural() -> None:
    nodes = _walk(openapi_schema())
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "title", "$defs", "const"}
    assert not [n for n in nodes if forbidden & n.keys()]
    # every node says its type, except preserve-unknown ones
    untyped = [n for n in nodes if "properties" in n and "type" not in n]
    assert not untyped


def test_crd_carries_contract_features() -> None:
    crd = crd_manifest()
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert crd["metadata"]["name"] == "channelmodels.ml.dukarun.io"
    assert crd["spec"]["names"]["shortNames"] == ["chm"]
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == [
        "Channel",
        "Ready",
        "Version",
        "Status",
        "Last Trained",
        "Age",
    ]
    assert [c["name"] for c in columns if c.get("priority") == 1] == [
        "URL",
        "Accuracy",
        "Images",
        "Seconds",
        "Job",
        "Reason",
    ]
    channel = spec["properties"]["channelId"]
    assert channel["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "channelId is immutable"}
    ]
    assert spec["properties"]["debounceSeconds"]["default"] == 60
    assert spec["properties"]["cooldownSeconds"]["default"] == 3600
    assert spec["properties"]["schedule"]["properties"]["cron"]["default"] == "0 2 * * *"
    assert spec["properties"]["deletionPolicy"]["enum"] == ["Retain", "Delete"]
    assert spec["properties"]["training"]["properties"]["gpus"]["minimum"] == 0
    assert set(spec["required"]) == {"channelId", "manifest"}
    # every spec field of the model is in the schema, with a description
    for name, field in ChannelModelSpec.model_fields.items():
        assert name in spec["properties"]
        assert field.description, f"spec.{name} has no description"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(ChannelModelStatus.model_fields) <= set(status)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    assert emulator_errors(obj) == []
    ChannelModelSpec.model_validate(obj["spec"])


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_examples_are_rejected_with_readable_messages(path: Path) -> None:
    text = path.read_text()
    expected = text.splitlines()[0].removeprefix("# expect: ")
    errors = emulator_errors(yaml.safe_load(text))
    assert any(e.startswith(expected) for e in errors), errors


def test_pydantic_defaults_match_schema_defaults() -> None:
    """Defaults applied by the API server and by the operator's parsing agree."""
    spec = ChannelModelSpec.model_validate({"channelId": "x", "manifest": {"url": "http://a/b"}})
    schema = openapi_schema()["properties"]["spec"]["properties"]
    for name in ("autoRetrain", "debounceSeconds", "cooldownSeconds", "retainVersions", "suspend"):
        assert schema[name]["default"] == getattr(spec, name)
    assert schema["retrainTriggers"]["default"] == [t.value for t in spec.retrainTriggers]
    assert schema["training"]["properties"]["epochs"]["default"] == spec.training.epochs


def test_printer_columns_point_at_fields_of_the_models() -> None:
    """A renamed field cannot leave a column empty: each path resolves in the schema."""
    version = crd_manifest()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path.startswith(".metadata."):
            continue
        node = schema
        for step in re.findall(r"\.([A-Za-z]+)|\[\?\(@\.type==", path):
            if not step:  # a filter on a list of conditions
                node = node["items"]
                continue
            assert step in node.get("properties", {}), f"{column['name']}: {path} ({step})"
            node = node["properties"][step]


CRD_CHART_TEMPLATE = (
    ROOT
    / "deploy"
    / "helm"
    / "channelmodel-crds"
    / "templates"
    / "channelmodels.ml.dukarun.io.yaml"
)


def test_crd_chart_template_matches_models() -> None:
    assert CRD_CHART_TEMPLATE.read_text() == render_crd_yaml(keep=True), (
        "deploy/helm/channelmodel-crds drifted from channelmodel.api.models: run `make crd`"
    )
