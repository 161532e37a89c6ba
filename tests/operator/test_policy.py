"""The operator-side policy (issue 12, finding 1): what a ChannelModel's author
may choose. Whoever may patch a ChannelModel must not be able to run any image,
anywhere, with any Secret of the namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from channelmodel.api.models import ChannelModelSpec
from channelmodel.jobs import build_job
from channelmodel.plan_types import StartJob, Trigger
from channelmodel.policy import (
    channel_claim_problem,
    job_secret_refs,
    secret_opt_in_problem,
    spec_problem,
    token_origin_problem,
)
from channelmodel.settings import OperatorSettings

from .sim import make_spec

SETTINGS = OperatorSettings(trainer_image="registry.example/trainer:1")
START = StartJob(name="shop-1-train-1", version="1.0.0", trigger=Trigger.EVENT)
OPT_IN = "ml.dukarun.io/channel-models"


def problem(settings: OperatorSettings = SETTINGS, **training: Any) -> str | None:
    return spec_problem(make_spec(training=training), settings)


def test_the_default_spec_is_within_the_default_policy() -> None:
    assert problem() is None
    full = Path(__file__).parents[2] / "examples" / "channelmodel-full.yaml"
    example = ChannelModelSpec.model_validate(yaml.safe_load(full.read_text())["spec"])
    assert spec_problem(example, OperatorSettings()) is None
    assert problem(gpus=0, resources={"requests": {"cpu": "2", "memory": "4Gi"}}) is None
    assert problem(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}]) is None


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"image": "attacker.example/exfiltrate:latest"}, "image"),
        ({"gpus": 8}, "gpus 8 is over the operator's ceiling of 1"),
        ({"activeDeadlineSeconds": 10**7}, "activeDeadlineSeconds"),
        ({"resources": {"limits": {"memory": "1Ti"}}}, "memory 1Ti is over"),
        ({"resources": {"requests": {"cpu": "64"}}}, "cpu 64 is over"),
        ({"resources": {"limits": {"nvidia.com/gpu": "8"}}, "gpus": 0}, "spec.training.gpus"),
        ({"resources": {"limits": {"hugepages-2Mi": "1Gi"}}}, "hugepages-2Mi is not allowed"),
        ({"resources": {"claims": [{"name": "gpu"}]}}, "claims is not allowed"),
        ({"resources": {"limits": {"memory": "lots"}}}, "not a quantity"),
        ({"nodeSelector": {"kubernetes.io/hostname": "control-plane"}}, "nodeSelector key"),
        ({"tolerations": [{"operator": "Exists"}]}, "tolerates every taint"),
        (
            {
                "tolerations": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
                ]
            },
            "tolerations key",
        ),
    ],
)
def test_a_spec_outside_the_policy_is_refused(training: dict[str, Any], message: str) -> None:
    found = problem(**training)
    assert found is not None
    assert message in found


def test_the_chart_widens_the_policy() -> None:
    settings = OperatorSettings(
        trainer_image="registry.example/trainer:1",
        allowed_trainer_images=["registry.example/trainer-*", "other.example/t:2"],
        allowed_node_selectors={"pool": ["gpu-a", "gpu-b"], "zone": ["*"]},
        allowed_toleration_keys=["*"],
        max_gpus=4,
        max_memory="128Gi",
    )
    assert problem(settings, image="registry.example/trainer-gpu:7") is None
    assert problem(settings, image="other.example/t:2") is None
    assert problem(settings, image="other.example/t:3") is not None
    assert problem(settings, nodeSelector={"pool": "gpu-b", "zone": "eu-1a"}) is None
    assert problem(settings, nodeSelector={"pool": "cpu"}) is not None
    assert problem(settings, tolerations=[{"operator": "Exists"}]) is None
    assert problem(settings, gpus=4, resources={"limits": {"memory": "100Gi"}}) is None


def test_the_operators_placement_and_memory_limit_are_applied() -> None:
    settings = OperatorSettings(
        trainer_image="registry.example/trainer:1",
        trainer_node_selector={"pool": "training"},
        trainer_tolerations=[{"key": "training", "operator": "Exists", "effect": "NoSchedule"}],
        allowed_node_selectors={"pool": ["*"], "zone": ["*"]},
        default_memory_limit="6Gi",
    )
    spec = make_spec(
        training={
            # the spec may add, never override, the operator's placement
            "nodeSelector": {"pool": "anything", "zone": "b"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        }
    )
    job = build_job(
        name="shop-1", namespace="d", uid="u", spec=spec, start=START, settings=settings
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "training", "zone": "b"}
    assert pod["tolerations"][0]["key"] == "training"
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "6Gi"

    # a request above the default keeps the Pod valid (limit >= request)
    big = make_spec(training={"resources": {"requests": {"memory": "12Gi"}}})
    job = build_job(name="shop-1", namespace="d", uid="u", spec=big, start=START, settings=settings)
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "memory": "12Gi",
        "nvidia.com/gpu": "1",
    }


def _secret_problem(annotations: dict[str, str], settings: OperatorSettings = SETTINGS) -> Any:
    return secret_opt_in_problem(
        {"annotations": annotations},
        namespace="shops",
        secret="tok",
        channel_model="shop-1",
        settings=settings,
    )


def test_secrets_must_be_opted_in_for_the_channelmodel() -> None:
    assert "not opted in for ChannelModel shop-1" in _secret_problem({})
    assert _secret_problem({OPT_IN: "shop-2"}) is not None
    assert _secret_problem({OPT_IN: "shop-11"}) is not None  # names, not prefixes
    assert _secret_problem({OPT_IN: "shop-2, shop-1"}) is None
    assert _secret_problem({OPT_IN: "*"}) is None
    assert _secret_problem({}, OperatorSettings(allowed_secrets=["shops/tok"])) is None
    assert _secret_problem({}, OperatorSettings(allowed_secrets=["tok"])) is None
    assert _secret_problem({}, OperatorSettings(allowed_secrets=["other/tok"])) is not None


def test_the_store_credentials_are_never_usable() -> None:
    settings = OperatorSettings(store_uri="s3://b/p", s3_credentials_secret="tok")
    found = _secret_problem({OPT_IN: "*"}, settings)
    assert found is not None
    assert "store credentials" in found


def test_every_secret_a_job_reads_is_checked() -> None:
    spec = make_spec(
        manifest={"url": "https://b.example/m", "authSecretRef": {"name": "m", "key": "t"}},
        notify={"webhookUrl": "https://b.example/h", "secretRef": {"name": "h", "key": "k"}},
        importFrom={
            "url": "https://tm.example/model.json",
            "authSecretRef": {"name": "i", "key": "t"},
        },
    )
    assert [(ref.name, url) for ref, url in job_secret_refs(spec, START)] == [
        ("m", "https://b.example/m"),
        ("h", None),  # an HMAC key is never sent
    ]
    importing = StartJob(name="shop-1-train-1", version="1.0.0", trigger=Trigger.IMPORT)
    assert [(ref.name, url) for ref, url in job_secret_refs(spec, importing)] == [
        ("i", "https://tm.example/model.json")
    ]


def test_a_token_secret_can_pin_the_origins_it_is_sent_to() -> None:
    def check(url: str, pinned: str | None) -> str | None:
        annotations = {} if pinned is None else {"ml.dukarun.io/token-origins": pinned}
        return token_origin_problem(
            {"annotations": annotations}, namespace="shops", secret="tok", url=url
        )

    assert check("https://attacker.example/collect", None) is None  # not pinned
    pinned = "https://backend.shop.example, http://10.0.0.5:8080"
    assert check("https://backend.shop.example/ml/42/manifest?x=1", pinned) is None
    assert check("https://BACKEND.shop.example:443/m", pinned) is None
    assert check("http://10.0.0.5:8080/m", pinned) is None
    for url in (
        "https://attacker.example/collect",
        "http://backend.shop.example/m",  # another scheme is another origin
        "https://backend.shop.example:8443/m",
        "https://backend.shop.example.attacker.example/m",
    ):
        found = check(url, pinned)
        assert found is not None
        assert "may only be sent to" in found


def test_the_oldest_channelmodel_owns_its_channel_id() -> None:
    owners = {
        "shop-1": [
            ("2026-11-21T10:00:00Z", "shops", "shop-1"),
            ("2026-11-22T09:00:00Z", "other", "intruder"),
        ]
    }
    assert channel_claim_problem("shop-1", "shops", "shop-1", owners) is None
    found = channel_claim_problem("shop-1", "other", "intruder", owners)
    assert found is not None
    assert "belongs to ChannelModel shops/shop-1" in found
    assert channel_claim_problem("shop-2", "shops", "shop-2", owners) is None
