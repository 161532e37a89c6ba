"""Where a model version is served: the URL scheme of the model server.

`<public base>/assets/ml-models/<channelId>/v<version>/<file>` and
`<public base>/assets/ml-models/<channelId>/latest.json`. The operator writes
`status.modelBaseUrl` with `model_base_url`; the server routes and parses the
same paths (`ROUTE_*`, `parse_version_segment`).
"""

from __future__ import annotations

from channelmodel.versions import is_version

ASSET_PREFIX = "/assets/ml-models"
LATEST_FILE = "latest.json"
# aiohttp route templates of the server (placeholders: channel, version, name).
ROUTE_MODEL_FILE = f"{ASSET_PREFIX}/{{channel}}/{{version}}/{{name}}"
ROUTE_LATEST = f"{ASSET_PREFIX}/{{channel}}/{LATEST_FILE}"


def version_path(channel_id: str, version: str) -> str:
    """`/assets/ml-models/<channelId>/v<version>/`: a version's folder, files go after it."""
    return f"{ASSET_PREFIX}/{channel_id}/v{version}/"


def model_base_url(public_base_url: str, channel_id: str, version: str) -> str:
    """The absolute URL of a version's folder (status.modelBaseUrl, latest.json)."""
    return public_base_url.rstrip("/") + version_path(channel_id, version)


def parse_version_segment(segment: str) -> str | None:
    """`v1.0.3` -> `1.0.3`; None for anything else."""
    version = segment[1:]
    return version if segment.startswith("v") and is_version(version) else None
