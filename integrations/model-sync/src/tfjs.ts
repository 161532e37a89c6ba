import type * as tfjs from '@tensorflow/tfjs';
import type { Classifier, ImageSource, Prediction, StoredModel } from './types.js';

/**
 * The TF.js namespace: `import * as tf from '@tensorflow/tfjs'` (4.x), or the global `tf` of
 * TF.js 1.3.1 that `@teachablemachine/image` brings. Only `loadLayersModel`, `tidy`, `slice`,
 * `browser.fromPixels` and `image.resizeBilinear` are used: the same in both. Types only: TF.js
 * is never bundled with this library.
 */
export type TfNamespace = typeof tfjs;

/** An in-memory IOHandler: TF.js loads the stored files without any network. */
export function memoryHandler(model: StoredModel): tfjs.io.IOHandler {
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
