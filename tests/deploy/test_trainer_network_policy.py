"""The optional egress NetworkPolicy for training Pods (issue 12): it selects the
Pods the operator actually creates and refuses what the in-process egress
check refuses, so the two layers cannot drift apart."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import kubernetes_validate

from channelmodel.egress import EgressPolicy
from channelmodel.jobs import build_job
from channelmodel.plan_types import StartJob, Trigger
from channelmodel.settings import OperatorSettings
from tests.deploy.cases import S3
from tests.deploy.chart_render import NAMESPACE, Values, render, select
from tests.operator.sim import make_spec

REFUSED = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "127.0.0.1",
           "100.64.0.1", "0.0.0.1", "224.0.0.1", "::1", "fd00:ec2::254", "fe80::1"]  # fmt: skip
PUBLIC = ["93.184.216.34", "2606:4700::1111"]


def test_off_by_default(tmp_path: Path) -> None:
    assert select(render(None, tmp_path), "NetworkPolicy") == []


def test_it_limits_the_trainer_pods_to_dns_public_and_allowed_networks(tmp_path: Path) -> None:
    overrides = {
        "watch": {"namespaces": ["shop-a", "shop-b"]},
        "store": S3,
        "policy": {
            "trainerNetworkPolicy": {"enabled": True},
            "egressAllowNetworks": ["10.96.0.0/12"],
        },
    }
    policies = select(render(Values("netpol", overrides), tmp_path), "NetworkPolicy")
    assert {p["metadata"]["namespace"] for p in policies} == {"shop-a", "shop-b"}
    for policy in policies:
        kubernetes_validate.validate(policy, "1.32", strict=True)

    spec = policies[0]["spec"]
    assert spec["policyTypes"] == ["Egress"]
    # It selects exactly the Pods build_job creates (and nothing of the operator's own).
    job = build_job(
        name="shop-1", namespace="shop-a", uid="u", spec=make_spec(),
        start=StartJob(name="shop-1-train-1", version="1.0.0", trigger=Trigger.EVENT),
        settings=OperatorSettings(),
    )  # fmt: skip
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()

    blocks = [peer["ipBlock"] for rule in spec["egress"] for peer in rule.get("to", [])]

    def reachable(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        for block in blocks:
            network = ipaddress.ip_network(block["cidr"])
            excepted = any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
            if ip.version == network.version and ip in network and not excepted:
                return True
        return False

    default = EgressPolicy()
    for address in REFUSED:
        assert not default.allows(address)
        assert not reachable(address), address
    for address in PUBLIC:
        assert default.allows(address)
        assert reachable(address), address
    assert reachable("10.96.0.10")  # the allowlist opens the Service range
    assert NAMESPACE not in {p["metadata"]["namespace"] for p in policies}
