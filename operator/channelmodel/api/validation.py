"""The CRD's openAPIV3Schema, for whoever validates ChannelModels against it offline.

The API server validates for real; the sandbox's emulator
(`channelmodel_sandbox.schema`) does it with the same wording for tests and
`channelmodel dev`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channelmodel.api.crd import crd_manifest


def openapi_schema(crd: Mapping[str, Any] | None = None) -> dict[str, Any]:
    crd = crd or crd_manifest()
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
