"""The Helm chart: lint, render, validate every object, refuse bad values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.cases import CASE_IDS, CASES
from tests.deploy.chart_render import (
    CHART_DIR,
    CRD_FILE,
    NAMESPACE,
    Manifest,
    Values,
    assert_refused,
    container,
    deployment,
    only,
    plain_env,
    render,
    rendered_notes,
    run_helm,
    select,
    template_args,
)

# Oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest
# the validator knows: every object must be valid in both.
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.utils.latest_version()]

# Objects whose types are CRDs of other projects: checked against the fields we
# render (their full schemas are not bundled with kubernetes-validate).
FOREIGN_SCHEMAS: dict[str, dict[str, Any]] = {
    "monitoring.coreos.com/v1/ServiceMonitor": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {
                        "type": "object",
                        "required": ["matchLabels"],
                        "properties": {"matchLabels": {"type": "object", "minProperties": 1}},
                    },
                    "namespaceSelector": {
                        "type": "object",
                        "properties": {
                            "matchNames": {"type": "array", "items": {"type": "string"}}
                        },
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": {"type": "string", "minLength": 1},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "scrapeTimeout": {
                                    "type": "string",
                                    "pattern": "^[0-9]+(ms|s|m|h)$",
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    "kueue.x-k8s.io/v1beta1/LocalQueue": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["clusterQueue"],
                "properties": {
                    "clusterQueue": {
                        "type": "string",
                        "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                    }
                },
            }
        },
    },
}

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
)


def _validate(obj: Manifest) -> None:
    key = f"{obj['apiVersion']}/{obj['kind']}"
    if key in FOREIGN_SCHEMAS:
        jsonschema.validate(obj, FOREIGN_SCHEMAS[key])
        return
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{key} {obj['metadata']['name']} invalid for Kubernetes {version}: {error.message} at {list(error.path)}"
            )


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request: pytest.FixtureRequest) -> Values:
    value: Values = request.param
    return value


def test_helm_lint_strict(case: Values, tmp_path: Path) -> None:
    result = run_helm(
        [
            "lint",
            "--strict",
            str(CHART_DIR),
            "--namespace",
            NAMESPACE,
            "--values",
            str(case.write(tmp_path)),
        ]
    )
    assert "0 chart(s) failed" in result.stdout


def test_every_rendered_object_validates_strictly(case: Values, tmp_path: Path) -> None:
    objects = render(case, tmp_path)
    kinds = {obj["kind"] for obj in objects}
    assert {"CustomResourceDefinition", "Deployment", "Service", "ServiceAccount"} <= kinds
    for obj in objects:
        _validate(obj)


def test_every_object_carries_the_standard_labels(case: Values, tmp_path: Path) -> None:
    for obj in render(case, tmp_path):
        labels = obj["metadata"].get("labels", {})
        missing = [label for label in STANDARD_LABELS if label not in labels]
        if obj["kind"] == "CustomResourceDefinition":
            # Shared by every release, so no release-specific labels.
            missing = [
                label
                for label in missing
                if label in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")
            ]
        assert not missing, f"{obj['kind']} {obj['metadata']['name']} lacks {missing}"


def test_services_select_the_pods_of_their_deployment(case: Values, tmp_path: Path) -> None:
    objects = render(case, tmp_path)
    for service in select(objects, "Service"):
        selector = service["spec"]["selector"]
        targets = [
            d
            for d in select(objects, "Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, (
            f"Service {service['metadata']['name']} selects {len(targets)} Deployments"
        )
        port_names = {p["name"] for p in container(targets[0]).get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_service_monitors_scrape_existing_metrics_ports(tmp_path: Path) -> None:
    for overrides, expected in (
        ({"metrics": {"serviceMonitor": {"enabled": True}}}, {"operator", "server"}),
        (
            {"operator": {"metricsPort": 0}, "metrics": {"serviceMonitor": {"enabled": True}}},
            {"server"},
        ),
        ({}, set()),
    ):
        objects = render(Values("sm", overrides), tmp_path)
        monitors = select(objects, "ServiceMonitor")
        assert {
            m["metadata"]["labels"]["app.kubernetes.io/component"] for m in monitors
        } == expected
        for monitor in monitors:
            selector = monitor["spec"]["selector"]["matchLabels"]
            services = [
                s
                for s in select(objects, "Service")
                if selector.items() <= s["metadata"]["labels"].items()
            ]
            assert len(services) == 1
            assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
                p["name"] for p in services[0]["spec"]["ports"]
            }


def test_chart_crd_is_the_generated_crd() -> None:
    assert CRD_FILE.is_file(), (
        "deploy/crds is generated by `channelmodel crd -o deploy/crds/channelmodels.ml.dukarun.io.yaml`"
    )
    chart_copy = CHART_DIR / "crds" / CRD_FILE.name
    assert chart_copy.read_text() == CRD_FILE.read_text(), (
        f"the chart's CRD differs from {CRD_FILE.relative_to(CHART_DIR.parents[2])}: cp {CRD_FILE} {chart_copy}"
    )
    assert list((CHART_DIR / "crds").iterdir()) == [chart_copy]


def test_operator_deployment_is_a_single_non_root_read_only_kopf(tmp_path: Path) -> None:
    operator = deployment(render(None, tmp_path), "operator")
    spec = operator["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    main = container(operator)
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= main["resources"].keys()
    # The probes hit the port kopf's --liveness flag opens.
    liveness_flag = next(arg for arg in main["args"] if arg.startswith("--liveness="))
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = main[probe]["httpGet"]
        assert liveness_flag == f"--liveness=http://0.0.0.0:{ports[get['port']]}{get['path']}"
    tmp_mounts = [m for m in main["volumeMounts"] if m["mountPath"] == "/tmp"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert len(tmp_mounts) == 1
    assert "emptyDir" in volumes[tmp_mounts[0]["name"]]


def test_model_server_serves_the_store_read_only_without_api_token(tmp_path: Path) -> None:
    objects = render(None, tmp_path)
    server = deployment(objects, "server")
    pod = server["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    main = container(server)
    assert main["command"] + main["args"] == ["channelmodel", "serve"]
    env = plain_env(main)
    operator_env = plain_env(container(deployment(objects, "operator")))
    assert env["CHANNELMODEL_STORE_URI"] == operator_env["CHANNELMODEL_STORE_URI"]
    assert env["CHANNELMODEL_SERVER_HOST"] == "0.0.0.0"
    assert int(env["CHANNELMODEL_SERVER_PORT"]) == main["ports"][0]["containerPort"]
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    store_mounts = [m for m in main["volumeMounts"] if m["name"] == "models"]
    assert store_mounts
    assert all(m["readOnly"] for m in store_mounts)


def test_pvc_store_mounts_the_claim_everywhere_at_the_uri_path(tmp_path: Path) -> None:
    overrides = {
        "store": {"pvc": {"storageClass": "fast", "accessMode": "ReadWriteMany", "size": "20Gi"}}
    }
    objects = render(Values("pvc", overrides), tmp_path)
    claim = only(objects, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    operator_env = plain_env(container(deployment(objects, "operator")))
    assert operator_env["CHANNELMODEL_STORE_VOLUME_CLAIM"] == claim["metadata"]["name"]
    path = operator_env["CHANNELMODEL_STORE_URI"].removeprefix("file://")
    for component in ("operator", "server"):
        pod = deployment(objects, component)["spec"]["template"]["spec"]
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert claims[mounts[path]] == claim["metadata"]["name"]


def test_no_storage_class_and_existing_claim(tmp_path: Path) -> None:
    objects = render(Values("none", {"store": {"pvc": {"storageClass": "-"}}}), tmp_path)
    assert only(objects, "PersistentVolumeClaim")["spec"]["storageClassName"] == ""
    objects = render(
        Values("existing", {"store": {"pvc": {"existingClaim": "nfs-models"}}}), tmp_path
    )
    assert select(objects, "PersistentVolumeClaim") == []
    env = plain_env(container(deployment(objects, "operator")))
    assert env["CHANNELMODEL_STORE_VOLUME_CLAIM"] == "nfs-models"


def test_s3_store_takes_credentials_from_the_existing_secret(tmp_path: Path) -> None:
    objects = render(CASES[CASE_IDS.index("s3")], tmp_path)
    assert select(objects, "PersistentVolumeClaim") == []
    for component in ("operator", "server"):
        main = container(deployment(objects, component))
        env = plain_env(main)
        assert env["CHANNELMODEL_STORE_URI"] == "s3://shop-models/channels"
        assert env["AWS_ACCESS_KEY_ID"] == "<secret channelmodel-s3/AWS_ACCESS_KEY_ID>"
        assert env["AWS_SECRET_ACCESS_KEY"] == "<secret channelmodel-s3/AWS_SECRET_ACCESS_KEY>"
        assert env["CHANNELMODEL_S3_ENDPOINT_URL"] == "http://minio.minio.svc:9000"
        assert env["CHANNELMODEL_S3_ADDRESSING_STYLE"] == "path"
        assert env["AWS_REGION"] == "eu-central-1"
        assert not any(m["name"] == "models" for m in main["volumeMounts"])
    # No credentials anywhere in clear text.
    assert "AWS_SECRET_ACCESS_KEY" not in yaml.safe_dump(
        [o for o in objects if o["kind"] == "Secret"]
    )


def test_gpu_off_picks_the_cpu_trainer_image(tmp_path: Path) -> None:
    gpu = plain_env(container(deployment(render(None, tmp_path), "operator")))
    cpu = plain_env(
        container(
            deployment(
                render(Values("cpu", {"trainer": {"gpu": {"enabled": False}}}), tmp_path),
                "operator",
            )
        )
    )
    assert gpu["CHANNELMODEL_TRAINER_IMAGE"] == "channelmodel-trainer:0.1.0-gpu"
    assert cpu["CHANNELMODEL_TRAINER_IMAGE"] == "channelmodel-trainer:0.1.0-cpu"
    pinned = Values(
        "pinned",
        {
            "trainer": {
                "gpu": {"enabled": False},
                "image": {"repository": "r.example/t", "tag": "v9"},
            }
        },
    )
    assert (
        plain_env(container(deployment(render(pinned, tmp_path), "operator")))[
            "CHANNELMODEL_TRAINER_IMAGE"
        ]
        == "r.example/t:v9"
    )


def test_ingress_publishes_only_the_artifacts_and_sets_the_public_url(tmp_path: Path) -> None:
    objects = render(CASES[CASE_IDS.index("ingress")], tmp_path)
    ingress = only(objects, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "models.shop.example"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/assets/ml-models"
    service = only(objects, "Service", path["backend"]["service"]["name"])
    assert path["backend"]["service"]["port"]["name"] in {
        p["name"] for p in service["spec"]["ports"]
    }
    assert ingress["spec"]["tls"][0]["hosts"] == ["models.shop.example"]
    env = plain_env(container(deployment(objects, "operator")))
    assert env["CHANNELMODEL_PUBLIC_BASE_URL"] == "https://models.shop.example"


def test_kueue_creates_a_local_queue_where_jobs_run(tmp_path: Path) -> None:
    overrides = {
        "watch": {"namespaces": ["shop-a", "shop-b"]},
        "store": {"type": "s3", "s3": {"bucket": "models"}},
        "kueue": {"enabled": True, "localQueue": {"name": "training", "clusterQueue": "gpus"}},
    }
    objects = render(Values("kueue", overrides), tmp_path)
    queues = select(objects, "LocalQueue")
    assert {q["metadata"]["namespace"] for q in queues} == {"shop-a", "shop-b"}
    assert {q["spec"]["clusterQueue"] for q in queues} == {"gpus"}
    trainers = [
        sa
        for sa in select(objects, "ServiceAccount")
        if sa["metadata"]["labels"]["app.kubernetes.io/component"] == "trainer"
    ]
    assert {sa["metadata"]["namespace"] for sa in trainers} == {"shop-a", "shop-b"}
    assert select(render(None, tmp_path), "LocalQueue") == []


def test_notes_explain_a_first_channel_model_that_the_crd_accepts(tmp_path: Path) -> None:
    cases: tuple[dict[str, Any], ...] = (
        {},
        {
            "trainer": {"gpu": {"enabled": False}},
            "kueue": {"enabled": True, "localQueue": {"clusterQueue": "q"}},
        },
    )
    for index, overrides in enumerate(cases):
        (tmp_path / str(index)).mkdir()
        notes = rendered_notes(overrides, tmp_path / str(index))
        sample = yaml.safe_load(notes.split("<<'YAML'\n", 1)[1].split("  YAML\n", 1)[0])
        crd = yaml.safe_load(CRD_FILE.read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        jsonschema.validate(sample, schema)
        assert sample["kind"] == crd["spec"]["names"]["kind"]
        assert (
            sample["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
        )
        gpus_expected = 1 if not overrides else 0
        assert sample["spec"]["training"]["gpus"] == gpus_expected
        assert ("queueName" in sample["spec"]["training"]) == bool(overrides)
        assert "kubectl port-forward" in notes


BAD_VALUES = [
    ({"operator": {"logFormat": "yaml"}}, ["operator.logFormat", '"text", "json"']),
    ({"store": {"type": "gcs"}}, ["store.type", '"pvc", "s3"']),
    ({"store": {"type": "s3"}}, ["store.s3.bucket"]),
    ({"store": {"pvc": {"accessMode": "ReadOnlyMany"}}}, ["store.pvc.accessMode"]),
    ({"store": {"pvc": {"size": "lots"}}}, ["store.pvc.size"]),
    (
        {"operator": {"maxConcurrentTrainings": 0}},
        ["operator.maxConcurrentTrainings", "greater than or equal to 1"],
    ),
    ({"operator": {"qualityMargin": 2}}, ["operator.qualityMargin"]),
    ({"operator": {"publicBaseUrl": "models.shop.example"}}, ["operator.publicBaseUrl"]),
    ({"server": {"corsOrigins": ["https://pos.example/path"]}}, ["server.corsOrigins"]),
    ({"server": {"ingress": {"enabled": True}}}, ["server.ingress.host"]),
    ({"kueue": {"enabled": True}}, ["kueue.localQueue.clusterQueue"]),
    ({"watch": {"namespaces": ["Shop_A"]}}, ["watch.namespaces"]),
    ({"image": {"pullPolicy": "Sometimes"}}, ["image.pullPolicy"]),
    ({"securityContext": {"runAsUser": 0}}, ["securityContext.runAsUser"]),
    ({"trainer": {"gpus": 17}}, ["trainer.gpus"]),
    ({"trainer": {"gpu": {"count": 2}}}, ["Additional property count is not allowed"]),
    ({"storage": {"type": "s3"}}, ["Additional property storage is not allowed"]),
    ({"server": {"compat": {"enabled": True}}}, ["server.compat.existingSecret"]),
    (
        {"server": {"compat": {"enabled": True, "existingSecret": ""}}},
        ["server.compat.existingSecret"],
    ),
    ({"server": {"compat": {"mode": "auto"}}}, ["server.compat.mode", '"event", "manual"']),
    # The bearer token has no place in values: only the Secret's name does.
    ({"server": {"compat": {"token": "s3cr3t"}}}, ["Additional property token is not allowed"]),
    ({"server": {"compat": {"namespace": "Shop_A"}}}, ["server.compat.namespace"]),
    ({"server": {"compat": {"secretKey": "a/b"}}}, ["server.compat.secretKey"]),
    ({"server": {"compat": {"createChannelModels": "yes"}}}, ["server.compat.createChannelModels"]),
    # The policy (issue 12): typos must not widen or break it silently.
    ({"policy": {"egressAllowNetworks": ["localhost"]}}, ["policy.egressAllowNetworks.0"]),
    ({"policy": {"maxMemory": "lots"}}, ["policy.maxMemory"]),
    ({"policy": {"maxGpus": -1}}, ["policy.maxGpus"]),
    ({"policy": {"allowedImages": ["x"]}}, ["Additional property allowedImages is not allowed"]),
    # Combinations the schema cannot express are refused by the templates.
    ({"watch": {"clusterWide": True}}, ["store.type=pvc", "use store.type=s3"]),
    ({"watch": {"namespaces": ["shop-a"]}}, ["store.type=pvc", "watch only the release namespace"]),
    (
        {"server": {"compat": {"enabled": True, "existingSecret": "t", "namespace": "shop-z"}}},
        ['server.compat.namespace "shop-z" is not watched', "add it to watch.namespaces"],
    ),
]


@pytest.mark.parametrize(
    ("overrides", "messages"), BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))]
)
def test_bad_values_are_refused_with_a_clear_message(
    overrides: dict[str, Any], messages: list[str], tmp_path: Path
) -> None:
    assert_refused(overrides, messages, tmp_path)


def test_compat_without_a_token_secret_is_refused_even_without_the_schema(tmp_path: Path) -> None:
    """The templates refuse it too (e.g. `--skip-schema-validation`), saying what to create."""
    values = Values("no-secret", {"server": {"compat": {"enabled": True, "secretKey": "bearer"}}})
    result = run_helm(
        [*template_args(values.write(tmp_path)), "--skip-schema-validation"], check=False
    )
    assert result.returncode != 0
    assert "server.compat.enabled=true needs server.compat.existingSecret" in result.stderr
    assert f'Secret in namespace "{NAMESPACE}"' in result.stderr
    assert "--from-literal=bearer=" in result.stderr


def test_compat_mounts_the_token_secret_and_renders_no_secret_of_its_own(tmp_path: Path) -> None:
    objects = render(CASES[CASE_IDS.index("compat-create")], tmp_path)
    assert select(objects, "Secret") == []
    pod = deployment(objects, "server")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "backend-bearer"
    assert volume["secret"]["items"] == [{"key": "bearer", "path": "token"}]
    (mount,) = [
        m
        for m in container(deployment(objects, "server"))["volumeMounts"]
        if m["name"] == volume["name"]
    ]
    # A whole-directory mount (no subPath): the kubelet then updates a rotated Secret in place.
    assert mount["readOnly"] is True and "subPath" not in mount
    # The operator is unchanged by the server's API.
    operator_pod = deployment(objects, "operator")["spec"]["template"]["spec"]
    assert not [v for v in operator_pod["volumes"] if "secret" in v]


def test_notes_tell_the_backend_where_the_compat_api_is(tmp_path: Path) -> None:
    case = CASES[CASE_IDS.index("compat-create")]
    notes = rendered_notes(dict(case.overrides), tmp_path)
    objects = render(case, tmp_path)
    service = only(objects, "Service", deployment(objects, "server")["metadata"]["name"])
    port = service["spec"]["ports"][0]["port"]
    host = f"{service['metadata']['name']}.{NAMESPACE}.svc"
    base = f"http://{host}" if port == 80 else f"http://{host}:{port}"
    assert f"POST {base}/v1/train" in notes
    assert f"GET  {base}/v1/jobs/<jobId>" in notes
    assert "namespace shop-b (manual mode" in notes
    assert "Secret backend-bearer" in notes and "key bearer" in notes
    assert "create, read,\npatch and delete any Secret in namespace shop-b" in notes
    (tmp_path / "off").mkdir()
    assert "/v1/train" not in rendered_notes({}, tmp_path / "off")
