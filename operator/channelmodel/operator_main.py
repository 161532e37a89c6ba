"""`channelmodel run`: the operator process.

kopf runs standalone (no kopf peering). One replica: kopf runs at once. Several
replicas (CHANNELMODEL_LEADER_ELECTION=true): each waits for the Lease and only
its holder runs kopf (channelmodel/leader.py, docs/decisions/0015-leader-election-lease.md).
"""

from __future__ import annotations

import argparse
import logging

import kopf
import prometheus_client

from channelmodel.egress import EgressPolicy
from channelmodel.handlers import register
from channelmodel.kube import KubeApi, load_client_config, wait_for_api_server
from channelmodel.leader import HealthServer, LeaderElector, exit_now, loopback_url
from channelmodel.logs import configure_logging
from channelmodel.notify import Notifier
from channelmodel.runtime import Runtime
from channelmodel.settings import OperatorSettings
from channelmodel.store import open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="Liveness endpoint for the Pod's probes, e.g. http://0.0.0.0:8080/healthz: kopf's "
        "own; with leader election, one that answers from process start, plus /readyz.",
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
    log = logging.getLogger(__name__)
    log.info(
        "watching %s; store %s; at most %d trainings at once",
        ", ".join(settings.namespaces) or "all namespaces",
        settings.store_uri,
        settings.max_concurrent_trainings,
    )
    if not settings.leader_election:
        run_kopf(registry, settings, args.liveness)
        return 0

    # Everything above is ready before the Lease is: a takeover only starts kopf.
    elector = LeaderElector(settings)
    kopf_liveness = loopback_url() if args.liveness else None
    if args.liveness:
        HealthServer(args.liveness, elector, kopf_liveness).start()
    elector.start()
    elector.wait_until_leading()
    try:
        run_kopf(registry, settings, kopf_liveness)
    finally:
        # kopf has stopped (SIGTERM, or it failed): nothing acts any more.
        elector.release()
    # The election library's loop has no stop and is mid-request at any moment: leave
    # now, before interpreter shutdown meets that daemon thread (it aborted: SIGABRT).
    exit_now(0)


def run_kopf(
    registry: kopf.OperatorRegistry, settings: OperatorSettings, liveness: str | None
) -> None:
    # standalone: kopf's own peering stays off; leader election (if on) decided already.
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=settings.cluster_wide,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
    )
