"""The ChannelModel API: pydantic models that are the single source of the CRD schema."""

from channelmodel.api.models import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ChannelModelSpec,
    ChannelModelStatus,
    Condition,
    TrainingStatus,
)

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ChannelModelSpec",
    "ChannelModelStatus",
    "Condition",
    "TrainingStatus",
]
