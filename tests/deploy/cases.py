"""The values matrix every chart test runs over."""

from __future__ import annotations

from typing import Any

from tests.deploy.chart_render import Values

S3: dict[str, Any] = {
    "type": "s3",
    "s3": {
        "bucket": "shop-models",
        "prefix": "channels",
        "region": "eu-central-1",
        "endpointUrl": "http://minio.minio.svc:9000",
        "addressingStyle": "path",
        "existingSecret": "channelmodel-s3",
    },
}

# The compatibility API on, with the chart's defaults otherwise.
COMPAT: dict[str, Any] = {"enabled": True, "existingSecret": "channelmodel-compat"}
# ... and creating ChannelModels, in a namespace other than the release's.
COMPAT_CREATE: dict[str, Any] = {
    "enabled": True,
    "existingSecret": "backend-bearer",
    "secretKey": "bearer",
    "namespace": "shop-b",
    "createChannelModels": True,
    "mode": "manual",
}

CASES: list[Values] = [
    Values("defaults"),
    Values("s3", {"store": S3}),
    Values("cluster-wide", {"watch": {"clusterWide": True, "namespaces": ["shop-a"]}, "store": S3}),
    Values("namespaces", {"watch": {"namespaces": ["shop-a", "shop-b"]}, "store": S3}),
    Values("gpu-off", {"trainer": {"gpu": {"enabled": False}}}),
    Values("ha", {"operator": {"replicas": 2}}),
    Values(
        "ingress",
        {
            "server": {
                "ingress": {
                    "enabled": True,
                    "className": "nginx",
                    "host": "models.shop.example",
                    "tls": {"enabled": True},
                }
            }
        },
    ),
    Values("kueue", {"kueue": {"enabled": True, "localQueue": {"clusterQueue": "gpu-queue"}}}),
    Values(
        "servicemonitor",
        {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    ),
    Values(
        "metrics-off",
        {"operator": {"metricsPort": 0}, "metrics": {"serviceMonitor": {"enabled": True}}},
    ),
    Values(
        "existing-claim-rwx",
        {"store": {"pvc": {"existingClaim": "nfs-models", "accessMode": "ReadWriteMany"}}},
    ),
    Values(
        "storage-class",
        {
            "store": {
                "pvc": {"storageClass": "fast-rwx", "accessMode": "ReadWriteMany", "size": "50Gi"}
            }
        },
    ),
    Values("compat", {"server": {"compat": COMPAT}}),
    Values(
        "compat-create",
        {
            "watch": {"namespaces": ["shop-a", "shop-b"]},
            "store": S3,
            "server": {"compat": COMPAT_CREATE},
        },
    ),
    Values(
        "everything",
        {
            "watch": {"clusterWide": True, "namespaces": ["shop-a", "shop-b"]},
            "store": S3,
            "trainer": {
                "gpu": {"enabled": False},
                "serviceAccount": {"annotations": {"iam": "role"}},
            },
            "server": {
                "replicas": 2,
                "serviceAccount": {"annotations": {"iam": "server-role"}},
                "corsOrigins": ["https://pos.shop.example", "http://localhost:5173"],
                "ingress": {"enabled": True, "host": "models.shop.example"},
            },
            "kueue": {"enabled": True, "localQueue": {"clusterQueue": "cpu-queue"}},
            "metrics": {"serviceMonitor": {"enabled": True}},
            "operator": {
                "logFormat": "text",
                "publicBaseUrl": "https://cdn.shop.example/",
                "replicas": 3,
            },
            "imagePullSecrets": [{"name": "registry"}],
        },
    ),
]

CASE_IDS = [case.name for case in CASES]
