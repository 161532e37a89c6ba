/** Where a channel's model version lives: the Shop API's Channel custom fields, or latest.json. */
export interface ModelLocation {
  /** Ends with `/`: `<base>/model.json`, `weights.bin` and `metadata.json` are the version's files. */
  modelBaseUrl: string;
  modelVersion: string;
}

/** One model version as IndexedDB keeps it. */
export interface StoredModel {
  channelId: string;
  version: string;
  /** model.json, parsed (a TF.js layers model). */
  modelJson: LayersModelJson;
  /** weights.bin, verified against model.json's weights manifest. */
  weights: ArrayBuffer;
  /** metadata.json, parsed (Teachable Machine format; labels are product IDs). */
  metadata: ModelMetadata;
  storedAt: string;
  bytes: number;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool' | 'complex64' | 'string';
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; scale?: number; min?: number };
}

export interface LayersModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: Record<string, unknown>;
  weightsManifest: { paths: string[]; weights: WeightSpec[] }[];
}

export interface ModelMetadata {
  labels: string[];
  imageSize?: number;
  [key: string]: unknown;
}

export interface Prediction {
  productId: string;
  probability: number;
}

/** A loaded model: top-k product IDs for an image, video frame, canvas or ImageBitmap. */
export interface Classifier {
  readonly version: string;
  readonly labels: readonly string[];
  predict(source: ImageSource, k?: number): Promise<Prediction[]>;
  dispose(): void;
}

export type ImageSource = HTMLImageElement | HTMLVideoElement | HTMLCanvasElement | ImageBitmap | ImageData;

export interface DownloadProgress {
  version: string;
  file: 'model.json' | 'weights.bin' | 'metadata.json';
  loaded: number;
  /** From Content-Length or the weights manifest; undefined when unknown. */
  total: number | undefined;
}

export type SyncStatus = 'updated' | 'up-to-date' | 'offline';

export interface SyncResult {
  status: SyncStatus;
  /** The version in use after the sync. */
  version: string;
  /** The version replaced by this sync (status 'updated'). */
  previousVersion?: string;
  /** Model file bytes received (decoded body bytes; latest.json not counted). */
  bytesDownloaded: number;
  /** Why the network could not be used (status 'offline'). */
  error?: string;
}

export type ModelSyncErrorCode = 'no-model' | 'offline' | 'invalid-model' | 'download-failed' | 'quota' | 'load-failed';

export class ModelSyncError extends Error {
  constructor(readonly code: ModelSyncErrorCode, message: string, readonly cause?: unknown) {
    super(message);
    this.name = 'ModelSyncError';
  }
}
