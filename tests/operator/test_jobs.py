"""The training Job the operator creates, and how it reads the result back."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from channelmodel.api.job_result import JobResult
from channelmodel.api.models import RunMetrics
from channelmodel.jobs import build_job, observe, termination_result
from channelmodel.plan_types import JobPhase, StartJob, Trigger
from channelmodel.settings import OperatorSettings

from .sim import make_spec

START = StartJob(name="shop-1-train-3", version="1.0.2", trigger=Trigger.EVENT)


def _job(settings: OperatorSettings | None = None, **spec: Any) -> dict[str, Any]:
    return build_job(
        name="shop-1",
        namespace="shops",
        uid="uid-123",
        spec=make_spec(**spec),
        start=START,
        settings=settings or OperatorSettings(trainer_image="registry.example/trainer:1"),
    )


def _container(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]


def test_job_validates_against_kubernetes_schema() -> None:
    job = _job(
        training={
            "gpus": 1,
            "resources": {"requests": {"cpu": "1", "memory": "4Gi"}},
            "nodeSelector": {"gpu": "yes"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "queueName": "gpu-queue",
        },
        manifest={"url": "https://b.example/m", "authSecretRef": {"name": "tok", "key": "token"}},
    )
    kubernetes_validate.validate(job, "1.32", strict=True)


def test_job_runs_the_contract_trainer_command_as_non_root() -> None:
    job = _job()
    container = _container(job)
    assert container["command"] == ["channelmodel"]
    args = container["args"]
    assert args[0] == "train"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs == {
        "--manifest": "http://backend.test/manifest",
        "--channel": "shop-1",
        "--version": "1.0.2",
        "--store": "file:///var/lib/channelmodel/models",
        "--epochs": "20",
        "--base-model": "imagenet",
        "--mode": "Auto",
        "--trigger": "event",
    }
    assert container["image"] == "registry.example/trainer:1"
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"


def test_job_is_owned_and_named_deterministically() -> None:
    job = _job()
    meta = job["metadata"]
    assert meta["name"] == "shop-1-train-3"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "ml.dukarun.io/v1alpha1",
            "kind": "ChannelModel",
            "name": "shop-1",
            "uid": "uid-123",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["ml.dukarun.io/channel-model"] == "shop-1"
    assert job == _job()


@pytest.mark.parametrize(
    ("gpus", "expected"), [(1, {"nvidia.com/gpu": "1"}), (2, {"nvidia.com/gpu": "2"}), (0, None)]
)
def test_gpu_request_follows_spec(gpus: int, expected: dict[str, str] | None) -> None:
    resources = _container(
        _job(training={"gpus": gpus, "resources": {"limits": {"memory": "8Gi"}}})
    )["resources"]
    assert resources["limits"].get("memory") == "8Gi"
    if expected is None:
        assert "nvidia.com/gpu" not in resources["limits"]
    else:
        assert resources["limits"]["nvidia.com/gpu"] == expected["nvidia.com/gpu"]


def test_only_gpu_jobs_tolerate_the_gpu_taint() -> None:
    gpu_pod = _job(training={"gpus": 1})["spec"]["template"]["spec"]
    assert gpu_pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert "tolerations" not in _job(training={"gpus": 0})["spec"]["template"]["spec"]
    own = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}
    pod = _job(training={"gpus": 1, "tolerations": [own]})["spec"]["template"]["spec"]
    assert pod["tolerations"] == [own]  # the spec's own toleration of that taint wins


def test_scheduling_fields_and_kueue() -> None:
    job = _job(
        training={
            "activeDeadlineSeconds": 900,
            "backoffLimit": 2,
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "queueName": "team-a",
        }
    )
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 900
    assert spec["backoffLimit"] == 2
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert spec["suspend"] is True  # Kueue admits it
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"}
    # The spec's own, and the GPU taint's: a Pod asking for a GPU tolerates it.
    assert pod["tolerations"] == [
        {"key": "gpu", "operator": "Exists"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert "suspend" not in _job()["spec"]


def test_token_comes_from_the_secret_never_inline() -> None:
    job = _job(
        manifest={"url": "https://b.example/m", "authSecretRef": {"name": "tok", "key": "token"}}
    )
    env = {e["name"]: e for e in _container(job)["env"]}
    assert env["CHANNELMODEL_MANIFEST_TOKEN"] == {
        "name": "CHANNELMODEL_MANIFEST_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}},
    }


def test_store_volume_and_s3_credentials() -> None:
    file_job = _job(OperatorSettings(store_uri="file:///models", store_volume_claim="models-pvc"))
    mounts = {m["name"]: m["mountPath"] for m in _container(file_job)["volumeMounts"]}
    assert mounts["store"] == "/models"
    s3_job = _job(
        OperatorSettings(
            store_uri="s3://bucket/prefix",
            s3_credentials_secret="s3-creds",
            s3_endpoint_url="http://minio:9000",
            s3_region="eu-central-1",
            s3_addressing_style="path",
        )
    )
    container = _container(s3_job)
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert {"name": "CHANNELMODEL_S3_ENDPOINT_URL", "value": "http://minio:9000"} in container[
        "env"
    ]
    assert {"name": "AWS_REGION", "value": "eu-central-1"} in container["env"]
    assert {"name": "CHANNELMODEL_S3_ADDRESSING_STYLE", "value": "path"} in container["env"]
    assert "store" not in {v["name"] for v in s3_job["spec"]["template"]["spec"]["volumes"]}


def _pod(message: str, finished: str = "2026-11-21T10:00:00Z") -> dict[str, Any]:
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": "trainer",
                    "state": {
                        "terminated": {"exitCode": 0, "message": message, "finishedAt": finished}
                    },
                }
            ]
        }
    }


def test_termination_message_is_parsed_from_the_newest_pod() -> None:
    older = _pod(json.dumps({"ok": False, "error": "first try failed"}), "2026-11-21T09:00:00Z")
    newer = _pod(json.dumps({"ok": True, "metrics": {"accuracy": 0.9}}))
    assert termination_result([older, newer]) == JobResult(
        ok=True, metrics=RunMetrics(accuracy=0.9)
    )
    # FallbackToLogsOnError: a crash leaves its log tail instead of JSON
    assert termination_result([_pod("Traceback ...\nMemoryError: out of memory\n")]) == JobResult(
        ok=False, error="MemoryError: out of memory"
    )
    assert termination_result([]) is None


def test_observe_maps_job_conditions() -> None:
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    failed = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "too slow",
                }
            ]
        }
    }
    assert observe(None, [], True).phase == JobPhase.MISSING
    assert observe({"status": {"active": 1}}, [], True).phase == JobPhase.RUNNING
    done = observe(complete, [_pod('{"ok": true}')], True)
    assert done.phase == JobPhase.SUCCEEDED and done.result == JobResult(ok=True)
    broken = observe(failed, [], True)
    assert broken.phase == JobPhase.FAILED and broken.reason == "DeadlineExceeded: too slow"


def test_import_job_runs_the_import_command() -> None:
    job = build_job(
        name="shop-1",
        namespace="shops",
        uid="u",
        spec=make_spec(
            importFrom={
                "url": "https://old.example/tm/model.json",
                "authSecretRef": {"name": "old", "key": "t"},
            }
        ),
        start=StartJob(name="shop-1-train-1", version="1.0.0", trigger=Trigger.IMPORT),
        settings=OperatorSettings(),
    )
    container = _container(job)
    assert container["args"] == [
        "import", "--channel", "shop-1", "--version", "1.0.0",
        "--store", "file:///var/lib/channelmodel/models", "https://old.example/tm/model.json",
    ]  # fmt: skip
    assert container["env"][-1]["valueFrom"] == {"secretKeyRef": {"name": "old", "key": "t"}}


def test_trainer_gets_the_webhook_for_progress_with_an_optional_key() -> None:
    job = _job(
        notify={
            "webhookUrl": "https://b.example/hook",
            "secretRef": {"name": "hook", "key": "hmac"},
        }
    )
    env = {e["name"]: e for e in _container(job)["env"]}
    assert env["CHANNELMODEL_NOTIFY_URL"]["value"] == "https://b.example/hook"
    assert env["CHANNELMODEL_NOTIFY_SIGNED"]["value"] == "true"
    assert env["CHANNELMODEL_NOTIFY_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "hook", "key": "hmac", "optional": True}
    }
    assert "CHANNELMODEL_NOTIFY_URL" not in {e["name"] for e in _container(_job())["env"]}


@pytest.mark.parametrize("mode", ["Auto", "Fast", "FineTune"])
def test_job_passes_the_training_mode_and_trigger(mode: str) -> None:
    args = _container(_job(training={"mode": mode}))["args"]
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs["--mode"] == mode
    assert pairs["--trigger"] == "event"


def test_training_mode_defaults_to_auto_and_rejects_others() -> None:
    from pydantic import ValidationError

    from channelmodel.api.models import Training, TrainingMode

    assert Training().mode == TrainingMode.AUTO
    with pytest.raises(ValidationError):
        Training.model_validate({"mode": "Slow"})


def test_a_job_started_ahead_passes_its_not_before_as_the_trainer_parses_it() -> None:
    import argparse
    from dataclasses import replace
    from datetime import UTC, datetime

    from channelmodel_trainer.cli import add_arguments

    not_before = datetime(2026, 12, 3, 8, 0, 5, 123456, tzinfo=UTC)
    job = build_job(
        name="shop-1",
        namespace="shops",
        uid="uid-123",
        spec=make_spec(),
        start=replace(START, not_before=not_before),
        settings=OperatorSettings(),
    )
    args = _container(job)["args"]
    assert args[0] == "train"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parsed = parser.parse_args(args[1:])  # what `channelmodel train` reads, to the microsecond
    assert parsed.not_before == not_before
    assert "--not-before" not in _container(_job())["args"]  # a Job started at the end waits not
