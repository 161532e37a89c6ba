"""Test support: a real S3 API (moto's server mode) on 127.0.0.1.

Not a mock of boto3 calls: the store talks HTTP to a threaded S3 server, so
request signing, conditional writes, listing and pagination are exercised as
they are against MinIO or AWS. Needs `moto[server]` (a dev dependency).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "CHANNELMODEL_S3_ADDRESSING_STYLE": "path",
}


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run moto's S3 server on a free 127.0.0.1 port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO: keep test output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def create_bucket(endpoint_url: str, name: str | None = None) -> str:
    """Create a fresh bucket on the test server; returns its name."""
    import boto3

    bucket = name or f"test-{uuid.uuid4().hex[:12]}"
    client: Any = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    return bucket
