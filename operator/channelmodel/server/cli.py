"""`channelmodel serve`: serve model artifacts over HTTP."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web
from pydantic import ValidationError

from channelmodel.compat.settings import CompatSettings
from channelmodel.logs import configure_logging
from channelmodel.server.app import create_app
from channelmodel.server.settings import ServerSettings
from channelmodel.store import StoreError, open_store

log = logging.getLogger("channelmodel.server")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        dest="store_uri",
        help="file:///path or s3://bucket/prefix [CHANNELMODEL_STORE_URI]",
    )
    parser.add_argument(
        "--host", dest="server_host", help="listen address [CHANNELMODEL_SERVER_HOST, 0.0.0.0]"
    )
    parser.add_argument(
        "--port", dest="server_port", type=int, help="listen port [CHANNELMODEL_SERVER_PORT, 8080]"
    )
    parser.add_argument(
        "--cors-origins",
        help="comma-separated allowed origins, '*' for any [CHANNELMODEL_CORS_ORIGINS, *]",
    )
    parser.add_argument(
        "--public-base-url",
        help="public URL of this server, for absolute URLs in latest.json [CHANNELMODEL_PUBLIC_BASE_URL]",
    )


def settings_from(args: argparse.Namespace) -> ServerSettings:
    """Environment first, flags override it."""
    overrides = {
        field: value
        for field in ("store_uri", "server_host", "server_port", "cors_origins", "public_base_url")
        if (value := getattr(args, field, None)) is not None
    }
    return ServerSettings(**overrides)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        store = open_store(settings.store_uri)
    except (ValidationError, StoreError) as exc:
        print(f"channelmodel serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)  # the operator's and the trainer's setup
    app = create_app(
        store, cors_origins=settings.cors_origins, public_base_url=settings.public_base_url
    )
    compat = CompatSettings()
    if compat.enabled:
        # The old trainer service's POST /v1/train (docs/migration.md); off by default.
        from channelmodel.compat.app import mount
        from channelmodel.compat.settings import CompatTokenMissing
        from channelmodel.kube import load_client_config

        try:
            mount(app, compat)
            load_client_config()
        except CompatTokenMissing as exc:  # accepting nobody (or everybody) is no option
            print(f"channelmodel serve: compatibility API: {exc}", file=sys.stderr)
            return 2
        log.info("compatibility API /v1/train enabled (%s mode)", compat.mode)
    log.info("serving %s on %s:%d", store.uri, settings.server_host, settings.server_port)
    web.run_app(
        app, host=settings.server_host, port=settings.server_port, print=None, access_log=None
    )
    return 0
