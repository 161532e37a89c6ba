"""The CRD upgrade path: the channelmodel-crds chart renders the same CRD as
deploy/crds (plus the keep policy), as a template Helm upgrades; the main chart
can skip its crds/ folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from channelmodel.api.crd import crd_manifest
from tests.deploy.chart_render import CHART_DIR, RELEASE, run_helm

CRD_CHART = CHART_DIR.parent / "channelmodel-crds"


def test_crd_chart_renders_the_generated_crd_with_keep_policy() -> None:
    out = run_helm(["template", "crds", str(CRD_CHART)]).stdout
    (crd,) = [doc for doc in yaml.safe_load_all(out) if doc]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    expected = crd_manifest()
    assert crd["spec"] == expected["spec"]
    assert crd["metadata"]["name"] == expected["metadata"]["name"]
    chart = yaml.safe_load((CRD_CHART / "Chart.yaml").read_text())
    main = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["version"] == main["version"], "install both charts at one version"
    assert run_helm(["lint", str(CRD_CHART)]).returncode == 0


def test_main_chart_without_its_crds_folder(tmp_path: Path) -> None:
    out = run_helm(["template", RELEASE, str(CHART_DIR), "--skip-crds"]).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(out) if doc}
    assert "CustomResourceDefinition" not in kinds and "Deployment" in kinds
