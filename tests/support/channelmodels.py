"""Reading a ChannelModel's status in end-to-end tests."""

from __future__ import annotations

from typing import Any

from tests.support.k8s import Cluster


def status(k8s: Cluster, name: str = "shop-1") -> dict[str, Any]:
    return dict(k8s.get_channelmodel(name).get("status") or {})


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)
