"""Outbound HTTP that a ChannelModel's author can aim: manifests, images, webhooks.

A spec field (or a manifest it points to) chooses these URLs, so without a
check anyone who may patch a ChannelModel could make the operator or a trainer
talk to the cluster's own services, the node, or the cloud metadata endpoint
(169.254.169.254). Every such request goes through a transport whose network
backend resolves the host itself, refuses unless every address is public
(globally routable, not multicast) or inside an operator-side allowlist
(`CHANNELMODEL_EGRESS_ALLOW_NETWORKS`), and then connects to the checked
address: no second resolution, so DNS rebinding cannot slip past the check.
TLS still verifies the certificate against the host name (httpcore passes the
URL's host as SNI), and refusals are neither retried nor told apart by port.

See docs/decisions/0009-trust-model-and-policy.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

ALLOW_ENV = "CHANNELMODEL_EGRESS_ALLOW_NETWORKS"
REFUSED_REASON = "address not allowed"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(httpcore.ConnectError):
    """The host resolves to an address the egress policy does not allow."""


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    networks = []
    for value in values:
        value = value.strip()
        if value:
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError as exc:
                raise ValueError(f"{ALLOW_ENV}: {value!r} is not a CIDR network") from exc
    return tuple(networks)


@dataclass(frozen=True)
class EgressPolicy:
    """Public addresses only, plus the networks the platform engineer allows."""

    allow: tuple[Network, ...] = ()

    @classmethod
    def from_env(cls) -> EgressPolicy:
        return cls(parse_networks(os.environ.get(ALLOW_ENV, "").split(",")))

    @classmethod
    def of(cls, networks: Sequence[str]) -> EgressPolicy:
        return cls(parse_networks(networks))

    def allows(self, address: str) -> bool:
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allow):
            return True
        return ip.is_global and not ip.is_multicast

    def check(self, host: str, addresses: Sequence[str]) -> str:
        """The address to connect to; EgressRefused unless every one is allowed."""
        if not addresses:
            raise EgressRefused(f"{host} resolves to nothing")
        if not all(self.allows(address) for address in addresses):
            # One message for every refused host: no oracle of what answers there.
            raise EgressRefused(f"{REFUSED_REASON}: {host}")
        return addresses[0]


def _addresses(infos: Sequence[tuple[Any, ...]]) -> list[str]:
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, policy: EgressPolicy) -> None:
        self._inner = inner
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}") from exc
        address = self._policy.check(host, _addresses(infos))
        return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressRefused("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _GuardedAsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend, policy: EgressPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}") from exc
        address = self._policy.check(host, _addresses(infos))
        return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(policy: EgressPolicy, **kwargs: Any) -> httpx.HTTPTransport:
    """An httpx transport that connects only where `policy` allows."""
    transport = httpx.HTTPTransport(**kwargs)
    pool = transport._pool
    pool._network_backend = _GuardedBackend(pool._network_backend, policy)
    return transport


def guarded_async_transport(policy: EgressPolicy, **kwargs: Any) -> httpx.AsyncHTTPTransport:
    """An async httpx transport that connects only where `policy` allows."""
    transport = httpx.AsyncHTTPTransport(**kwargs)
    pool = transport._pool
    pool._network_backend = _GuardedAsyncBackend(pool._network_backend, policy)
    return transport


def is_refusal(exc: BaseException) -> bool:
    """True when an httpx error (or what caused it) is the egress policy's refusal."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, EgressRefused):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
