"""Annotation keys the backend (or a person) writes on a ChannelModel."""

from enum import StrEnum

PREFIX = "ml.dukarun.io"
INVENTORY_CHANGED_AT = f"{PREFIX}/inventory-changed-at"
INVENTORY_CHANGE = f"{PREFIX}/inventory-change"
RETRAIN_REQUESTED_AT = f"{PREFIX}/retrain-requested-at"
# Written by `channelmodel import --name`: a version published by hand, to adopt.
IMPORTED_VERSION = f"{PREFIX}/imported-version"
IMPORTED_ORIGIN = f"{PREFIX}/imported-origin"


class ChangeKind(StrEnum):
    PRODUCT_ADDED = "productAdded"
    PRODUCT_DELETED = "productDeleted"
    IMAGE_CHANGED = "imageChanged"


class TriggerKind(StrEnum):
    """What may start a retrain; `schedule` is the nightly fallback run."""

    PRODUCT_ADDED = "productAdded"
    PRODUCT_DELETED = "productDeleted"
    IMAGE_CHANGED = "imageChanged"
    SCHEDULE = "schedule"
