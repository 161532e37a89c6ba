"""The chart renders the env the code parses: OperatorSettings for the operator,
ServerSettings (and CompatSettings for the compatibility API) for the model server.
Chart and code cannot drift apart: every CHANNELMODEL_* variable the chart sets
must be a field, and its value must parse."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from channelmodel.compat.settings import CompatSettings
from channelmodel.server.settings import ServerSettings
from channelmodel.settings import OperatorSettings
from channelmodel.store import s3
from tests.deploy.cases import CASE_IDS, CASES, COMPAT, COMPAT_CREATE, S3
from tests.deploy.chart_render import (
    NAMESPACE,
    Manifest,
    Values,
    container,
    deployment,
    mounted_secret_key,
    plain_env,
    render,
    rendered_operator_environment,
    select,
)

# Read by the store and botocore rather than by a settings class.
STORE_ENV = {
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    s3.ADDRESSING_ENV,
}
# HOME for libraries; the Pod's name (leader election's holder identity) and
# namespace (read as CHANNELMODEL_LEADER_ELECTION_NAMESPACE's fallback) from the downward API.
PROCESS_ENV = {"HOME", "POD_NAME", "POD_NAMESPACE"}
# The operator has it as a setting; the model server's store reads it directly.
SERVER_ALSO_READS = {s3.ENDPOINT_ENV}


@contextmanager
def only_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> Iterator[None]:
    """Exactly `env` as the process environment (as in the container)."""
    with monkeypatch.context() as patch:
        for name in list(__import__("os").environ):
            if name.startswith(("CHANNELMODEL_", "AWS_")):
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        yield


def field_env_names(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in settings.model_fields}


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request: pytest.FixtureRequest) -> Values:
    value: Values = request.param
    return value


def test_operator_env_parses_as_operator_settings(
    case: Values, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(case, tmp_path)
    operator = container(deployment(objects, "operator"))
    env = plain_env(operator)
    unknown = (
        {n for n in env if n.startswith("CHANNELMODEL_")}
        - field_env_names(OperatorSettings)
        - STORE_ENV
    )
    assert not unknown, f"the chart sets variables OperatorSettings does not read: {unknown}"
    assert set(env) - field_env_names(OperatorSettings) <= STORE_ENV | PROCESS_ENV
    with only_env(monkeypatch, env):
        settings = OperatorSettings()

    # Each setting agrees with the objects the chart renders around it.
    workload_namespaces = {
        sa["metadata"]["namespace"]
        for sa in select(objects, "ServiceAccount", settings.trainer_service_account)
    }
    if settings.cluster_wide:
        assert select(objects, "ClusterRoleBinding")
        assert NAMESPACE in workload_namespaces
    else:
        assert set(settings.namespaces) == {
            r["metadata"]["namespace"]
            for r in select(objects, "RoleBinding")
            if not r["metadata"]["name"].endswith("-leader-election")
        }
        assert set(settings.namespaces) == workload_namespaces
    if settings.store_uri.startswith("file://"):
        claim = settings.store_volume_claim
        assert claim is not None
        pod = deployment(objects, "operator")["spec"]["template"]["spec"]
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {claim}
    else:
        assert settings.store_volume_claim is None
        secret_refs = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in operator["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert {settings.s3_credentials_secret} - {None} == secret_refs
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert settings.metrics_port == ports.get("metrics", 0)
    assert settings.trainer_image.startswith("channelmodel-trainer:")
    if settings.leader_election:
        # The Lease is where the chart's Role lets the operator write it.
        assert settings.lease_namespace == NAMESPACE
        (role,) = [
            r for r in select(objects, "Role") if r["metadata"]["name"].endswith("-leader-election")
        ]
        assert role["metadata"]["namespace"] == NAMESPACE
        assert [settings.leader_election_lease_name] in [
            rule.get("resourceNames") for rule in role["rules"]
        ]


def test_server_env_parses_as_server_settings(
    case: Values, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(case, tmp_path)
    server = container(deployment(objects, "server"))
    env = plain_env(server)
    unknown = (
        {n for n in env if n.startswith("CHANNELMODEL_")}
        - field_env_names(ServerSettings)
        - field_env_names(CompatSettings)
        - STORE_ENV
        - SERVER_ALSO_READS
    )
    assert not unknown, (
        f"the chart sets variables ServerSettings and CompatSettings do not read: {unknown}"
    )
    with only_env(monkeypatch, env):
        settings = ServerSettings()
        compat = CompatSettings()
        operator_settings = OperatorSettings()  # the server's view of shared variables
    assert compat.enabled == bool(compat_roles(objects))
    assert settings.server_port == server["ports"][0]["containerPort"]
    assert (
        settings.store_uri
        == plain_env(container(deployment(objects, "operator")))["CHANNELMODEL_STORE_URI"]
    )
    assert (
        settings.public_base_url
        == plain_env(container(deployment(objects, "operator")))["CHANNELMODEL_PUBLIC_BASE_URL"]
    )
    assert operator_settings.store_uri == settings.store_uri


def compat_roles(objects: list[Manifest]) -> list[Manifest]:
    """Roles bound to the model server's ServiceAccount (the compatibility API's)."""
    account = deployment(objects, "server")["spec"]["template"]["spec"]["serviceAccountName"]
    bound = {
        (binding["metadata"]["namespace"], binding["roleRef"]["name"])
        for binding in select(objects, "RoleBinding")
        if any(s["name"] == account and s["namespace"] == NAMESPACE for s in binding["subjects"])
    }
    return [
        role
        for role in select(objects, "Role")
        if (role["metadata"]["namespace"], role["metadata"]["name"]) in bound
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"server": {"compat": COMPAT}},
            {"namespace": NAMESPACE, "create": False, "mode": "event"},
        ),
        (
            {
                "watch": {"namespaces": ["shop-a", "shop-b"]},
                "store": S3,
                "server": {"compat": COMPAT_CREATE},
            },
            {"namespace": "shop-b", "create": True, "mode": "manual"},
        ),
        (
            {
                "watch": {"clusterWide": True},
                "store": S3,
                "server": {"compat": {**COMPAT, "namespace": "anywhere"}},
            },
            {"namespace": "anywhere", "create": False, "mode": "event"},
        ),
    ],
    ids=["defaults", "create-manual-other-namespace", "cluster-wide"],
)
def test_compat_env_parses_and_reads_the_token_from_the_mounted_secret(
    overrides: dict[str, Any],
    expected: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render(Values("compat", overrides), tmp_path)
    pod = deployment(objects, "server")["spec"]["template"]["spec"]
    env = plain_env(pod["containers"][0])
    with only_env(monkeypatch, env):
        settings = CompatSettings()
    assert settings.enabled is True
    assert settings.token is None, "the token must come from the Secret file, never from env"
    for name, value in expected.items():
        assert getattr(settings, name) == value, name
    (role,) = compat_roles(objects)
    assert role["metadata"]["namespace"] == settings.namespace

    # The file the server reads is the values' Secret key, mounted without subPath.
    assert settings.token_file is not None
    mounted = mounted_secret_key(pod, str(settings.token_file))
    values = overrides["server"]["compat"]
    assert mounted is not None, f"{settings.token_file} is not on a Secret volume"
    assert (mounted.secret, mounted.key) == (
        values["existingSecret"],
        values.get("secretKey", "token"),
    )
    assert mounted.mode is not None and mounted.mode & 0o440 == 0o440 and not mounted.mode & 0o007
    assert pod["securityContext"]["fsGroup"]  # group-readable is readable by the container

    # As the kubelet would project it: the server then reads exactly that value.
    root = tmp_path / "mount"
    (root / mounted.relative).parent.mkdir(parents=True, exist_ok=True)
    (root / mounted.relative).write_text("bearer-from-secret\n")
    projected = settings.model_copy(update={"token_file": root / mounted.relative})
    assert projected.bearer_token() == "bearer-from-secret"


def test_compat_off_sets_no_compat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # existingSecret set but enabled false: still nothing.
    disabled = {**COMPAT_CREATE, "enabled": False, "namespace": ""}
    for overrides in ({}, {"server": {"compat": disabled}}):
        objects = render(Values("compat-off", overrides), tmp_path)
        pod = deployment(objects, "server")["spec"]["template"]["spec"]
        env = plain_env(pod["containers"][0])
        assert not [name for name in env if name.startswith("CHANNELMODEL_COMPAT_")]
        with only_env(monkeypatch, env):
            assert CompatSettings().enabled is False
        assert not [v for v in pod["volumes"] if "secret" in v]
        assert compat_roles(objects) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {},
            {
                "namespaces": [NAMESPACE],
                "public_base_url": f"http://shop-channelmodel-server.{NAMESPACE}.svc",
            },
        ),
        (
            {
                "watch": {"clusterWide": True},
                "store": {"type": "s3", "s3": {"bucket": "b-1", "prefix": "/x/y/"}},
            },
            {"namespaces": [], "store_uri": "s3://b-1/x/y", "s3_credentials_secret": None},
        ),
        (
            {
                "operator": {
                    "maxConcurrentTrainings": 7,
                    "qualityMargin": 0.5,
                    "apiConcurrency": 24,
                    "jobTtlSeconds": 0,
                }
            },
            {
                "max_concurrent_trainings": 7,
                "quality_margin": 0.5,
                "api_concurrency": 24,
                "job_ttl_seconds": 0,
            },
        ),
        (
            {
                "trainer": {
                    "image": {"pullPolicy": "Always"},
                    "baseModel": "/models/tm/model.json",
                },
                "operator": {"logFormat": "text"},
            },
            {
                "trainer_image_pull_policy": "Always",
                "base_model": "/models/tm/model.json",
                "log_format": "text",
            },
        ),
        (
            {"operator": {"publicBaseUrl": "https://cdn.example/shop/"}},
            {"public_base_url": "https://cdn.example/shop"},
        ),
        (
            {"server": {"service": {"port": 8081}}},
            {"public_base_url": f"http://shop-channelmodel-server.{NAMESPACE}.svc:8081"},
        ),
    ],
    ids=["defaults", "cluster-wide-s3", "tuning", "trainer", "public-url", "service-port"],
)
def test_values_reach_the_settings(
    overrides: dict[str, Any],
    expected: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command, env = rendered_operator_environment(overrides, tmp_path)
    assert command[:2] == ["channelmodel", "run"]
    with only_env(monkeypatch, env):
        settings = OperatorSettings()
    for name, value in expected.items():
        assert getattr(settings, name) == value, name


def test_operator_command_is_accepted_by_the_cli(tmp_path: Path) -> None:
    command, _ = rendered_operator_environment({}, tmp_path)
    from channelmodel import cli

    try:
        parser = cli.build_parser(command[1:2])
    except ModuleNotFoundError as error:
        pytest.skip(f"`channelmodel run` is not implemented yet ({error})")
    args = parser.parse_args(command[1:])
    assert args.command == "run"


def test_rendered_s3_env_reaches_a_real_s3_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Operator publishes and the model server reads through the env the chart renders."""
    from channelmodel.store import MODEL_FILES, open_store
    from channelmodel.store.testing import create_bucket, moto_s3_server

    with moto_s3_server() as endpoint:
        bucket = create_bucket(endpoint)
        overrides = {
            "store": {
                "type": "s3",
                "s3": {
                    "bucket": bucket,
                    "prefix": "models",
                    "endpointUrl": endpoint,
                    "addressingStyle": "path",
                    "existingSecret": "s3-keys",
                },
            }
        }
        objects = render(Values("moto", overrides), tmp_path)
        # What the Secret holds; moto accepts any keys.
        secret = {
            "<secret s3-keys/AWS_ACCESS_KEY_ID>": "id",
            "<secret s3-keys/AWS_SECRET_ACCESS_KEY>": "key",
        }
        envs = {
            component: {
                name: secret.get(value, value)
                for name, value in plain_env(container(deployment(objects, component))).items()
            }
            for component in ("operator", "server")
        }
        files = {name: f"{name} of 1.0.0".encode() for name in MODEL_FILES}
        with only_env(monkeypatch, envs["operator"]):
            open_store(OperatorSettings().store_uri).publish_version("shop-1", "1.0.0", files)
        with only_env(monkeypatch, envs["server"]):
            store = open_store(ServerSettings().store_uri)
            assert store.list_versions("shop-1") == ["1.0.0"]
            assert store.read_file("shop-1", "1.0.0", "model.json") == files["model.json"]
