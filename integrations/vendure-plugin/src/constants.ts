/** The operator's contract (docs/integration.md, operator/channelmodel/api/annotations.py, notify.py). */
export const GROUP = 'ml.dukarun.io';
export const VERSION = 'v1alpha1';
export const PLURAL = 'channelmodels';

export const INVENTORY_CHANGED_AT = `${GROUP}/inventory-changed-at`;
export const INVENTORY_CHANGE = `${GROUP}/inventory-change`;
export const RETRAIN_REQUESTED_AT = `${GROUP}/retrain-requested-at`;

/** What the operator understands as a catalog change (`ChangeKind` in annotations.py). */
export type ChangeKind = 'productAdded' | 'productDeleted' | 'imageChanged';

/** The operator's replay window: a timestamp further than this from our clock is refused. */
export const REPLAY_WINDOW_SECONDS = 300;

export const PLUGIN_OPTIONS = Symbol('CHANNEL_MODEL_PLUGIN_OPTIONS');
export const loggerCtx = 'ChannelModelPlugin';
