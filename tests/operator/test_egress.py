"""SSRF (issue 12, finding 3): outbound requests a spec or a manifest can aim go
only to public addresses, unless the operator-side allowlist says otherwise.

Every client is tested against a real server on 127.0.0.1, reached once by IP
and once by a name that resolves to it: the check runs after DNS resolution.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from channelmodel.egress import (
    REFUSED_REASON,
    EgressPolicy,
    guarded_async_transport,
    guarded_transport,
    is_refusal,
)
from channelmodel.notify import Delivery, Notifier
from channelmodel_trainer.download import Downloaded, DownloadPolicy, download_images
from channelmodel_trainer.errors import ManifestError
from channelmodel_trainer.manifest import ImageRef, load_manifest
from channelmodel_trainer.notify_progress import WebhookProgress
from channelmodel_trainer.progress import LogProgress

DEFAULT = EgressPolicy()  # what production gets without an allowlist
LOOPBACK = EgressPolicy.of(["127.0.0.0/8", "::1/128"])


class _Server(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.hits = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.hits += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b'{"channelId": "shop-1", "products": []}'
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.shutdown()
    srv.server_close()


def _urls(server: _Server) -> list[str]:
    port = server.server_port
    return [f"http://127.0.0.1:{port}/x", f"http://localhost:{port}/x"]


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("169.254.169.254", False),  # cloud metadata
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT (some clusters' pod network)
        ("127.0.0.1", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("fe80::1%eth0", False),
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
    ],
)
def test_only_public_addresses_are_allowed_by_default(address: str, allowed: bool) -> None:
    assert DEFAULT.allows(address) is allowed


def test_the_allowlist_opens_exactly_its_networks() -> None:
    policy = EgressPolicy.of(["10.0.0.0/8", "::1/128"])
    assert policy.allows("10.200.0.1")
    assert policy.allows("::1")
    assert not policy.allows("192.168.0.1")
    assert not policy.allows("169.254.169.254")
    with pytest.raises(ValueError, match="not a CIDR"):
        EgressPolicy.of(["localhost"])


def test_sync_transport_refuses_loopback_by_ip_and_by_name(server: _Server) -> None:
    for url in _urls(server):
        with httpx.Client(transport=guarded_transport(DEFAULT)) as client:
            with pytest.raises(httpx.ConnectError) as caught:
                client.get(url)
            assert is_refusal(caught.value)
        with httpx.Client(transport=guarded_transport(LOOPBACK)) as client:
            assert client.get(url).status_code == 200
    assert server.hits == 2  # only the allowed requests arrived


async def test_async_transport_refuses_loopback_by_ip_and_by_name(server: _Server) -> None:
    for url in _urls(server):
        async with httpx.AsyncClient(transport=guarded_async_transport(DEFAULT)) as client:
            with pytest.raises(httpx.ConnectError) as caught:
                await client.get(url)
            assert is_refusal(caught.value)
        async with httpx.AsyncClient(transport=guarded_async_transport(LOOPBACK)) as client:
            assert (await client.get(url)).status_code == 200
    assert server.hits == 2


def test_manifest_fetch_is_refused_with_a_clear_reason(server: _Server) -> None:
    with pytest.raises(ManifestError, match=REFUSED_REASON):
        load_manifest(_urls(server)[1], egress=DEFAULT)
    assert server.hits == 0


async def test_image_downloads_are_refused_once_not_retried_and_say_why(server: _Server) -> None:
    closed_port = f"http://127.0.0.1:{_free_port()}/y"
    results: list[Downloaded] = []

    async def sink(item: Downloaded) -> None:
        results.append(item)

    await download_images(
        [ImageRef("p", url, is_url=True) for url in [*_urls(server), closed_port]],
        sink,
        policy=DownloadPolicy(attempts=3, backoff_seconds=0.01),
        egress=DEFAULT,
    )
    # An open port and a closed one look the same: no port-scan oracle.
    assert [item.reason for item in results] == [REFUSED_REASON] * 3
    assert server.hits == 0


async def test_operator_webhooks_are_not_delivered_to_private_addresses(server: _Server) -> None:
    notifier = Notifier(backoff=0.01, policy=DEFAULT)
    notifier.submit(Delivery(_urls(server)[0], {"type": "training.started"}, None))
    await asyncio.wait_for(notifier.drain(), 10)
    await notifier.close()
    assert server.hits == 0

    allowed = Notifier(backoff=0.01, policy=LOOPBACK)
    allowed.submit(Delivery(_urls(server)[0], {"type": "training.started"}, None))
    await asyncio.wait_for(allowed.drain(), 10)
    await allowed.close()
    assert server.hits == 1


def test_trainer_progress_webhooks_follow_the_environment(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANNELMODEL_EGRESS_ALLOW_NETWORKS", "")
    progress = WebhookProgress(LogProgress(), _urls(server)[0], None, "shop-1", "1.0.0")
    progress.start("embedding", 4)
    progress.close()
    assert server.hits == 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _self_signed(tmp_path: Any) -> tuple[str, str]:
    """A certificate for the name `localhost` only (not for 127.0.0.1), via cryptography."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_tls_still_verifies_the_host_name_after_connecting_to_the_checked_address(
    server: _Server, tmp_path: Any
) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    trust = ssl.create_default_context(cafile=cert)
    port = server.server_port

    # The guard connects to 127.0.0.1, yet the certificate is checked for "localhost".
    transport = guarded_transport(LOOPBACK, verify=trust)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"https://localhost:{port}/x").status_code == 200
    # ... and a name the certificate does not carry still fails verification.
    with (
        httpx.Client(transport=guarded_transport(LOOPBACK, verify=trust)) as client,
        pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|match"),
    ):
        client.get(f"https://127.0.0.1:{port}/x")
