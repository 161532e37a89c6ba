"""The chart's high availability: operator replicas, leader election, probes, PDB, Lease RBAC
(docs/operations.md, "High availability")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.cases import S3
from tests.deploy.chart_render import (
    NAMESPACE,
    Manifest,
    Values,
    assert_refused,
    container,
    deployment,
    plain_env,
    render,
    rendered_notes,
    select,
)

HA: dict[str, Any] = {"operator": {"replicas": 2}}


def lease_roles(objects: list[Manifest]) -> list[Manifest]:
    return [
        role
        for role in select(objects, "Role") + select(objects, "ClusterRole")
        if any("leases" in rule["resources"] for rule in role["rules"])
    ]


def probes(main: dict[str, Any]) -> dict[str, str]:
    return {probe: main[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}  # fmt: skip


def test_one_replica_by_default_without_leader_election(tmp_path: Path) -> None:
    objects = render(None, tmp_path)
    operator = deployment(objects, "operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    env = plain_env(container(operator))
    assert not {name for name in env if "LEADER_ELECTION" in name or name.startswith("POD_")}
    assert set(probes(container(operator)).values()) == {"/healthz"}  # kopf's own endpoint
    assert not lease_roles(objects)
    assert not [p for p in select(objects, "PodDisruptionBudget") if "operator" in p["metadata"]["name"]]  # fmt: skip
    assert "topologySpreadConstraints" not in operator["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "overrides",
    [HA, {**HA, "watch": {"clusterWide": True, "namespaces": ["shop-a"]}, "store": S3}],
    ids=["namespaced", "cluster-wide"],
)
def test_two_replicas_elect_a_leader(overrides: dict[str, Any], tmp_path: Path) -> None:
    objects = render(Values("ha", overrides), tmp_path)
    operator = deployment(objects, "operator")
    spec = operator["spec"]
    assert spec["replicas"] == 2
    # A new Pod starts as a standby before an old one goes: never none.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    main = container(operator)
    env = plain_env(main)
    assert env["CHANNELMODEL_LEADER_ELECTION"] == "true"
    lease = env["CHANNELMODEL_LEADER_ELECTION_LEASE_NAME"]
    assert lease == "shop-channelmodel-operator"
    assert env["POD_NAMESPACE"] == NAMESPACE  # the downward API
    fields = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in main["env"] if "fieldRef" in e.get("valueFrom", {})}  # fmt: skip
    assert fields == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}
    timings = [
        int(env[f"CHANNELMODEL_LEADER_ELECTION_{name}_SECONDS"])
        for name in ("LEASE_DURATION", "RENEW_DEADLINE", "RETRY_PERIOD")
    ]
    assert timings == [8, 6, 2]

    # Probes: the operator's own endpoint, for leader and standby alike.
    liveness_flag = next(arg for arg in main["args"] if arg.startswith("--liveness="))
    assert liveness_flag.endswith("/healthz")
    assert probes(main) == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert {main[p]["httpGet"]["port"] for p in probes(main)} == {"health"}
    assert liveness_flag.startswith(f"--liveness=http://0.0.0.0:{ports['health']}/")

    # One replica at a time may go in a drain; replicas on different nodes if possible.
    pdbs = [p for p in select(objects, "PodDisruptionBudget") if p["metadata"]["name"] == "shop-channelmodel-operator"]  # fmt: skip
    assert len(pdbs) == 1
    assert pdbs[0]["spec"]["maxUnavailable"] == 1
    selector = spec["selector"]["matchLabels"]
    assert pdbs[0]["spec"]["selector"]["matchLabels"] == selector
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spread)
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)

    # The Lease: a Role in the release namespace (even cluster-wide), named where it can be.
    (role,) = lease_roles(objects)
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == NAMESPACE
    rules = {(tuple(rule["verbs"]), tuple(rule.get("resourceNames", ()))) for rule in role["rules"]}
    assert rules == {(("create",), ()), (("get", "update"), (lease,))}
    assert all(rule["apiGroups"] == ["coordination.k8s.io"] for rule in role["rules"])
    (binding,) = [
        b
        for b in select(objects, "RoleBinding")
        if b["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert binding["metadata"]["namespace"] == NAMESPACE
    sa = spec["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]


def test_leader_election_with_one_replica_rolls_instead_of_recreating(tmp_path: Path) -> None:
    overrides = {"operator": {"leaderElection": {"enabled": True}}}
    objects = render(Values("one-elected", overrides), tmp_path)
    operator = deployment(objects, "operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"]["type"] == "RollingUpdate"
    assert plain_env(container(operator))["CHANNELMODEL_LEADER_ELECTION"] == "true"
    assert lease_roles(objects)
    # One replica keeps nothing available: no PDB that would block every drain.
    assert not [p for p in select(objects, "PodDisruptionBudget") if "operator" in p["metadata"]["name"]]  # fmt: skip


def test_pdb_and_spread_can_be_set_or_switched_off(tmp_path: Path) -> None:
    spread = [{"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"tier": "ops"}}}]  # fmt: skip
    overrides = {
        "operator": {
            "replicas": 3,
            "podDisruptionBudget": {"enabled": False, "maxUnavailable": 1},
            "topologySpreadConstraints": spread,
        }
    }
    objects = render(Values("ha-custom", overrides), tmp_path)
    assert not [p for p in select(objects, "PodDisruptionBudget") if "operator" in p["metadata"]["name"]]  # fmt: skip
    pod = deployment(objects, "operator")["spec"]["template"]["spec"]
    assert pod["topologySpreadConstraints"] == spread


@pytest.mark.parametrize(
    ("overrides", "messages"),
    [
        (
            {"operator": {"replicas": 2, "leaderElection": {"enabled": False}}},
            ["operator.replicas=2 needs operator.leaderElection.enabled"],
        ),
        (
            {"operator": {"leaderElection": {"leaseDurationSeconds": 6}}},
            ["leaseDurationSeconds > renewDeadlineSeconds > 1.2 x retryPeriodSeconds", "6, 6, 2"],
        ),
        (
            {"operator": {"leaderElection": {"retryPeriodSeconds": 5}}},
            ["leaseDurationSeconds > renewDeadlineSeconds > 1.2 x retryPeriodSeconds"],
        ),
        ({"operator": {"replicas": 0}}, ["replicas"]),
        ({"operator": {"leaderElection": {"leaseSeconds": 8}}}, ["leaseSeconds"]),
    ],
    ids=[
        "replicas-without-election",
        "lease-not-above-renew",
        "renew-not-above-retry",
        "zero",
        "typo",
    ],
)
def test_unsafe_ha_values_are_refused(
    overrides: dict[str, Any], messages: list[str], tmp_path: Path
) -> None:
    assert_refused(overrides, messages, tmp_path)


def test_notes_say_which_lease_decides(tmp_path: Path) -> None:
    notes = rendered_notes(HA, tmp_path)
    assert "(2 replicas; the holder of lease/shop-channelmodel-operator acts)" in notes
    assert "lease/" not in rendered_notes({}, tmp_path / "one")
