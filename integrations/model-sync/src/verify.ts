import { LayersModelJson, ModelMetadata, ModelSyncError, WeightSpec } from './types.js';

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2, complex64: 8 };

function invalid(message: string): ModelSyncError {
  return new ModelSyncError('invalid-model', message);
}

export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalid(`${file} is not valid JSON`);
  }
}

/** model.json: a layers model whose weights are all in one `weights.bin`; returns the bytes it needs. */
export function checkModelJson(value: unknown): { model: LayersModelJson; weightBytes: number } {
  const model = value as Partial<LayersModelJson> | null;
  if (!model || typeof model !== 'object' || typeof model.modelTopology !== 'object' || !Array.isArray(model.weightsManifest)) {
    throw invalid('model.json is not a TF.js layers model (modelTopology, weightsManifest)');
  }
  let weightBytes = 0;
  for (const group of model.weightsManifest) {
    if (!Array.isArray(group.paths) || group.paths.length !== 1 || group.paths[0] !== 'weights.bin') {
      throw invalid(`model.json names weight files ${JSON.stringify(group.paths)}: expected ["weights.bin"]`);
    }
    for (const spec of group.weights as WeightSpec[]) weightBytes += specBytes(spec);
  }
  return { model: model as LayersModelJson, weightBytes };
}

function specBytes(spec: WeightSpec): number {
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const size = BYTES_PER_ELEMENT[dtype];
  if (size === undefined || !Array.isArray(spec.shape) || spec.shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw invalid(`model.json: weight ${spec.name} has an unsupported dtype or shape`);
  }
  return spec.shape.reduce((n, d) => n * d, 1) * size;
}

/** The units of the model's last Dense layer (its output classes), searching nested models. */
export function outputUnits(topology: unknown): number | undefined {
  let units: number | undefined;
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(walk);
    } else if (node && typeof node === 'object') {
      const layer = node as { class_name?: unknown; config?: { units?: unknown; layers?: unknown } };
      if (layer.class_name === 'Dense' && typeof layer.config?.units === 'number') units = layer.config.units;
      for (const value of Object.values(node)) if (value && typeof value === 'object') walk(value);
    }
  };
  walk(topology);
  return units;
}

export function checkMetadata(value: unknown, model: LayersModelJson): ModelMetadata {
  const metadata = value as Partial<ModelMetadata> | null;
  if (!metadata || !Array.isArray(metadata.labels) || metadata.labels.length === 0 || metadata.labels.some((l) => typeof l !== 'string' || !l)) {
    throw invalid('metadata.json has no labels');
  }
  if (new Set(metadata.labels).size !== metadata.labels.length) throw invalid('metadata.json has duplicate labels');
  const units = outputUnits(model.modelTopology);
  if (units !== metadata.labels.length) {
    throw invalid(`metadata.json has ${metadata.labels.length} labels, the model ${units ?? 'no'} output units`);
  }
  return metadata as ModelMetadata;
}

/** A strong `"<sha-256 hex>"` ETag (what the channelmodel server sends) as hex; undefined otherwise. */
export function sha256OfEtag(etag: string | null): string | undefined {
  const match = /^"([0-9a-f]{64})"$/.exec(etag ?? '');
  return match ? match[1] : undefined;
}

export async function sha256Hex(data: ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', data);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
