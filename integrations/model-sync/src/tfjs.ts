import type { Classifier, ImageSource, Prediction, StoredModel } from './types.js';

/**
 * The part of the TF.js API this library uses: the same in `@tensorflow/tfjs` 1.3.1 (what
 * `@teachablemachine/image` pins) and 4.x, so either namespace can be passed in.
 */
export interface TensorLike {
  readonly shape: number[];
  div(value: number): TensorLike;
  sub(value: number): TensorLike;
  expandDims(axis?: number): TensorLike;
  data(): Promise<ArrayLike<number>>;
  dispose(): void;
}

export interface LayersModelLike {
  predict(input: TensorLike): TensorLike | TensorLike[];
  dispose(): void;
}

export interface TfNamespace {
  loadLayersModel(handler: { load(): Promise<unknown> }): Promise<LayersModelLike>;
  tidy<T extends TensorLike>(fn: () => T): T;
  slice(x: TensorLike, begin: number[], size: number[]): TensorLike;
  browser: { fromPixels(source: ImageSource): TensorLike };
  image: { resizeBilinear(images: TensorLike, size: [number, number]): TensorLike };
}

/** An in-memory IOHandler: TF.js loads the stored files without any network. */
export function memoryHandler(model: StoredModel): { load(): Promise<unknown> } {
  const { modelJson, weights } = model;
  return {
    load: async () => ({
      modelTopology: modelJson.modelTopology,
      weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
      weightData: weights,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy ?? undefined,
    }),
  };
}

/** Best first. */
export function topK(labels: readonly string[], probabilities: ArrayLike<number>, k: number): Prediction[] {
  return labels
    .map((productId, i) => ({ productId, probability: probabilities[i] }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, Math.max(0, k));
}

/**
 * Load a stored version with plain TF.js (4.x or 1.3.1) and preprocess as Teachable Machine
 * does: centre square crop, resize to the model's size (224), `x/127 - 1`.
 */
export async function loadWithTfjs(tf: TfNamespace, stored: StoredModel): Promise<Classifier> {
  const model = await tf.loadLayersModel(memoryHandler(stored));
  const labels = stored.metadata.labels;
  const size = stored.metadata.imageSize ?? 224;
  return {
    version: stored.version,
    labels,
    async predict(source: ImageSource, k = 3): Promise<Prediction[]> {
      const output = tf.tidy(() => {
        const pixels = tf.browser.fromPixels(source);
        const [height, width] = pixels.shape;
        const side = Math.min(height, width);
        const square = tf.slice(pixels, [Math.floor((height - side) / 2), Math.floor((width - side) / 2), 0], [side, side, 3]);
        const input = tf.image.resizeBilinear(square, [size, size]).div(127).sub(1).expandDims(0);
        const result = model.predict(input);
        return Array.isArray(result) ? result[0] : result;
      });
      try {
        return topK(labels, await output.data(), k);
      } finally {
        output.dispose();
      }
    },
    dispose: () => model.dispose(),
  };
}
