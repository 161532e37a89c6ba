"""`channelmodel run`: the operator process (kopf, standalone: one replica, Recreate)."""

from __future__ import annotations

import argparse
import logging

import kopf
import prometheus_client

from channelmodel.egress import EgressPolicy
from channelmodel.handlers import register
from channelmodel.kube import KubeApi, load_client_config, wait_for_api_server
from channelmodel.logs import configure_logging
from channelmodel.notify import Notifier
from channelmodel.runtime import Runtime
from channelmodel.settings import OperatorSettings
from channelmodel.store import open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz (for the Pod's probes).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="Debug logging.")


def run(args: argparse.Namespace) -> int:
    settings = OperatorSettings()
    configure_logging(settings.log_format, logging.DEBUG if args.verbose else logging.INFO)
    load_client_config(pool_size=settings.api_concurrency)
    wait_for_api_server(logging.getLogger(__name__))
    runtime = Runtime(
        settings=settings,
        store=open_store(settings.store_uri),
        kube=KubeApi(),
        notifier=Notifier(policy=EgressPolicy.of(settings.egress_allow_networks)),
    )
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port)
    registry = kopf.OperatorRegistry()
    register(registry, runtime)
    logging.getLogger(__name__).info(
        "watching %s; store %s; at most %d trainings at once",
        ", ".join(settings.namespaces) or "all namespaces",
        settings.store_uri,
        settings.max_concurrent_trainings,
    )
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=settings.cluster_wide,
        namespaces=settings.namespaces,
        liveness_endpoint=args.liveness,
    )
    return 0
