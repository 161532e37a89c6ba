"""The model server (`channelmodel serve`): model files and latest.json over HTTP."""

from channelmodel.server.app import create_app
from channelmodel.server.metrics import ServerMetrics
from channelmodel.server.settings import ServerSettings

__all__ = ["ServerMetrics", "ServerSettings", "create_app"]
