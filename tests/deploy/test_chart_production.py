"""What platform engineers expect of a well-kept chart, rendered with helm:
commonLabels/commonAnnotations everywhere, images by digest, extra env and
volumes, a PodDisruptionBudget and topology spread for the model server, and
the chart-wide GPU default. Each value has a values-schema entry (unknown keys
are refused), so a typo fails `helm install`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart_render import (
    Values,
    container,
    deployment,
    plain_env,
    render,
    render_error,
    select,
)

DIGEST = "sha256:" + "ab" * 32


def _pod(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return dict(deployment(objects, component)["spec"]["template"]["spec"])


def test_common_labels_and_annotations_reach_every_object(tmp_path: Path) -> None:
    objects = render(
        Values("common", {
            "commonLabels": {"cost-center": "shop"},
            "commonAnnotations": {"team": "ml", "helm.sh/resource-policy": "ignored-on-pvc"},
            "server": {"replicas": 2, "ingress": {"enabled": True, "host": "models.example.com",
                                                  "annotations": {"team": "edge"}}},
            "kueue": {"enabled": True, "localQueue": {"clusterQueue": "q"}},
            "metrics": {"serviceMonitor": {"enabled": True}},
        }),
        tmp_path,
    )  # fmt: skip
    rendered = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    assert len(rendered) >= 12
    for obj in rendered:
        meta = obj["metadata"]
        assert meta["labels"]["cost-center"] == "shop", obj["kind"]
        assert "team" in meta.get("annotations", {}), obj["kind"]
    ingress = select(objects, "Ingress")[0]
    assert ingress["metadata"]["annotations"]["team"] == "edge"  # the object's own wins
    pvc = select(objects, "PersistentVolumeClaim")[0]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    server = deployment(objects, "server")
    assert "cost-center" not in server["spec"]["selector"]["matchLabels"]
    assert server["spec"]["template"]["metadata"]["labels"]["cost-center"] == "shop"


def test_images_by_digest(tmp_path: Path) -> None:
    objects = render(
        Values("digest", {"image": {"digest": DIGEST}, "trainer": {"image": {"digest": DIGEST}}}),
        tmp_path,
    )
    for component in ("operator", "server"):
        assert container(deployment(objects, component))["image"] == (
            f"channelmodel-operator@{DIGEST}"
        )
    env = plain_env(container(deployment(objects, "operator")))
    assert env["CHANNELMODEL_TRAINER_IMAGE"] == f"channelmodel-trainer@{DIGEST}"
    error = render_error(Values("bad-digest", {"image": {"digest": "latest"}}), tmp_path)
    assert "digest" in error


@pytest.mark.parametrize("component", ["operator", "server"])
def test_extra_env_volumes_and_mounts(tmp_path: Path, component: str) -> None:
    extra = {
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/custom", "readOnly": True}],
    }
    objects = render(Values("extra", {component: extra}), tmp_path)
    pod = _pod(objects, component)
    spec = pod["containers"][0]
    assert plain_env(spec)["HTTPS_PROXY"] == "http://proxy:3128"
    assert {"name": "ca", "configMap": {"name": "corporate-ca"}} in pod["volumes"]
    assert extra["extraVolumeMounts"][0] in spec["volumeMounts"]
    error = render_error(Values("bad-env", {component: {"extraEnv": [{"value": "x"}]}}), tmp_path)
    assert "name" in error


def test_server_pdb_and_topology_spread(tmp_path: Path) -> None:
    single = render(None, tmp_path)
    assert select(single, "PodDisruptionBudget") == []  # one replica: nothing to keep available
    assert "topologySpreadConstraints" not in _pod(single, "server")

    objects = render(Values("ha", {"server": {"replicas": 3}}), tmp_path)
    (pdb,) = select(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    server = deployment(objects, "server")
    assert pdb["spec"]["selector"]["matchLabels"] == server["spec"]["selector"]["matchLabels"]
    spread = server["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"] == pdb["spec"]["selector"]["matchLabels"]
               for c in spread)  # fmt: skip

    custom = render(
        Values("custom", {"server": {
            "replicas": 2,
            "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
            "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "rack",
                                           "whenUnsatisfiable": "DoNotSchedule"}],
        }}),
        tmp_path,
    )  # fmt: skip
    (pdb,) = select(custom, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": "50%", "selector": pdb["spec"]["selector"]}
    assert _pod(custom, "server")["topologySpreadConstraints"][0]["topologyKey"] == "rack"
    off = render(
        Values("off", {"server": {"replicas": 2, "podDisruptionBudget": {"enabled": False}}}),
        tmp_path,
    )
    assert select(off, "PodDisruptionBudget") == []


@pytest.mark.parametrize(
    ("trainer", "gpus"),
    [({}, "1"), ({"gpu": {"enabled": False}}, "0"), ({"gpu": {"enabled": False}, "gpus": 2}, "2")],
)
def test_chart_wide_gpu_default(tmp_path: Path, trainer: dict[str, Any], gpus: str) -> None:
    objects = render(Values("gpus", {"trainer": trainer}), tmp_path)
    assert (
        plain_env(container(deployment(objects, "operator")))["CHANNELMODEL_DEFAULT_GPUS"] == gpus
    )
