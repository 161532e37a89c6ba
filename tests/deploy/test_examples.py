"""The examples the README applies fit what a default install creates."""

from __future__ import annotations

from pathlib import Path

import yaml

from channelmodel.api.models import ChannelModelSpec
from tests.deploy.chart_render import CHART_DIR, Values, only, render

REPO_ROOT = Path(__file__).resolve().parents[2]


def _spec(name: str) -> ChannelModelSpec:
    doc = yaml.safe_load((REPO_ROOT / "examples" / name).read_text())
    return ChannelModelSpec.model_validate(doc["spec"])


def test_the_cpu_example_needs_no_gpu_secret_or_queue() -> None:
    spec = _spec("channelmodel-cpu.yaml")
    assert spec.training.gpus == 0
    assert spec.training.queueName is None and spec.training.nodeSelector is None
    assert spec.manifest.authSecretRef is None and spec.notify is None


def test_the_full_example_names_the_queue_the_chart_creates_with_kueue(tmp_path: Path) -> None:
    queue = _spec("channelmodel-full.yaml").training.queueName
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert queue == values["kueue"]["localQueue"]["name"]
    assert not values["kueue"]["enabled"], "a default install creates no LocalQueue"
    objects = render(
        Values("kueue", {"kueue": {"enabled": True, "localQueue": {"clusterQueue": "training"}}}),
        tmp_path,
    )
    local_queue = only(objects, "LocalQueue")
    assert local_queue["metadata"]["name"] == queue
    assert local_queue["spec"]["clusterQueue"] == "training"
    assert [o for o in render(None, tmp_path) if o["kind"] == "LocalQueue"] == []
