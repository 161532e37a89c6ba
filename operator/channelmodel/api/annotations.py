"""Annotation keys the backend (or a person) writes on a ChannelModel."""

from enum import StrEnum

PREFIX = "ml.dukarun.io"
INVENTORY_CHANGED_AT = f"{PREFIX}/inventory-changed-at"
INVENTORY_CHANGE = f"{PREFIX}/inventory-change"
RETRAIN_REQUESTED_AT = f"{PREFIX}/retrain-requested-at"
# Written by `channelmodel import --name`: a version published by hand, to adopt.
IMPORTED_VERSION = f"{PREFIX}/imported-version"
IMPORTED_ORIGIN = f"{PREFIX}/imported-origin"
# On a Secret, not a ChannelModel: the ChannelModels (names in the Secret's
# namespace, comma-separated, or `*`) that may reference it (channelmodel/policy.py).
SECRET_OPT_IN_ANNOTATION = f"{PREFIX}/channel-models"
# On a token Secret: the only origins (scheme://host[:port], comma-separated) its
# bearer token may be sent to, whatever a ChannelModel's manifest URL says.
TOKEN_ORIGINS_ANNOTATION = f"{PREFIX}/token-origins"


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
