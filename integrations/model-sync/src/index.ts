export { ModelSync } from './sync.js';
export type { ModelSyncOptions } from './sync.js';
export { ModelStore } from './idb.js';
export type { CurrentRecord } from './idb.js';
export { loadWithTfjs, memoryHandler, topK } from './tfjs.js';
export type { TfNamespace } from './tfjs.js';
export { loadWithTeachableMachine } from './teachable.js';
export type { TeachableMachineNamespace } from './teachable.js';
export { checkMetadata, checkModelJson, outputUnits } from './verify.js';
export { ModelSyncError } from './types.js';
export type {
  Classifier, DownloadProgress, ImageSource, LayersModelJson, ModelLocation, ModelMetadata,
  ModelSyncErrorCode, Prediction, StoredModel, SyncResult, SyncStatus, WeightSpec,
} from './types.js';
