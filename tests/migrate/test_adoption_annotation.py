"""`--name`: the ChannelModel is checked before publishing and annotated after,
so the operator adopts the imported version."""

from __future__ import annotations

from pathlib import Path

from channelmodel.api.annotations import IMPORTED_ORIGIN, IMPORTED_VERSION
from channelmodel.store import ArtifactStore
from tests.migrate.conftest import Importer, stored_files
from tests.support.k8s import Cluster

SPEC = {"channelId": "shop-1", "manifest": {"url": "https://shop.test/manifest.json"}}


def test_published_version_is_annotated_on_the_channel_model(
    k8s: Cluster, reference_zip: Path, run_import: Importer, store: ArtifactStore
) -> None:
    k8s.create_channelmodel("shop-one", SPEC)

    run = run_import(
        str(reference_zip),
        "--name",
        "shop-one",
        "--kubeconfig",
        str(k8s.kubeconfig),
        "-n",
        k8s.namespace,
    )

    assert run.code == 0, run.stderr
    annotations = k8s.get_channelmodel("shop-one")["metadata"]["annotations"]
    assert annotations[IMPORTED_VERSION] == "1.0.0" == run.result["version"]
    assert annotations[IMPORTED_ORIGIN] == f"imported:{reference_zip.resolve()}"
    assert store.list_versions("shop-1") == ["1.0.0"]


def test_version_follows_what_the_channel_model_knows(
    k8s: Cluster, reference_dir: Path, run_import: Importer
) -> None:
    """A training in flight publishes 1.0.3: the import must not take that number."""
    k8s.create_channelmodel("shop-one", SPEC)
    k8s.custom.patch_namespaced_custom_object_status(
        "ml.dukarun.io",
        "v1alpha1",
        k8s.namespace,
        "channelmodels",
        "shop-one",
        {
            "status": {
                "latestVersion": "1.0.2",
                "currentJob": {
                    "name": "shop-one-train-3",
                    "version": "1.0.3",
                    "trigger": "event",
                    "startedAt": "2026-11-22T00:00:00Z",
                },
            }
        },
    )

    run = run_import(
        str(reference_dir),
        "--name",
        "shop-one",
        "--kubeconfig",
        str(k8s.kubeconfig),
        "-n",
        k8s.namespace,
    )

    assert run.code == 0, run.stderr
    assert run.result["version"] == "1.0.4"


def test_channel_model_of_another_channel_is_refused_before_publishing(
    k8s: Cluster, reference_zip: Path, run_import: Importer, store_uri: str
) -> None:
    k8s.create_channelmodel("other", {**SPEC, "channelId": "shop-2"})

    run = run_import(
        str(reference_zip),
        "--name",
        "other",
        "--kubeconfig",
        str(k8s.kubeconfig),
        "-n",
        k8s.namespace,
    )

    assert run.code == 1
    assert (
        run.result["error"]
        == f"ChannelModel {k8s.namespace}/other is for channel 'shop-2', not 'shop-1'"
    )
    assert stored_files(store_uri) == []
    assert IMPORTED_VERSION not in (
        k8s.get_channelmodel("other")["metadata"].get("annotations") or {}
    )


def test_missing_channel_model_is_refused_before_publishing(
    k8s: Cluster, reference_zip: Path, run_import: Importer, store_uri: str
) -> None:
    run = run_import(
        str(reference_zip), "--name", "nope", "-n", "shops", "--kubeconfig", str(k8s.kubeconfig)
    )

    assert run.code == 1
    assert run.result["error"] == "ChannelModel shops/nope: not found"
    assert stored_files(store_uri) == []
